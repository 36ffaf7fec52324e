//! Residents' data (issue 18, Must 4): a person's data exported with how they consented;
//! forgotten with every report and the dashboard unchanged and no table holding their number
//! or name; consent recorded once by each path; delivery attempts and audit details purged
//! past the retention with their counts kept. SQLite, and PostgreSQL when
//! `LOA_TEST_POSTGRES_URL` is set.

mod common;

use std::process::{Command, Output};
use std::sync::Arc;

use chrono::NaiveDate;
use common::{TestApp, repo_root};
use loa::console::dashboard::{Dashboard, DashboardQuery};
use loa::console::{Actor, Console, Role, audit};
use loa::privacy::{PrivacyError, Who};
use loa::reach::{self, ReachReport};
use loa::store::Backend;
use sqlx::Row;

const LAN: &str = "Nguyễn Thị Lan";
const LAN_NUMBER: &str = "+84912345678";
const LAN_CHAT: i64 = 700_100_200;
const HUNG: &str = "Trần Văn Hùng";
const HUNG_CHAT: i64 = 700_100_201;

fn loa_cli(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loa"))
        .arg("--config")
        .arg(repo_root().join("loa.toml"))
        .args(args)
        .env("LOA_DATABASE_URL", &app.setup.config.database_url)
        .env_remove("TELEGRAM_BOT_TOKEN")
        .output()
        .expect("run loa")
}

fn console(app: &TestApp) -> Console {
    Console {
        db: app.db.clone(),
        config: Arc::clone(&app.setup.config),
        templates: Arc::clone(&app.setup.templates),
        calendar: Arc::clone(&app.setup.calendar),
        clock: app.clock.clone(),
    }
}

fn official() -> Actor {
    Actor {
        id: "user:lanh-dao".into(),
        name: "lanh-dao".into(),
        role: Role::Official,
        area: None,
    }
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Everything a reader of the figures sees: `loa report reach` over a year, a month and ranges
/// of several periods, and the dashboard over a year and a custom range.
async fn figures(app: &TestApp) -> (Vec<ReachReport>, Vec<Dashboard>, Vec<String>) {
    let config = &app.setup.config;
    let mut reports = Vec::new();
    let ranges = [
        ("2023-01-01", "2023-12-31"),
        ("2023-03-01", "2023-03-31"),
        ("2023-03-01", "2023-03-10"),
        ("2023-03-01", "2024-03-31"),
    ];
    for (from, to) in ranges {
        reports.push(
            reach::report(
                &app.db,
                &config.areas,
                config.campaign.target,
                d(from),
                d(to),
            )
            .await
            .unwrap(),
        );
    }
    let console = console(app);
    let mut dashboards = Vec::new();
    for q in [
        DashboardQuery {
            year: Some(2023),
            ..DashboardQuery::default()
        },
        DashboardQuery {
            period: Some("custom".into()),
            from: Some("2023-03-01".into()),
            to: Some("2024-03-31".into()),
            ..DashboardQuery::default()
        },
    ] {
        let mut dashboard = console.dashboard(&official(), &q).await.unwrap();
        // A note typed about an activity is text, not a figure: forgetting takes her name
        // out of it (asserted below).
        for activity in &mut dashboard.activities {
            activity.note.clear();
        }
        dashboards.push(dashboard);
    }
    let mut printed = Vec::new();
    for (from, to) in ranges {
        let out = loa_cli(
            app,
            &[
                "report", "reach", "--format", "json", "--from", from, "--to", to,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        printed.push(String::from_utf8(out.stdout).unwrap());
    }
    (reports, dashboards, printed)
}

/// Every text (and blob) column of every table, as the schema lists them.
async fn text_columns(app: &TestApp) -> Vec<(String, String)> {
    let rows = match app.db.backend {
        Backend::Sqlite => {
            sqlx::query(
                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND (p.type LIKE '%TEXT%' OR p.type LIKE '%BLOB%' OR p.type = '')",
            )
            .fetch_all(&app.db.pool)
            .await
        }
        Backend::Postgres => {
            sqlx::query(
                "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) FROM information_schema.columns
                 WHERE table_schema = current_schema() AND data_type IN ('text', 'character varying', 'bytea')",
            )
            .fetch_all(&app.db.pool)
            .await
        }
    }
    .unwrap();
    rows.iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
        .collect()
}

/// The (table, column) pairs holding `needle` anywhere in their text.
async fn holding(app: &TestApp, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (table, column) in text_columns(app).await {
        let value = match app.db.backend {
            Backend::Sqlite => format!("CAST(\"{column}\" AS TEXT)"),
            Backend::Postgres => format!("encode(CAST(\"{column}\" AS BYTEA), 'escape')"),
        };
        let value = if app.db.backend == Backend::Postgres {
            // Text columns are read as they are; blobs as their bytes.
            format!(
                "CASE WHEN pg_typeof(\"{column}\") = 'bytea'::regtype THEN {value} ELSE CAST(\"{column}\" AS TEXT) END"
            )
        } else {
            value
        };
        let sql = format!("SELECT COUNT(*) FROM \"{table}\" WHERE {value} LIKE $1");
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(format!("%{needle}%"))
            .fetch_one(&app.db.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .try_get(0)
            .unwrap();
        if n > 0 {
            found.push(format!("{table}.{column}"));
        }
    }
    found
}

/// Lan (imported, then on Telegram too, with a tag and a birth year) and Hùng, both of Bắc Lý,
/// reached on 8 March 2023 and 2024 with Hoa who stays; Lan presses "Tôi đã đọc", writes to
/// Loa by Telegram and SMS, is answered, and is named in an audit detail and an activity note.
async fn lived_in(app: &mut TestApp) -> i64 {
    app.import_csv(
        "danh-sach-bac-ly.csv",
        &format!("name,phone,area,tags\n{LAN},0912 345 678,bac-ly,phu-nu\n"),
    )
    .await;
    let lan: i64 = sqlx::query_scalar("SELECT person_id FROM contacts WHERE address = $1")
        .bind(LAN_NUMBER)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE persons SET birth_year = 1990 WHERE id = $1")
        .bind(lan)
        .execute(&app.db.pool)
        .await
        .unwrap();
    loa::audience::add_contact(
        &app.db,
        lan,
        loa::channel::ChannelKind::Telegram,
        &LAN_CHAT.to_string(),
        app.clock_now(),
    )
    .await
    .unwrap();
    app.subscribe(HUNG, "bac-ly", HUNG_CHAT).await;
    app.subscribe("Lê Thị Hoa", "bac-ly", 700_100_202).await;
    app.subscribe("Phạm Thị Đào", "mai-dinh", 700_100_203).await;

    let mut bot = app.bot().await;
    for year in ["2023", "2024"] {
        app.set_clock(&format!("{year}-03-08T08:00:00+07:00"));
        app.engine.scheduler.tick().await.unwrap();
        app.engine.dispatcher.step().await.unwrap();
    }
    let campaign = app
        .telegram
        .sent_to(LAN_CHAT)
        .into_iter()
        .find(|m| m.reply_markup.is_some())
        .expect("Lan got the campaign on Telegram");
    let data = campaign.reply_markup.as_ref().unwrap()["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    app.telegram
        .user_presses(LAN_CHAT, campaign.message_id, &data);
    app.telegram
        .user_says(LAN_CHAT, "Cho tôi hỏi lịch sinh hoạt chi hội phụ nữ");
    bot.poll_once(0).await.unwrap();

    let inbound = loa::inbound::Inbound {
        db: app.db.clone(),
        config: Arc::clone(&app.setup.config),
        templates: Arc::clone(&app.setup.templates),
        sms: None,
    };
    inbound
        .handle(
            "0912345678",
            "Tôi là Nguyễn Thị Lan, số 0912345678, xin đổi giờ họp",
            app.clock_now(),
        )
        .await
        .unwrap();
    let sms_text: i64 = sqlx::query_scalar("SELECT id FROM inbox WHERE channel = 'sms'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let staff = Actor {
        id: "user:can-bo".into(),
        name: "can-bo".into(),
        role: Role::Staff,
        area: Some("bac-ly".into()),
    };
    loa::inbound::inbox::answer(
        &app.db,
        &app.setup.config,
        &staff,
        sms_text,
        "Chào chị Lan, họp lúc 8 giờ.",
        app.clock_now(),
    )
    .await
    .unwrap();
    audit::record(
        &app.db.pool,
        app.clock_now(),
        "user:can-bo",
        "inbox.note",
        Some(&format!("inbox:{sms_text}")),
        Some("Đã gọi lại cho Nguyễn Thị Lan (0912345678)"),
    )
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO offline_activities (day, area_code, kind, audience, note, entered_by, created_at)
         VALUES ('2023-03-08', 'bac-ly', 'session', 40, 'Nguyễn Thị Lan dẫn buổi sinh hoạt', 'user:can-bo', 0)",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    lan
}

#[tokio::test]
async fn the_export_holds_everything_about_the_person_with_their_consent() {
    let mut app = TestApp::spawn_at("2023-03-07T09:00:00+07:00").await;
    let lan = lived_in(&mut app).await;
    let tz = app.setup.config.campaign.time_zone;
    let who = Who::parse("091.234.5678").unwrap();
    let e = loa::privacy::export(&app.db, tz, &who, "cli", app.clock_now())
        .await
        .unwrap();
    assert_eq!(e.person.id, lan);
    assert_eq!(e.person.name, LAN);
    assert_eq!(e.person.area_code, "bac-ly");
    assert_eq!(e.person.tags, ["phu-nu"]);
    assert_eq!(e.person.birth_year, Some(1990));
    let addresses: Vec<&str> = e.contacts.iter().map(|c| c.address.as_str()).collect();
    assert_eq!(addresses, [LAN_NUMBER, "700100200"]);
    assert_eq!(e.consent.via.as_deref(), Some("import"));
    assert_eq!(e.consent.detail.as_deref(), Some("danh-sach-bac-ly.csv"));
    assert_eq!(e.consent.at.as_deref(), Some("2023-03-07T09:00:00+07:00"));
    assert_eq!(e.deliveries.len(), 2, "8 March 2023 and 2024");
    assert!(e.deliveries.iter().all(|d| d.status == "sent"));
    assert!(e.deliveries.iter().all(|d| !d.attempt_log.is_empty()));
    assert_eq!(e.reach.len(), 6, "a day, a month and a year, twice");
    assert_eq!(e.engagements.len(), 1);
    assert_eq!(e.texts.len(), 2, "one by Telegram, one by SMS");
    let answered = e.texts.iter().find(|t| t.channel == "sms").unwrap();
    assert_eq!(answered.sent_back.len(), 1);
    assert!(answered.sent_back[0].text.contains("họp lúc 8 giờ"));
    let actions: Vec<&str> = e.audit.iter().map(|a| a.action.as_str()).collect();
    assert!(actions.contains(&"inbox.answer"), "{actions:?}");
    assert!(actions.contains(&"inbox.note"), "{actions:?}");

    // The same by chat id, as the command prints it; the export is audited without her data.
    let out = loa_cli(&app, &["person", "export", "telegram:700100200"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["person"]["name"], LAN);
    assert_eq!(json["consent"]["via"], "import");
    assert_eq!(json["consent"]["description"], "Cán bộ nhập từ danh sách");
    let exports: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'person.export' AND detail IS NULL",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(exports, 2);

    // Nobody: a clear message and exit 1.
    let out = loa_cli(&app, &["person", "export", "0987654321"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no person has the number"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = loa_cli(&app, &["person", "export", "không rõ"]);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn forgetting_keeps_every_figure_and_leaves_no_number_or_name() {
    let mut app = TestApp::spawn_at("2023-03-07T09:00:00+07:00").await;
    lived_in(&mut app).await;
    let before = figures(&app).await;
    let bac_ly_2023 = before.0[0]
        .areas
        .iter()
        .find(|r| r.code == "bac-ly")
        .unwrap()
        .reached;
    assert_eq!(bac_ly_2023, 3, "Lan, Hùng and Hoa");
    assert_eq!(before.1[1].total.engaged, 1, "Lan read the 2024 message");

    // Without --yes nothing is erased.
    let held = holding(&app, "912345678").await;
    for place in [
        "contacts.address",
        "inbox.address",
        "inbox.text",
        "audit_log.detail",
    ] {
        assert!(held.iter().any(|h| h == place), "{place}: {held:?}");
    }
    let out = loa_cli(&app, &["person", "forget", "0912345678"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("would forget"));
    assert_eq!(holding(&app, "912345678").await, held);

    let out = loa_cli(&app, &["person", "forget", "0912345678", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second resident of the same commune, with deliveries of the same occurrences and reach
    // on the same days.
    let hung = Who::parse(&format!("telegram:{HUNG_CHAT}")).unwrap();
    let report = loa::privacy::forget(&app.db, &hung, "cli", app.clock_now(), false)
        .await
        .unwrap();
    assert_eq!(report.deliveries, 2);
    assert_eq!(report.reach_rows, 6);

    let after = figures(&app).await;
    assert_eq!(after.0, before.0, "loa report reach, computed");
    assert_eq!(after.1, before.1, "the dashboard");
    assert_eq!(after.2, before.2, "loa report reach, printed");

    for needle in [
        "912345678",
        &LAN_CHAT.to_string(),
        &HUNG_CHAT.to_string(),
        LAN,
        HUNG,
    ] {
        assert_eq!(
            holding(&app, needle).await,
            Vec::<String>::new(),
            "{needle}"
        );
    }
    // What others did stays, without her.
    let note: String =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'inbox.note'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(note, "Đã gọi lại cho [đã xoá] ([đã xoá])");
    let note: String = sqlx::query_scalar("SELECT note FROM offline_activities")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(note, "[đã xoá] dẫn buổi sinh hoạt");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'person.forget'")
            .await,
        2
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM inbox").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM persons WHERE forgotten_at IS NOT NULL")
            .await,
        2
    );
    assert!(matches!(
        loa::privacy::export(
            &app.db,
            app.setup.config.campaign.time_zone,
            &hung,
            "cli",
            app.clock_now()
        )
        .await,
        Err(PrivacyError::NotFound(_))
    ));

    // Nothing more is sent to them, and the others still get theirs.
    let to_them = || app.telegram.sent_to(LAN_CHAT).len() + app.telegram.sent_to(HUNG_CHAT).len();
    let (theirs, hoa) = (to_them(), app.telegram.sent_to(700_100_202).len());
    app.set_clock("2025-03-08T08:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    app.engine.dispatcher.step().await.unwrap();
    assert_eq!(to_them(), theirs, "nothing in 2025");
    assert_eq!(app.telegram.sent_to(700_100_202).len(), hoa + 1);
}
