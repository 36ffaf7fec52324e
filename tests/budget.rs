//! Yearly budgets per channel: an occurrence that would take SMS over its budget is held for
//! an admin, nothing of it goes out; the admin's "cheapest subset" sends to the people that fit
//! (the unreached first, each by their cheapest channel) within what the budget has left; an
//! undecided hold expires with its occurrence. SQLite, and PostgreSQL when
//! `LOA_TEST_POSTGRES_URL` is set.

mod common;

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
