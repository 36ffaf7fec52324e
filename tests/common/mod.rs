//! `TestApp`: Loa on a database of its own, the repository's real `loa.toml`, `schedules/`
//! and `messages/`, a fake Telegram Bot API and a frozen virtual clock. Tests move the clock
//! and step the scheduler and the dispatcher by hand.
//!
//! The database is a fresh SQLite file, or, when `LOA_TEST_POSTGRES_URL` is set, a fresh
//! PostgreSQL database created for the test on that server.

#![allow(dead_code)]

pub mod console;
pub mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, Utc};
use loa::app::{Application, Engine, Overrides, Setup};
use loa::channel::ChannelSet;
use loa::clock::{SharedClock, VirtualClock};
use loa::config::{ChannelKind, Config, Env};
use loa::dispatch::Transports;
use loa::fakes::telegram::FakeTelegram;
use loa::store::Db;
use sqlx::Executor;

pub const BOT_TOKEN: &str = "123456:TEST-token";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("valid RFC 3339")
        .to_utc()
}

pub struct TestApp {
    pub setup: Setup,
    pub db: Db,
    pub clock: Arc<VirtualClock>,
    pub telegram: FakeTelegram,
    pub engine: Engine,
    /// What `serve_web` serves: the application's one web state.
    pub web: loa::web::WebState,
    /// The bot's long polling, as `loa run` would start it (`None` in webhook mode).
    pub polling: Option<loa::bot::LongPolling>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// Loa on the repository's configuration, standing still at `start`.
    pub async fn spawn_at(start: &str) -> TestApp {
        TestApp::spawn_with_config(&repo_root().join("loa.toml"), start).await
    }

    pub async fn spawn_with_config(config: &Path, start: &str) -> TestApp {
        TestApp::spawn_custom(config, start, 0.0, |_| {}).await
    }

    /// Loa on the repository's configuration as `adjust` changes it.
    pub async fn spawn_adjusted(start: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::spawn_custom(&repo_root().join("loa.toml"), start, 0.0, adjust).await
    }

    /// Loa on a clock running at real speed from `start`, with the shipped rate limits (no
    /// burst): for what only real time shows.
    pub async fn spawn_running(start: &str, adjust: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::spawn_custom(&repo_root().join("loa.toml"), start, 1.0, |config| {
            config.limits.burst = 1;
            adjust(config)
        })
        .await
    }

    /// A frozen clock has no "later this second": a step sends a whole batch at one instant,
    /// so these tests let the rate limits burst. The limits themselves are tested on a running
    /// clock.
    pub async fn spawn_custom(
        config: &Path,
        start: &str,
        speed: f64,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        TestApp::spawn_channels(
            config,
            start,
            speed,
            ChannelSet::builtin(),
            Transports::new(),
            adjust,
        )
        .await
    }

    /// Loa knowing `channels`, with `transports` for those the configuration does not build:
    /// a channel added in code.
    pub async fn spawn_channels(
        config: &Path,
        start: &str,
        speed: f64,
        channels: ChannelSet,
        transports: Transports,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match std::env::var("LOA_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => fresh_postgres_database(&url).await,
            _ => format!("sqlite://{}/loa.db", dir.path().display()),
        };
        let telegram = FakeTelegram::start(BOT_TOKEN).await.expect("fake Bot API");
        let env = Env::default()
            .with("LOA_DATABASE_URL", database_url)
            .with("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
            .with("TELEGRAM_API_URL", telegram.api_url());
        let mut setup = Setup::load_with(config, &env, channels)
            .unwrap_or_else(|p| panic!("shipped configuration is invalid:\n{p}"));
        let config = Arc::make_mut(&mut setup.config);
        config.limits.burst = 10_000;
        adjust(config);
        let clock = Arc::new(VirtualClock::running(at(start), speed));
        // A free port, never `http.addr`: tests run side by side. A test that serves binds
        // its own listener first, to know the port it puts in `public_url`.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let Application {
            setup,
            engine,
            web,
            bot,
            ..
        } = Application::build_with(
            setup,
            clock.clone() as SharedClock,
            Overrides {
                listener: Some(listener),
                transports,
            },
        )
        .await
        .expect("application");
        TestApp {
            setup,
            db: engine.db.clone(),
            clock,
            telegram,
            engine,
            web,
            polling: bot,
            _dir: dir,
        }
    }

    /// A resident of `area` subscribed on Telegram with chat `chat_id`.
    pub async fn subscribe(&self, name: &str, area: &str, chat_id: i64) -> i64 {
        let now = self.clock.now();
        let person =
            loa::audience::add_person(&self.db, &self.setup.config.areas, name, area, &[], now)
                .await
                .expect("add person");
        loa::audience::add_contact(
            &self.db,
            person,
            ChannelKind::Telegram,
            &chat_id.to_string(),
            now,
        )
        .await
        .expect("add contact");
        person
    }

    /// A resident with a mobile number (E.164).
    pub async fn subscribe_sms(&self, name: &str, area: &str, number: &str) -> i64 {
        let now = self.clock.now();
        let person =
            loa::audience::add_person(&self.db, &self.setup.config.areas, name, area, &[], now)
                .await
                .expect("add person");
        loa::audience::add_contact(&self.db, person, ChannelKind::Sms, number, now)
            .await
            .expect("add contact");
        person
    }

    /// Serves Loa's web routes (webhooks, metrics, console) on `listener`, as `loa run` does.
    pub fn serve_web(&self, listener: tokio::net::TcpListener) {
        tokio::spawn(loa::app::serve_web(
            self.web.clone(),
            listener,
            std::future::pending(),
        ));
    }

    /// The residents' bot, started as `loa run` starts it, polling the fake Bot API.
    pub async fn bot(&self) -> loa::bot::Poller {
        self.polling
            .as_ref()
            .expect("telegram configured, without a webhook")
            .start()
            .await
            .expect("bot starts")
    }

    /// What the bot's handlers share, whichever way updates come.
    pub fn bot_state(&self) -> Arc<loa::bot::BotState> {
        match (&self.polling, &self.web.telegram) {
            (Some(polling), _) => Arc::clone(polling.state()),
            (None, Some(webhook)) => Arc::clone(&webhook.state),
            (None, None) => panic!("telegram is not configured"),
        }
    }

    /// A new engine on the same database, as after a process restart: nothing in memory survives.
    /// (`web` stays the first application's: its metrics count the first engine's sends.)
    pub fn restart(&mut self) {
        self.engine = Engine::new(
            &self.setup,
            self.db.clone(),
            self.clock.clone() as SharedClock,
            self.setup.transports().expect("transports"),
        );
    }

    /// Imports the CSV `csv` as a commune clerk's file named `file`; every row must pass.
    pub async fn import_csv(&self, file: &str, csv: &str) {
        let report = loa::audience::import::import_bytes(
            &self.db,
            &self.setup.config.areas,
            file,
            csv.as_bytes().to_vec(),
            &loa::audience::import::ImportOptions::default(),
            self.clock_now(),
            |_, _| {},
        )
        .await
        .unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    }

    /// `n` residents spread over the communes, each with a Telegram chat; returns their chat ids.
    pub async fn seed_residents(&self, n: usize) -> Vec<i64> {
        seed_residents(&self.db, &self.setup.config, n).await
    }

    /// Every contact becomes a mobile number (`+84912` and the contact's id): residents known
    /// by SMS alone.
    pub async fn contacts_become_sms(&self) {
        use sqlx::Row;
        let ids: Vec<i64> = sqlx::query("SELECT id FROM contacts ORDER BY id")
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get(0).unwrap())
            .collect();
        let mut tx = self.db.pool.begin().await.unwrap();
        for id in ids {
            sqlx::query("UPDATE contacts SET channel = 'sms', address = $1 WHERE id = $2")
                .bind(format!("+84912{id:06}"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }

    /// Another engine on the same database and clock: a second `loa run` process.
    pub fn second_engine(&self) -> Engine {
        Engine::new(
            &self.setup,
            self.db.clone(),
            self.clock.clone() as SharedClock,
            self.setup.transports().expect("transports").with_all(
                self.setup
                    .zalo_transport(&self.db, &(self.clock.clone() as SharedClock))
                    .expect("zalo transport"),
            ),
        )
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub fn set_clock(&self, to: &str) {
        self.clock.set(at(to));
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        use sqlx::Row;
        sqlx::query(sql)
            .fetch_one(&self.db.pool)
            .await
            .expect(sql)
            .try_get(0)
            .expect("count")
    }
}

use loa::clock::Clock;

static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// Creates an empty database on the server of `admin_url` and returns its URL.
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    sqlx::any::install_default_drivers();
    let name = format!(
        "loa_test_{}_{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::SeqCst),
        Utc::now().timestamp_subsec_nanos()
    );
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(admin_url)
        .await
        .expect("LOA_TEST_POSTGRES_URL must reach a PostgreSQL server");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create test database");
    let (base, _) = admin_url.rsplit_once('/').expect("URL ends with /database");
    format!("{base}/{name}")
}

/// `n` residents spread over the communes of `config`, each with a Telegram chat; returns the
/// chat ids of every Telegram contact.
pub async fn seed_residents(db: &Db, config: &Config, n: usize) -> Vec<i64> {
    use sqlx::Row;
    loa::perf::seed(db, config, n)
        .await
        .expect("seed residents");
    sqlx::query("SELECT address FROM contacts WHERE channel = 'telegram' ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap().parse().unwrap())
        .collect()
}

/// A copy of the shipped configuration, schedules and messages, to break or run in.
pub fn copy_of_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_root().join("loa.toml"), dir.path().join("loa.toml")).unwrap();
    for sub in ["schedules", "messages"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(repo_root().join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}
