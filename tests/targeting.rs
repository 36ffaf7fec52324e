//! Audiences by reach: a schedule can speak only to the people not yet reached this year (or
//! quarter, month, observance), and only in the communes still below the target band. What the
//! fan-out selects is checked against the reach rows themselves.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use common::{TestApp, at, copy_of_repo};
use loa::channel::ChannelKind;
use sqlx::Row;

const TOP_UP: &str = r#"
[[schedule]]
id = "bo-sung-chua-tiep-can"
observance = "quoc-te-phu-nu"
template = "quoc-te-phu-nu"
cron = "0 0 9 20 3 *"
channels = ["telegram", "sms"]
audience = { unreached = "year" }

[[schedule]]
id = "bo-sung-xa-duoi-muc"
observance = "quoc-te-phu-nu"
template = "quoc-te-phu-nu"
cron = "0 0 9 21 3 *"
channels = ["telegram", "sms"]
audience = { unreached = "year", below_band = true }
"#;

/// Loa with the two top-up schedules, 300 residents, communes of 6 to 22 people (so a few
/// reached people put a commune into the band), and a partial year of reach: every third
/// person reached on a day of 2023 before the top-up, every seventh reached in 2022 only.
async fn partial_year() -> (TestApp, tempfile::TempDir) {
    let dir = copy_of_repo();
    std::fs::write(dir.path().join("schedules/99-bo-sung.toml"), TOP_UP).unwrap();
    let app = TestApp::spawn_custom(
        &dir.path().join("loa.toml"),
        "2023-03-19T12:00:00+07:00",
        0.0,
        |c| {
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
    app.seed_residents(300).await;
    let persons = sqlx::query("SELECT id, area_code FROM persons ORDER BY id")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    let tz = app.setup.config.campaign.time_zone;
    let mut conn = app.db.pool.acquire().await.unwrap();
    for (i, row) in persons.iter().enumerate() {
        let (id, area): (i64, String) = (row.get(0), row.get(1));
        let when = if i % 3 == 0 {
            at("2023-01-05T10:00:00+07:00") + Duration::days((i % 60) as i64)
        } else if i % 7 == 0 {
            at("2022-11-20T10:00:00+07:00")
        } else {
            continue;
        };
        loa::reach::record(
            &mut conn,
            id,
            &area,
            ChannelKind::Telegram,
            "resident",
            when,
            tz,
        )
        .await
        .unwrap();
    }
    drop(conn);
    // Some opted out, some contacts gone: not contactable, reached or not.
    sqlx::query("UPDATE persons SET opted_out_at = 1 WHERE id % 11 = 0")
        .execute(&app.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE contacts SET active = 0 WHERE person_id % 13 = 0")
        .execute(&app.db.pool)
        .await
        .unwrap();
    (app, dir)
}

async fn fanned_out(app: &TestApp, schedule: &str) -> BTreeSet<i64> {
    sqlx::query(
        "SELECT d.person_id FROM deliveries d JOIN occurrences o ON o.id = d.occurrence_id
         WHERE o.schedule_id = $1",
    )
    .bind(schedule)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Persons with an active contact who have not opted out and have no reach row in 2023.
async fn contactable_unreached(app: &TestApp) -> BTreeMap<i64, String> {
    sqlx::query(
        "SELECT DISTINCT p.id, p.area_code FROM persons p JOIN contacts c ON c.person_id = p.id
         WHERE c.active = 1 AND p.opted_out_at IS NULL
           AND p.id NOT IN (SELECT person_id FROM reach WHERE period = 'Y2023')",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn unreached_this_year_selects_exactly_the_contactable_people_not_reached_this_year() {
    let (mut app, _dir) = partial_year().await;
    let expected = contactable_unreached(&app).await;
    assert!(
        expected.len() > 100 && expected.len() < 250,
        "{}",
        expected.len()
    );

    app.set_clock("2023-03-20T09:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    let chosen = fanned_out(&app, "bo-sung-chua-tiep-can").await;
    let expected_ids: BTreeSet<i64> = expected.keys().copied().collect();
    assert_eq!(chosen, expected_ids);
    // Reached in 2022 only is unreached this year.
    let reached_2022_only = sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM reach r WHERE period = 'Y2022'
           AND person_id NOT IN (SELECT person_id FROM reach WHERE period = 'Y2023')",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(reached_2022_only > 0);

    // The next day, among those: only the communes still below 40 % of their population.
    let reached_by_area: BTreeMap<String, i64> = sqlx::query(
        "SELECT area_code, COUNT(*) FROM reach WHERE period = 'Y2023' GROUP BY area_code",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let below: BTreeSet<String> = app
        .setup
        .config
        .areas
        .leaves()
        .filter(|a| {
            let population = app.setup.config.areas.population(&a.code) as f64;
            (reached_by_area.get(&a.code).copied().unwrap_or(0) as f64) < 0.4 * population
        })
        .map(|a| a.code.clone())
        .collect();
    assert!(!below.is_empty() && below.len() < 25, "{below:?}");
    app.set_clock("2023-03-21T09:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    let chosen = fanned_out(&app, "bo-sung-xa-duoi-muc").await;
    let expected_below: BTreeSet<i64> = expected
        .iter()
        .filter(|(_, area)| below.contains(*area))
        .map(|(id, _)| *id)
        .collect();
    assert!(!expected_below.is_empty());
    assert_eq!(chosen, expected_below);
}

#[test]
fn an_unknown_span_is_named_with_its_line() {
    let dir = copy_of_repo();
    std::fs::write(
        dir.path().join("schedules/99-bo-sung.toml"),
        TOP_UP.replace("unreached = \"year\" }\n\n", "unreached = \"nam\" }\n\n"),
    )
    .unwrap();
    let problems = loa::app::Setup::load(&dir.path().join("loa.toml"), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        problems.contains("99-bo-sung.toml:8: audience.unreached: \"nam\" is not one of"),
        "{problems}"
    );
}

#[test]
fn the_spans_name_the_reach_periods_of_the_send() {
    use loa::calendar::Unreached;
    use loa::reach::unreached_periods;
    let d = |s: &str| s.parse::<chrono::NaiveDate>().unwrap();
    let on = d("2023-08-14");
    assert_eq!(unreached_periods(Unreached::Year, on, on), ["Y2023"]);
    assert_eq!(unreached_periods(Unreached::Month, on, on), ["M2023-08"]);
    assert_eq!(
        unreached_periods(Unreached::Quarter, on, on),
        ["M2023-07", "M2023-08", "M2023-09"]
    );
    // From the observance's first day (15 November) to the send (10 December): 26 days.
    let month = unreached_periods(Unreached::Observance, d("2023-12-10"), d("2023-11-15"));
    assert_eq!(month.len(), 26);
    assert_eq!(month.first().map(String::as_str), Some("D2023-11-15"));
    assert_eq!(month.last().map(String::as_str), Some("D2023-12-10"));
    // A whole month inside the span is one period.
    let long = unreached_periods(Unreached::Observance, d("2023-07-02"), d("2023-05-31"));
    assert_eq!(
        long,
        ["D2023-05-31", "M2023-06", "D2023-07-01", "D2023-07-02"]
    );
    assert!(unreached_periods(Unreached::Observance, d("2023-03-01"), d("2023-03-08")).is_empty());
}

#[tokio::test]
async fn the_projection_adds_up_against_the_reach_rows_and_the_calendar() {
    let (app, _dir) = partial_year().await;
    // Half the residents are known by a mobile number only.
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT person_id FROM contacts WHERE person_id % 2 = 0")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    for id in ids {
        sqlx::query("UPDATE contacts SET channel = 'sms', address = $1 WHERE person_id = $2")
            .bind(format!("+84912{id:06}"))
            .bind(id)
            .execute(&app.db.pool)
            .await
            .unwrap();
    }
    let setup = &app.setup;
    let now = app.clock_now();
    let p = loa::console::projection::project(
        &app.db,
        &setup.config,
        &setup.calendar,
        &setup.templates,
        now,
        None,
    )
    .await
    .unwrap();
    assert_eq!(p.year, 2023);
    assert_eq!(p.communes.len(), 25);
    let unreached = contactable_unreached(&app).await;
    let reached: BTreeMap<String, i64> = sqlx::query(
        "SELECT area_code, COUNT(*) FROM reach WHERE period = 'Y2023' GROUP BY area_code",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let end = at("2024-01-01T00:00:00+07:00") - Duration::seconds(1);
    let fires_left = setup.calendar.fire_times(now, end).len();
    let next = &setup.calendar.fire_times(now, end)[0];
    assert_eq!(next.schedule.id, "bo-sung-chua-tiep-can");
    let context = loa::templates::MessageContext::sample(
        &next.schedule.observance,
        &loa::templates::SampleData::from_config(&setup.config),
    );
    let parts = setup
        .templates
        .preview(&next.schedule.template, ChannelKind::Sms, &context)
        .unwrap()
        .sms
        .unwrap()
        .segments;
    let mut any_top_up = false;
    for c in &p.communes {
        let population = setup.config.areas.population(&c.code);
        let reached_here = reached.get(&c.code).copied().unwrap_or(0) as u64;
        let unreached_ids: Vec<i64> = unreached
            .iter()
            .filter(|(_, area)| **area == c.code)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(c.population, population);
        assert_eq!(c.reached, reached_here, "{}", c.code);
        assert_eq!(c.unreached, unreached_ids.len() as u64, "{}", c.code);
        assert_eq!(c.fires_left, fires_left);
        assert_eq!(c.outlook.projected, reached_here + c.unreached);
        let target = (0.4 * population as f64).ceil() as u64;
        assert_eq!(c.outlook.needed, target.saturating_sub(c.outlook.projected));
        assert_eq!(c.outlook.gap_now, target.saturating_sub(reached_here));
        assert_eq!(
            c.projected_below,
            (c.outlook.projected as f64) < 0.4 * population as f64
        );
        match &c.top_up {
            Some(t) => {
                any_top_up = true;
                assert!(c.outlook.gap_now > 0);
                assert_eq!(t.template, next.schedule.template);
                // Telegram first (free), the rest by SMS at 350 đồng a part.
                let by_sms = unreached_ids.iter().filter(|id| *id % 2 == 0).count() as u64;
                let sms = t.by_channel.iter().find(|x| x.channel == ChannelKind::Sms);
                assert_eq!(sms.map_or(0, |x| x.persons), by_sms, "{}", c.code);
                assert_eq!(t.persons, c.unreached);
                assert_eq!(
                    t.cost_vnd,
                    by_sms as f64 * 350.0 * parts as f64,
                    "{}",
                    c.code
                );
            }
            None => assert!(c.outlook.gap_now == 0 || c.unreached == 0, "{}", c.code),
        }
    }
    assert!(any_top_up);
    // Furthest below first.
    let shares: Vec<f64> = p
        .communes
        .iter()
        .map(|c| c.projected_share.unwrap())
        .collect();
    assert!(shares.windows(2).all(|w| w[0] <= w[1]), "{shares:?}");
}

#[tokio::test]
async fn queued_content_for_the_unreached_below_the_band_shows_its_count_per_commune_and_sends_to_them()
 {
    use loa::console::content::ContentInput;
    use loa::console::{Actor, Role};
    let (mut app, _dir) = partial_year().await;
    let expected = contactable_unreached(&app).await;
    let below: BTreeSet<String> = {
        let mut conn = app.db.pool.acquire().await.unwrap();
        loa::reach::below_band(
            &mut conn,
            &app.setup.config.areas,
            app.setup.config.campaign.target,
            2023,
        )
        .await
        .unwrap()
        .into_iter()
        .collect()
    };
    assert!(!below.is_empty() && below.len() < 25, "{below:?}");
    let mut per_area: BTreeMap<String, i64> = BTreeMap::new();
    for area in expected.values().filter(|a| below.contains(*a)) {
        *per_area.entry(area.clone()).or_default() += 1;
    }
    let console = app.web.console();
    let actor = |name: &str, role| Actor {
        id: format!("user:{name}"),
        name: name.into(),
        role,
        area: None,
    };
    let input = ContentInput {
        title: "Tin bổ sung cho các xã chưa đạt mục tiêu".into(),
        template: Some("quoc-te-phu-nu".into()),
        channels: vec!["telegram".into()],
        send_at: "2023-03-20T10:00".into(),
        unreached: Some("year".into()),
        below_band: true,
        ..ContentInput::default()
    };
    // Before sending: the count per commune, exactly the unreached of the communes below.
    let preview = console
        .preview(&actor("lan", Role::Staff), &input)
        .await
        .unwrap();
    let shown: BTreeMap<String, i64> = preview
        .by_area
        .iter()
        .filter(|a| a.recipients > 0)
        .map(|a| (a.code.clone(), a.recipients))
        .collect();
    assert_eq!(shown, per_area);
    assert_eq!(
        preview.by_area.len(),
        25,
        "every commune listed, 0 where none"
    );
    assert_eq!(preview.recipients, per_area.values().sum::<i64>());

    let item = console
        .create_content(&actor("lan", Role::Staff), &input)
        .await
        .unwrap();
    assert_eq!(item.unreached, Some(loa::calendar::Unreached::Year));
    assert!(item.below_band);
    console
        .submit_content(&actor("lan", Role::Staff), item.id, Some(item.version))
        .await
        .unwrap();
    console
        .approve_content(&actor("binh", Role::Approver), item.id, item.version)
        .await
        .unwrap();
    app.set_clock("2023-03-20T10:00:00+07:00");
    app.engine.scheduler.tick().await.unwrap();
    let chosen = fanned_out(&app, &format!("content:{}", item.id)).await;
    let expected_below: BTreeSet<i64> = expected
        .iter()
        .filter(|(_, area)| below.contains(*area))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(chosen, expected_below);

    // The observance's round needs an observance.
    let without = ContentInput {
        unreached: Some("observance".into()),
        ..input
    };
    let refused = console
        .create_content(&actor("lan", Role::Staff), &without)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, loa::console::ConsoleError::Invalid { field, .. } if field == "unreached"),
        "{refused:?}"
    );
}
