//! Schedule files (`schedules/*.toml`) and the answer to "when does this rule fire".
//!
//! Two kinds of entries:
//! - `[[observance]]`: a named day or span of the plan (8 March, the action month 15/11–15/12),
//!   repeating every year (`MM-DD`) or for one year (`YYYY-MM-DD`);
//! - `[[schedule]]`: a message for an observance, fired either by a cron expression (optionally
//!   inside a window of local dates) or at a time on a day counted from the observance's first or
//!   last day ("2 days before 20/10 at 08:00").
//!
//! Everything is evaluated in the campaign's time zone, never UTC: "08:00 on 8 March" is 08:00
//! in Hà Nội. Pure: after loading, nothing here touches a file, a database or the clock.
//!
//! A fire time that falls on a public holiday ([`holidays`]: Tết, 30/4, 2/9, … with the lunar
//! ones from [`lunar`]) moves to the next working day at the same time, or is skipped, as its
//! schedule's `on_holiday` says. [`Schedule::fires`] is the one place that applies this: the
//! scheduler, `loa plan`, the demo and the console all ask it, so they cannot disagree.

pub mod holidays;
pub mod lunar;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use toml::Spanned;
use unicode_normalization::UnicodeNormalization;

use crate::channel::{ChannelKind, ChannelSet};
use crate::config::{AreaTree, HolidayRange};
use crate::diagnostics::{Problem, Problems, from_toml_error, line_of_offset};

pub use holidays::{Holidays, OnHoliday, Shift};

/// A greeting that could not be sent within this long after its fire time is not sent at all.
pub const DEFAULT_EXPIRES_AFTER: &str = "12h";

#[derive(Debug, Clone)]
pub struct Calendar {
    observances: Vec<Observance>,
    schedules: Vec<Schedule>,
    /// Vietnam's public holidays with `loa.toml`'s `[[holidays]]`; every schedule shares them.
    holidays: Arc<Holidays>,
    /// Not errors, but worth an operator's look (e.g. a rule that never fires).
    pub warnings: Vec<Problem>,
}

/// A named day or span of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Observance {
    pub id: String,
    /// As residents read it: "Ngày Quốc tế Phụ nữ 8/3".
    pub name: String,
    /// First and last day, inclusive; the same for a single day.
    pub span: Window,
    /// The official theme of each year it has one (`themes = { 2024 = "…" }`), by the year
    /// its round starts in; a year nobody has confirmed stays out.
    pub themes: BTreeMap<i32, String>,
}

impl Observance {
    /// The first day of the observance's round that `date` belongs to: the round containing it,
    /// else the next one (a lead-up message points at the coming day).
    pub fn date_for(&self, date: NaiveDate) -> NaiveDate {
        let rounds = (date.year() - 1..=date.year() + 1).filter_map(|y| self.span.round(y));
        let mut next: Option<NaiveDate> = None;
        for (start, end) in rounds {
            if start <= date && date <= end {
                return start;
            }
            if start > date && next.is_none_or(|n| start < n) {
                next = Some(start);
            }
        }
        next.unwrap_or(date)
    }
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: String,
    pub observance_id: String,
    /// The observance's name, as residents read it.
    pub observance: String,
    observance_span: Window,
    observance_themes: BTreeMap<i32, String>,
    pub template: String,
    pub rule: Rule,
    pub window: Option<Window>,
    pub time_zone: Tz,
    /// In order of preference: a person with several contacts gets the first that matches.
    pub channels: Vec<ChannelKind>,
    pub audience: Audience,
    pub expires_after: Duration,
    /// Fires in this year only (a one-year schedule or override).
    pub only_year: Option<i32>,
    /// Years in which a one-year override replaces this schedule.
    pub skipped_years: Vec<i32>,
    /// This schedule may share a day with another on purpose.
    pub same_day_ok: bool,
    /// What a fire time on a public holiday becomes.
    pub on_holiday: OnHoliday,
    /// The calendar's holidays.
    pub holidays: Arc<Holidays>,
    /// Where it was written, for problems found later (e.g. a missing template).
    pub file: PathBuf,
    pub line: usize,
    pub template_line: usize,
}

/// When a schedule fires.
#[derive(Debug, Clone)]
pub enum Rule {
    Cron {
        text: String,
        schedule: Box<cron::Schedule>,
    },
    /// `days` after (negative: before) the observance's first or last day, at `time`.
    Offset {
        anchor: Anchor,
        days: i64,
        time: NaiveTime,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    End,
}

/// Who a schedule speaks to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Audience {
    /// Area codes as written; empty means every area. An area includes everything under it.
    pub areas: Vec<String>,
    /// A person must carry every one of these tags.
    pub tags: Vec<String>,
    /// Only people not yet reached in this span (counted at the send).
    pub unreached: Option<Unreached>,
    /// Only the communes whose reach this year is still below the target band.
    pub below_band: bool,
}

/// The span in which a person reached already is left out of an audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreached {
    /// The calendar year of the send.
    Year,
    /// Its quarter.
    Quarter,
    /// Its month.
    Month,
    /// The observance's round, from its first day to the send.
    Observance,
}

impl Unreached {
    pub const ALL: [Unreached; 4] = [
        Unreached::Year,
        Unreached::Quarter,
        Unreached::Month,
        Unreached::Observance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Unreached::Year => "year",
            Unreached::Quarter => "quarter",
            Unreached::Month => "month",
            Unreached::Observance => "observance",
        }
    }

    pub fn parse(s: &str) -> Option<Unreached> {
        Unreached::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

impl Audience {
    /// Whether two audiences can contain the same person (tags aside).
    fn may_overlap(&self, other: &Audience, areas: &AreaTree) -> bool {
        if self.areas.is_empty() || other.areas.is_empty() {
            return true;
        }
        let expand = |a: &Audience| -> Vec<String> {
            a.areas
                .iter()
                .flat_map(|c| areas.subtree(c).into_iter().map(|x| x.code.clone()))
                .collect()
        };
        let mine = expand(self);
        expand(other).iter().any(|c| mine.contains(c))
    }
}

/// Local dates, inclusive at both ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub from: DateSpec,
    pub to: DateSpec,
}

/// `MM-DD` repeats every year; `YYYY-MM-DD` is one date.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DateSpec {
    Yearly { month: u32, day: u32 },
    Fixed(NaiveDate),
}

impl FromStr for DateSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(DateSpec::Fixed(date));
        }
        let bad = || format!("{s:?} is not a date: use MM-DD (every year) or YYYY-MM-DD");
        let (m, d) = s.split_once('-').ok_or_else(bad)?;
        let (month, day): (u32, u32) =
            (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
        // 2024 is a leap year, so 02-29 is accepted as a yearly date.
        NaiveDate::from_ymd_opt(2024, month, day).ok_or_else(bad)?;
        Ok(DateSpec::Yearly { month, day })
    }
}

impl DateSpec {
    fn key(self, year: i32) -> (i32, u32, u32) {
        match self {
            DateSpec::Yearly { month, day } => (year, month, day),
            DateSpec::Fixed(d) => (d.year(), d.month(), d.day()),
        }
    }

    /// The date in `year` (29 February falls back to the 28th in common years).
    fn in_year(self, year: i32) -> NaiveDate {
        match self {
            DateSpec::Fixed(d) => d,
            DateSpec::Yearly { month, day } => NaiveDate::from_ymd_opt(year, month, day)
                .or_else(|| NaiveDate::from_ymd_opt(year, month, day - 1))
                .expect("validated month and day"),
        }
    }
}

impl Window {
    fn single(date: DateSpec) -> Window {
        Window {
            from: date,
            to: date,
        }
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        let y = date.year();
        let today = (y, date.month(), date.day());
        match (self.from, self.to) {
            (DateSpec::Yearly { .. }, DateSpec::Yearly { .. }) => {
                let (from, to) = (self.from.key(y), self.to.key(y));
                if from <= to {
                    from <= today && today <= to
                } else {
                    // Wraps the new year, e.g. 12-15 … 01-15.
                    today >= from || today <= to
                }
            }
            _ => self.from.key(y) <= today && today <= self.to.key(y),
        }
    }

    /// The round of this window that starts in `year`, as (first, last) dates.
    pub fn round(&self, year: i32) -> Option<(NaiveDate, NaiveDate)> {
        match (self.from, self.to) {
            (DateSpec::Fixed(a), DateSpec::Fixed(b)) => (a.year() == year).then_some((a, b)),
            _ => {
                let start = self.from.in_year(year);
                let mut end = self.to.in_year(year);
                if end < start {
                    end = self.to.in_year(year + 1);
                }
                Some((start, end))
            }
        }
    }
}

/// One fire time of one schedule.
#[derive(Debug, Clone)]
pub struct FireTime<'a> {
    pub schedule: &'a Schedule,
    pub at: DateTime<Tz>,
}

/// A fire time of a schedule as the holiday rule left it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    /// When it fires; for one that does not fire (skipped, merged), when its rule put it.
    pub at: DateTime<Tz>,
    pub holiday: HolidayShift,
}

/// What a public holiday did to a fire time.
#[derive(Debug, Clone, PartialEq)]
pub enum HolidayShift {
    /// Nothing: it fires when its rule says.
    None,
    /// Its rule put it at `from`, on `holiday`; it fires at `at`, the next working day.
    Moved { from: DateTime<Tz>, holiday: String },
    /// On `holiday` with `on_holiday = "skip"` (or no working day followed): it does not fire.
    Skipped { holiday: String },
    /// On `holiday`, moved onto `into`, a time the schedule fires anyway: it fires once, there.
    Merged { into: DateTime<Tz>, holiday: String },
}

impl Fire {
    /// Whether a message goes out at `at`.
    pub fn fires(&self) -> bool {
        matches!(
            self.holiday,
            HolidayShift::None | HolidayShift::Moved { .. }
        )
    }

    /// When the schedule's rule put it, before any move.
    pub fn rule_at(&self) -> DateTime<Tz> {
        match &self.holiday {
            HolidayShift::Moved { from, .. } => *from,
            _ => self.at,
        }
    }
}

/// One line of `loa plan`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedFire {
    pub schedule: String,
    /// RFC 3339 with the campaign offset, e.g. `2023-03-08T08:00:00+07:00`: when it fires, or
    /// for one that does not (`skipped`, `merged`), when its rule put it.
    pub at: String,
    pub template: String,
    pub channels: Vec<ChannelKind>,
    pub observance: String,
    pub audience: Vec<String>,
    pub status: PlanStatus,
    /// `moved`: where the rule put it (RFC 3339), on a holiday.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    /// `merged`: the fire time it joined (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// The holiday that moved, skipped or merged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holiday: Option<String>,
}

/// A fire time in the plan: whether and why it fires where it does.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    /// When its rule says.
    Fires,
    /// On the next working day: its rule put it on a holiday.
    Moved,
    /// Not at all: on a holiday, and its schedule says `on_holiday = "skip"`.
    Skipped,
    /// Not separately: moved off a holiday onto a time its schedule fires anyway.
    Merged,
}

impl PlannedFire {
    /// Whether a message goes out.
    pub fn fires(&self) -> bool {
        matches!(self.status, PlanStatus::Fires | PlanStatus::Moved)
    }

    /// What the holiday rule did, for people: "moved from 2024-02-10 (Tết Nguyên Đán)".
    pub fn note(&self) -> Option<String> {
        let holiday = self.holiday.as_deref().unwrap_or_default();
        let date = |rfc3339: &str| rfc3339.get(..10).unwrap_or(rfc3339).to_string();
        match self.status {
            PlanStatus::Fires => None,
            PlanStatus::Moved => Some(format!(
                "moved from {} ({holiday})",
                date(self.moved_from.as_deref().unwrap_or_default())
            )),
            PlanStatus::Skipped => Some(format!("skipped: {} is {holiday}", date(&self.at))),
            PlanStatus::Merged => Some(format!(
                "merged: {} is {holiday}; fires once at {}",
                date(&self.at),
                self.merged_into.as_deref().unwrap_or_default()
            )),
        }
    }
}

impl Schedule {
    /// Fire times in `(after, until]`, in time order, in the schedule's time zone: those that
    /// fire, holidays applied (see [`Schedule::fires`]).
    pub fn fire_times(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Tz>> {
        self.fires(after, until)
            .into_iter()
            .filter(Fire::fires)
            .map(|f| f.at)
            .collect()
    }

    /// Every fire time in `(after, until]` with what the holiday rule did to it, in time order:
    /// moved ones at their new time (one moved into the range from a holiday before it is in;
    /// one moved out of it is not), skipped and merged ones at their rule's time.
    ///
    /// A fire time whose local date is a public holiday moves to the next working day (not a
    /// Saturday, Sunday or holiday) at the same local time, unless the schedule says
    /// `on_holiday = "skip"` (it does not fire) or `"send"` (it stays). A move onto a time the
    /// schedule already fires merges into it: one occurrence, since (schedule, fire time) is
    /// its key anyway. `only_year`, overrides and cron windows apply to the rule's time.
    pub fn fires(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Fire> {
        if until <= after {
            return Vec::new();
        }
        let lookback = match self.on_holiday {
            OnHoliday::Move => {
                // The days off just before `after`'s day may have moved a fire time into range.
                let day = after.with_timezone(&self.time_zone).date_naive();
                let first = self.holidays.non_working_run_before(day);
                after.min(local_midnight(first, self.time_zone) - Duration::seconds(1))
            }
            OnHoliday::Skip | OnHoliday::Send => after,
        };
        let mut fires: Vec<Fire> = self
            .rule_times(lookback, until)
            .into_iter()
            .map(|at| match self.holidays.shift(at, self.on_holiday) {
                Shift::Stays => Fire {
                    at,
                    holiday: HolidayShift::None,
                },
                Shift::Moved { to, holiday } => Fire {
                    at: to,
                    holiday: HolidayShift::Moved { from: at, holiday },
                },
                Shift::Skipped { holiday } => Fire {
                    at,
                    holiday: HolidayShift::Skipped { holiday },
                },
            })
            .collect();
        // Unmoved ones first at each instant, then moves by their rule's time: the first keeps
        // the instant, later ones merge into it.
        fires.sort_by_key(|f| (f.at, f.rule_at() != f.at, f.rule_at()));
        let mut taken: BTreeSet<DateTime<Tz>> = BTreeSet::new();
        for fire in &mut fires {
            if !fire.fires() || taken.insert(fire.at) {
                continue;
            }
            // Taken: rule times are distinct and unmoved ones sort first, so this one moved.
            if let HolidayShift::Moved { from, holiday } = &fire.holiday {
                *fire = Fire {
                    at: *from,
                    holiday: HolidayShift::Merged {
                        into: fire.at,
                        holiday: holiday.clone(),
                    },
                };
            }
        }
        fires.retain(|f| after < f.at.to_utc() && f.at.to_utc() <= until);
        fires.sort_by_key(|f| f.at);
        fires
    }

    /// The rule's own times in `(after, until]`, before holidays: in time order, distinct.
    fn rule_times(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Tz>> {
        if until <= after {
            return Vec::new();
        }
        let tz = self.time_zone;
        let year_ok = |at: &DateTime<Tz>| {
            let y = at.year();
            self.only_year.is_none_or(|only| only == y) && !self.skipped_years.contains(&y)
        };
        match &self.rule {
            Rule::Cron { schedule, .. } => schedule
                .after(&after.with_timezone(&tz))
                .take_while(|at| at.to_utc() <= until)
                .filter(|at| self.window.is_none_or(|w| w.contains(at.date_naive())))
                .filter(year_ok)
                .collect(),
            Rule::Offset { anchor, days, time } => {
                let first = after.with_timezone(&tz).year() - 1;
                let last = until.with_timezone(&tz).year() + 1;
                let mut out: Vec<DateTime<Tz>> = (first..=last)
                    .filter_map(|year| self.observance_span.round(year))
                    .filter_map(|(start, end)| {
                        let day = match anchor {
                            Anchor::Start => start,
                            Anchor::End => end,
                        } + Duration::days(*days);
                        tz.from_local_datetime(&day.and_time(*time)).earliest()
                    })
                    .filter(|at| after < at.to_utc() && at.to_utc() <= until)
                    .filter(year_ok)
                    .collect();
                out.sort();
                out.dedup();
                out
            }
        }
    }

    /// The observance's first day for a message fired at `at`.
    pub fn observance_date(&self, at: DateTime<Utc>) -> NaiveDate {
        let observance = Observance {
            id: self.observance_id.clone(),
            name: self.observance.clone(),
            span: self.observance_span,
            themes: BTreeMap::new(),
        };
        observance.date_for(at.with_timezone(&self.time_zone).date_naive())
    }

    /// The observance's theme for the round a message put at `rule_at` belongs to.
    pub fn theme(&self, rule_at: DateTime<Utc>) -> Option<&str> {
        let year = self.observance_date(rule_at).year();
        self.observance_themes.get(&year).map(String::as_str)
    }

    /// The observance's themes by year.
    pub fn themes(&self) -> &BTreeMap<i32, String> {
        &self.observance_themes
    }

    /// The rule as a reader would write it, for tables.
    pub fn rule_text(&self) -> String {
        match &self.rule {
            Rule::Cron { text, .. } => format!("cron {text}"),
            Rule::Offset { anchor, days, time } => format!(
                "{days:+} days from the observance's {} at {}",
                if *anchor == Anchor::Start {
                    "first day"
                } else {
                    "last day"
                },
                time.format("%H:%M")
            ),
        }
    }
}

impl Calendar {
    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// The same calendar with `kind` left out of every schedule that has another channel (the
    /// demo's district keeps SMS for its top-ups).
    pub fn without_channel(&self, kind: ChannelKind) -> Calendar {
        let mut calendar = self.clone();
        for schedule in &mut calendar.schedules {
            if schedule.channels.iter().any(|&c| c != kind) {
                schedule.channels.retain(|&c| c != kind);
            }
        }
        calendar
    }

    pub fn observances(&self) -> &[Observance] {
        &self.observances
    }

    pub fn get(&self, id: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.id == id)
    }

    /// The public holidays every schedule's fire times are checked against.
    pub fn holidays(&self) -> &Holidays {
        &self.holidays
    }

    /// Every fire time in `(after, until]`, in time order.
    pub fn fire_times(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<FireTime<'_>> {
        let mut out: Vec<FireTime<'_>> = self
            .schedules
            .iter()
            .flat_map(|s| {
                s.fire_times(after, until)
                    .into_iter()
                    .map(move |at| FireTime { schedule: s, at })
            })
            .collect();
        out.sort_by(|a, b| {
            a.at.cmp(&b.at)
                .then_with(|| a.schedule.id.cmp(&b.schedule.id))
        });
        out
    }

    /// Every fire time on the local dates `from..=to` of the campaign time zone, in time
    /// order: those that fire (as their rule says, or moved off a holiday) and those a holiday
    /// stopped (skipped, merged), marked so.
    pub fn plan(&self, from: NaiveDate, to: NaiveDate, tz: Tz) -> Vec<PlannedFire> {
        let start = local_midnight(from, tz) - Duration::seconds(1);
        let end = local_midnight(to + Duration::days(1), tz) - Duration::seconds(1);
        let local = |at: DateTime<Tz>| at.with_timezone(&tz).to_rfc3339();
        let mut out: Vec<(DateTime<Tz>, PlannedFire)> = Vec::new();
        for s in &self.schedules {
            for fire in s.fires(start, end) {
                let (status, moved_from, merged_into, holiday) = match fire.holiday {
                    HolidayShift::None => (PlanStatus::Fires, None, None, None),
                    HolidayShift::Moved { from, holiday } => {
                        (PlanStatus::Moved, Some(local(from)), None, Some(holiday))
                    }
                    HolidayShift::Skipped { holiday } => {
                        (PlanStatus::Skipped, None, None, Some(holiday))
                    }
                    HolidayShift::Merged { into, holiday } => {
                        (PlanStatus::Merged, None, Some(local(into)), Some(holiday))
                    }
                };
                let planned = PlannedFire {
                    schedule: s.id.clone(),
                    at: local(fire.at),
                    template: s.template.clone(),
                    channels: s.channels.clone(),
                    observance: s.observance.clone(),
                    audience: if s.audience.areas.is_empty() {
                        vec!["all".to_string()]
                    } else {
                        s.audience.areas.clone()
                    },
                    status,
                    moved_from,
                    merged_into,
                    holiday,
                };
                out.push((fire.at, planned));
            }
        }
        out.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.schedule.cmp(&y.schedule)));
        out.into_iter().map(|(_, p)| p).collect()
    }

    /// Local dates on which two schedules that may reach the same person both fire, neither
    /// marked `same_day_ok`: (date, first schedule, second schedule).
    pub fn same_day_collisions(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        tz: Tz,
        areas: &AreaTree,
    ) -> Vec<(NaiveDate, String, String)> {
        let start = local_midnight(from, tz) - Duration::seconds(1);
        let end = local_midnight(to + Duration::days(1), tz) - Duration::seconds(1);
        let mut by_day: BTreeMap<NaiveDate, Vec<&Schedule>> = BTreeMap::new();
        for fire in self.fire_times(start, end) {
            by_day
                .entry(fire.at.with_timezone(&tz).date_naive())
                .or_default()
                .push(fire.schedule);
        }
        let mut out = Vec::new();
        for (day, schedules) in by_day {
            for (i, a) in schedules.iter().enumerate() {
                for b in &schedules[i + 1..] {
                    if !a.same_day_ok
                        && !b.same_day_ok
                        && a.audience.may_overlap(&b.audience, areas)
                    {
                        out.push((day, a.id.clone(), b.id.clone()));
                    }
                }
            }
        }
        out
    }

    /// Reads every `*.toml` in `dir`, in name order, checking area codes against `areas` and
    /// channel names against `channels`; fire times keep off the public holidays, with
    /// `holidays` (the `[[holidays]]` of `loa.toml`) applied.
    pub fn load(
        dir: &Path,
        default_tz: Tz,
        areas: &AreaTree,
        channels: &ChannelSet,
        holidays: &[HolidayRange],
    ) -> Result<Calendar, Problems> {
        let (calendar, problems) =
            Calendar::load_partial(dir, default_tz, areas, channels, holidays);
        problems.into_result(calendar)
    }

    /// Like [`Calendar::load`], but also returns the schedules that are valid when others are
    /// not, so `loa check` can go on checking them against the templates.
    pub fn load_partial(
        dir: &Path,
        default_tz: Tz,
        areas: &AreaTree,
        channels: &ChannelSet,
        holidays: &[HolidayRange],
    ) -> (Calendar, Problems) {
        let mut problems = Problems::default();
        let holidays = Arc::new(Holidays::new(holidays.to_vec()));
        let mut calendar = Calendar {
            observances: Vec::new(),
            schedules: Vec::new(),
            holidays: Arc::clone(&holidays),
            warnings: Vec::new(),
        };
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect(),
            Err(e) => {
                problems.push(Problem::new(
                    dir,
                    None,
                    format!("cannot read schedules folder: {e}"),
                ));
                return (calendar, problems);
            }
        };
        files.sort();
        let mut parsed = Vec::new();
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(source) => match toml::from_str::<RawFile>(&source) {
                    Ok(raw) => parsed.push((file, source, raw)),
                    Err(e) => problems.push(from_toml_error(&file, &source, &e)),
                },
                Err(e) => problems.push(Problem::new(&file, None, format!("cannot read: {e}"))),
            }
        }
        // Observances first: a schedule may name one defined in any file.
        let mut observances: HashMap<String, Observance> = HashMap::new();
        for (file, source, raw) in &parsed {
            for o in &raw.observance {
                let line = Some(line_of_offset(source, o.id.span().start));
                match parse_observance(o) {
                    Ok(obs) if observances.contains_key(&obs.id) => problems.push(Problem::new(
                        file,
                        line,
                        format!("observance id {:?} is defined twice", obs.id),
                    )),
                    Ok(obs) => {
                        calendar.observances.push(obs.clone());
                        observances.insert(obs.id.clone(), obs);
                    }
                    Err(e) => problems.push(Problem::new(file, line, e)),
                }
            }
        }
        let mut first_seen: HashMap<String, (PathBuf, usize)> = HashMap::new();
        let mut replacements: Vec<(String, i32, PathBuf, usize)> = Vec::new();
        for (file, source, raw) in &parsed {
            if raw.schedule.is_empty() && raw.observance.is_empty() {
                problems.push(Problem::new(
                    file,
                    None,
                    "no [[schedule]] or [[observance]] entries",
                ));
            }
            for r in &raw.schedule {
                let known = Known {
                    default_tz,
                    areas,
                    channels,
                    observances: &observances,
                    holidays: &holidays,
                };
                let Some(schedule) = parse_schedule(file, source, r, &known, &mut problems) else {
                    continue;
                };
                if let Some((other, line)) = first_seen.get(&schedule.id) {
                    problems.push(Problem::new(
                        file,
                        Some(schedule.line),
                        format!(
                            "id: {:?} is already used at {}:{line}",
                            schedule.id,
                            other.display()
                        ),
                    ));
                    continue;
                }
                if let (Some(replaced), Some(year)) = (&r.replaces, schedule.only_year) {
                    replacements.push((
                        replaced.get_ref().clone(),
                        year,
                        file.clone(),
                        line_of_offset(source, replaced.span().start),
                    ));
                }
                first_seen.insert(schedule.id.clone(), (file.clone(), schedule.line));
                calendar.schedules.push(schedule);
            }
        }
        for (replaced, year, file, line) in replacements {
            match calendar.schedules.iter_mut().find(|s| s.id == replaced) {
                Some(s) => s.skipped_years.push(year),
                None => problems.push(Problem::new(
                    &file,
                    Some(line),
                    format!("replaces: no schedule with id {replaced:?}"),
                )),
            }
        }
        if calendar.schedules.is_empty() && problems.is_empty() {
            problems.push(Problem::new(
                dir,
                None,
                "no schedules: add at least one [[schedule]] in a .toml file",
            ));
        }
        calendar.warnings = calendar.schedules.iter().filter_map(never_fires).collect();
        (calendar, problems)
    }
}

/// A warning when a schedule has no fire time in years it could plausibly cover.
fn never_fires(schedule: &Schedule) -> Option<Problem> {
    let fixed_years = [
        schedule.window.map(|w| w.from),
        schedule.window.map(|w| w.to),
    ]
    .into_iter()
    .flatten()
    .filter_map(|d| match d {
        DateSpec::Fixed(d) => Some(d.year()),
        DateSpec::Yearly { .. } => None,
    })
    .chain(schedule.only_year);
    let (mut first, mut last) = (2023, 2028);
    for y in fixed_years {
        first = first.min(y);
        last = last.max(y);
    }
    let from = Utc.with_ymd_and_hms(first, 1, 1, 0, 0, 0).single()? - Duration::days(1);
    let to = Utc.with_ymd_and_hms(last + 1, 1, 1, 0, 0, 0).single()?;
    let fires = match &schedule.rule {
        // Only existence matters: stop at the first fire time.
        Rule::Cron { schedule: cron, .. } => cron
            .after(&from.with_timezone(&schedule.time_zone))
            .take_while(|at| at.to_utc() <= to)
            .any(|at| {
                schedule.window.is_none_or(|w| w.contains(at.date_naive()))
                    && schedule.only_year.is_none_or(|y| y == at.year())
            }),
        // The rule's own times: a holiday is not what "never fires" warns about.
        Rule::Offset { .. } => !schedule.rule_times(from, to).is_empty(),
    };
    (!fires).then(|| {
        Problem::new(
            &schedule.file,
            Some(schedule.line),
            format!(
                "warning: schedule {:?} never fires between {first} and {last} (its cron and window never meet)",
                schedule.id
            ),
        )
    })
}

/// Midnight at the start of a local date, as a UTC instant.
pub fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    tz.from_local_datetime(&naive)
        .earliest()
        .unwrap_or_else(|| Utc.from_utc_datetime(&naive).with_timezone(&tz))
        .to_utc()
}

/// `30m`, `12h`, `2d`, or a sum such as `1d12h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration: use e.g. 30m, 12h, 2d or 1d12h");
    let mut total = Duration::zero();
    let mut digits = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total += match c {
            'm' => Duration::minutes(n),
            'h' => Duration::hours(n),
            'd' => Duration::days(n),
            _ => return Err(bad()),
        };
    }
    if !digits.is_empty() || total <= Duration::zero() {
        return Err(bad());
    }
    Ok(total)
}

// ---- the files as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    observance: Vec<RawObservance>,
    #[serde(default)]
    schedule: Vec<RawSchedule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObservance {
    id: Spanned<String>,
    name: String,
    /// A single day…
    date: Option<String>,
    /// …or a span.
    from: Option<String>,
    to: Option<String>,
    /// The official theme by year: `themes = { 2024 = "…" }`.
    #[serde(default)]
    themes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    id: Spanned<String>,
    observance: Spanned<String>,
    template: Spanned<String>,
    cron: Option<Spanned<String>>,
    offset_days: Option<i64>,
    anchor: Option<Spanned<String>>,
    time: Option<Spanned<String>>,
    channels: Spanned<Vec<String>>,
    window: Option<Spanned<RawWindow>>,
    time_zone: Option<Spanned<String>>,
    expires_after: Option<Spanned<String>>,
    only_year: Option<i32>,
    replaces: Option<Spanned<String>>,
    #[serde(default)]
    same_day_ok: bool,
    on_holiday: Option<Spanned<String>>,
    #[serde(default)]
    audience: RawAudience,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    from: String,
    to: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudience {
    /// `"all"` or a list of area codes.
    areas: Option<Spanned<toml::Value>>,
    #[serde(default)]
    tags: Vec<String>,
    /// `"year"`, `"quarter"`, `"month"` or `"observance"`: people not reached in that span.
    unreached: Option<Spanned<String>>,
    /// Only the communes below the target band this year.
    #[serde(default)]
    below_band: bool,
}

fn parse_observance(raw: &RawObservance) -> Result<Observance, String> {
    let id = raw.id.get_ref().trim().to_string();
    if !valid_id(&id) {
        return Err(format!(
            "observance id {id:?} must be ASCII letters, digits, '-' or '_'"
        ));
    }
    if raw.name.trim().is_empty() {
        return Err(format!("observance {id:?} has no name"));
    }
    let span = match (&raw.date, &raw.from, &raw.to) {
        (Some(date), None, None) => Window::single(date.parse()?),
        (None, Some(from), Some(to)) => parse_window(from, to)?,
        _ => {
            return Err(format!(
                "observance {id:?}: give either date = \"MM-DD\" or both from and to"
            ));
        }
    };
    let mut themes = BTreeMap::new();
    for (year, theme) in &raw.themes {
        let year = year
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|y| (2000..=2100).contains(y))
            .ok_or_else(|| {
                format!("observance {id:?}: themes: {year:?} is not a year (2000–2100)")
            })?;
        if themes.contains_key(&year) {
            return Err(format!("observance {id:?}: themes: {year} is given twice"));
        }
        let theme: String = theme.trim().nfc().collect();
        if theme.is_empty() {
            return Err(format!(
                "observance {id:?}: themes.{year} is empty (leave the year out instead)"
            ));
        }
        themes.insert(year, theme);
    }
    Ok(Observance {
        id,
        name: raw.name.trim().to_string(),
        span,
        themes,
    })
}

fn parse_window(from: &str, to: &str) -> Result<Window, String> {
    let (from, to): (DateSpec, DateSpec) = (
        from.parse().map_err(|e| format!("from: {e}"))?,
        to.parse().map_err(|e| format!("to: {e}"))?,
    );
    match (from, to) {
        (DateSpec::Yearly { .. }, DateSpec::Fixed(_))
        | (DateSpec::Fixed(_), DateSpec::Yearly { .. }) => {
            Err("from and to must both be MM-DD or both YYYY-MM-DD".to_string())
        }
        (DateSpec::Fixed(a), DateSpec::Fixed(b)) if a > b => {
            Err("the end precedes the start".to_string())
        }
        _ => Ok(Window { from, to }),
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What a schedule is checked against.
struct Known<'a> {
    default_tz: Tz,
    areas: &'a AreaTree,
    channels: &'a ChannelSet,
    observances: &'a HashMap<String, Observance>,
    holidays: &'a Arc<Holidays>,
}

fn parse_schedule(
    file: &Path,
    source: &str,
    r: &RawSchedule,
    known: &Known<'_>,
    problems: &mut Problems,
) -> Option<Schedule> {
    let Known {
        default_tz,
        areas,
        channels: known_channels,
        observances,
        holidays,
    } = *known;
    let before = problems.0.len();
    let line = |offset: usize| Some(line_of_offset(source, offset));
    let mut problem =
        |at: Option<usize>, message: String| problems.push(Problem::new(file, at, message));

    let id = r.id.get_ref().trim().to_string();
    let id_line = line(r.id.span().start);
    if !valid_id(&id) {
        problem(
            id_line,
            format!("id: {id:?} must be ASCII letters, digits, '-' or '_'"),
        );
    }
    let observance = observances.get(r.observance.get_ref().as_str());
    if observance.is_none() {
        problem(
            line(r.observance.span().start),
            format!(
                "observance: unknown observance {:?} (define it in an [[observance]] entry)",
                r.observance.get_ref()
            ),
        );
    }

    let rule = match (&r.cron, &r.time) {
        (Some(cron), None) if r.offset_days.is_none() && r.anchor.is_none() => {
            match cron::Schedule::from_str(cron.get_ref()) {
                Ok(schedule) => Some(Rule::Cron {
                    text: cron.get_ref().clone(),
                    schedule: Box::new(schedule),
                }),
                Err(e) => {
                    let fields = cron.get_ref().split_whitespace().count();
                    let why = if (6..=7).contains(&fields) {
                        // The parser's message quotes the expression over several lines: keep one.
                        e.to_string()
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                    } else {
                        format!("{fields} fields")
                    };
                    problem(
                        line(cron.span().start),
                        format!(
                            "cron: {:?} is not a valid expression ({why}); use 6 fields: sec min hour day-of-month month day-of-week, e.g. \"0 0 8 8 3 *\"",
                            cron.get_ref()
                        ),
                    );
                    None
                }
            }
        }
        (None, Some(time)) => {
            let anchor = match r.anchor.as_ref().map(|a| a.get_ref().as_str()) {
                None | Some("start") => Some(Anchor::Start),
                Some("end") => Some(Anchor::End),
                Some(other) => {
                    let at = r.anchor.as_ref().and_then(|a| line(a.span().start));
                    problem(
                        at,
                        format!("anchor: {other:?} must be \"start\" or \"end\""),
                    );
                    None
                }
            };
            let parsed = NaiveTime::parse_from_str(time.get_ref(), "%H:%M");
            if parsed.is_err() {
                problem(
                    line(time.span().start),
                    format!("time: {:?} is not a time like \"08:00\"", time.get_ref()),
                );
            }
            match (anchor, parsed) {
                (Some(anchor), Ok(time)) => Some(Rule::Offset {
                    anchor,
                    days: r.offset_days.unwrap_or(0),
                    time,
                }),
                _ => None,
            }
        }
        _ => {
            problem(
                id_line,
                "give either cron = \"…\", or time = \"HH:MM\" with optional offset_days and anchor".to_string(),
            );
            None
        }
    };

    let time_zone = match &r.time_zone {
        None => default_tz,
        Some(tz) => tz.get_ref().parse().unwrap_or_else(|_| {
            problem(
                line(tz.span().start),
                format!("time_zone: unknown time zone {:?}", tz.get_ref()),
            );
            default_tz
        }),
    };
    let window = r.window.as_ref().and_then(|w| {
        if matches!(rule, Some(Rule::Offset { .. })) {
            problem(
                line(w.span().start),
                "window: only cron schedules take a window".to_string(),
            );
            return None;
        }
        parse_window(&w.get_ref().from, &w.get_ref().to)
            .map_err(|e| problem(line(w.span().start), format!("window: {e}")))
            .ok()
    });
    let mut channels = Vec::new();
    let channels_line = line(r.channels.span().start);
    for name in r.channels.get_ref() {
        match known_channels.parse(name) {
            Some(kind) if !channels.contains(&kind) => channels.push(kind),
            Some(_) => problem(channels_line, format!("channels: {name:?} is listed twice")),
            None => problem(
                channels_line,
                format!(
                    "channels: unknown channel {name:?} (known: {})",
                    known_channels.names()
                ),
            ),
        }
    }
    if r.channels.get_ref().is_empty() {
        problem(
            channels_line,
            format!("channels: list at least one of {}", known_channels.names()),
        );
    }
    let expires_after = match &r.expires_after {
        None => parse_duration(DEFAULT_EXPIRES_AFTER).expect("valid default"),
        Some(d) => parse_duration(d.get_ref()).unwrap_or_else(|e| {
            problem(line(d.span().start), format!("expires_after: {e}"));
            Duration::hours(12)
        }),
    };
    let on_holiday = match &r.on_holiday {
        None => OnHoliday::default(),
        Some(value) => OnHoliday::parse(value.get_ref()).unwrap_or_else(|| {
            problem(
                line(value.span().start),
                format!(
                    "on_holiday: {:?} must be {}",
                    value.get_ref(),
                    OnHoliday::NAMES
                ),
            );
            OnHoliday::default()
        }),
    };
    if r.replaces.is_some() && r.only_year.is_none() {
        let at = r.replaces.as_ref().and_then(|x| line(x.span().start));
        problem(
            at,
            "replaces: an override needs only_year = YYYY (the year it replaces)".to_string(),
        );
    }
    let audience_areas = match &r.audience.areas {
        None => Vec::new(),
        Some(value) => {
            let a_line = line(value.span().start);
            match value.get_ref() {
                toml::Value::String(s) if s == "all" => Vec::new(),
                toml::Value::Array(items) => {
                    let mut codes = Vec::new();
                    for item in items {
                        match item.as_str() {
                            Some(code) if areas.contains(code) => codes.push(code.to_string()),
                            Some(code) => problem(
                                a_line,
                                format!(
                                    "audience.areas: unknown area code {code:?} (not in loa.toml)"
                                ),
                            ),
                            None => problem(
                                a_line,
                                "audience.areas: area codes must be strings".to_string(),
                            ),
                        }
                    }
                    codes
                }
                _ => {
                    problem(
                        a_line,
                        "audience.areas: expected \"all\" or a list of area codes".to_string(),
                    );
                    Vec::new()
                }
            }
        }
    };
    let unreached = match &r.audience.unreached {
        None => None,
        Some(value) => match Unreached::parse(value.get_ref()) {
            Some(u) => Some(u),
            None => {
                problem(
                    line(value.span().start),
                    format!(
                        "audience.unreached: {:?} is not one of \"year\", \"quarter\", \"month\", \"observance\"",
                        value.get_ref()
                    ),
                );
                None
            }
        },
    };
    if problems.0.len() > before {
        return None;
    }
    let observance = observance?;
    Some(Schedule {
        id,
        observance_id: observance.id.clone(),
        observance: observance.name.clone(),
        observance_span: observance.span,
        observance_themes: observance.themes.clone(),
        template: r.template.get_ref().clone(),
        rule: rule?,
        window,
        time_zone,
        channels,
        audience: Audience {
            areas: audience_areas,
            tags: r.audience.tags.clone(),
            unreached,
            below_band: r.audience.below_band,
        },
        expires_after,
        only_year: r.only_year,
        skipped_years: Vec::new(),
        same_day_ok: r.same_day_ok,
        on_holiday,
        holidays: Arc::clone(holidays),
        file: file.to_path_buf(),
        line: id_line.unwrap_or(1),
        template_line: line_of_offset(source, r.template.span().start),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Ho_Chi_Minh;

    const OBSERVANCES: &str = "[[observance]]\nid='iwd'\nname='Ngày Quốc tế Phụ nữ 8/3'\ndate='03-08'\n\
        [[observance]]\nid='action'\nname='Tháng hành động'\nfrom='11-15'\nto='12-15'\n";

    fn load(files: &[(&str, &str)]) -> (Calendar, Problems) {
        load_with_holidays(files, &[])
    }

    fn load_with_holidays(
        files: &[(&str, &str)],
        holidays: &[HolidayRange],
    ) -> (Calendar, Problems) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0-observances.toml"), OBSERVANCES).unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let areas = crate::config::Config::parse(
            Path::new("loa.toml"),
            "[campaign]\nname='x'\nsender='y'\n[[areas]]\ncode='xa-a'\nname='A'\npopulation=1\n",
            &Default::default(),
        )
        .unwrap()
        .areas;
        Calendar::load_partial(
            dir.path(),
            Ho_Chi_Minh,
            &areas,
            &ChannelSet::builtin(),
            holidays,
        )
    }

    fn ok(body: &str) -> Calendar {
        let (calendar, problems) = load(&[("s.toml", body)]);
        assert!(problems.is_empty(), "{problems}");
        calendar
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn fires(calendar: &Calendar, id: &str, from: &str, to: &str) -> Vec<String> {
        calendar
            .get(id)
            .unwrap()
            .fire_times(utc(from), utc(to))
            .into_iter()
            .map(|t| t.to_rfc3339())
            .collect()
    }

    #[test]
    fn cron_is_read_in_the_campaign_time_zone() {
        let c = ok(
            "[[schedule]]\nid='d'\nobservance='iwd'\ntemplate='t'\ncron='0 0 8 8 3 *'\nchannels=['telegram']\n",
        );
        assert_eq!(
            fires(&c, "d", "2023-01-01T00:00:00Z", "2024-12-31T00:00:00Z"),
            ["2023-03-08T08:00:00+07:00", "2024-03-08T08:00:00+07:00"]
        );
    }

    #[test]
    fn window_is_inclusive_and_can_span_months() {
        let c = ok(
            "[[schedule]]\nid='m'\nobservance='action'\ntemplate='t'\ncron='0 0 9 * * *'\nchannels=['sms']\nwindow={from='11-15',to='12-15'}\n",
        );
        let f = fires(&c, "m", "2023-01-01T00:00:00Z", "2023-12-31T00:00:00Z");
        assert_eq!(f.len(), 31);
        assert_eq!(f.first().unwrap(), "2023-11-15T09:00:00+07:00");
        assert_eq!(f.last().unwrap(), "2023-12-15T09:00:00+07:00");
    }

    #[test]
    fn window_wrapping_the_new_year() {
        let w = parse_window("12-20", "01-10").unwrap();
        assert!(w.contains(NaiveDate::from_ymd_opt(2023, 12, 31).unwrap()));
        assert!(w.contains(NaiveDate::from_ymd_opt(2024, 1, 10).unwrap()));
        assert!(!w.contains(NaiveDate::from_ymd_opt(2024, 1, 11).unwrap()));
    }

    #[test]
    fn offsets_count_from_the_observance() {
        let c = ok(
            "[[schedule]]\nid='lead'\nobservance='iwd'\ntemplate='t'\noffset_days=-2\ntime='08:00'\nchannels=['telegram']\n\
             [[schedule]]\nid='close'\nobservance='action'\ntemplate='t'\nanchor='end'\ntime='09:30'\nchannels=['telegram']\n",
        );
        assert_eq!(
            fires(&c, "lead", "2023-01-01T00:00:00Z", "2024-12-31T00:00:00Z"),
            ["2023-03-06T08:00:00+07:00", "2024-03-06T08:00:00+07:00"]
        );
        assert_eq!(
            fires(&c, "close", "2023-01-01T00:00:00Z", "2023-12-31T00:00:00Z"),
            ["2023-12-15T09:30:00+07:00"]
        );
        let lead = c.get("lead").unwrap();
        assert_eq!(
            lead.observance_date(utc("2023-03-06T01:00:00Z"))
                .to_string(),
            "2023-03-08"
        );
    }

    #[test]
    fn a_one_year_override_replaces_its_schedule_that_year_only() {
        let c = ok(
            "[[schedule]]\nid='day'\nobservance='iwd'\ntemplate='t'\ntime='08:00'\nchannels=['telegram']\n\
             [[schedule]]\nid='day-2023'\nobservance='iwd'\ntemplate='t'\ntime='10:00'\nonly_year=2023\nreplaces='day'\nchannels=['telegram']\n",
        );
        let all: Vec<_> = c
            .fire_times(utc("2023-01-01T00:00:00Z"), utc("2024-12-31T00:00:00Z"))
            .into_iter()
            .map(|f| (f.schedule.id.clone(), f.at.to_rfc3339()))
            .collect();
        assert_eq!(
            all,
            [
                (
                    "day-2023".to_string(),
                    "2023-03-08T10:00:00+07:00".to_string()
                ),
                ("day".to_string(), "2024-03-08T08:00:00+07:00".to_string())
            ]
        );
    }

    #[test]
    fn problems_point_at_their_lines() {
        let (_, problems) = load(&[(
            "s.toml",
            "[[schedule]]\nid='x'\nobservance='nope'\ntemplate='t'\ncron='0 8 8 3 *'\nchannels=['fax']\naudience={areas=['nowhere']}\nwindow={from='2023-12-15',to='2023-11-15'}\n",
        )]);
        let err = problems.to_string();
        assert!(
            err.contains("s.toml:3: observance: unknown observance \"nope\""),
            "{err}"
        );
        assert!(err.contains("s.toml:5: cron:"), "{err}");
        assert!(
            err.contains("s.toml:6: channels: unknown channel \"fax\""),
            "{err}"
        );
        assert!(
            err.contains("s.toml:7: audience.areas: unknown area code \"nowhere\""),
            "{err}"
        );
        assert!(
            err.contains("s.toml:8: window: the end precedes the start"),
            "{err}"
        );
    }

    #[test]
    fn a_cron_that_never_meets_its_window_is_a_warning() {
        let c = ok(
            "[[schedule]]\nid='never'\nobservance='iwd'\ntemplate='t'\ncron='0 0 8 8 3 *'\nwindow={from='06-01',to='06-30'}\nchannels=['sms']\n",
        );
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0]
                .to_string()
                .contains("s.toml:2: warning: schedule \"never\" never fires")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("12h").unwrap(), Duration::hours(12));
        assert_eq!(parse_duration("1d12h").unwrap(), Duration::hours(36));
        assert!(parse_duration("12").is_err());
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("soon").is_err());
    }

    /// A monthly message on the 10th at 09:00, with `extra` lines (e.g. on_holiday).
    fn monthly(extra: &str) -> String {
        format!(
            "[[schedule]]\nid='m'\nobservance='iwd'\ntemplate='t'\ncron='0 0 9 10 * *'\nchannels=['sms']\n{extra}"
        )
    }

    fn fires_in(c: &Calendar, id: &str, from: &str, to: &str) -> Vec<(String, HolidayShift)> {
        c.get(id)
            .unwrap()
            .fires(utc(from), utc(to))
            .into_iter()
            .map(|f| (f.at.to_rfc3339(), f.holiday))
            .collect()
    }

    fn moved(from: &str, holiday: &str) -> HolidayShift {
        HolidayShift::Moved {
            from: DateTime::parse_from_rfc3339(from)
                .unwrap()
                .with_timezone(&Ho_Chi_Minh),
            holiday: holiday.to_string(),
        }
    }

    #[test]
    fn a_fire_time_on_tet_moves_to_the_next_working_day() {
        let c = ok(&monthly(""));
        // Saturday 10 February 2024 is the first day of Tết; the computed break ends on
        // Tuesday 13th. January and March are untouched.
        assert_eq!(
            fires_in(
                &c,
                "m",
                "2024-01-01T00:00:00+07:00",
                "2024-03-31T00:00:00+07:00"
            ),
            [
                ("2024-01-10T09:00:00+07:00".to_string(), HolidayShift::None),
                (
                    "2024-02-14T09:00:00+07:00".to_string(),
                    moved("2024-02-10T09:00:00+07:00", holidays::TET)
                ),
                ("2024-03-10T09:00:00+07:00".to_string(), HolidayShift::None),
            ]
        );
        // 10 March 2024 is a Sunday: a weekend alone moves nothing.
        // The government's break (8–14 February) moves it one day further.
        let (c, problems) = load_with_holidays(
            &[("s.toml", &monthly(""))],
            &[HolidayRange {
                year: 2024,
                from: NaiveDate::from_ymd_opt(2024, 2, 8).unwrap(),
                to: NaiveDate::from_ymd_opt(2024, 2, 14).unwrap(),
                name: None,
            }],
        );
        assert!(problems.is_empty(), "{problems}");
        assert_eq!(
            fires(
                &c,
                "m",
                "2024-02-01T00:00:00+07:00",
                "2024-02-29T00:00:00+07:00"
            ),
            ["2024-02-15T09:00:00+07:00"]
        );
    }

    #[test]
    fn a_moved_fire_time_belongs_to_the_range_it_lands_in() {
        let c = ok(&monthly(""));
        // Ticks before the move's day see nothing; the tick that reaches it fires it, although
        // its rule's time (10 February) is long past: the scheduler and the plan agree.
        assert!(
            fires(
                &c,
                "m",
                "2024-02-09T00:00:00+07:00",
                "2024-02-14T08:59:59+07:00"
            )
            .is_empty()
        );
        assert_eq!(
            fires(
                &c,
                "m",
                "2024-02-14T08:00:00+07:00",
                "2024-02-14T09:00:00+07:00"
            ),
            ["2024-02-14T09:00:00+07:00"]
        );
        assert!(
            fires(
                &c,
                "m",
                "2024-02-14T09:00:00+07:00",
                "2024-02-20T00:00:00+07:00"
            )
            .is_empty()
        );
    }

    #[test]
    fn skip_and_send_and_a_bad_value() {
        let skip = ok(&monthly("on_holiday='skip'\n"));
        assert!(
            fires(
                &skip,
                "m",
                "2024-02-01T00:00:00+07:00",
                "2024-02-29T00:00:00+07:00"
            )
            .is_empty()
        );
        assert_eq!(
            fires_in(
                &skip,
                "m",
                "2024-02-01T00:00:00+07:00",
                "2024-02-29T00:00:00+07:00"
            ),
            [(
                "2024-02-10T09:00:00+07:00".to_string(),
                HolidayShift::Skipped {
                    holiday: holidays::TET.to_string()
                }
            )]
        );
        let send = ok(&monthly("on_holiday='send'\n"));
        assert_eq!(
            fires(
                &send,
                "m",
                "2024-02-01T00:00:00+07:00",
                "2024-02-29T00:00:00+07:00"
            ),
            ["2024-02-10T09:00:00+07:00"]
        );
        let (_, problems) = load(&[("s.toml", &monthly("on_holiday='later'\n"))]);
        assert!(
            problems
                .to_string()
                .contains("s.toml:7: on_holiday: \"later\" must be \"move\", \"skip\" or \"send\""),
            "{problems}"
        );
    }

    #[test]
    fn moves_onto_a_time_already_taken_fire_once() {
        // Daily at 09:00: Friday 9 – Tuesday 13 February 2024 are Tết; all five move to
        // Wednesday 14th, where the schedule fires anyway. Saturday 17th and Sunday 18th are
        // no holidays and keep their messages.
        let c = ok(
            "[[schedule]]\nid='d'\nobservance='iwd'\ntemplate='t'\ncron='0 0 9 * * *'\nchannels=['sms']\n",
        );
        let all = fires_in(
            &c,
            "d",
            "2024-02-08T00:00:00+07:00",
            "2024-02-18T23:00:00+07:00",
        );
        let firing: Vec<&str> = all
            .iter()
            .filter(|(_, h)| matches!(h, HolidayShift::None | HolidayShift::Moved { .. }))
            .map(|(at, _)| &at[..10])
            .collect();
        assert_eq!(
            firing,
            [
                "2024-02-08",
                "2024-02-14",
                "2024-02-15",
                "2024-02-16",
                "2024-02-17",
                "2024-02-18"
            ]
        );
        let merged: Vec<&str> = all
            .iter()
            .filter(|(_, h)| matches!(h, HolidayShift::Merged { .. }))
            .map(|(at, _)| &at[..10])
            .collect();
        assert_eq!(
            merged,
            [
                "2024-02-09",
                "2024-02-10",
                "2024-02-11",
                "2024-02-12",
                "2024-02-13"
            ]
        );
        // Merged into the unmoved 14th: no move survives.
        assert!(
            all.iter()
                .all(|(_, h)| !matches!(h, HolidayShift::Moved { .. }))
        );
    }

    #[test]
    fn the_plan_shows_the_move_and_its_holiday() {
        let c = ok(&monthly(""));
        let plan = c.plan(
            NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
            Ho_Chi_Minh,
        );
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].at, "2024-02-14T09:00:00+07:00");
        assert_eq!(plan[0].status, PlanStatus::Moved);
        assert_eq!(
            plan[0].moved_from.as_deref(),
            Some("2024-02-10T09:00:00+07:00")
        );
        assert_eq!(
            plan[0].note().as_deref(),
            Some("moved from 2024-02-10 (Tết Nguyên Đán)")
        );
        let json = serde_json::to_value(&plan[0]).unwrap();
        assert_eq!(json["status"], "moved");
        assert_eq!(json["holiday"], "Tết Nguyên Đán");
        assert!(json.get("merged_into").is_none());

        let skip = ok(&monthly("on_holiday='skip'\n"));
        let plan = skip.plan(
            NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
            Ho_Chi_Minh,
        );
        assert_eq!(plan.len(), 1);
        assert!(!plan[0].fires());
        assert_eq!(
            plan[0].note().as_deref(),
            Some("skipped: 2024-02-10 is Tết Nguyên Đán")
        );
    }
}
