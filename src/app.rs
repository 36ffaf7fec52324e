//! The one place that wires. [`Setup`] reads and cross-checks every input; [`Application::build`]
//! assembles the database, the transports, the engine (scheduler and dispatcher), the bot and
//! the web state from it — for `loa run`, the demo and the tests alike — and
//! [`Application::run`] runs them together until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{Datelike, Utc};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::audience;
use crate::bot::{self, BotState, LongPolling, Webhook};
use crate::calendar::Calendar;
use crate::channel::{ChannelKind, ChannelSet};
use crate::channels::log::LogChannel;
use crate::channels::sms::{Callback, HttpSmsChannel, KannelChannel};
use crate::channels::telegram::TelegramChannel;
use crate::channels::zalo::ZaloChannel;
use crate::channels::{Channel, redact};
use crate::clock::SharedClock;
use crate::config::{Config, Env, SmsGateway};
use crate::diagnostics::{Problem, Problems};
use crate::dispatch::{Dispatcher, Transports};
use crate::inbound::Inbound;
use crate::scheduler::Scheduler;
use crate::store::{Db, redact_url};
use crate::templates::Templates;
use crate::web::{self, WebState};
use teloxide::Bot;
use teloxide::payloads::SetWebhookSetters;
use teloxide::prelude::Requester;

mod review;

/// Everything read from disk, checked against each other: config, schedules, templates.
#[derive(Debug, Clone)]
pub struct Setup {
    pub config: Arc<Config>,
    pub calendar: Arc<Calendar>,
    pub templates: Arc<Templates>,
    /// Worth an operator's look, not a reason to refuse to start.
    pub warnings: Vec<Problem>,
}

impl Setup {
    /// Loads `loa.toml`, then the schedules and templates it points to. Every problem in every
    /// file is reported, each as `file:line: message`.
    pub fn load(config_path: &Path, env: &Env) -> Result<Setup, Problems> {
        Setup::load_with(config_path, env, ChannelSet::builtin())
    }

    /// The same for a deployment that knows `channels`: the built-in ones and any added (a
    /// channel is a descriptor, its transport, its config section and its templates).
    pub fn load_with(
        config_path: &Path,
        env: &Env,
        channels: ChannelSet,
    ) -> Result<Setup, Problems> {
        let config = Config::load_with(config_path, env, channels)?;
        let (calendar, mut problems) = Calendar::load_partial(
            &config.schedules_dir,
            config.campaign.time_zone,
            &config.areas,
            &config.channels,
            &config.holidays,
        );
        let mut templates = Templates::load(&config.messages_dir, &config.channels)
            .map_err(|p| problems.extend(p))
            .ok();
        if let (Some(templates), Some(name)) =
            (templates.as_mut(), config.zalo_staff_template.as_deref())
            && let Err(e) = templates.set_staff_template(ChannelKind::Zalo, name)
        {
            problems.push(Problem::new(
                &config.path,
                None,
                format!("zalo.staff_template: {e}"),
            ));
        }
        if let Some(templates) = &templates {
            problems.extend(review::template_problems(&config, &calendar, templates));
        }
        let this_year = Utc::now().with_timezone(&config.campaign.time_zone).year();
        let warnings = review::warnings(&config, &calendar, templates.as_ref(), this_year);
        match templates {
            Some(templates) if problems.is_empty() => Ok(Setup {
                config: Arc::new(config),
                calendar: Arc::new(calendar),
                templates: Arc::new(templates),
                warnings,
            }),
            _ => Err(problems),
        }
    }

    /// The observances whose messages print their theme but have none for a year of `years`
    /// (`loa plan` warns of its range).
    pub fn missing_themes(&self, years: std::ops::RangeInclusive<i32>) -> Vec<Problem> {
        review::missing_themes(&self.config, &self.calendar, &self.templates, years)
    }

    /// Telegram through the Bot API when a token is set. With no credentials at all, every
    /// channel goes to the `log` channel so Loa always runs; with some, a channel that has
    /// none stays unsent (its deliveries wait and expire) rather than pretend to be delivered.
    pub fn transports(&self) -> anyhow::Result<Transports> {
        let mut transports = Transports::new();
        if let Some(telegram) = &self.config.telegram {
            transports = transports.with(
                ChannelKind::Telegram,
                Arc::new(
                    TelegramChannel::new(telegram)?.with_paid_broadcast(telegram.paid_broadcast),
                ),
            );
        }
        if let Some(sms) = self.sms_channel()? {
            transports = transports.with(ChannelKind::Sms, sms);
        }
        if transports.kinds().is_empty() {
            for kind in self.config.channels.kinds() {
                transports = transports.with(kind, Arc::new(LogChannel));
            }
        }
        Ok(transports)
    }

    /// Zalo ZNS when `LOA_ZALO_APP_ID` is set: its token pair lives in the database.
    pub fn zalo_transport(&self, db: &Db, clock: &SharedClock) -> anyhow::Result<Transports> {
        let Some(zalo) = &self.config.zalo else {
            return Ok(Transports::new());
        };
        let channel = ZaloChannel::new(
            zalo,
            db.clone(),
            Arc::clone(clock),
            self.config.campaign.time_zone,
        )
        .map_err(anyhow::Error::msg)?;
        Ok(Transports::new().with(ChannelKind::Zalo, Arc::new(channel)))
    }

    /// The configured SMS gateway, if any.
    pub fn sms_channel(&self) -> anyhow::Result<Option<Arc<dyn Channel>>> {
        let config = &self.config;
        let callback = Callback {
            public_url: config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.http_addr)),
            secret: config.webhook_secret.clone(),
        };
        Ok(match &config.sms.gateway {
            None => None,
            Some(SmsGateway::Kannel {
                url,
                username,
                password,
            }) => Some(Arc::new(KannelChannel::new(
                url,
                username,
                password,
                &config.sms.from,
                Some(callback),
            ))),
            Some(SmsGateway::Http(http)) => Some(Arc::new(
                HttpSmsChannel::new(http, &config.sms.from).map_err(anyhow::Error::msg)?,
            )),
        })
    }

    /// Opens and migrates the configured database and mirrors the areas into it.
    pub async fn open_database(&self) -> anyhow::Result<Db> {
        let db = Db::connect(&self.config.database_url).await?;
        db.migrate().await?;
        audience::sync_areas(&db, &self.config.areas)
            .await
            .context("cannot store the areas of loa.toml")?;
        Ok(db)
    }
}

/// The scheduler and a dispatcher over one database: what `loa run` drives on a timer and
/// tests drive step by step.
pub struct Engine {
    pub db: Db,
    pub scheduler: Scheduler,
    pub dispatcher: Dispatcher,
}

impl Engine {
    /// An engine on an open database. [`Application::build`] makes the first one; a restart, or
    /// a second process on the same database (tests, the benchmark), makes another: nothing in
    /// memory is shared between two engines.
    pub fn new(setup: &Setup, db: Db, clock: SharedClock, transports: Transports) -> Engine {
        let scheduler = Scheduler::new(
            db.clone(),
            Arc::clone(&setup.calendar),
            Arc::new(setup.config.areas.clone()),
            Arc::clone(&clock),
        )
        .with_time_zone(setup.config.campaign.time_zone)
        .with_target(setup.config.campaign.target)
        // Only the channels this process can send by: a schedule's Zalo on a deployment
        // without Zalo leaves its people to their next channel.
        .with_channels(setup.config.channels.only(&transports.kinds()))
        .with_budget(
            crate::budget::Pricer::new(Arc::clone(&setup.config), Arc::clone(&setup.templates)),
            setup
                .config
                .telegram
                .as_ref()
                .map(|t| t.admins.clone())
                .unwrap_or_default(),
        );
        let dispatcher = Dispatcher::new(
            db.clone(),
            Arc::clone(&setup.templates),
            transports,
            clock,
            Arc::clone(&setup.config),
        );
        Engine {
            db,
            scheduler,
            dispatcher,
        }
    }
}

/// What a caller of [`Application::build_with`] supplies instead of what the configuration
/// says.
#[derive(Default)]
pub struct Overrides {
    /// A listener already bound: the demo and the tests bind a free port first, to put its
    /// address in `public_url` (gateways call back there). Without one, `http.addr` is bound.
    pub listener: Option<TcpListener>,
    /// Transports of channels the configuration does not build: a channel added in code.
    pub transports: Transports,
}

/// Loa assembled from a [`Setup`] and a clock: every part `loa run` runs, built in one place.
/// `loa run` runs them all ([`Application::run`]); the demo and the tests take the parts and
/// drive them by hand.
pub struct Application {
    pub setup: Setup,
    pub clock: SharedClock,
    pub engine: Engine,
    /// What the web routes serve: the console, the gateways' callbacks (and Telegram's, in
    /// webhook mode), health and metrics.
    pub web: WebState,
    /// The residents' bot by long polling; `None` without Telegram, or in webhook mode, where
    /// `web.telegram` takes the updates instead.
    pub bot: Option<LongPolling>,
    pub listener: TcpListener,
}

impl Application {
    /// Everything as the configuration says.
    pub async fn build(setup: Setup, clock: SharedClock) -> anyhow::Result<Application> {
        Application::build_with(setup, clock, Overrides::default()).await
    }

    /// Opens and migrates the database, makes the transports, binds the listener (unless one
    /// is supplied), and assembles the engine, the bot and the web state over them. In webhook
    /// mode the webhook is registered with Telegram here, so a wrong token stops the start;
    /// long polling connects only once run, and keeps trying while Telegram is unreachable.
    pub async fn build_with(
        setup: Setup,
        clock: SharedClock,
        overrides: Overrides,
    ) -> anyhow::Result<Application> {
        let db = setup.open_database().await?;
        let transports = setup
            .transports()?
            .with_all(setup.zalo_transport(&db, &clock)?)
            .with_all(overrides.transports);
        let listener = match overrides.listener {
            Some(listener) => listener,
            None => bind(setup.config.http_addr).await?,
        };
        let engine = Engine::new(&setup, db.clone(), Arc::clone(&clock), transports);
        let bot_state = Arc::new(BotState {
            db,
            config: Arc::clone(&setup.config),
            calendar: Arc::clone(&setup.calendar),
            clock: Arc::clone(&clock),
        });
        let (bot, webhook) = telegram_bot(&setup.config, bot_state).await?;
        let web = web_state(&setup, &engine, &clock, webhook);
        Ok(Application {
            setup,
            clock,
            engine,
            web,
            bot,
            listener,
        })
    }

    /// Runs the scheduler, the dispatcher, the bot and the web server until `shutdown`
    /// resolves, then lets the sends in flight finish and leaves the worker table.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        self.announce().await?;
        let Application {
            setup,
            clock,
            engine:
                Engine {
                    db,
                    scheduler,
                    dispatcher,
                },
            web,
            bot,
            listener,
        } = self;
        let idle = Duration::from_millis(setup.config.dispatch.poll_interval_ms);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (pumped_tx, pumped_rx) = watch::channel(false);
        let polling = async {
            if let Some(bot) = bot {
                bot.run(stopped(stop_rx.clone())).await;
            }
        };
        let (_, _, _, _, _, served, _) = tokio::join!(
            schedule(scheduler, stop_rx.clone()),
            async {
                dispatcher.pump(idle, stop_rx.clone()).await;
                let _ = pumped_tx.send(true);
            },
            // Until the pump has returned, not until the stop: the sends still in flight then
            // are this worker's, and another worker must not take their rows meanwhile.
            keep_alive(&dispatcher, pumped_rx),
            daily_backup(&db, &setup.config, clock, stop_rx.clone()),
            polling,
            serve_web(web, listener, stopped(stop_rx.clone())),
            stop_on(shutdown, &dispatcher, stop_tx),
        );
        served.context("web server")?;
        if let Err(e) = dispatcher.retire().await {
            tracing::warn!("could not leave the worker table: {e:#}");
        }
        db.close().await;
        tracing::info!("stopped");
        Ok(())
    }

    /// The operator's start-up lines: the setup's warnings, what runs where, and how to make
    /// the first console account.
    async fn announce(&self) -> anyhow::Result<()> {
        let config = &self.setup.config;
        for warning in &self.setup.warnings {
            tracing::warn!("{warning}");
        }
        tracing::info!(
            database = %redact_url(&config.database_url),
            schedules = self.setup.calendar.schedules().len(),
            channels = %self.engine.dispatcher.transports().describe(),
            now = %self.clock.now().with_timezone(&config.campaign.time_zone).to_rfc3339(),
            "Loa is starting: {}",
            config
                .campaign
                .name_in(self.clock.now().with_timezone(&config.campaign.time_zone).year())
        );
        tracing::info!("web server on http://{}", self.listener.local_addr()?);
        if crate::console::accounts::count_users(&self.engine.db).await? == 0 {
            tracing::info!(
                "the console has no accounts yet: create one with `loa user add NAME --role admin`"
            );
        }
        Ok(())
    }
}

/// Builds and runs Loa as the configuration says until `shutdown` resolves: `loa run`.
pub async fn run(
    setup: Setup,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    Application::build(setup, clock).await?.run(shutdown).await
}

/// Serves the web routes on `listener` until `stop` resolves, behind the server's guards: how
/// `loa run`, the demo and the tests serve.
pub async fn serve_web(
    state: WebState,
    listener: TcpListener,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    web::guard::serve(
        listener,
        web::router(state),
        web::guard::HEADER_READ_TIMEOUT,
        stop,
    )
    .await
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (set LOA_HTTP_ADDR or http.addr)"))
}

/// The residents' bot: the webhook when a secret token is configured, otherwise long polling.
async fn telegram_bot(
    config: &Config,
    state: Arc<BotState>,
) -> anyhow::Result<(Option<LongPolling>, Option<Arc<Webhook>>)> {
    let Some(telegram) = &config.telegram else {
        return Ok((None, None));
    };
    let bot = TelegramChannel::new(telegram)?.bot().clone();
    Ok(match &telegram.webhook_secret {
        None => (Some(LongPolling::new(bot, state)), None),
        Some(secret) => {
            let webhook = connect_webhook(bot, state, secret, config.public_url.as_deref()).await?;
            (None, Some(Arc::new(webhook)))
        }
    })
}

/// Asks Telegram who the bot is, registers its commands and, when Loa's public URL is known,
/// points the webhook at `/webhooks/telegram` with `secret`.
async fn connect_webhook(
    bot: Bot,
    state: Arc<BotState>,
    secret: &str,
    public_url: Option<&str>,
) -> anyhow::Result<Webhook> {
    // These errors end in the operator's log: redacted as the log lines are.
    let me = bot
        .get_me()
        .await
        .map_err(|e| anyhow::anyhow!("telegram getMe: {}", redact(&format!("{e:#}"))))?;
    bot::register_commands(&bot)
        .await
        .map_err(|e| anyhow::anyhow!("{}", redact(&format!("{e:#}"))))?;
    if let Some(public) = public_url {
        let url = reqwest::Url::parse(&format!(
            "{}/webhooks/telegram",
            public.trim_end_matches('/')
        ))?;
        // Telegram opens up to 40 connections by default, often from one address: fewer than
        // one client's share of the server (`web::guard::MAX_REQUESTS_PER_CLIENT`).
        bot.set_webhook(url)
            .secret_token(secret.to_string())
            .max_connections(16)
            .await
            .map_err(|e| anyhow::anyhow!("telegram setWebhook: {}", redact(&format!("{e:#}"))))?;
    }
    tracing::info!("Telegram bot: webhook at /webhooks/telegram");
    Ok(Webhook {
        bot,
        me,
        state,
        secret: secret.to_string(),
    })
}

/// The one `WebState`, over the engine's database, metrics and transports.
fn web_state(
    setup: &Setup,
    engine: &Engine,
    clock: &SharedClock,
    telegram: Option<Arc<Webhook>>,
) -> WebState {
    let transports = engine.dispatcher.transports();
    let channels = transports
        .kinds()
        .into_iter()
        .filter_map(|k| {
            transports
                .get(k)
                .map(|t| (k.to_string(), t.name().to_string()))
        })
        .collect();
    WebState {
        db: engine.db.clone(),
        config: Arc::clone(&setup.config),
        clock: Arc::clone(clock),
        metrics: engine.dispatcher.metrics(),
        channels: Arc::new(channels),
        inbound: Arc::new(Inbound {
            db: engine.db.clone(),
            config: Arc::clone(&setup.config),
            templates: Arc::clone(&setup.templates),
            sms: sms_gateway(transports),
        }),
        telegram,
        templates: Arc::clone(&setup.templates),
        calendar: Arc::clone(&setup.calendar),
        throttle: Default::default(),
        exports: Default::default(),
    }
}

/// The SMS gateway among the transports: automatic replies to residents go through it. The
/// `log` channel, standing in when nothing at all is configured, answers nobody.
fn sms_gateway(transports: &Transports) -> Option<Arc<dyn Channel>> {
    transports
        .get(ChannelKind::Sms)
        .filter(|channel| channel.name() != LogChannel.name())
        .cloned()
}

/// Resolves once `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Ticks the scheduler once a second until stopped; a failed tick is logged and the next one
/// tries again (its cursor has not moved).
async fn schedule(mut scheduler: Scheduler, stop: watch::Receiver<bool>) {
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every_second.tick() => {
                if let Err(e) = scheduler.tick().await {
                    tracing::error!("scheduler: {e:#}");
                }
            }
            _ = stopped(stop.clone()) => break,
        }
    }
}

/// Stamps the dispatcher alive every half second, apart from its steps: a step waiting on a
/// slow gateway must not look like a dead worker (nor fence itself). A paused process stamps
/// nothing, which is the point.
async fn keep_alive(dispatcher: &Dispatcher, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(stop.clone()) => break,
        }
        if let Err(e) = dispatcher.keep_alive().await {
            tracing::warn!("cannot stamp this worker alive: {e:#}");
        }
    }
}

/// With `[backup] dir`, looks once a minute whether today's copy of the database is due.
async fn daily_backup(db: &Db, config: &Config, clock: SharedClock, stop: watch::Receiver<bool>) {
    if config.backup.dir.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(stop.clone()) => break,
        }
        let made = crate::backup::daily(
            db,
            &config.database_url,
            &config.backup,
            config.campaign.time_zone,
            clock.now(),
        )
        .await;
        match made {
            Ok(crate::backup::Daily::Made { file, removed }) => {
                tracing::info!(file = %file.display(), removed = removed.len(), "daily backup made")
            }
            Ok(crate::backup::Daily::Nothing) => {}
            // Tried again in a minute; the log says why (a full disk, a missing pg_dump).
            Err(e) => tracing::error!("daily backup: {e:#}"),
        }
    }
}

/// Waits for `shutdown`, then stops everything: the dispatcher first, so a step under way puts
/// the rest of its batch back instead of sending it.
async fn stop_on(
    shutdown: impl Future<Output = ()>,
    dispatcher: &Dispatcher,
    stop: watch::Sender<bool>,
) {
    shutdown.await;
    tracing::info!("shutting down: sends in flight finish, the rest of the batch goes back");
    dispatcher.request_stop();
    let _ = stop.send(true);
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
