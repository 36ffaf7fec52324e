//! An upgrade as a district would make it: a database built by the first release with the web
//! console (commit f1e8526, "Web console: accounts and roles, content queue with approval, …"),
//! with that release's migrations (`tests/fixtures/upgrade/f1e8526/`) and data, stopped at 07:59
//! on 20 October 2023 with that morning's message fanned out. Today's migrations run on it,
//! then today's engine: the pending messages go, the queued content goes at its time, and the
//! year's reach is what it was plus what was sent. SQLite, and PostgreSQL when
//! `LOA_TEST_POSTGRES_URL` is set.
//!
//! Also: no migration is edited after its release (`migrations/released.sha384` lists them).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{BOT_TOKEN, at, repo_root};
use loa::app::{Engine, Setup};
use loa::clock::{SharedClock, VirtualClock};
use loa::config::Env;
use loa::fakes::kannel::FakeKannel;
use loa::fakes::telegram::FakeTelegram;
use loa::store::{Backend, Db};
use sqlx::Row;

fn fixture(path: &str) -> PathBuf {
    repo_root()
        .join("tests/fixtures/upgrade/f1e8526")
        .join(path)
}

/// A database as release f1e8526 left it; its URL.
async fn old_database(dir: &Path) -> String {
    let url = match std::env::var("LOA_TEST_POSTGRES_URL") {
        Ok(admin) if !admin.is_empty() => common::fresh_postgres_database(&admin).await,
        _ => format!("sqlite://{}/loa.db", dir.display()),
    };
    let db = Db::connect(&url).await.unwrap();
    let folder = match db.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    sqlx::migrate::Migrator::new(fixture(folder))
        .await
        .unwrap()
        .run(&db.pool)
        .await
        .expect("release f1e8526's migrations");
    let mut data = std::fs::read_to_string(fixture("data.sql")).unwrap();
    if db.backend == Backend::Postgres {
        data.push_str(&std::fs::read_to_string(fixture("postgres-sequences.sql")).unwrap());
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(data))
        .execute(&db.pool)
        .await
        .expect("release f1e8526's data");
    db.close().await;
    url
}

async fn scalar(db: &Db, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

#[tokio::test]
async fn a_database_of_the_first_console_release_upgrades_and_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let url = old_database(dir.path()).await;
    let telegram = FakeTelegram::start(BOT_TOKEN).await.unwrap();
    let kannel = FakeKannel::start().await.unwrap();
    let env = Env::default()
        .with("LOA_DATABASE_URL", &url)
        .with("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
        .with("TELEGRAM_API_URL", telegram.api_url())
        .with("LOA_KANNEL_URL", kannel.sendsms_url())
        .with("LOA_KANNEL_USERNAME", "loa")
        .with("LOA_KANNEL_PASSWORD", "mat-khau");
    let setup = Setup::load(&repo_root().join("loa.toml"), &env).unwrap();

    let before = Db::connect(&url).await.unwrap();
    let pending = before.pending_migrations().await.unwrap();
    assert!(
        !pending.is_empty(),
        "the old database lacks today's migrations"
    );
    before.close().await;
    let db = setup.open_database().await.expect("today's migrations");
    assert!(db.pending_migrations().await.unwrap().is_empty());

    let c = &setup.config;
    let year = || ("2023-01-01".parse().unwrap(), "2023-12-31".parse().unwrap());
    let reached = |db: Db| async move {
        let (from, to) = year();
        loa::reach::report(&db, &c.areas, c.campaign.target, from, to)
            .await
            .unwrap()
            .total
            .reached
    };
    assert_eq!(
        reached(db.clone()).await,
        2,
        "the two residents reached on 8 March"
    );

    // 20 October, 08:00: the occurrence the old release fanned out is not made again; its two
    // pending deliveries go (Telegram to Mai, SMS to Nam).
    let clock = Arc::new(VirtualClock::running(at("2023-10-20T08:00:00+07:00"), 0.0));
    let mut engine = Engine::new(
        &setup,
        db.clone(),
        clock.clone() as SharedClock,
        setup.transports().unwrap(),
    );
    engine.scheduler.tick().await.unwrap();
    drain(&engine, &clock).await;
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM occurrences WHERE schedule_id = 'phu-nu-viet-nam-20-10'"
        )
        .await,
        1
    );
    let statuses: Vec<(i64, String)> =
        sqlx::query("SELECT id, status FROM deliveries WHERE occurrence_id = 2 ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(statuses, [(4, "sent".to_string()), (5, "sent".to_string())]);
    let to_mai = telegram.sent_to(710001);
    assert_eq!(to_mai.len(), 1, "{:?}", telegram.sent());
    assert!(to_mai[0].text.contains("20/10"), "{}", to_mai[0].text);
    let sms: Vec<String> = kannel.sent().into_iter().map(|m| m.to).collect();
    assert_eq!(sms, ["+84912345678"]);

    // The content staff queued and an admin approved under the old release goes at its time,
    // to its commune, with the text as typed.
    clock.set(at("2023-10-21T09:00:00+07:00"));
    engine.scheduler.tick().await.unwrap();
    drain(&engine, &clock).await;
    let invited: Vec<_> = telegram
        .sent()
        .into_iter()
        .filter(|m| m.text.contains("hội nghị kỷ niệm ngày Phụ nữ Việt Nam"))
        .collect();
    assert_eq!(
        invited.iter().map(|m| m.chat_id).collect::<Vec<_>>(),
        [710001, -100200300],
        "Mai and the women's union of Hòa Sơn, not Mai Đình"
    );
    assert!(
        invited[0].text.contains("Kính mời ông/bà Trần Thị Mai"),
        "{}",
        invited[0].text
    );
    // The scheduler's next tick sees it finished.
    engine.scheduler.tick().await.unwrap();
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM contents WHERE id = 1 AND state = 'done'"
        )
        .await,
        1
    );
    // The person who opted out in 2023 stays out; accounts, tokens and the audit are kept.
    assert!(telegram.sent_to(710004).is_empty());
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM users").await, 2);
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM api_tokens").await, 1);
    assert!(scalar(&db, "SELECT COUNT(*) FROM audit_log").await >= 2);
    assert_eq!(
        reached(db.clone()).await,
        2,
        "the same two residents, reached again"
    );
    db.close().await;
}

/// Steps the dispatcher a second of Loa's clock at a time until nothing waits (the shipped
/// limits let one message a channel leave at one instant).
async fn drain(engine: &Engine, clock: &VirtualClock) {
    for _ in 0..60 {
        engine.dispatcher.step().await.unwrap();
        let waiting = scalar(
            &engine.db,
            "SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending')",
        )
        .await;
        if waiting == 0 {
            return;
        }
        clock.advance(chrono::Duration::seconds(1));
    }
    panic!("deliveries still waiting after a minute");
}

/// Every migration file with its SHA-384, as `migrations/released.sha384` lists them.
fn checksums() -> Vec<(String, String)> {
    use sha2::{Digest, Sha384};
    let mut out = Vec::new();
    for backend in ["sqlite", "postgres"] {
        let mut files: Vec<_> = std::fs::read_dir(repo_root().join("migrations").join(backend))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let digest = Sha384::digest(std::fs::read(&file).unwrap());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            let name = format!("{backend}/{}", file.file_name().unwrap().to_string_lossy());
            out.push((name, hex));
        }
    }
    out
}

#[test]
fn no_released_migration_is_edited() {
    let listed = std::fs::read_to_string(repo_root().join("migrations/released.sha384")).unwrap();
    let today = checksums();
    for line in listed.lines().filter(|l| !l.trim().is_empty()) {
        let (hex, name) = line.split_once("  ").expect("`<sha384>  <file>` lines");
        let now = today.iter().find(|(n, _)| n == name);
        assert_eq!(
            now.map(|(_, h)| h.as_str()),
            Some(hex),
            "migrations/{name} was released and has changed (or gone): a database that applied \
             it would refuse to start; add a new migration instead"
        );
    }
}
