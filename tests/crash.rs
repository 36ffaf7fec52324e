//! A `loa run` process killed with SIGKILL three times at random points of a 5,000-recipient
//! occurrence, restarted each time: nobody is left out, and the duplicates stay within the
//! documented bound — at most the sends in flight at each kill (`dispatch.concurrency`).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BOT_TOKEN, copy_of_repo, seed_residents};
use loa::app::Setup;
use loa::config::Env;
use loa::fakes::telegram::FakeTelegram;
use rand::Rng;

const RECIPIENTS: usize = 5_000;
const CONCURRENCY: usize = 16;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, telegram: &FakeTelegram) -> Running {
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
async fn until_sent(telegram: &FakeTelegram, n: usize, limit: Duration) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_three_times_loses_nobody_and_duplicates_stay_within_the_bound() {
    let dir = copy_of_repo();
    let config_path = dir.path().join("loa.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    // Short leases so a killed worker's rows come back quickly; no rate limit to wait for.
    let config = config
        .replace("lease_seconds = 120", "lease_seconds = 3")
        .replace("concurrency = 16", &format!("concurrency = {CONCURRENCY}"))
        .replace("burst = 1 ", "burst = 1000 ")
        .replace("per_second = 30 ", "per_second = 5000 ");
    assert!(config.contains("lease_seconds = 3") && config.contains("per_second = 5000"));
    std::fs::write(&config_path, config).unwrap();

    let db_url = format!("sqlite://{}/data/loa.db", dir.path().display());
    let setup = Setup::load(
        &config_path,
        &Env::default().with("LOA_DATABASE_URL", &db_url),
    )
    .unwrap();
    let db = setup.open_database().await.unwrap();
    let chats = seed_residents(&db, &setup.config, RECIPIENTS).await;
    db.close().await;

    let telegram = FakeTelegram::start(BOT_TOKEN).await.unwrap();
    let seed: u64 = rand::rng().random();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    eprintln!("kill points from seed {seed}");
    let kill_points = [
        rng.random_range(100..1_500),
        rng.random_range(1_600..3_000),
        rng.random_range(3_100..4_500),
    ];
    for point in kill_points {
        let mut child = start(dir.path(), &telegram);
        until_sent(&telegram, point, Duration::from_secs(120)).await;
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
    }
    let child = start(dir.path(), &telegram);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let distinct: usize = telegram
            .sent()
            .iter()
            .map(|m| m.chat_id)
            .collect::<std::collections::HashSet<_>>()
            .len();
        if distinct == RECIPIENTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {distinct} of {RECIPIENTS} chats reached"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(child);

    let mut per_chat: HashMap<i64, usize> = HashMap::new();
    for m in telegram.sent() {
        *per_chat.entry(m.chat_id).or_default() += 1;
    }
    assert_eq!(per_chat.len(), chats.len(), "nobody is left out");
    let duplicates: usize = per_chat.values().map(|n| n - 1).sum();
    eprintln!("kills at {kill_points:?}: {duplicates} duplicate(s)");
    assert!(
        duplicates <= kill_points.len() * CONCURRENCY,
        "{duplicates} duplicates; the bound is {} (sends in flight at each kill)",
        kill_points.len() * CONCURRENCY
    );
}
