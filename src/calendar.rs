//! Schedule files (`schedules/*.toml`) and the answer to "when does this rule fire".
//!
//! A rule is a cron expression evaluated in the campaign's time zone (never UTC: "08:00 on
//! 8 March" is 08:00 in Hà Nội), optionally limited to a window of local dates. Pure: after
//! loading, nothing here touches a file, a database or the clock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::{AreaTree, ChannelKind};
use crate::diagnostics::{Problem, Problems, from_toml_error, line_of_offset};

/// A greeting that could not be sent within this long after its fire time is not sent at all.
pub const DEFAULT_EXPIRES_AFTER: &str = "12h";

#[derive(Debug, Clone)]
pub struct Calendar {
    schedules: Vec<Schedule>,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: String,
    /// What the message is for, as residents read it: "Ngày Quốc tế Phụ nữ 8/3".
    pub observance: String,
    pub template: String,
    pub cron_text: String,
    cron: cron::Schedule,
    pub window: Option<Window>,
    pub time_zone: Tz,
    /// In order of preference: a person with several contacts gets the first that matches.
    pub channels: Vec<ChannelKind>,
    pub audience: Audience,
    pub expires_after: Duration,
    /// Where it was written, for problems found later (e.g. a missing template).
    pub file: PathBuf,
    pub line: usize,
    pub template_line: usize,
}

/// Who a schedule speaks to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Audience {
    /// Area codes as written; empty means every area. An area includes everything under it.
    pub areas: Vec<String>,
    /// A person must carry every one of these tags.
    pub tags: Vec<String>,
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
}

impl Window {
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
}

/// One fire time of one schedule.
#[derive(Debug, Clone)]
pub struct FireTime<'a> {
    pub schedule: &'a Schedule,
    pub at: DateTime<Tz>,
}

/// One line of `loa plan`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedFire {
    pub schedule: String,
    /// RFC 3339 with the campaign offset, e.g. `2023-03-08T08:00:00+07:00`.
    pub at: String,
    pub template: String,
    pub channels: Vec<ChannelKind>,
    pub observance: String,
    pub audience: Vec<String>,
}

impl Schedule {
    /// Fire times in `(after, until]`, in the schedule's time zone.
    pub fn fire_times(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Tz>> + '_ {
        let start = after.with_timezone(&self.time_zone);
        self.cron
            .after(&start)
            .take_while(move |at| at.to_utc() <= until)
            .filter(move |at| self.window.is_none_or(|w| w.contains(at.date_naive())))
    }
}

impl Calendar {
    pub fn new(schedules: Vec<Schedule>) -> Self {
        Calendar { schedules }
    }

    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    pub fn get(&self, id: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.id == id)
    }

    /// Every fire time in `(after, until]`, in time order.
    pub fn fire_times(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<FireTime<'_>> {
        let mut out: Vec<FireTime<'_>> = self
            .schedules
            .iter()
            .flat_map(|s| {
                s.fire_times(after, until)
                    .map(move |at| FireTime { schedule: s, at })
            })
            .collect();
        out.sort_by(|a, b| {
            a.at.cmp(&b.at)
                .then_with(|| a.schedule.id.cmp(&b.schedule.id))
        });
        out
    }

    /// Every fire time on the local dates `from..=to` of the campaign time zone.
    pub fn plan(&self, from: NaiveDate, to: NaiveDate, tz: Tz) -> Vec<PlannedFire> {
        let start = local_midnight(from, tz) - Duration::seconds(1);
        let end = local_midnight(to + Duration::days(1), tz) - Duration::seconds(1);
        self.fire_times(start, end)
            .into_iter()
            .map(|f| PlannedFire {
                schedule: f.schedule.id.clone(),
                at: f.at.with_timezone(&tz).to_rfc3339(),
                template: f.schedule.template.clone(),
                channels: f.schedule.channels.clone(),
                observance: f.schedule.observance.clone(),
                audience: if f.schedule.audience.areas.is_empty() {
                    vec!["all".to_string()]
                } else {
                    f.schedule.audience.areas.clone()
                },
            })
            .collect()
    }

    /// Reads every `*.toml` in `dir`, in name order, checking area codes against `areas`.
    pub fn load(dir: &Path, default_tz: Tz, areas: &AreaTree) -> Result<Calendar, Problems> {
        let (calendar, problems) = Calendar::load_partial(dir, default_tz, areas);
        problems.into_result(calendar)
    }

    /// Like [`Calendar::load`], but also returns the schedules that are valid when others are
    /// not, so `loa check` can go on checking them against the templates.
    pub fn load_partial(dir: &Path, default_tz: Tz, areas: &AreaTree) -> (Calendar, Problems) {
        let mut problems = Problems::default();
        let mut schedules = Vec::new();
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
                return (Calendar { schedules }, problems);
            }
        };
        files.sort();
        let mut first_seen: HashMap<String, (PathBuf, usize)> = HashMap::new();
        for file in files {
            let source = match std::fs::read_to_string(&file) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(Problem::new(&file, None, format!("cannot read: {e}")));
                    continue;
                }
            };
            for schedule in parse_file(&file, &source, default_tz, areas, &mut problems) {
                if let Some((other, line)) = first_seen.get(&schedule.id) {
                    problems.push(Problem::new(
                        &file,
                        Some(schedule.line),
                        format!(
                            "id: {:?} is already used at {}:{line}",
                            schedule.id,
                            other.display()
                        ),
                    ));
                    continue;
                }
                first_seen.insert(schedule.id.clone(), (file.clone(), schedule.line));
                schedules.push(schedule);
            }
        }
        if schedules.is_empty() && problems.is_empty() {
            problems.push(Problem::new(
                dir,
                None,
                "no schedules: add at least one [[schedule]] in a .toml file",
            ));
        }
        (Calendar { schedules }, problems)
    }
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

// ---- the file as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    schedule: Vec<RawSchedule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    id: Spanned<String>,
    observance: String,
    template: Spanned<String>,
    cron: Spanned<String>,
    channels: Spanned<Vec<String>>,
    window: Option<Spanned<RawWindow>>,
    time_zone: Option<Spanned<String>>,
    expires_after: Option<Spanned<String>>,
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
}

fn parse_file(
    file: &Path,
    source: &str,
    default_tz: Tz,
    areas: &AreaTree,
    problems: &mut Problems,
) -> Vec<Schedule> {
    let raw: RawFile = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => {
            problems.push(from_toml_error(file, source, &e));
            return Vec::new();
        }
    };
    if raw.schedule.is_empty() {
        problems.push(Problem::new(file, None, "no [[schedule]] entries"));
    }
    let line = |offset: usize| line_of_offset(source, offset);
    let mut out = Vec::new();
    for r in raw.schedule {
        let before = problems.0.len();
        let id = r.id.get_ref().trim().to_string();
        let id_line = line(r.id.span().start);
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            problems.push(Problem::new(
                file,
                Some(id_line),
                format!("id: {id:?} must be ASCII letters, digits, '-' or '_'"),
            ));
        }
        let cron = match cron::Schedule::from_str(r.cron.get_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                let fields = r.cron.get_ref().split_whitespace().count();
                let why = if (6..=7).contains(&fields) {
                    // The parser's message quotes the expression over several lines: keep one.
                    e.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    format!("{fields} fields")
                };
                problems.push(Problem::new(
                    file,
                    Some(line(r.cron.span().start)),
                    format!(
                        "cron: {:?} is not a valid expression ({why}); use 6 fields: sec min hour day-of-month month day-of-week, e.g. \"0 0 8 8 3 *\"",
                        r.cron.get_ref()
                    ),
                ));
                None
            }
        };
        let time_zone = match &r.time_zone {
            None => default_tz,
            Some(tz) => tz.get_ref().parse().unwrap_or_else(|_| {
                problems.push(Problem::new(
                    file,
                    Some(line(tz.span().start)),
                    format!("time_zone: unknown time zone {:?}", tz.get_ref()),
                ));
                default_tz
            }),
        };
        let window = r.window.as_ref().and_then(|w| {
            let w_line = Some(line(w.span().start));
            let parse = |s: &str, key: &str| {
                s.parse::<DateSpec>()
                    .map_err(|e| Problem::new(file, w_line, format!("window.{key}: {e}")))
            };
            match (
                parse(&w.get_ref().from, "from"),
                parse(&w.get_ref().to, "to"),
            ) {
                (Ok(from), Ok(to)) => {
                    let mixed = matches!(
                        (from, to),
                        (DateSpec::Yearly { .. }, DateSpec::Fixed(_))
                            | (DateSpec::Fixed(_), DateSpec::Yearly { .. })
                    );
                    let reversed =
                        matches!((from, to), (DateSpec::Fixed(a), DateSpec::Fixed(b)) if a > b);
                    if mixed {
                        problems.push(Problem::new(
                            file,
                            w_line,
                            "window: from and to must both be MM-DD or both YYYY-MM-DD",
                        ));
                        None
                    } else if reversed {
                        problems.push(Problem::new(file, w_line, "window: from is after to"));
                        None
                    } else {
                        Some(Window { from, to })
                    }
                }
                (a, b) => {
                    for p in [a.err(), b.err()].into_iter().flatten() {
                        problems.push(p);
                    }
                    None
                }
            }
        });
        let mut channels = Vec::new();
        let channels_line = Some(line(r.channels.span().start));
        for name in r.channels.get_ref() {
            match ChannelKind::parse(name) {
                Some(kind) if !channels.contains(&kind) => channels.push(kind),
                Some(_) => problems.push(Problem::new(
                    file,
                    channels_line,
                    format!("channels: {name:?} is listed twice"),
                )),
                None => problems.push(Problem::new(
                    file,
                    channels_line,
                    format!("channels: unknown channel {name:?} (known: telegram, sms)"),
                )),
            }
        }
        if r.channels.get_ref().is_empty() {
            problems.push(Problem::new(
                file,
                channels_line,
                "channels: list at least one of telegram, sms",
            ));
        }
        let expires_after = match &r.expires_after {
            None => parse_duration(DEFAULT_EXPIRES_AFTER).expect("valid default"),
            Some(d) => parse_duration(d.get_ref()).unwrap_or_else(|e| {
                problems.push(Problem::new(
                    file,
                    Some(line(d.span().start)),
                    format!("expires_after: {e}"),
                ));
                Duration::hours(12)
            }),
        };
        let audience_areas = match &r.audience.areas {
            None => Vec::new(),
            Some(value) => {
                let a_line = Some(line(value.span().start));
                match value.get_ref() {
                    toml::Value::String(s) if s == "all" => Vec::new(),
                    toml::Value::Array(items) => {
                        let mut codes = Vec::new();
                        for item in items {
                            match item.as_str() {
                                Some(code) if areas.contains(code) => codes.push(code.to_string()),
                                Some(code) => problems.push(Problem::new(file, a_line, format!("audience.areas: unknown area code {code:?} (not in loa.toml)"))),
                                None => problems.push(Problem::new(file, a_line, "audience.areas: area codes must be strings")),
                            }
                        }
                        codes
                    }
                    _ => {
                        problems.push(Problem::new(
                            file,
                            a_line,
                            "audience.areas: expected \"all\" or a list of area codes",
                        ));
                        Vec::new()
                    }
                }
            }
        };
        if r.observance.trim().is_empty() {
            problems.push(Problem::new(
                file,
                Some(id_line),
                "observance: must not be empty",
            ));
        }
        if problems.0.len() > before {
            continue;
        }
        out.push(Schedule {
            id,
            observance: r.observance.trim().to_string(),
            template: r.template.get_ref().clone(),
            cron_text: r.cron.get_ref().clone(),
            cron: cron.expect("checked above"),
            window,
            time_zone,
            channels,
            audience: Audience {
                areas: audience_areas,
                tags: r.audience.tags,
            },
            expires_after,
            file: file.to_path_buf(),
            line: id_line,
            template_line: line(r.template.span().start),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Ho_Chi_Minh;

    fn schedule(src: &str) -> Result<Vec<Schedule>, Problems> {
        let mut problems = Problems::default();
        let areas = crate::config::Config::parse(
            Path::new("loa.toml"),
            "[campaign]\nname='x'\nsender='y'\n[[areas]]\ncode='xa-a'\nname='A'\npopulation=1\n",
            &Default::default(),
        )
        .unwrap()
        .areas;
        let out = parse_file(Path::new("s.toml"), src, Ho_Chi_Minh, &areas, &mut problems);
        problems.into_result(out)
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn cron_is_read_in_the_campaign_time_zone() {
        let s = schedule("[[schedule]]\nid='iwd'\nobservance='8/3'\ntemplate='t'\ncron='0 0 8 8 3 *'\nchannels=['telegram']\n").unwrap();
        let fires: Vec<_> = s[0]
            .fire_times(utc("2023-01-01T00:00:00Z"), utc("2024-12-31T00:00:00Z"))
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            fires,
            ["2023-03-08T08:00:00+07:00", "2024-03-08T08:00:00+07:00"]
        );
    }

    #[test]
    fn window_is_inclusive_and_can_span_months() {
        let s = schedule(
            "[[schedule]]\nid='m'\nobservance='x'\ntemplate='t'\ncron='0 0 9 * * *'\nchannels=['sms']\nwindow={from='11-15',to='12-15'}\n",
        )
        .unwrap();
        let fires: Vec<_> = s[0]
            .fire_times(utc("2023-01-01T00:00:00Z"), utc("2023-12-31T00:00:00Z"))
            .collect();
        assert_eq!(fires.len(), 31);
        assert_eq!(
            fires.first().unwrap().to_rfc3339(),
            "2023-11-15T09:00:00+07:00"
        );
        assert_eq!(
            fires.last().unwrap().to_rfc3339(),
            "2023-12-15T09:00:00+07:00"
        );
    }

    #[test]
    fn window_wrapping_the_new_year() {
        let w = Window {
            from: "12-20".parse().unwrap(),
            to: "01-10".parse().unwrap(),
        };
        assert!(w.contains(NaiveDate::from_ymd_opt(2023, 12, 31).unwrap()));
        assert!(w.contains(NaiveDate::from_ymd_opt(2024, 1, 10).unwrap()));
        assert!(!w.contains(NaiveDate::from_ymd_opt(2024, 1, 11).unwrap()));
    }

    #[test]
    fn problems_point_at_their_lines() {
        let err = schedule(
            "[[schedule]]\nid='x'\nobservance='x'\ntemplate='t'\ncron='0 8 8 3 *'\nchannels=['fax']\naudience={areas=['nowhere']}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("s.toml:5: cron:"), "{err}");
        assert!(
            err.contains("s.toml:6: channels: unknown channel \"fax\""),
            "{err}"
        );
        assert!(
            err.contains("s.toml:7: audience.areas: unknown area code \"nowhere\""),
            "{err}"
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
}
