//! A `loa run` process killed with SIGKILL three times at random points of a 5,000-recipient
//! occurrence, restarted each time: nobody is left out, the killed process's rows go out within
//! 15 s of the restart (not after the two-minute lease), and the duplicates stay within the
//! documented bound — at most the sends in flight at each kill (`dispatch.concurrency`).
//!
//! And a process frozen with SIGSTOP while another takes over its rows: once thawed it sends
//! nothing it held (it fenced itself when it could not renew its liveness).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::process::{CONCURRENCY, chats_in_flight, prepare, signal, start, until_sent};
use common::{BOT_TOKEN, copy_of_repo};
use loa::fakes::telegram::FakeTelegram;
use rand::Rng;

const RECIPIENTS: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_three_times_loses_nobody_and_duplicates_stay_within_the_bound() {
    let dir = copy_of_repo();
    // The shipped two-minute lease: recovery must not wait for it. No rate limit to wait for.
    let (db, chats) = prepare(dir.path(), 5000, RECIPIENTS).await;

    let telegram = FakeTelegram::start(BOT_TOKEN).await.unwrap();
    let seed: u64 = rand::rng().random();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    eprintln!("kill points from seed {seed}");
    let kill_points = [
        rng.random_range(100..1_500),
        rng.random_range(1_600..3_000),
        rng.random_range(3_100..4_500),
    ];
    let mut child = start(dir.path(), &telegram);
    for point in kill_points {
        until_sent(&telegram, point, Duration::from_secs(120)).await;
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        // What the killed process held goes out within 15 s of a restart.
        let held = chats_in_flight(&db).await;
        let restarted = Instant::now();
        child = start(dir.path(), &telegram);
        while !held.iter().all(|chat| {
            telegram
                .sent()
                .iter()
                .any(|m| m.chat_id == *chat && m.received_at >= restarted)
        }) {
            assert!(
                restarted.elapsed() < Duration::from_secs(15),
                "the {} rows the killed process held were not all sent 15 s after the restart",
                held.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "killed at {point}: its {} rows went out {:?} after the restart",
            held.len(),
            restarted.elapsed()
        );
    }
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
    db.close().await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_process_sends_nothing_it_held_once_thawed() {
    const PEOPLE: usize = 1_000;
    let dir = copy_of_repo();
    // 100 a second: the frozen process holds a batch of several seconds' sends.
    let (db, chats) = prepare(dir.path(), 100, PEOPLE).await;
    // Each process sends to its own fake, so what the thawed one sends cannot hide among the
    // other's messages.
    let (frozen_api, other_api) = (
        FakeTelegram::start(BOT_TOKEN).await.unwrap(),
        FakeTelegram::start(BOT_TOKEN).await.unwrap(),
    );
    let frozen = start(dir.path(), &frozen_api);
    until_sent(&frozen_api, 150, Duration::from_secs(60)).await;
    // Freeze it just after it claimed a batch (100 rows a step), so it holds most of one —
    // and outside a write transaction: SQLite has one writer, and a process frozen inside one
    // stops every other writer until it is thawed (PostgreSQL locks only its rows). Frozen
    // inside one, it is thawed and frozen again a moment later.
    let claimed = Instant::now();
    loop {
        while chats_in_flight(&db).await.len() < 80 {
            assert!(
                claimed.elapsed() < Duration::from_secs(30),
                "no batch claimed"
            );
        }
        signal(&frozen, "-STOP");
        if writable(&db).await {
            break;
        }
        signal(&frozen, "-CONT");
        assert!(
            claimed.elapsed() < Duration::from_secs(30),
            "never frozen outside a write"
        );
    }
    let held = chats_in_flight(&db).await;
    assert!(
        held.len() > 50,
        "the frozen process holds a batch: {}",
        held.len()
    );

    let stopped = Instant::now();
    let other = start(dir.path(), &other_api);
    let reached = || {
        frozen_api
            .sent()
            .iter()
            .chain(other_api.sent().iter())
            .map(|m| m.chat_id)
            .collect::<std::collections::HashSet<_>>()
    };
    while reached().len() < PEOPLE {
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "{} of {PEOPLE} reached",
            reached().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = stopped.elapsed();
    assert!(
        held.iter()
            .all(|c| other_api.sent().iter().any(|m| m.chat_id == *c)),
        "the other process sent every row the frozen one held"
    );

    // Thaw it, and watch it come back to life (its liveness stamp renewed) and keep going for
    // two seconds: it must not send what it held when it froze.
    let frozen_id: String = {
        use sqlx::Row;
        let alive: Vec<(String, i64)> =
            sqlx::query("SELECT id, alive_at FROM dispatch_workers ORDER BY alive_at")
                .fetch_all(&db.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
                .collect();
        alive.first().expect("two workers").0.clone()
    };
    let stamp = |db: loa::store::Db, id: String| async move {
        use sqlx::Row;
        sqlx::query("SELECT alive_at FROM dispatch_workers WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap()
    };
    let frozen_stamp = stamp(db.clone(), frozen_id.clone()).await;
    let thawed = Instant::now();
    signal(&frozen, "-CONT");
    while stamp(db.clone(), frozen_id.clone()).await == frozen_stamp {
        assert!(
            thawed.elapsed() < Duration::from_secs(10),
            "thawed process never woke"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What the fake received after the thaw, by when it arrived: the requests in flight at
    // the freeze (at most `concurrency`) arrive while it is frozen, however late the fake
    // records them.
    let awake = Instant::now();
    while awake.elapsed() < Duration::from_secs(2) {
        let after: Vec<i64> = frozen_api
            .sent()
            .iter()
            .filter(|m| m.received_at >= thawed)
            .map(|m| m.chat_id)
            .collect();
        assert!(after.is_empty(), "the thawed process sent to {after:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop((frozen, other));
    db.close().await;

    let mut per_chat: HashMap<i64, usize> = HashMap::new();
    for m in frozen_api.sent().iter().chain(other_api.sent().iter()) {
        *per_chat.entry(m.chat_id).or_default() += 1;
    }
    assert_eq!(per_chat.len(), chats.len());
    let duplicates: usize = per_chat.values().map(|n| n - 1).sum();
    eprintln!(
        "froze holding {} rows; all {PEOPLE} reached {took:?} after; {duplicates} duplicate(s)",
        held.len()
    );
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} duplicates; at most the sends in flight when it froze"
    );
}

/// Whether another process can write to the SQLite database now (nobody holds its writer).
async fn writable(db: &loa::store::Db) -> bool {
    let mut conn = db.pool.acquire().await.unwrap();
    sqlx::query("PRAGMA busy_timeout = 200")
        .execute(&mut *conn)
        .await
        .unwrap();
    let free = sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .is_ok();
    if free {
        sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
    }
    sqlx::query("PRAGMA busy_timeout = 10000")
        .execute(&mut *conn)
        .await
        .unwrap();
    free
}
