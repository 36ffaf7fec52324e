//! `loa demo` at a small size: the plan's occurrences fire in order, and the reach report's
//! totals are the deliveries the demo recorded.

mod common;

use chrono::NaiveDate;
use common::repo_root;
use loa::app::Setup;
use loa::config::Env;
use loa::demo::{DemoOptions, DemoProgress, run};
use sqlx::Row;

#[derive(Default)]
struct Lines(Vec<String>);

impl DemoProgress for Lines {
    fn occurrence(&mut self, line: &str) {
        self.0.push(line.to_string());
    }

    fn status(&mut self, _: chrono::DateTime<chrono::Utc>, _: usize, _: [usize; 3]) {}
}

#[tokio::test]
async fn the_demo_plays_the_plan_in_order_and_its_report_matches_its_deliveries() {
    let setup = Setup::load(&repo_root().join("loa.toml"), &Env::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = DemoOptions {
        year: 2023,
        people: 80,
        speed: 0.0,
        seed: 7,
        dir: dir.path().to_path_buf(),
    };
    let mut lines = Lines::default();
    let outcome = run(&setup, &options, &mut lines).await.unwrap();

    // Every fire time of 2023, in order, one line each.
    let tz = setup.config.campaign.time_zone;
    let plan = setup.calendar.plan(
        NaiveDate::from_ymd_opt(2023, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(2023, 12, 31).unwrap(),
        tz,
    );
    // (The mid-year top-up is queued content, not a fire time of the plan.)
    let fired: Vec<(String, String)> = outcome
        .occurrences
        .iter()
        .filter(|o| !o.schedule.starts_with("content:"))
        .map(|o| (o.schedule.clone(), o.at.with_timezone(&tz).to_rfc3339()))
        .collect();
    let planned: Vec<(String, String)> = plan
        .iter()
        .filter(|p| p.fires())
        .map(|p| (p.schedule.clone(), p.at.clone()))
        .collect();
    assert_eq!(fired, planned);
    assert_eq!(
        outcome.occurrences.len(),
        planned.len() + 1,
        "and the top-up"
    );
    let occurrence_lines = lines.0.iter().filter(|l| l.ends_with("recipients")).count();
    assert_eq!(occurrence_lines, planned.len() + 1);
    assert!(outcome.occurrences.iter().all(|o| o.recipients > 0));
    assert!(
        lines.0.iter().any(|l| l.contains("Mid-year review")),
        "{:?}",
        lines.0
    );

    // The report counts exactly the persons the demo's deliveries reached.
    let db = loa::store::Db::connect(&format!("sqlite://{}", outcome.database.display()))
        .await
        .unwrap();
    let reached: i64 = sqlx::query(
        "SELECT COUNT(DISTINCT person_id) FROM deliveries
         WHERE (channel = 'telegram' AND status = 'sent')
            OR (channel IN ('zalo', 'sms') AND status = 'delivered')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
    .try_get(0)
    .unwrap();
    assert_eq!(outcome.report.total.reached, reached as u64);
    assert!(reached > 0);
    // Not a wall of 100 %: blocked bots, failed or unconfirmed SMS and opt-outs are in there.
    let statuses: Vec<String> =
        sqlx::query("SELECT DISTINCT status FROM deliveries ORDER BY status")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get(0).unwrap())
            .collect();
    for expected in ["delivered", "failed", "sent"] {
        assert!(
            statuses.iter().any(|s| s == expected),
            "no {expected} delivery: {statuses:?}"
        );
    }
    let count = |sql: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap()
        }
    };
    assert!(
        count("SELECT COUNT(*) FROM persons WHERE opted_out_at IS NOT NULL").await > 0,
        "someone opted out"
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM deliveries d JOIN persons p ON p.id = d.person_id
             JOIN occurrences o ON o.id = d.occurrence_id
             WHERE p.opted_out_at IS NOT NULL AND o.fire_at > p.opted_out_at"
        )
        .await,
        0,
        "nothing is fanned out to a person after they opted out"
    );
    assert!(
        count("SELECT COUNT(*) FROM contacts WHERE active = 0").await > 0,
        "some residents blocked the bot"
    );
    let sum_of_communes: u64 = outcome
        .report
        .areas
        .iter()
        .filter(|r| r.depth == 1)
        .map(|r| r.reached)
        .sum();
    assert_eq!(sum_of_communes, outcome.report.total.reached);

    // Telegram, Zalo and SMS side by side, with what the year cost on each.
    let labels: Vec<&str> = outcome.channels.iter().map(|c| c.label).collect();
    assert_eq!(labels, ["Telegram", "Zalo", "SMS"]);
    for c in &outcome.channels {
        assert!(c.sent > 0 && c.reached > 0 && c.reached <= c.sent, "{c:?}");
    }
    let [telegram, zalo, sms] = &outcome.channels[..] else {
        unreachable!()
    };
    assert_eq!(telegram.cost_vnd, 0.0);
    assert_eq!(zalo.cost_vnd, zalo.sent as f64 * 300.0, "{zalo:?}");
    assert!(sms.cost_vnd >= sms.sent as f64 * 350.0, "{sms:?}");
    assert_eq!(zalo.sent as usize, outcome.zalo_sent);
    assert!(
        count("SELECT COUNT(*) FROM contacts WHERE channel = 'zalo' AND active = 0").await > 0,
        "some numbers have no Zalo: they got SMS"
    );
    // Engagement and growth show, not zeros: taps on Telegram messages, poster subscribers
    // who then received messages.
    let taps = count("SELECT COUNT(*) FROM engagements").await;
    let telegram_sent =
        count("SELECT COUNT(*) FROM deliveries WHERE channel = 'telegram' AND status = 'sent'")
            .await;
    assert!(
        taps > telegram_sent / 5 && taps < telegram_sent / 2,
        "{taps} of {telegram_sent}"
    );
    assert!(
        count(
            "SELECT COUNT(DISTINCT d.person_id) FROM deliveries d JOIN persons p ON p.id = d.person_id
             WHERE p.consent_via = 'poster'"
        )
        .await
            > 0,
        "residents who came by a poster got messages"
    );

    // The mid-year review: communes projected below the band on 1 July, and an SMS top-up on
    // 3 July to exactly the people of those communes not reached before it, within budget.
    let mid = outcome.mid_year.as_ref().expect("a mid-year review");
    assert!(!mid.below.is_empty());
    let top_up = outcome
        .occurrences
        .iter()
        .find(|o| o.schedule.starts_with("content:"))
        .unwrap();
    let rows = sqlx::query(
        "SELECT d.channel, a.name,
                (SELECT COUNT(*) FROM reach r WHERE r.person_id = d.person_id AND r.period = 'Y2023'
                   AND r.first_at < o.fire_at)
         FROM deliveries d JOIN occurrences o ON o.id = d.occurrence_id
         JOIN persons p ON p.id = d.person_id JOIN areas a ON a.code = p.area_code
         WHERE o.schedule_id = $1",
    )
    .bind(&top_up.schedule)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len() as u64, top_up.recipients);
    for row in &rows {
        assert_eq!(row.get::<String, _>(0), "sms");
        assert!(
            mid.below.contains(&row.get::<String, _>(1)),
            "{:?}",
            mid.below
        );
        assert_eq!(row.get::<i64, _>(2), 0, "reached before the top-up");
    }
    assert!(sms.cost_vnd <= sms.budget.unwrap());
}
