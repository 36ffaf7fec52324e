//! Vietnam's public holidays, and what becomes of a fire time that falls on one.
//!
//! # The days (Labour Code 2019, art. 112)
//!
//! Clause 1 gives, with full pay: Tết Dương lịch, 1 day (1/1); Tết Âm lịch, 5 days; Ngày
//! Chiến thắng, 1 day (30/4); Ngày Quốc tế Lao động, 1 day (1/5); Quốc khánh, 2 days (2/9 "and
//! one day immediately before or after it"); Giỗ Tổ Hùng Vương, 1 day (10/3 of the lunar
//! calendar). Clause 3: each year the Prime Minister decides the specific days of the Tết
//! break (point b) and of the National Day pair (point đ). Sources: the article's text as
//! quoted by znews.vn and dantri.com.vn (26 February 2026) and, translated, by ja.laodong.vn;
//! vnilaw.com on the second National Day day (in force since 2021); lawnet.vn on 2024, when
//! employers chose "one of the two days: Sunday 1 September or Tuesday 3 September".
//!
//! Our reading, and so the computed default of a year:
//! - 1/1, 30/4, 1/5 and 2/9 always;
//! - the day beside 2/9 is 3/9 (from 2021, when the Labour Code 2019 took effect) unless that
//!   year's `[[holidays]]` entries cover 1/9, 2/9 or 3/9 — then the entries say which day it
//!   is (the government picks 1/9 or 3/9, often with a weekend around them);
//! - 10/3 lunar (Hùng Kings' day, a holiday since 2007);
//! - the Tết break: five days, from the last day of the lunar year to the 4th day of the new
//!   one, unless a `[[holidays]]` entry of that year overlaps those five days — then the
//!   entries are the break (the government's break is usually longer, 7–9 days with weekends).
//!
//! Every `[[holidays]]` day is a holiday too (a compensatory day, a bridge day). Compensatory
//! days for a holiday on a weekend (art. 111(3)) are not computed: the government announces
//! them with the year's schedule, so they belong in `[[holidays]]`. Nor is Ngày Văn hóa Việt
//! Nam (24/11): proposed as a paid holiday in 2026, not (yet) in art. 112.
//!
//! Lunar dates are computed for UTC+7 ([`super::lunar`]), whatever the campaign's time zone:
//! the holidays are Vietnam's. A fire time is on a holiday when its local date (in its
//! schedule's time zone) is one.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Weekday};
use chrono_tz::Tz;

use super::lunar::{self, LunarDate, VIETNAM_UTC_OFFSET_HOURS};
use crate::config::HolidayRange;

pub const NEW_YEAR: &str = "Tết Dương lịch";
pub const TET: &str = "Tết Nguyên Đán";
pub const HUNG_KINGS: &str = "Giỗ Tổ Hùng Vương";
pub const VICTORY_DAY: &str = "Ngày Chiến thắng 30/4";
pub const LABOUR_DAY: &str = "Ngày Quốc tế Lao động";
pub const NATIONAL_DAY: &str = "Quốc khánh";
/// A `[[holidays]]` day without a name that overlaps no computed holiday.
pub const DAY_OFF: &str = "Ngày nghỉ";

/// The first year of the second National Day holiday (Labour Code 2019, in force 1/1/2021).
const NATIONAL_DAY_PAIR_SINCE: i32 = 2021;
/// Hùng Kings' day became a public holiday on 28 March 2007.
const HUNG_KINGS_SINCE: i32 = 2007;
/// Looking for the next working day never goes further than this (a year of `[[holidays]]`
/// back to back would otherwise never end).
const MAX_SEARCH_DAYS: i64 = 400;

/// What a schedule does with a fire time on a public holiday (`on_holiday`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnHoliday {
    /// Fires on the next working day at the same local time (the default).
    #[default]
    Move,
    /// Does not fire.
    Skip,
    /// Fires anyway: a message meant for the holiday itself.
    Send,
}

impl OnHoliday {
    pub const NAMES: &'static str = "\"move\", \"skip\" or \"send\"";

    pub fn parse(s: &str) -> Option<OnHoliday> {
        match s {
            "move" => Some(OnHoliday::Move),
            "skip" => Some(OnHoliday::Skip),
            "send" => Some(OnHoliday::Send),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnHoliday::Move => "move",
            OnHoliday::Skip => "skip",
            OnHoliday::Send => "send",
        }
    }
}

/// What the holiday rule makes of one fire time.
#[derive(Debug, Clone, PartialEq)]
pub enum Shift {
    /// Not on a holiday, or the schedule sends on holidays: it stays.
    Stays,
    /// On `holiday`: it fires at `to` instead, the next working day at the same local time.
    Moved { to: DateTime<Tz>, holiday: String },
    /// On `holiday`, and the schedule skips holidays (or no working day follows).
    Skipped { holiday: String },
}

/// Days off of one solar year, with their names.
pub type YearHolidays = BTreeMap<NaiveDate, String>;

/// Vietnam's public holidays: computed, with the `[[holidays]]` of `loa.toml` applied.
///
/// Each year is computed once, on first use, and kept: the scheduler asks every second.
pub struct Holidays {
    ranges: Vec<HolidayRange>,
    years: Mutex<HashMap<i32, Arc<YearHolidays>>>,
}

impl fmt::Debug for Holidays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Holidays")
            .field("ranges", &self.ranges)
            .finish_non_exhaustive()
    }
}

impl Default for Holidays {
    fn default() -> Self {
        Holidays::new(Vec::new())
    }
}

impl Holidays {
    /// The computed holidays with `ranges` (the `[[holidays]]` entries, already validated).
    pub fn new(ranges: Vec<HolidayRange>) -> Holidays {
        Holidays {
            ranges,
            years: Mutex::new(HashMap::new()),
        }
    }

    /// Every day off of solar year `year`.
    pub fn in_year(&self, year: i32) -> Arc<YearHolidays> {
        // A panic elsewhere cannot leave the map half-written: insertions are whole values.
        let mut years = self.years.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            years
                .entry(year)
                .or_insert_with(|| Arc::new(year_holidays(year, &self.ranges))),
        )
    }

    /// The holiday's name when `date` is one.
    pub fn on(&self, date: NaiveDate) -> Option<String> {
        self.in_year(date.year()).get(&date).cloned()
    }

    /// Neither Saturday, Sunday nor a holiday: a day the People's Committee works.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && self.on(date).is_none()
    }

    /// The first working day after `date`.
    pub fn next_working_day(&self, date: NaiveDate) -> Option<NaiveDate> {
        date.iter_days()
            .skip(1)
            .take(MAX_SEARCH_DAYS as usize)
            .find(|d| self.is_working_day(*d))
    }

    /// The first day of the run of non-working days that ends just before `date` (or `date`
    /// itself when the day before it is a working day): a fire time moved onto `date` or
    /// later comes from no earlier than this.
    pub fn non_working_run_before(&self, date: NaiveDate) -> NaiveDate {
        let mut first = date;
        for _ in 0..MAX_SEARCH_DAYS {
            match first.pred_opt() {
                Some(prev) if !self.is_working_day(prev) => first = prev,
                _ => break,
            }
        }
        first
    }

    /// What `policy` makes of a fire time at `at` (its local date decides).
    pub fn shift(&self, at: DateTime<Tz>, policy: OnHoliday) -> Shift {
        if policy == OnHoliday::Send {
            return Shift::Stays;
        }
        let day = at.date_naive();
        let Some(holiday) = self.on(day) else {
            return Shift::Stays;
        };
        let next = match policy {
            OnHoliday::Move => self.next_working_day(day),
            OnHoliday::Skip | OnHoliday::Send => None,
        };
        match next {
            Some(next) => {
                let tz = at.timezone();
                let to = tz
                    .from_local_datetime(&next.and_time(at.time()))
                    .earliest()
                    // A time a daylight-saving change skips that day: the same elapsed days.
                    .unwrap_or_else(|| at + Duration::days((next - day).num_days()));
                Shift::Moved { to, holiday }
            }
            None => Shift::Skipped { holiday },
        }
    }
}

/// The holidays the law fixes for `year` (before `[[holidays]]`), as (first, last, name):
/// what an entry is named after when it overlaps one.
fn statutory(year: i32) -> Vec<(NaiveDate, NaiveDate, &'static str)> {
    let day = |m, d| NaiveDate::from_ymd_opt(year, m, d).expect("fixed holidays exist every year");
    let tet = lunar::tet(year, VIETNAM_UTC_OFFSET_HOURS);
    let mut out = vec![
        (day(1, 1), day(1, 1), NEW_YEAR),
        // The last day of the previous lunar year (29th or 30th of month 12) to the 4th day.
        (tet - Duration::days(1), tet + Duration::days(3), TET),
        (day(4, 30), day(4, 30), VICTORY_DAY),
        (day(5, 1), day(5, 1), LABOUR_DAY),
    ];
    if year >= NATIONAL_DAY_PAIR_SINCE {
        // 2/9 with 1/9 or 3/9: the whole window an entry may pick from.
        out.push((day(9, 1), day(9, 3), NATIONAL_DAY));
    } else {
        out.push((day(9, 2), day(9, 2), NATIONAL_DAY));
    }
    if year >= HUNG_KINGS_SINCE
        && let Some(hung) =
            lunar::lunar_to_solar(LunarDate::new(year, 3, 10), VIETNAM_UTC_OFFSET_HOURS)
    {
        out.push((hung, hung, HUNG_KINGS));
    }
    out
}

/// The days off of `year`: see the module's documentation for the rules.
fn year_holidays(year: i32, ranges: &[HolidayRange]) -> YearHolidays {
    let entries: Vec<&HolidayRange> = ranges.iter().filter(|r| r.year == year).collect();
    let overlapped =
        |from: NaiveDate, to: NaiveDate| entries.iter().any(|e| e.from <= to && from <= e.to);
    let statutory = statutory(year);
    let mut days = YearHolidays::new();
    // Names: an entry's own name wins on its days; then a statutory holiday's on its day;
    // an unnamed entry's other days are named after the statutory holiday it overlaps.
    for entry in &entries {
        if let Some(name) = &entry.name {
            for day in entry.days() {
                days.entry(day).or_insert_with(|| name.clone());
            }
        }
    }
    for &(from, to, name) in &statutory {
        let days_of = |from: NaiveDate, to: NaiveDate| {
            from.iter_days()
                .take_while(move |d| *d <= to)
                .collect::<Vec<_>>()
        };
        let computed = match name {
            // The government sets the break: an entry overlapping the default replaces it.
            TET if overlapped(from, to) => Vec::new(),
            TET => days_of(from, to),
            NATIONAL_DAY if from != to => {
                let second = from + Duration::days(1);
                if overlapped(from, to) {
                    // 2/9 stays whatever the entries say; the entries pick the day beside it.
                    vec![second]
                } else {
                    vec![second, to]
                }
            }
            _ => days_of(from, to),
        };
        for day in computed {
            days.entry(day).or_insert_with(|| name.to_string());
        }
    }
    for entry in entries.iter().filter(|e| e.name.is_none()) {
        let name = statutory
            .iter()
            .find(|(from, to, _)| entry.from <= *to && *from <= entry.to)
            .map_or(DAY_OFF, |(_, _, name)| name);
        for day in entry.days() {
            days.entry(day).or_insert_with(|| name.to_string());
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Ho_Chi_Minh;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn range(year: i32, from: &str, to: &str, name: Option<&str>) -> HolidayRange {
        HolidayRange {
            year,
            from: date(&format!("{year}-{from}")),
            to: date(&format!("{year}-{to}")),
            name: name.map(str::to_string),
        }
    }

    fn days(h: &Holidays, year: i32) -> Vec<(String, String)> {
        h.in_year(year)
            .iter()
            .map(|(d, n)| (d.to_string(), n.clone()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(d, n)| (d.to_string(), n.to_string()))
            .collect()
    }

    #[test]
    fn the_computed_holidays_of_2024() {
        // Tết 2024 is Saturday 10 February: the break is 9–13 February by default.
        assert_eq!(
            days(&Holidays::default(), 2024),
            pairs(&[
                ("2024-01-01", NEW_YEAR),
                ("2024-02-09", TET),
                ("2024-02-10", TET),
                ("2024-02-11", TET),
                ("2024-02-12", TET),
                ("2024-02-13", TET),
                ("2024-04-18", HUNG_KINGS),
                ("2024-04-30", VICTORY_DAY),
                ("2024-05-01", LABOUR_DAY),
                ("2024-09-02", NATIONAL_DAY),
                ("2024-09-03", NATIONAL_DAY),
            ])
        );
    }

    #[test]
    fn the_government_s_2024_schedule_overrides_the_defaults() {
        // 2024 as announced: Tết 8–14 February; 30/4–1/5 from Saturday 27 April (a swapped
        // working day); National Day Saturday 31 August – Tuesday 3 September.
        let h = Holidays::new(vec![
            range(2024, "02-08", "02-14", None),
            range(2024, "04-27", "05-01", None),
            range(2024, "08-31", "09-03", Some("Nghỉ lễ Quốc khánh")),
        ]);
        let got = days(&h, 2024);
        assert_eq!(
            got,
            pairs(&[
                ("2024-01-01", NEW_YEAR),
                ("2024-02-08", TET),
                ("2024-02-09", TET),
                ("2024-02-10", TET),
                ("2024-02-11", TET),
                ("2024-02-12", TET),
                ("2024-02-13", TET),
                ("2024-02-14", TET),
                ("2024-04-18", HUNG_KINGS),
                ("2024-04-27", VICTORY_DAY),
                ("2024-04-28", VICTORY_DAY),
                ("2024-04-29", VICTORY_DAY),
                ("2024-04-30", VICTORY_DAY),
                ("2024-05-01", LABOUR_DAY),
                ("2024-08-31", "Nghỉ lễ Quốc khánh"),
                ("2024-09-01", "Nghỉ lễ Quốc khánh"),
                ("2024-09-02", "Nghỉ lễ Quốc khánh"),
                ("2024-09-03", "Nghỉ lễ Quốc khánh"),
            ])
        );
        // Other years keep their defaults.
        assert_eq!(days(&h, 2023), days(&Holidays::default(), 2023));
    }

    #[test]
    fn an_entry_replaces_only_the_default_it_overlaps() {
        // A short, odd Tết entry replaces the whole default break; 2/9 stays whatever the
        // entries say, and an entry on 1/9 replaces the default 3/9.
        let h = Holidays::new(vec![
            range(2026, "02-16", "02-16", Some("Tết")),
            range(2026, "09-01", "09-01", None),
            range(2026, "04-27", "04-27", Some("Nghỉ bù Giỗ Tổ")),
        ]);
        let y = h.in_year(2026);
        assert_eq!(y.get(&date("2026-02-16")).map(String::as_str), Some("Tết"));
        assert_eq!(y.get(&date("2026-02-17")), None, "default Tết replaced");
        assert_eq!(
            y.get(&date("2026-09-01")).map(String::as_str),
            Some(NATIONAL_DAY)
        );
        assert_eq!(
            y.get(&date("2026-09-02")).map(String::as_str),
            Some(NATIONAL_DAY)
        );
        assert_eq!(y.get(&date("2026-09-03")), None);
        // Hùng Kings' day 2026 is Sunday 26 April; the compensatory Monday is an entry.
        assert_eq!(
            y.get(&date("2026-04-26")).map(String::as_str),
            Some(HUNG_KINGS)
        );
        assert_eq!(
            y.get(&date("2026-04-27")).map(String::as_str),
            Some("Nghỉ bù Giỗ Tổ")
        );
        // An entry overlapping nothing computed, without a name.
        let h = Holidays::new(vec![range(2026, "11-24", "11-24", None)]);
        assert_eq!(h.on(date("2026-11-24")).as_deref(), Some(DAY_OFF));
    }

    #[test]
    fn before_the_labour_code_2019_national_day_was_one_day() {
        let h = Holidays::default();
        assert_eq!(h.on(date("2020-09-02")).as_deref(), Some(NATIONAL_DAY));
        assert_eq!(h.on(date("2020-09-03")), None);
        assert_eq!(h.on(date("2021-09-03")).as_deref(), Some(NATIONAL_DAY));
    }

    fn at(s: &str) -> DateTime<Tz> {
        DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Ho_Chi_Minh)
    }

    #[test]
    fn a_fire_time_on_a_holiday_moves_past_the_break_and_the_weekend() {
        let h = Holidays::default();
        // Saturday 10 February 2024, Tết: the break runs to Tuesday 13th → Wednesday 14th.
        assert_eq!(
            h.shift(at("2024-02-10T09:00:00+07:00"), OnHoliday::Move),
            Shift::Moved {
                to: at("2024-02-14T09:00:00+07:00"),
                holiday: TET.to_string()
            }
        );
        // With the announced break (to Wednesday 14th) → Thursday 15th.
        let announced = Holidays::new(vec![range(2024, "02-08", "02-14", None)]);
        assert_eq!(
            announced.shift(at("2024-02-10T09:00:00+07:00"), OnHoliday::Move),
            Shift::Moved {
                to: at("2024-02-15T09:00:00+07:00"),
                holiday: TET.to_string()
            }
        );
        // Monday 2 September 2024 → Tuesday 3rd is the day beside it → Wednesday 4th.
        assert_eq!(
            h.shift(at("2024-09-02T08:00:00+07:00"), OnHoliday::Move),
            Shift::Moved {
                to: at("2024-09-04T08:00:00+07:00"),
                holiday: NATIONAL_DAY.to_string()
            }
        );
        // Friday 1 January 2027 → over the weekend to Monday 4th.
        assert_eq!(
            h.shift(at("2027-01-01T08:00:00+07:00"), OnHoliday::Move),
            Shift::Moved {
                to: at("2027-01-04T08:00:00+07:00"),
                holiday: NEW_YEAR.to_string()
            }
        );
    }

    #[test]
    fn weekends_alone_move_nothing_and_skip_and_send_do_what_they_say() {
        let h = Holidays::default();
        // Saturday 9 March 2024 is no holiday: observances on weekends are fine.
        assert_eq!(
            h.shift(at("2024-03-09T08:00:00+07:00"), OnHoliday::Move),
            Shift::Stays
        );
        assert_eq!(
            h.shift(at("2024-02-10T09:00:00+07:00"), OnHoliday::Skip),
            Shift::Skipped {
                holiday: TET.to_string()
            }
        );
        assert_eq!(
            h.shift(at("2024-02-10T09:00:00+07:00"), OnHoliday::Send),
            Shift::Stays
        );
    }

    #[test]
    fn the_run_of_days_off_before_a_date() {
        let h = Holidays::default();
        // Wednesday 14 February 2024 follows Tết (9–13) and nothing before Friday 9th is off
        // but the weekend it already contains.
        assert_eq!(
            h.non_working_run_before(date("2024-02-14")),
            date("2024-02-09")
        );
        // Monday 4 March 2024: the weekend before it.
        assert_eq!(
            h.non_working_run_before(date("2024-03-04")),
            date("2024-03-02")
        );
        // Wednesday 6 March 2024: nothing.
        assert_eq!(
            h.non_working_run_before(date("2024-03-06")),
            date("2024-03-06")
        );
    }
}
