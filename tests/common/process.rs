//! `loa run` as a separate process, as an operator starts it: for what only a real process
//! shows (SIGKILL, SIGSTOP, a backup while it runs).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loa::app::Setup;
use loa::config::Env;
use loa::fakes::telegram::FakeTelegram;
use loa::store::Db;

use super::{BOT_TOKEN, seed_residents};

/// `dispatch.concurrency` in the shipped configuration: the sends in flight at a kill.
pub const CONCURRENCY: usize = 16;

/// A `loa run` process, killed (SIGKILL) when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `loa run` in `dir` against `telegram`, its clock starting just before the 8 March message
/// and running at real speed.
pub fn start(dir: &Path, telegram: &FakeTelegram) -> Running {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args([
            "run",
            "--clock",
            "2023-03-08T07:59:59+07:00",
            "--clock-speed",
            "1",
        ])
        .current_dir(dir)
        .env_remove("LOA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
        .env("TELEGRAM_API_URL", telegram.api_url())
        .env("LOA_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("LOA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Running(child)
}

/// Waits until the fake has accepted `n` messages, or panics after `limit`.
pub async fn until_sent(telegram: &FakeTelegram, n: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while telegram.sent().len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} messages arrived in {limit:?}",
            telegram.sent().len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The repository's configuration in `dir` with `rate` messages a second to Telegram (and as
/// many at once), its database seeded with `recipients` residents; returns the database and
/// their chats.
pub async fn prepare(dir: &Path, rate: u32, recipients: usize) -> (Db, Vec<i64>) {
    let config_path = dir.join("loa.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let config = config
        .replace("burst = 1 ", &format!("burst = {rate} "))
        .replace("per_second = 30 ", &format!("per_second = {rate} "));
    assert!(config.contains("lease_seconds = 120") && config.contains(&format!("= {rate} ")));
    assert!(config.contains(&format!("concurrency = {CONCURRENCY} ")));
    std::fs::write(&config_path, config).unwrap();
    let db_url = format!("sqlite://{}/data/loa.db", dir.display());
    let setup = Setup::load(
        &config_path,
        &Env::default().with("LOA_DATABASE_URL", &db_url),
    )
    .unwrap();
    let db = setup.open_database().await.unwrap();
    let chats = seed_residents(&db, &setup.config, recipients).await;
    (db, chats)
}

/// The chats of the deliveries some worker holds (`sending`).
pub async fn chats_in_flight(db: &Db) -> Vec<i64> {
    chats_with_status(db, "sending").await
}

/// The chats of the deliveries in `status`.
pub async fn chats_with_status(db: &Db, status: &str) -> Vec<i64> {
    use sqlx::Row;
    sqlx::query(
        "SELECT c.address FROM deliveries d JOIN contacts c ON c.id = d.contact_id
         WHERE d.status = $1",
    )
    .bind(status)
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get::<String, _>(0).unwrap().parse().unwrap())
    .collect()
}

pub fn signal(child: &Running, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal}");
}
