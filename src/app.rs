//! The one place that wires: reads and cross-checks every input, builds the database, the
//! transports, the scheduler, the dispatcher and the web server, and runs them together until
//! shutdown.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{Datelike, NaiveDate, Utc};
use tokio::sync::watch;

use crate::audience;
use crate::bot::{self, BotState, Poller, Webhook};
use crate::calendar::Calendar;
use crate::channels::log::LogChannel;
use crate::channels::sms::{Callback, HttpSmsChannel, KannelChannel};
use crate::channels::telegram::TelegramChannel;
use crate::channels::{Channel, redact};
use crate::clock::SharedClock;
use crate::config::{ChannelKind, Config, Env, SmsGateway};
use crate::diagnostics::{Problem, Problems};
use crate::dispatch::{Dispatcher, Transports};
use crate::inbound::Inbound;
use crate::scheduler::Scheduler;
use crate::store::{Db, redact_url};
use crate::templates::{MessageContext, SampleData, Templates};
use crate::web::{self, WebState};
use teloxide::payloads::SetWebhookSetters;
use teloxide::prelude::Requester;

/// The longest observance name of the 2023 plan: templates are checked with it.
const SAMPLE_OBSERVANCE: &str =
    "Tháng hành động vì bình đẳng giới và phòng ngừa, ứng phó với bạo lực trên cơ sở giới";

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
        let config = Config::load(config_path, env)?;
        let (calendar, mut problems) = Calendar::load_partial(
            &config.schedules_dir,
            config.campaign.time_zone,
            &config.areas,
            &config.channels,
        );
        let templates = Templates::load(&config.messages_dir, &config.channels)
            .map_err(|p| problems.extend(p))
            .ok();
        if let Some(templates) = &templates {
            // Every template once, with the longest observance name of the plan, so a missing
            // variable or an overlong text shows even in a template no schedule uses yet.
            let sample =
                MessageContext::sample(SAMPLE_OBSERVANCE, &SampleData::from_config(&config));
            for (name, kind) in templates.names() {
                if let Some(problem) = templates.check(name, kind, &sample) {
                    problems.push(problem);
                }
            }
            for schedule in calendar.schedules() {
                for &kind in &schedule.channels {
                    if !templates.has(&schedule.template, kind) {
                        problems.push(Problem::new(
                            &schedule.file,
                            Some(schedule.template_line),
                            format!(
                                "template: no {}/{}.{kind}.hbs for channel {kind} of schedule {:?}",
                                config.messages_dir.display(),
                                schedule.template,
                                schedule.id
                            ),
                        ));
                    }
                }
            }
        }
        let mut warnings = calendar.warnings.clone();
        // Two campaign messages to one person on one day are too many, unless meant.
        let this_year = Utc::now().with_timezone(&config.campaign.time_zone).year();
        let (from, to) = (
            NaiveDate::from_ymd_opt(this_year.min(2023), 1, 1).expect("valid"),
            NaiveDate::from_ymd_opt(this_year + 2, 12, 31).expect("valid"),
        );
        for (day, a, b) in
            calendar.same_day_collisions(from, to, config.campaign.time_zone, &config.areas)
        {
            let file = calendar
                .get(&b)
                .map_or(config.schedules_dir.clone(), |s| s.file.clone());
            let line = calendar.get(&b).map(|s| s.line);
            warnings.push(Problem::new(
                &file,
                line,
                format!("warning: schedules {a:?} and {b:?} both fire on {day}; mark one same_day_ok = true if that is meant"),
            ));
        }
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
    pub fn new(setup: &Setup, db: Db, clock: SharedClock, transports: Transports) -> Engine {
        let scheduler = Scheduler::new(
            db.clone(),
            Arc::clone(&setup.calendar),
            Arc::new(setup.config.areas.clone()),
            Arc::clone(&clock),
        )
        .with_time_zone(setup.config.campaign.time_zone)
        .with_channels(setup.config.channels.clone());
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

/// Runs scheduler, dispatcher and web server until `shutdown` resolves.
pub async fn run(
    setup: Setup,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let config = Arc::clone(&setup.config);
    let db = setup.open_database().await?;
    let transports = setup.transports()?;
    for warning in &setup.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        database = %redact_url(&config.database_url),
        schedules = setup.calendar.schedules().len(),
        channels = %transports.describe(),
        now = %clock.now().with_timezone(&config.campaign.time_zone).to_rfc3339(),
        "Loa is starting: {}",
        config.campaign.name
    );
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set LOA_HTTP_ADDR or http.addr)",
                config.http_addr
            )
        })?;
    tracing::info!("web server on http://{}", listener.local_addr()?);
    if crate::console::accounts::count_users(&db).await? == 0 {
        tracing::info!(
            "the console has no accounts yet: create one with `loa user add NAME --role admin`"
        );
    }

    let Engine {
        db,
        mut scheduler,
        dispatcher,
    } = Engine::new(&setup, db, Arc::clone(&clock), transports);
    let transports_described: Vec<(String, String)> = dispatcher
        .transports()
        .kinds()
        .into_iter()
        .filter_map(|k| {
            dispatcher
                .transports()
                .get(k)
                .map(|t| (k.to_string(), t.name().to_string()))
        })
        .collect();
    let dispatcher = Arc::new(dispatcher);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let scheduling = {
        let rx = stop_rx.clone();
        async move {
            let mut every_second = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = every_second.tick() => {
                        if let Err(e) = scheduler.tick().await {
                            tracing::error!("scheduler: {e:#}");
                        }
                    }
                    _ = stopped(rx.clone()) => break,
                }
            }
        }
    };
    let dispatching = {
        let rx = stop_rx.clone();
        let dispatcher = Arc::clone(&dispatcher);
        let idle = Duration::from_millis(config.dispatch.poll_interval_ms);
        async move {
            while !*rx.borrow() {
                let pause = match dispatcher.step().await {
                    Ok(report) if report.claimed > 0 => {
                        tracing::debug!(?report, "dispatch step");
                        continue;
                    }
                    Ok(_) => idle,
                    Err(e) => {
                        tracing::error!("dispatch: {e:#}");
                        idle
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stopped(rx.clone()) => break,
                }
            }
        }
    };
    // The residents' bot: long polling, or the webhook when a secret token is configured.
    let bot_state = Arc::new(BotState {
        db: db.clone(),
        config: Arc::clone(&config),
        calendar: Arc::clone(&setup.calendar),
        clock: Arc::clone(&clock),
    });
    let mut polling_bot = None;
    let mut webhook = None;
    if let Some(telegram) = &config.telegram {
        let bot = TelegramChannel::new(telegram)?.bot().clone();
        match &telegram.webhook_secret {
            Some(secret) => {
                // These errors end in the operator's log: redacted as the log lines are.
                let me = bot.get_me().await.map_err(|e| {
                    anyhow::anyhow!("telegram getMe: {}", redact(&format!("{e:#}")))
                })?;
                bot::register_commands(&bot)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", redact(&format!("{e:#}"))))?;
                if let Some(public) = &config.public_url {
                    let url = reqwest::Url::parse(&format!(
                        "{}/webhooks/telegram",
                        public.trim_end_matches('/')
                    ))?;
                    bot.set_webhook(url)
                        .secret_token(secret.clone())
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!("telegram setWebhook: {}", redact(&format!("{e:#}")))
                        })?;
                }
                tracing::info!("Telegram bot: webhook at /webhooks/telegram");
                webhook = Some(Arc::new(Webhook {
                    bot,
                    me,
                    state: Arc::clone(&bot_state),
                    secret: secret.clone(),
                }));
            }
            None => polling_bot = Some(bot),
        }
    }
    let polling = {
        let rx = stop_rx.clone();
        async move {
            let Some(bot) = polling_bot else {
                return;
            };
            // Telegram being unreachable at start must not keep the scheduler and the SMS side
            // down: the bot keeps trying on its own.
            let mut poller = loop {
                tokio::select! {
                    started = Poller::new(bot.clone(), Arc::clone(&bot_state)) => match started {
                        Ok(poller) => break poller,
                        Err(e) => {
                            tracing::warn!(
                                "Telegram bot cannot start yet: {}; retrying in 10 s",
                                redact(&format!("{e:#}"))
                            );
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                                _ = stopped(rx.clone()) => return,
                            }
                        }
                    },
                    _ = stopped(rx.clone()) => return,
                }
            };
            tracing::info!("Telegram bot: long polling");
            loop {
                tokio::select! {
                    result = poller.poll_once(25) => {
                        if let Err(e) = result {
                            tracing::warn!("telegram getUpdates: {}", redact(&format!("{e:#}")));
                            tokio::time::sleep(Duration::from_secs(3)).await;
                        }
                    }
                    _ = stopped(rx.clone()) => break,
                }
            }
        }
    };
    let web_state = WebState {
        db: db.clone(),
        config: Arc::clone(&config),
        clock: Arc::clone(&clock),
        metrics: dispatcher.metrics(),
        channels: Arc::new(transports_described.clone()),
        inbound: Arc::new(Inbound {
            db: db.clone(),
            config: Arc::clone(&config),
            templates: Arc::clone(&setup.templates),
            sms: setup.sms_channel()?,
        }),
        telegram: webhook,
        templates: Arc::clone(&setup.templates),
        calendar: Arc::clone(&setup.calendar),
        throttle: Default::default(),
    };
    let serving = web::guard::serve(
        listener,
        web::router(web_state),
        web::guard::HEADER_READ_TIMEOUT,
        stopped(stop_rx.clone()),
    );
    let signal = {
        let dispatcher = Arc::clone(&dispatcher);
        async move {
            shutdown.await;
            tracing::info!(
                "shutting down: sends in flight finish, the rest of the batch goes back"
            );
            dispatcher.request_stop();
            let _ = stop_tx.send(true);
        }
    };
    let (_, _, _, served, _) = tokio::join!(scheduling, dispatching, polling, serving, signal);
    served.context("web server")?;
    if let Err(e) = dispatcher.retire().await {
        tracing::warn!("could not leave the worker table: {e:#}");
    }
    db.close().await;
    tracing::info!("stopped");
    Ok(())
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
