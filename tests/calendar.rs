//! The plan's calendar as shipped in `schedules/`: pinned for 2023, the same observances in
//! 2024 (a leap year), and never two campaign messages to one person on one day.

mod common;

use std::collections::BTreeSet;

use chrono::NaiveDate;
use common::repo_root;
use loa::app::Setup;
use loa::config::Env;
use serde_json::Value;

fn setup() -> Setup {
    Setup::load(&repo_root().join("loa.toml"), &Env::default()).unwrap_or_else(|p| panic!("{p}"))
}

fn plan(year: i32) -> Vec<(String, String, String)> {
    let setup = setup();
    let from = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
    let to = NaiveDate::from_ymd_opt(year, 12, 31).unwrap();
    setup
        .calendar
        .plan(from, to, setup.config.campaign.time_zone)
        .into_iter()
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
    // A monthly policy message in each month without an observance of its own.
    for month in ["01", "02", "04", "05", "07", "08", "09"] {
        assert!(
            at.iter().any(|d| d[5..7] == *month),
            "nothing in month {month}"
        );
    }
}

#[test]
fn a_leap_year_2024_has_the_same_observances_on_the_same_days() {
    let strip_year = |p: Vec<(String, String, String)>| -> Vec<(String, String, String)> {
        p.into_iter()
            .map(|(s, at, t)| (s, at[5..].to_string(), t))
            .collect()
    };
    assert_eq!(strip_year(plan(2024)), strip_year(plan(2023)));
}

#[test]
fn nobody_gets_two_campaign_messages_on_one_day() {
    let setup = setup();
    let collisions = setup.calendar.same_day_collisions(
        NaiveDate::from_ymd_opt(2023, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(2032, 12, 31).unwrap(),
        setup.config.campaign.time_zone,
        &setup.config.areas,
    );
    assert!(collisions.is_empty(), "{collisions:?}");
    // The shipped files warn of nothing else once the number that receives replies is set
    let configured = Setup::load(
        &repo_root().join("loa.toml"),
        &Env::default().with("LOA_SMS_REPLY_NUMBER", "8079"),
    )
    .unwrap_or_else(|p| panic!("{p}"));
    // (and a line for adults facing violence, shipped commented out until confirmed).
    let remaining: Vec<String> = configured.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(remaining.len(), 1, "{remaining:?}");
    assert!(remaining[0].contains("no line for adults"), "{remaining:?}");
    assert_eq!(setup.warnings.len(), 2, "{:?}", setup.warnings);
    assert!(setup.warnings[1].to_string().contains("sms.reply_number"));
}
