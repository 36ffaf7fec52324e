//! Residents' data (issue 18, Must 4), continued: consent recorded once by the first way a
//! person subscribed; delivery attempts and audit details purged past the retention with their
//! counts kept. SQLite, and PostgreSQL when `LOA_TEST_POSTGRES_URL` is set.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::{TestApp, at, repo_root};
use loa::console::audit;
use sqlx::Row;

const LAN: &str = "Nguyễn Thị Lan";
const LAN_CHAT: i64 = 700_100_200;
const HUNG: &str = "Trần Văn Hùng";
const HUNG_CHAT: i64 = 700_100_201;

#[tokio::test]
async fn consent_is_recorded_once_by_the_first_way_and_never_overwritten() {
    let app = TestApp::spawn_at("2026-03-05T09:00:00+07:00").await;
    let consent = |number: &'static str| {
        let db = app.db.clone();
        async move {
            let r = sqlx::query(
                "SELECT p.consent_via, p.consent_detail, p.consent_at FROM persons p
                 JOIN contacts c ON c.person_id = p.id WHERE c.address = $1",
            )
            .bind(number)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            (
                r.try_get::<Option<String>, _>(0).unwrap(),
                r.try_get::<Option<String>, _>(1).unwrap(),
                r.try_get::<Option<i64>, _>(2).unwrap(),
            )
        }
    };
    let inbound = loa::inbound::Inbound {
        db: app.db.clone(),
        config: Arc::clone(&app.setup.config),
        templates: Arc::clone(&app.setup.templates),
        sms: None,
    };
    let first = app.clock_now().timestamp();

    // By SMS keyword, then named in a list: the keyword stays.
    inbound
        .handle("0912000111", "DK Đoan Bái", app.clock_now())
        .await
        .unwrap();
    // By a list, then by SMS keyword: the list stays.
    app.import_csv(
        "/home/can-bo/danh-sach-xuan-cam.xlsx.csv",
        "name,phone,area\nTrần Thị Mai,0912000222,xuan-cam\n",
    )
    .await;
    app.advance(Duration::days(1));
    app.import_csv(
        "lan-hai.csv",
        "name,phone,area\nLê Văn Tám,0912000111,doan-bai\n",
    )
    .await;
    inbound
        .handle("0912000222", "DK Xuân Cẩm", app.clock_now())
        .await
        .unwrap();
    assert_eq!(
        consent("+84912000111").await,
        (Some("sms".into()), Some("doan-bai".into()), Some(first))
    );
    assert_eq!(
        consent("+84912000222").await,
        (
            Some("import".into()),
            Some("danh-sach-xuan-cam.xlsx.csv".into()),
            Some(first)
        ),
        "the file's name, not where it lay"
    );

    // By the bot's button; pressing again later, or sharing the number, changes nothing.
    let mut bot = app.bot().await;
    app.telegram.user_says(5001, "/start");
    bot.poll_once(0).await.unwrap();
    app.telegram.user_presses(5001, 1, "area:bac-ly");
    bot.poll_once(0).await.unwrap();
    let pressed = app.clock_now().timestamp();
    app.advance(Duration::days(1));
    app.telegram.user_presses(5001, 1, "area:mai-dinh");
    bot.poll_once(0).await.unwrap();
    assert_eq!(
        consent("5001").await,
        (Some("bot".into()), Some("bac-ly".into()), Some(pressed))
    );
}

#[tokio::test]
async fn an_organisation_registered_by_an_admin_consents_as_one() {
    let app = TestApp::spawn_adjusted("2026-03-05T09:00:00+07:00", |c| {
        c.telegram.as_mut().unwrap().admins = vec![9001];
    })
    .await;
    let mut bot = app.bot().await;
    app.telegram.group_says(-100_123, 9001, "/tochuc hoa-son");
    bot.poll_once(0).await.unwrap();
    let (via, detail): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT consent_via, consent_detail FROM persons WHERE kind = 'organisation'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(via.as_deref(), Some("organisation"));
    assert_eq!(detail.as_deref(), Some("hoa-son"));
}

#[tokio::test]
async fn attempts_and_audit_details_past_the_retention_go_daily_and_counts_stay() {
    let mut app = TestApp::spawn_at("2023-03-08T07:59:00+07:00").await;
    app.subscribe(LAN, "bac-ly", LAN_CHAT).await;
    app.subscribe(HUNG, "mai-dinh", HUNG_CHAT).await;
    app.set_clock("2023-03-08T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    app.engine.dispatcher.step().await.unwrap();
    audit::record(
        &app.db.pool,
        app.clock_now(),
        "user:lan",
        "content.approve",
        Some("content:1"),
        Some("bản số 1: Ngày 8/3"),
    )
    .await
    .unwrap();
    let attempts = app.count("SELECT COUNT(*) FROM delivery_attempts").await;
    assert_eq!(attempts, 2);
    let counted = app
        .count("SELECT CAST(SUM(attempts) AS BIGINT) FROM deliveries")
        .await;

    // Eleven months on nothing is old enough; thirteen months on, the daily upkeep purges.
    app.set_clock("2024-02-08T08:00:00+07:00");
    app.engine.dispatcher.step().await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM delivery_attempts").await, 2);
    app.set_clock("2024-04-08T09:00:00+07:00");
    app.engine.dispatcher.step().await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM delivery_attempts").await, 0);
    assert_eq!(
        app.count("SELECT CAST(SUM(attempts) AS BIGINT) FROM deliveries")
            .await,
        counted,
        "each delivery still says how many attempts it took"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")
            .await,
        2
    );
    let (action, actor, detail): (String, String, Option<String>) =
        sqlx::query_as("SELECT action, actor, detail FROM audit_log WHERE subject = 'content:1'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        (action.as_str(), actor.as_str(), detail),
        ("content.approve", "user:lan", None)
    );

    // Once a day per database: an old attempt written now waits for tomorrow's run, whichever
    // process steps.
    let delivery: i64 = sqlx::query_scalar("SELECT MIN(id) FROM deliveries")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, at, outcome, detail) VALUES ($1, $2, 'sent', 'x')",
    )
    .bind(delivery)
    .bind(at("2023-03-08T08:00:00+07:00").timestamp())
    .execute(&app.db.pool)
    .await
    .unwrap();
    app.advance(Duration::hours(2));
    app.second_engine().dispatcher.step().await.unwrap();
    app.engine.dispatcher.step().await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM delivery_attempts").await, 1);
    app.advance(Duration::days(1));
    app.engine.dispatcher.step().await.unwrap();
    assert_eq!(app.count("SELECT COUNT(*) FROM delivery_attempts").await, 0);
}

#[test]
fn the_retention_is_checked_with_its_line_and_texts_are_kept_no_longer() {
    use loa::config::{Config, Env};
    let toml = "[campaign]\nname = \"x\"\nsender = \"y\"\n\
                [privacy]\nkeep_months = 0\n\
                [inbox]\nkeep_days = 400\n\
                [[areas]]\ncode = \"h\"\nname = \"Huyện H\"\npopulation = 1\n";
    let path = std::path::Path::new("loa.toml");
    let problems = Config::parse(path, toml, &Env::default())
        .unwrap_err()
        .to_string();
    assert!(
        problems.contains("loa.toml:5: privacy.keep_months"),
        "{problems}"
    );
    assert!(
        problems.contains("loa.toml:7: inbox.keep_days: residents' texts are kept no longer"),
        "{problems}"
    );
    let config = Config::parse(path, &toml.replace("= 0", "= 24"), &Env::default()).unwrap();
    assert_eq!(config.privacy.keep_months, 24);
    assert_eq!(config.inbox.keep_days, 400);
    let default = toml
        .replace("[privacy]\nkeep_months = 0\n", "")
        .replace("400", "90");
    let config = Config::parse(path, &default, &Env::default()).unwrap();
    assert_eq!(config.privacy.keep_months, 12);
}

/// Persons subscribed before consent was recorded say so, and keep saying so.
#[tokio::test]
async fn persons_from_before_are_marked_legacy() {
    use sqlx::Executor;
    let dir = tempfile::tempdir().unwrap();
    let db = loa::store::Db::connect(&format!("sqlite://{}/old.db", dir.path().display()))
        .await
        .unwrap();
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("migrations/sqlite"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("20261204000021_") {
            // Before the release that records consent: a subscriber.
            db.pool
                .execute(
                    "INSERT INTO areas (code, name) VALUES ('bac-ly', 'Xã Bắc Lý');
                     INSERT INTO persons (name, area_code, created_at) VALUES ('Lê Thị Hoa', 'bac-ly', 1);",
                )
                .await
                .unwrap();
        }
        let sql = std::fs::read_to_string(file).unwrap();
        db.pool
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let (via, at): (Option<String>, Option<i64>) =
        sqlx::query_as("SELECT consent_via, consent_at FROM persons")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((via.as_deref(), at), (Some("legacy"), None));
    assert_eq!(
        loa::audience::consent::ConsentSource::parse("legacy")
            .unwrap()
            .label(),
        "Đăng ký trước khi Loa ghi nhận sự đồng ý (không rõ cách)"
    );
}
