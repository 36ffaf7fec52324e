//! Yearly budgets per channel: an occurrence that would take SMS over its budget is held for
//! an admin, nothing of it goes out; the admin's "cheapest subset" sends to the people that fit
//! (the unreached first, each by their cheapest channel) within what the budget has left; an
//! undecided hold expires with its occurrence. SQLite, and PostgreSQL when
//! `LOA_TEST_POSTGRES_URL` is set.

mod common;

use common::console::{content, spawn_console_with};
use loa::console::Role;
use reqwest::StatusCode;
use serde_json::json;

use std::collections::BTreeMap;

use chrono::Duration;
use common::{TestApp, at, copy_of_repo};
use loa::budget::decide::{DecideError, Decision};
use loa::channel::{ChannelKind, Price};
use loa::config::SmsGateway;
use loa::fakes::kannel::FakeKannel;
use sqlx::Row;

const SMS_PRICE: f64 = 800.0;
const SMS_BUDGET: f64 = 60_000.0;

const ROUNDS: &str = r#"
[[schedule]]
id = "tin-20-3"
observance = "quoc-te-phu-nu"
template = "quoc-te-phu-nu"
cron = "0 0 9 20 3 *"
channels = ["telegram", "sms"]

[[schedule]]
id = "tin-21-3"
observance = "quoc-te-phu-nu"
template = "quoc-te-phu-nu"
cron = "0 0 9 21 3 *"
channels = ["telegram", "sms"]
"#;

struct Budgeted {
    app: TestApp,
    kannel: FakeKannel,
    _dir: tempfile::TempDir,
}

/// Loa with the two rounds above beside the shipped schedules, SMS at 800 đ a part and 60,000 đ a year, 240 residents
/// in communes of 6 to 22 people: half known by Telegram, half by SMS only; every third reached
/// already this year.
async fn budgeted() -> Budgeted {
    let dir = copy_of_repo();
    std::fs::write(dir.path().join("schedules/99-rounds.toml"), ROUNDS).unwrap();
    let kannel = FakeKannel::start().await.unwrap();
    let sms_url = kannel.sendsms_url();
    let app = TestApp::spawn_custom(
        &dir.path().join("loa.toml"),
        "2023-03-19T12:00:00+07:00",
        0.0,
        move |c| {
            c.sms.gateway = Some(SmsGateway::Kannel {
                url: sms_url,
                username: "loa".into(),
                password: "matkhau".into(),
            });
            let sms = c.channels.get_mut(ChannelKind::Sms).unwrap();
            sms.price = Price::PerSegment(SMS_PRICE);
            sms.yearly_budget = Some(SMS_BUDGET);
            let small: BTreeMap<String, u64> = c
                .areas
                .leaves()
                .enumerate()
                .map(|(i, a)| (a.code.clone(), 6 + (i as u64 % 5) * 4))
                .collect();
            c.areas = c.areas.with_populations(&small);
        },
    )
    .await;
    app.seed_residents(240).await;
    sqlx::query(
        "UPDATE contacts SET channel = 'sms', address = '+84912' || CAST(100000 + id AS TEXT)
         WHERE id % 2 = 0",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let persons = sqlx::query("SELECT id, area_code FROM persons ORDER BY id")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    let tz = app.setup.config.campaign.time_zone;
    let mut conn = app.db.pool.acquire().await.unwrap();
    for row in persons.iter().step_by(3) {
        let (id, area): (i64, String) = (row.get(0), row.get(1));
        loa::reach::record(
            &mut conn,
            id,
            &area,
            ChannelKind::Telegram,
            "resident",
            at("2023-02-01T10:00:00+07:00"),
            tz,
        )
        .await
        .unwrap();
    }
    drop(conn);
    Budgeted {
        app,
        kannel,
        _dir: dir,
    }
}

async fn occurrence(app: &TestApp, schedule: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM occurrences WHERE schedule_id = $1")
        .bind(schedule)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

async fn statuses(app: &TestApp, occurrence: i64) -> BTreeMap<String, i64> {
    sqlx::query("SELECT status, COUNT(*) FROM deliveries WHERE occurrence_id = $1 GROUP BY status")
        .bind(occurrence)
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn decide(app: &TestApp, id: i64, decision: Decision) -> Result<(), DecideError> {
    let pricer = loa::budget::Pricer::new(
        std::sync::Arc::clone(&app.setup.config),
        std::sync::Arc::clone(&app.setup.templates),
    );
    let mut tx = app.db.pool.begin().await.unwrap();
    loa::budget::decide::decide(
        &mut tx,
        &pricer,
        id,
        decision,
        "user:admin",
        app.clock_now(),
    )
    .await?;
    tx.commit().await.unwrap();
    Ok(())
}

/// Steps the dispatcher a second at a time (SMS goes 10 a second) until nothing is on its way.
async fn send_all(app: &TestApp) {
    for _ in 0..120 {
        app.engine.dispatcher.step().await.unwrap();
        let waiting = app
            .count("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending')")
            .await;
        if waiting == 0 {
            return;
        }
        app.advance(Duration::seconds(1));
    }
    panic!("deliveries still waiting after two minutes");
}

#[tokio::test]
async fn a_budget_hold_stops_the_round_and_the_cheapest_subset_sends_within_budget() {
    let Budgeted {
        mut app,
        kannel,
        _dir,
    } = budgeted().await;
    app.set_clock("2023-03-20T09:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    let first = occurrence(&app, "tin-20-3").await;

    // Held: every delivery, Telegram's too, waits; the dispatcher sends nothing.
    let held = statuses(&app, first).await;
    assert_eq!(held.keys().collect::<Vec<_>>(), ["held"], "{held:?}");
    app.engine.dispatcher.step().await.unwrap();
    app.advance(Duration::minutes(5));
    app.engine.dispatcher.step().await.unwrap();
    assert!(kannel.sent().is_empty());
    assert!(app.telegram.sent().is_empty());
    let detail: String = sqlx::query_scalar("SELECT hold_detail FROM occurrences WHERE id = $1")
        .bind(first)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let over: Vec<loa::budget::hold::Over> = serde_json::from_str(&detail).unwrap();
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].channel, "sms");
    assert_eq!(over[0].left, SMS_BUDGET);
    let estimate: f64 = sqlx::query_scalar(
        "SELECT SUM(cost) FROM deliveries WHERE occurrence_id = $1 AND channel = 'sms'",
    )
    .bind(first)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(over[0].estimate, estimate);
    assert!(estimate > SMS_BUDGET, "{estimate}");

    // The admin sends the subset that fits.
    decide(&app, first, Decision::Subset).await.unwrap();
    let rows = sqlx::query(
        "SELECT d.status, d.channel, d.cost,
                CASE WHEN EXISTS (SELECT 1 FROM reach r WHERE r.person_id = d.person_id
                                  AND r.period = 'Y2023') THEN 1 ELSE 0 END
         FROM deliveries d WHERE d.occurrence_id = $1",
    )
    .bind(first)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    let mut chosen_sms: Vec<(f64, bool)> = Vec::new();
    let mut cancelled_sms: Vec<(f64, bool)> = Vec::new();
    for r in &rows {
        let (status, channel): (String, String) = (r.get(0), r.get(1));
        let cost: Option<f64> = r.get(2);
        let reached = r.get::<i64, _>(3) == 1;
        match (status.as_str(), channel.as_str()) {
            // Telegram costs nothing: everyone on it goes.
            (s, "telegram") => assert_eq!(s, "pending"),
            ("pending", "sms") => chosen_sms.push((cost.unwrap(), reached)),
            ("cancelled", "sms") => cancelled_sms.push((cost.unwrap(), reached)),
            other => panic!("unexpected {other:?}"),
        }
    }
    let subset_cost: f64 = chosen_sms.iter().map(|c| c.0).sum();
    assert!(subset_cost <= SMS_BUDGET, "{subset_cost}");
    assert!(!chosen_sms.is_empty() && !cancelled_sms.is_empty());
    // No one left out would still have fitted.
    let left = SMS_BUDGET - subset_cost;
    assert!(cancelled_sms.iter().all(|c| c.0 > left), "{left}");
    // The unreached first: a reached person got an SMS only when no unreached person costing
    // as little was left out.
    for (cost, _) in chosen_sms.iter().filter(|c| c.1) {
        assert!(
            !cancelled_sms.iter().any(|c| !c.1 && c.0 <= *cost),
            "a reached person went before an unreached one"
        );
    }
    assert!(chosen_sms.iter().filter(|c| !c.1).count() > chosen_sms.len() / 2);

    // Sent: exactly the subset, and what SMS spent is within the budget.
    send_all(&app).await;
    assert_eq!(kannel.sent().len(), chosen_sms.len());
    let spent: f64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(spent), 0.0) FROM deliveries WHERE channel = 'sms'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(spent, subset_cost);
    assert!(spent <= SMS_BUDGET);
    // A second decision on the same round is refused.
    assert!(matches!(
        decide(&app, first, Decision::Send).await,
        Err(DecideError::Decided(_))
    ));

    // The next round is held too; undecided, it expires with its occurrence and no one gets it.
    app.set_clock("2023-03-21T09:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    let second = occurrence(&app, "tin-21-3").await;
    assert_eq!(
        statuses(&app, second).await.keys().collect::<Vec<_>>(),
        ["held"]
    );
    app.set_clock("2023-03-21T21:00:01+07:00");
    app.engine.dispatcher.step().await.unwrap();
    assert_eq!(
        statuses(&app, second).await.keys().collect::<Vec<_>>(),
        ["expired"]
    );
    assert!(matches!(
        decide(&app, second, Decision::Send).await,
        Err(DecideError::Expired)
    ));
    assert_eq!(kannel.sent().len(), chosen_sms.len());
}

#[tokio::test]
async fn send_anyway_releases_every_held_delivery_and_cancel_none() {
    let Budgeted {
        mut app,
        kannel,
        _dir,
    } = budgeted().await;
    app.set_clock("2023-03-20T09:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    let first = occurrence(&app, "tin-20-3").await;
    let total: i64 = statuses(&app, first).await.values().sum();
    decide(&app, first, Decision::Send).await.unwrap();
    assert_eq!(
        statuses(&app, first).await,
        BTreeMap::from([("pending".to_string(), total)])
    );
    send_all(&app).await;
    let sms: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE occurrence_id = $1 AND channel = 'sms'",
    )
    .bind(first)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(kannel.sent().len() as i64, sms);

    app.set_clock("2023-03-21T09:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    let second = occurrence(&app, "tin-21-3").await;
    decide(&app, second, Decision::Cancel).await.unwrap();
    assert_eq!(
        statuses(&app, second).await.keys().collect::<Vec<_>>(),
        ["cancelled"]
    );
    app.engine.dispatcher.step().await.unwrap();
    assert_eq!(kannel.sent().len() as i64, sms);
}

#[tokio::test]
async fn only_an_admin_decides_a_hold_once_and_officials_see_spend_against_budget() {
    let mut c = spawn_console_with(|c| {
        c.channels.get_mut(ChannelKind::Sms).unwrap().yearly_budget = Some(2_000.0);
    })
    .await;
    c.app.seed_residents(40).await;
    c.app.contacts_become_sms().await;
    let staff = c.token("soan", Role::Staff, None).await;
    let approver = c.token("duyet", Role::Approver, None).await;
    let official = c.token("lanh-dao", Role::Official, None).await;
    let admin = c.token("quan-tri", Role::Admin, None).await;
    let mut body = content("Mời dự buổi nói chuyện", &[]);
    body["channels"] = json!(["sms"]);
    // Before it is sent, the preview says it goes over what SMS has left.
    let (status, preview) = c
        .api(&staff, "POST", "/api/preview", Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["channels"][0]["budget_left"], json!(2000.0));
    assert_eq!(preview["channels"][0]["over_budget"], json!(true));
    let (status, item) = c.api(&staff, "POST", "/api/contents", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = item["id"].as_i64().unwrap();
    c.api(&staff, "POST", &format!("/api/contents/{id}/submit"), None)
        .await;
    let (status, _) = c
        .api(
            &approver,
            "POST",
            &format!("/api/contents/{id}/approve"),
            c.version(id).await,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.app.set_clock("2026-12-01T08:00:00+07:00");
    c.app.engine.scheduler.tick().await.unwrap();
    c.app.engine.dispatcher.step().await.unwrap();
    assert!(c.kannel.sent().is_empty(), "held: nothing goes out");

    let (status, budget) = c.api(&official, "GET", "/api/budget", None).await;
    assert_eq!(status, StatusCode::OK, "{budget}");
    let held = &budget["held"][0];
    assert_eq!(held["schedule_id"], json!(format!("content:{id}")));
    assert_eq!(held["decision"], json!(null));
    let occurrence = held["occurrence_id"].as_i64().unwrap();
    let sms = budget["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["channel"] == "sms")
        .unwrap();
    assert_eq!(sms["budget"], json!(2000.0));
    assert!(sms["held"].as_f64().unwrap() > 2000.0, "{sms}");

    // Staff, approver and official may not decide, by the API or the page.
    let path = format!("/api/holds/{occurrence}/decision");
    for token in [&staff, &approver, &official] {
        let (status, _) = c
            .api(token, "POST", &path, Some(json!({"decision": "send"})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let writer = c.sign_in("lan", Role::Staff, None).await;
    let (status, _) = c
        .form(
            &writer,
            &format!("/holds/{occurrence}"),
            &[("decision", "send")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, queue) = c.page(&writer, "/queue").await;
    assert!(queue.contains("Đợt gửi vượt ngân sách năm"), "{queue}");
    assert!(!queue.contains(&format!("action=\"/holds/{occurrence}\"")));
    assert!(c.kannel.sent().is_empty());

    // The admin's page offers the three ways; a made-up one is refused.
    let boss = c.sign_in("chanh-van-phong", Role::Admin, None).await;
    let (_, queue) = c.page(&boss, "/queue").await;
    assert!(
        queue.contains(&format!("action=\"/holds/{occurrence}\"")),
        "{queue}"
    );
    assert!(queue.contains("Chỉ gửi trong phạm vi ngân sách còn lại"));
    let (status, _) = c
        .api(&admin, "POST", &path, Some(json!({"decision": "all"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, decided) = c
        .api(&admin, "POST", &path, Some(json!({"decision": "subset"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    let sending = decided["sending"].as_i64().unwrap();
    assert!(
        sending > 0 && decided["cancelled"].as_i64().unwrap() > 0,
        "{decided}"
    );
    assert!(decided["cost"]["sms"].as_f64().unwrap() <= 2000.0);
    let (status, _) = c
        .api(&admin, "POST", &path, Some(json!({"decision": "send"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    for _ in 0..5 {
        c.app.engine.dispatcher.step().await.unwrap();
        c.app.advance(Duration::seconds(1));
    }
    assert_eq!(c.kannel.sent().len() as i64, sending);
    let audited = c
        .app
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'budget.decide' AND actor = 'token:quan-tri'")
        .await;
    assert_eq!(audited, 1);

    // The dashboard: spend against the budget, and the channels month by month as bars.
    let (_, dashboard) = c.page(&boss, "/dashboard").await;
    assert!(dashboard.contains("id=\"budget-table\""));
    assert!(dashboard.contains("id=\"cost-chart\"") && dashboard.contains("id=\"split-chart\""));
    assert!(
        dashboard.contains("2.000 đ"),
        "the SMS budget in Vietnamese figures"
    );
}
