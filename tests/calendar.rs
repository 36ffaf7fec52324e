//! The plan's calendar as shipped in `schedules/`: pinned for 2023, the same observances in
//! 2024 (a leap year), a series of distinct messages on policy and law, a youth schedule, never
//! two campaign messages to one person on one day, and none on a public holiday.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use common::repo_root;
use loa::app::Setup;
use loa::config::Env;
use serde_json::Value;

fn setup() -> Setup {
    Setup::load(&repo_root().join("loa.toml"), &Env::default()).unwrap_or_else(|p| panic!("{p}"))
}

/// The fire times that fire in `year`: (schedule, at, template).
fn plan(year: i32) -> Vec<(String, String, String)> {
    let setup = setup();
    let from = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
    let to = NaiveDate::from_ymd_opt(year, 12, 31).unwrap();
    setup
        .calendar
        .plan(from, to, setup.config.campaign.time_zone)
        .into_iter()
        .filter(|f| f.fires())
        .map(|f| (f.schedule, f.at, f.template))
        .collect()
}

#[test]
fn the_2023_plan_is_pinned() {
    let fixture: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("tests/fixtures/plan-2023.json")).unwrap(),
    )
    .unwrap();
    let expected: Vec<(String, String, String)> = fixture
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            (s("schedule"), s("at"), s("template"))
        })
        .collect();
    assert_eq!(plan(2023), expected);
}

#[test]
fn the_2023_plan_covers_every_observance_of_the_district_plan() {
    let at: BTreeSet<String> = plan(2023)
        .into_iter()
        .map(|(_, at, _)| at[..10].to_string())
        .collect();
    for day in [
        "2023-03-06", // two days before 8 March
        "2023-03-08",
        "2023-06-01", // launch of the action month against domestic violence
        "2023-06-28", // Family Day
        "2023-06-30", // its close
        "2023-10-18",
        "2023-10-20",
        "2023-11-15", // launch of the action month for gender equality
        "2023-12-15", // its close, inclusive
    ] {
        assert!(at.contains(day), "nothing on {day}");
    }
    // A message each week of both action months.
    let weekly_june = ["2023-06-08", "2023-06-15", "2023-06-22"];
    let weekly_november = ["2023-11-22", "2023-11-29", "2023-12-06", "2023-12-13"];
    for day in weekly_june.iter().chain(&weekly_november) {
        assert!(at.contains(*day), "no weekly message on {day}");
    }
    // A message of the policy-and-law series in each month without an observance of its own.
    for month in ["01", "02", "04", "05", "07", "08", "09"] {
        assert!(
            at.iter().any(|d| d[5..7] == *month),
            "nothing in month {month}"
        );
    }
}

/// The policy-and-law series: one message a month on the 10th (moved off a holiday) in the
/// months without an observance, a topic each, and the action month's third week for the last
/// topic; no template goes out more than 3 times in any year, none of the series twice.
#[test]
fn the_series_has_one_message_a_month_and_no_message_repeats_within_a_year() {
    let setup = setup();
    let series: Vec<String> = setup
        .calendar
        .schedules()
        .iter()
        .filter(|s| s.file.ends_with("quy-i-iv-chinh-sach-phap-luat.toml"))
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(series.len(), 7, "{series:?}");
    for year in 2023..=2035 {
        let plan = plan(year);
        let mut per_template: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, _, template) in &plan {
            *per_template.entry(template.as_str()).or_default() += 1;
        }
        for (template, n) in &per_template {
            assert!(*n <= 3, "{template} goes out {n} times in {year}");
        }
        let of_series: Vec<&(String, String, String)> =
            plan.iter().filter(|(s, _, _)| series.contains(s)).collect();
        let months: Vec<&str> = of_series.iter().map(|(_, at, _)| &at[5..7]).collect();
        assert_eq!(
            months,
            ["01", "02", "04", "05", "07", "08", "09"],
            "{year}: one series message a month"
        );
        for (schedule, at, template) in &of_series {
            assert_eq!(per_template[template.as_str()], 1, "{template} in {year}");
            // On the 10th at 09:00, or the first working day after it.
            let day: u32 = at[8..10].parse().unwrap();
            assert!((10..=17).contains(&day), "{schedule} on {at}");
            assert!(at.ends_with("T09:00:00+07:00"), "{schedule} on {at}");
        }
        // The action month's third week closes the series with a topic of its own.
        let week_3: Vec<&String> = plan
            .iter()
            .filter(|(s, _, _)| s == "bdg-tuan-3-phap-luat")
            .map(|(_, _, t)| t)
            .collect();
        assert_eq!(week_3, ["bdg-chuong-trinh-bao-luc-gioi"], "{year}");
    }
}

/// The youth get two messages in the summer holidays, on days when nobody gets another (see
/// `nobody_gets_two_campaign_messages_on_one_day`): 20 July and 20 August, only to `thanh-nien`.
#[test]
fn the_youth_schedule_reaches_thanh_nien_in_july_and_august() {
    let setup = setup();
    let youth: Vec<&str> = setup
        .calendar
        .schedules()
        .iter()
        .filter(|s| !s.audience.tags.is_empty())
        .inspect(|s| assert_eq!(s.audience.tags, ["thanh-nien"], "{}", s.id))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(youth.len(), 2);
    for year in 2023..=2035 {
        let days: Vec<String> = plan(year)
            .into_iter()
            .filter(|(s, _, _)| youth.contains(&s.as_str()))
            .map(|(_, at, _)| at[5..16].to_string())
            .collect();
        assert_eq!(days, ["07-20T09:00", "08-20T09:00"], "{year}");
    }
}

#[test]
fn a_leap_year_2024_has_the_same_observances_on_the_same_days_but_tet() {
    let strip_year = |p: Vec<(String, String, String)>| -> Vec<(String, String, String)> {
        p.into_iter()
            .map(|(s, at, t)| (s, at[5..].to_string(), t))
            .collect()
    };
    // Except the series' message of 10 February: in 2024 that is the first day of Tết, and
    // the break announced in loa.toml runs to Wednesday 14th, so it goes on Thursday 15th.
    let mut expected = strip_year(plan(2023));
    let tet = expected
        .iter_mut()
        .find(|(s, at, _)| s == "phap-luat-02-chien-luoc" && at.starts_with("02-10"))
        .expect("the series' message on 10 February 2023");
    tet.1 = tet.1.replacen("02-10", "02-15", 1);
    assert_eq!(strip_year(plan(2024)), expected);
}

#[test]
fn no_fire_time_falls_on_a_public_holiday() {
    let setup = setup();
    let tz = setup.config.campaign.time_zone;
    let holidays = setup.calendar.holidays();
    let mut moved = Vec::new();
    for year in 2023..=2035 {
        let from = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
        let to = NaiveDate::from_ymd_opt(year, 12, 31).unwrap();
        for fire in setup.calendar.plan(from, to, tz) {
            let day = NaiveDate::parse_from_str(&fire.at[..10], "%Y-%m-%d").unwrap();
            if fire.fires() {
                assert_eq!(holidays.on(day), None, "{} fires on a holiday", fire.at);
            }
            if let Some(note) = fire.note() {
                moved.push(format!("{} {} {note}", fire.at, fire.schedule));
            }
        }
    }
    // What the shipped calendar meets: the series' February message on Tết in 2024 (the announced
    // break, to Wednesday 14th), 2032 (Tết 11 February: the computed break is Tuesday 10th –
    // Saturday 14th) and 2035 (Tết 8 February: Wednesday 7th – Sunday 11th), and nothing else:
    // no observance of the plan is a public holiday.
    assert_eq!(
        moved,
        [
            "2024-02-15T09:00:00+07:00 phap-luat-02-chien-luoc moved from 2024-02-10 (Tết Nguyên Đán)",
            "2032-02-16T09:00:00+07:00 phap-luat-02-chien-luoc moved from 2032-02-10 (Tết Nguyên Đán)",
            "2035-02-12T09:00:00+07:00 phap-luat-02-chien-luoc moved from 2035-02-10 (Tết Nguyên Đán)",
        ]
    );
}

#[test]
fn nobody_gets_two_campaign_messages_on_one_day() {
    let setup = setup();
    let collisions = setup.calendar.same_day_collisions(
        NaiveDate::from_ymd_opt(2023, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(2035, 12, 31).unwrap(),
        setup.config.campaign.time_zone,
        &setup.config.areas,
    );
    assert!(collisions.is_empty(), "{collisions:?}");
    // The shipped files warn of nothing else once the number that receives replies is set,
    // but what an operator must confirm: a line for adults facing violence (shipped commented
    // out), the communes' phone numbers and Telegram chats, the themes of years not yet announced and the holiday moves of this year and the
    // next (which depend on today's date).
    let configured = Setup::load(
        &repo_root().join("loa.toml"),
        &Env::default().with("LOA_SMS_REPLY_NUMBER", "8079"),
    )
    .unwrap_or_else(|p| panic!("{p}"));
    let remaining: Vec<String> = configured
        .warnings
        .iter()
        .map(|w| w.to_string())
        .filter(|w| {
            !w.contains("no line for adults")
                && !w.contains("no contact_phone")
                && !w.contains("no contact point on Telegram")
                && !w.contains("has no theme for")
                && !w.contains("moved from")
        })
        .collect();
    assert!(remaining.is_empty(), "{remaining:?}");
    assert!(
        setup
            .warnings
            .iter()
            .any(|w| w.to_string().contains("sms.reply_number"))
    );
}
