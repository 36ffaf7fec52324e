//! Backups as an IT officer takes them: `loa backup` while `loa run` sends the 8 March
//! message, `loa restore` refused while it runs and done once it stopped, with every delivery
//! sent before the backup still sent; the daily copy and how many are kept; `loa migrate
//! --dry-run`.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::process::{CONCURRENCY, chats_with_status, prepare, signal, start, until_sent};
use common::{BOT_TOKEN, TestApp, copy_of_repo};
use loa::backup::{Daily, daily};
use loa::fakes::telegram::FakeTelegram;
use sqlx::Row;

/// `loa ARGS` in `dir`, on the database of `prepare` (the shipped `data/loa.db`).
fn loa(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(args)
        .current_dir(dir)
        .env_remove("LOA_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env("LOA_LOG", "warn")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_mid_dispatch_restores_with_every_sent_delivery_sent() {
    const PEOPLE: usize = 1_000;
    let dir = copy_of_repo();
    let (db, _) = prepare(dir.path(), 100, PEOPLE).await;
    let telegram = FakeTelegram::start(BOT_TOKEN).await.unwrap();
    let mut running = start(dir.path(), &telegram);
    until_sent(&telegram, 300, Duration::from_secs(60)).await;

    let before: HashSet<i64> = telegram.sent().iter().map(|m| m.chat_id).collect();
    let out = loa(dir.path(), &["backup", "backup-8-3.db"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("backed up"), "{}", text(&out));
    let after = telegram.sent().len();
    assert!(
        after < PEOPLE,
        "the backup was taken while Loa was still sending ({after} sent)"
    );
    let again = loa(dir.path(), &["backup", "backup-8-3.db"]);
    assert_eq!(again.status.code(), Some(1), "a backup never overwrites");
    assert!(text(&again).contains("exists"), "{}", text(&again));

    let refused = loa(dir.path(), &["restore", "backup-8-3.db"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("running"), "{}", text(&refused));

    // Stopped as systemd stops it: SIGTERM, sends in flight finish, the worker leaves.
    signal(&running, "-TERM");
    let status = running.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let sent_at_stop = telegram.sent().len();
    db.close().await;

    let out = loa(dir.path(), &["restore", "backup-8-3.db"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("kept as"), "{}", text(&out));
    let restored =
        loa::store::Db::connect(&format!("sqlite://{}/data/loa.db", dir.path().display()))
            .await
            .unwrap();
    let sent: HashSet<i64> = chats_with_status(&restored, "sent")
        .await
        .into_iter()
        .collect();
    let missing = before.difference(&sent).count();
    // Sent before the backup began, all recorded as sent in it — but for the sends that were
    // in flight at that instant, recorded a moment later.
    assert!(
        missing <= CONCURRENCY,
        "{missing} of the {} messages sent before the backup are not sent in it",
        before.len()
    );
    assert!(
        sent.len() < sent_at_stop,
        "the restored database is the backup's, not the last state"
    );
    restored.close().await;
    let dry = loa(dir.path(), &["migrate", "--dry-run"]);
    assert!(text(&dry).contains("up to date"), "{}", text(&dry));
}

#[tokio::test]
async fn restore_refuses_what_is_not_a_backup_and_migrate_dry_run_lists_what_would_run() {
    let dir = copy_of_repo();
    let dry = loa(dir.path(), &["migrate", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let listed = text(&dry);
    assert!(listed.contains("would run"), "{listed}");
    assert!(listed.contains("liveness outages"), "{listed}");
    assert!(
        !dir.path().join("data/loa.db").exists(),
        "a dry run creates no database"
    );
    assert_eq!(
        loa(dir.path(), &["migrate", "--dry-run"]).stdout,
        dry.stdout,
        "a dry run migrates nothing"
    );
    assert!(loa(dir.path(), &["migrate"]).status.success());
    assert!(text(&loa(dir.path(), &["migrate", "--dry-run"])).contains("up to date"));

    std::fs::write(dir.path().join("notes.db"), "Danh sách hội viên").unwrap();
    let out = loa(dir.path(), &["restore", "notes.db"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("notes.db"), "{}", text(&out));
    let out = loa(dir.path(), &["restore", "missing.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no such backup file"), "{}", text(&out));
}

#[tokio::test]
async fn the_daily_copy_is_made_once_a_day_after_its_hour_and_the_last_seven_are_kept() {
    let app = TestApp::spawn_at("2023-03-01T02:29:00+07:00").await;
    let folder = tempfile::tempdir().unwrap();
    let mut config = app.setup.config.backup.clone();
    config.dir = Some(folder.path().to_path_buf());
    std::fs::write(folder.path().join("ke-hoach-2023.xlsx"), "not ours").unwrap();
    // A copy from a day the clock once wrongly said: never pruned, never the reason today's is.
    std::fs::write(
        folder.path().join("loa-2099-01-01.db"),
        "from a wrong clock",
    )
    .unwrap();
    let url = &app.setup.config.database_url;
    let tz = app.setup.config.campaign.time_zone;
    let at = |s: &str| common::at(s);

    let early = daily(&app.db, url, &config, tz, at("2023-03-01T02:29:00+07:00")).await;
    assert_eq!(early.unwrap(), Daily::Nothing, "not before 02:30");
    for day in 1..=9 {
        let now = at(&format!("2023-03-{day:02}T02:31:00+07:00"));
        let Daily::Made { file, removed } = daily(&app.db, url, &config, tz, now).await.unwrap()
        else {
            panic!("no copy on day {day}");
        };
        assert!(file.ends_with(format!("loa-2023-03-{day:02}.{}", ext(&app))));
        // Day 8's copy is the eighth: the oldest goes, and so every day after.
        assert_eq!(
            removed.len(),
            usize::from(day > 7),
            "day {day}: {removed:?}"
        );
        let later = at(&format!("2023-03-{day:02}T23:59:00+07:00"));
        assert_eq!(
            daily(&app.db, url, &config, tz, later).await.unwrap(),
            Daily::Nothing,
            "one copy a day"
        );
    }
    let mut left: Vec<String> = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut expected: Vec<String> = (3..=9)
        .map(|d| format!("loa-2023-03-{d:02}.{}", ext(&app)))
        .collect();
    expected.push("ke-hoach-2023.xlsx".into());
    expected.push("loa-2099-01-01.db".into());
    expected.sort();
    assert_eq!(
        left, expected,
        "the last seven copies, and nothing of anyone else's"
    );
}

fn ext(app: &TestApp) -> &'static str {
    match app.db.backend {
        loa::store::Backend::Sqlite => "db",
        loa::store::Backend::Postgres => "dump",
    }
}

#[tokio::test]
async fn a_backup_is_whole_and_opens_as_the_same_database() {
    let app = TestApp::spawn_at("2023-03-08T08:00:00+07:00").await;
    if app.db.backend != loa::store::Backend::Sqlite {
        return; // pg_dump's file is checked by pg_restore in the restore path
    }
    app.seed_residents(50).await;
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("copy.db");
    loa::backup::backup(&app.db, &app.setup.config.database_url, &file)
        .await
        .unwrap();
    assert!(!folder.path().join("copy.db.partial").exists());
    let copy = loa::store::Db::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let count = |db: &loa::store::Db| {
        let pool = db.pool.clone();
        async move {
            sqlx::query("SELECT COUNT(*) FROM persons")
                .fetch_one(&pool)
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap()
        }
    };
    assert_eq!(count(&copy).await, count(&app.db).await);
    assert_eq!(count(&copy).await, 50);
}

#[tokio::test]
async fn a_restore_brings_back_what_was_deleted_since_the_backup() {
    let app = TestApp::spawn_at("2023-03-08T08:00:00+07:00").await;
    app.seed_residents(40).await;
    let url = app.setup.config.database_url.clone();
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join(format!("before.{}", ext(&app)));
    loa::backup::backup(&app.db, &url, &file).await.unwrap();
    // A table of a later version than the backup's (as a migration since would make).
    sqlx::query("CREATE TABLE of_a_later_version (x INTEGER)")
        .execute(&app.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE persons SET name = 'đã sửa nhầm'")
        .execute(&app.db.pool)
        .await
        .unwrap();

    loa::backup::restore(app.db.clone(), &url, &file)
        .await
        .unwrap();
    let db = loa::store::Db::connect(&url).await.unwrap();
    let renamed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM persons WHERE name = 'đã sửa nhầm'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let persons: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM persons")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        (renamed, persons),
        (0, 40),
        "the backup's persons, as they were"
    );
    assert!(
        sqlx::query("SELECT COUNT(*) FROM of_a_later_version")
            .fetch_one(&db.pool)
            .await
            .is_err(),
        "nothing the backup did not have is left"
    );
    db.close().await;
}
