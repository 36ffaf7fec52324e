//! What `loa check` says about the configuration, schedules and templates taken together, as a
//! reviewer of the content would: problems that stop Loa (a template a schedule names but that
//! does not exist, a campaign SMS that does not say how to stop) and warnings worth an
//! operator's look (no line for adults facing violence, no number that receives replies, a year
//! without its theme, two messages to one person on one day, a template sent more than 3 times
//! in a year).

use chrono::{Datelike, NaiveDate};

use crate::calendar::{Calendar, Schedule};
use crate::config::{Config, Serves};
use crate::diagnostics::{Problem, Problems};
use crate::templates::{MessageContext, SampleData, Templates, vietnamese_date};

/// The longest observance name of the 2023 plan: templates are checked with it.
const SAMPLE_OBSERVANCE: &str =
    "Tháng hành động vì bình đẳng giới và phòng ngừa, ứng phó với bạo lực trên cơ sở giới";

fn sample(config: &Config) -> MessageContext {
    MessageContext::sample(SAMPLE_OBSERVANCE, &SampleData::from_config(config))
}

/// The sample again, dated long after every date a template compares with (`before`), so the
/// text a template says once a law is in force is checked as well as what it says before.
fn later_sample(config: &Config) -> MessageContext {
    let mut later = sample(config);
    let date = NaiveDate::from_ymd_opt(2099, 12, 29).expect("valid date");
    later.date = vietnamese_date(date);
    later.date_iso = date.to_string();
    later.observance_date = "2099-12-31".to_string();
    later
}

/// Every template, with the longest values the configuration holds (dated in 2023 and in 2099,
/// for templates that say one thing before a date and another after), so a missing
/// variable or an overlong text shows even in a template no schedule uses yet; then each
/// schedule's templates: present for each of its channels, and ending with how to stop where
/// the channel asks for it.
pub(super) fn template_problems(
    config: &Config,
    calendar: &Calendar,
    templates: &Templates,
) -> Problems {
    let sample = sample(config);
    let later = later_sample(config);
    let mut problems = Problems::default();
    for (name, kind) in templates.names() {
        if let Some(problem) = templates
            .check(name, kind, &sample)
            .or_else(|| templates.check(name, kind, &later))
        {
            problems.push(problem);
        }
    }
    for schedule in calendar.schedules() {
        for &kind in &schedule.channels {
            if let Some(problem) = templates.missing_opt_out(&schedule.template, kind, &sample) {
                problems.push(problem);
            }
            // With each theme its observance really has: one longer than the sample's must
            // fit the template's budget too.
            for theme in schedule.themes().values() {
                let mut themed = sample.clone();
                themed.theme = theme.clone();
                if let Some(problem) = templates.check(&schedule.template, kind, &themed)
                    && !problems
                        .0
                        .iter()
                        .any(|p| p.to_string() == problem.to_string())
                {
                    problems.push(problem);
                }
            }
            if !templates.has(&schedule.template, kind) {
                problems.push(Problem::new(
                    &schedule.file,
                    Some(schedule.template_line),
                    format!(
                        "template: no {}/{}.{kind}.hbs for channel {kind} of schedule {:?}",
                        config.messages_dir.display(),
                        schedule.template,
                        schedule.id
                    ),
                ));
            }
        }
    }
    problems
}

/// Warnings: worth an operator's look, not a reason to refuse to start. `this_year` is the
/// campaign's current year.
pub(super) fn warnings(
    config: &Config,
    calendar: &Calendar,
    templates: Option<&Templates>,
    this_year: i32,
) -> Vec<Problem> {
    let mut warnings = calendar.warnings.clone();
    if config.support.lines(Serves::Adults).next().is_none() {
        warnings.push(Problem::new(
            &config.path,
            None,
            "warning: [support] has no line for adults facing violence (serves = \"adults\"): \
             support messages name only the commune's contact point and the emergency numbers; \
             add the national domestic-violence line or a counselling line once it is \
             confirmed to answer",
        ));
    }
    let without_phone: Vec<&str> = config
        .areas
        .iter()
        .filter(|a| a.contact_point.is_some() && a.contact_phone.is_none())
        .map(|a| a.code.as_str())
        .collect();
    if !without_phone.is_empty() {
        warnings.push(Problem::new(
            &config.path,
            None,
            format!(
                "warning: {} contact point(s) have no contact_phone, so messages name a place to \
                 go but no number to call: {}",
                without_phone.len(),
                without_phone.join(", ")
            ),
        ));
    }
    let no_chat: Vec<&str> = config
        .areas
        .leaves()
        .filter(|a| config.areas.telegram_chat(&a.code).is_none())
        .map(|a| a.code.as_str())
        .collect();
    if !no_chat.is_empty() {
        let admins = config.telegram.as_ref().map_or(0, |t| t.admins.len());
        let whom = if admins == 0 {
            "to no one (no telegram.admins either)".to_string()
        } else {
            format!("to the {admins} admin(s) only")
        };
        let which = if no_chat.len() == config.areas.leaves().count() {
            "no commune has".to_string()
        } else {
            format!("{} commune(s) have", no_chat.len())
        };
        let list = if which.starts_with("no ") {
            String::new()
        } else {
            format!(": {}", no_chat.join(", "))
        };
        warnings.push(Problem::new(
            &config.path,
            None,
            format!(
                "warning: {which} no contact point on Telegram (telegram_chat, on the commune or \
                 above it), so residents' urgent texts are forwarded {whom}{list}"
            ),
        ));
    }
    let sends_sms = calendar.schedules().iter().any(|s| {
        s.channels
            .iter()
            .any(|&k| config.channels.get(k).is_some_and(|d| d.opt_out_line))
    });
    if sends_sms && config.sms.reply_number.is_none() {
        warnings.push(Problem::new(
            &config.path,
            None,
            "warning: sms.reply_number is not set, so campaign SMS tell residents to ask their \
             commune's People's Committee to stop; set the short code or number that \
             receives replies (a brandname alone cannot) so they can text TC",
        ));
    }
    if let Some(templates) = templates {
        warnings.extend(slogans_in_templates(calendar, templates));
    }
    warnings.extend(holiday_moves(config, calendar, this_year..=this_year + 1));
    if let Some(templates) = templates {
        warnings.extend(missing_themes(
            config,
            calendar,
            templates,
            this_year..=this_year + 1,
        ));
    }
    warnings.extend(repeated_templates(
        config,
        calendar,
        this_year..=this_year + 1,
    ));
    // Two campaign messages to one person on one day are too many, unless meant.
    let (from, to) = (
        NaiveDate::from_ymd_opt(this_year.min(2023), 1, 1).expect("valid"),
        NaiveDate::from_ymd_opt(this_year + 2, 12, 31).expect("valid"),
    );
    for (day, a, b) in
        calendar.same_day_collisions(from, to, config.campaign.time_zone, &config.areas)
    {
        let file = calendar
            .get(&b)
            .map_or(config.schedules_dir.clone(), |s| s.file.clone());
        let line = calendar.get(&b).map(|s| s.line);
        warnings.push(Problem::new(
            &file,
            line,
            format!("warning: schedules {a:?} and {b:?} both fire on {day}; mark one same_day_ok = true if that is meant"),
        ));
    }
    warnings
}

/// A theme written into a template: it would be sent every year, right or wrong. Themes belong
/// in the schedules, by year (`{{theme}}`). Compared without case or dash style.
fn slogans_in_templates(calendar: &Calendar, templates: &Templates) -> Vec<Problem> {
    let plain = |s: &str| s.to_lowercase().replace([',', '–', '-', '—'], "");
    let themes: Vec<String> = calendar
        .observances()
        .iter()
        .flat_map(|o| o.themes.values().map(|t| plain(t)))
        .collect();
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, kind) in templates.names() {
        let Some(path) = templates.file(name, kind) else {
            continue;
        };
        let Ok(source) = std::fs::read_to_string(path) else {
            continue;
        };
        for (i, line) in source.lines().enumerate() {
            let line_plain = plain(line);
            if let Some(theme) = themes.iter().find(|t| line_plain.contains(t.as_str()))
                && seen.insert((path.to_path_buf(), i))
            {
                out.push(Problem::new(
                    path,
                    Some(i + 1),
                    format!(
                        "warning: this template writes a yearly theme ({theme:?}) into its text; \
                         print {{{{theme}}}} and keep the theme in the schedules, by year"
                    ),
                ));
            }
        }
    }
    out
}

/// Fire times of `years` that a public holiday moves or stops: not wrong, but worth seeing.
fn holiday_moves(
    config: &Config,
    calendar: &Calendar,
    years: std::ops::RangeInclusive<i32>,
) -> Vec<Problem> {
    let (Some(from), Some(to)) = (
        NaiveDate::from_ymd_opt(*years.start(), 1, 1),
        NaiveDate::from_ymd_opt(*years.end(), 12, 31),
    ) else {
        return Vec::new();
    };
    calendar
        .plan(from, to, config.campaign.time_zone)
        .iter()
        .filter_map(|fire| {
            let note = fire.note()?;
            let schedule = calendar.get(&fire.schedule)?;
            Some(Problem::new(
                &schedule.file,
                Some(schedule.line),
                format!(
                    "warning: schedule {:?} at {}: {note}",
                    fire.schedule,
                    fire.at.get(..16).unwrap_or(&fire.at)
                ),
            ))
        })
        .collect()
}

/// Whether any of `schedule`'s templates prints `{{theme}}`: it reads differently with a theme
/// (`with`, the sample context) than without.
fn uses_theme(templates: &Templates, schedule: &Schedule, with: &MessageContext) -> bool {
    let mut without = with.clone();
    without.theme = String::new();
    schedule.channels.iter().any(|&kind| {
        let text = |context| templates.render(&schedule.template, kind, context).ok();
        text(with) != text(&without)
    })
}

/// For each observance whose messages print its theme: the years of `years` in which one of
/// them goes out with no theme known, as one warning naming the observance's file and line.
pub(super) fn missing_themes(
    config: &Config,
    calendar: &Calendar,
    templates: &Templates,
    years: std::ops::RangeInclusive<i32>,
) -> Vec<Problem> {
    let tz = config.campaign.time_zone;
    let with = sample(config);
    // What goes out in each year's rounds (a span may run into the next year): planned once.
    let plans: Vec<(i32, Vec<crate::calendar::PlannedFire>)> = years
        .clone()
        .filter_map(|year| {
            let from = NaiveDate::from_ymd_opt(year, 1, 1)?;
            let to = NaiveDate::from_ymd_opt(year + 1, 12, 31)?;
            Some((year, calendar.plan(from, to, tz)))
        })
        .collect();
    let mut out = Vec::new();
    for observance in calendar.observances() {
        let themed: Vec<&Schedule> = calendar
            .schedules()
            .iter()
            .filter(|s| s.observance_id == observance.id && uses_theme(templates, s, &with))
            .collect();
        if themed.is_empty() {
            continue;
        }
        let missing: Vec<String> = plans
            .iter()
            .filter(|(year, _)| !observance.themes.contains_key(year))
            .filter(|(year, plan)| {
                // A round that starts in `year`.
                plan.iter().filter(|f| f.fires()).any(|f| {
                    themed.iter().any(|s| {
                        f.schedule == s.id
                            && chrono::DateTime::parse_from_rfc3339(&f.at)
                                .is_ok_and(|at| s.observance_date(at.to_utc()).year() == *year)
                    })
                })
            })
            .map(|(year, _)| year.to_string())
            .collect();
        if missing.is_empty() {
            continue;
        }
        let names: Vec<&str> = themed.iter().map(|s| s.template.as_str()).collect();
        let first = themed[0];
        out.push(Problem::new(
            &first.file,
            Some(first.line),
            format!(
                "warning: observance {:?} has no theme for {}, which its templates {} print \
                 ({{{{theme}}}}): add themes.{} = \"…\" to its [[observance]], with the source, \
                 once the theme is announced (until then the messages go without one)",
                observance.id,
                missing.join(", "),
                names.join(", "),
                missing[0]
            ),
        ));
    }
    out
}

/// A resident who reads the same message more than this many times a year stops reading it.
pub const MAX_SENDS_PER_TEMPLATE_PER_YEAR: usize = 3;

/// For each template the plan sends more than [`MAX_SENDS_PER_TEMPLATE_PER_YEAR`] times in one
/// of `years` (counting the fire times that go out, whichever schedules send it): one warning at
/// the `template` line of the schedule that sends it most (the first of those in a tie), naming
/// every schedule that sends it, most first.
pub(super) fn repeated_templates(
    config: &Config,
    calendar: &Calendar,
    years: std::ops::RangeInclusive<i32>,
) -> Vec<Problem> {
    use std::collections::BTreeMap;
    let tz = config.campaign.time_zone;
    // template -> year -> fire times that go out; schedule -> fire times over all the years.
    let mut by_template: BTreeMap<String, BTreeMap<i32, usize>> = BTreeMap::new();
    let mut by_schedule: BTreeMap<String, usize> = BTreeMap::new();
    for year in years {
        let (Some(from), Some(to)) = (
            NaiveDate::from_ymd_opt(year, 1, 1),
            NaiveDate::from_ymd_opt(year, 12, 31),
        ) else {
            continue;
        };
        for fire in calendar
            .plan(from, to, tz)
            .into_iter()
            .filter(|f| f.fires())
        {
            *by_schedule.entry(fire.schedule).or_default() += 1;
            *by_template
                .entry(fire.template)
                .or_default()
                .entry(year)
                .or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for (template, by_year) in by_template {
        let over: Vec<String> = by_year
            .iter()
            .filter(|(_, n)| **n > MAX_SENDS_PER_TEMPLATE_PER_YEAR)
            .map(|(year, n)| format!("{n} times in {year}"))
            .collect();
        if over.is_empty() {
            continue;
        }
        // The schedules that send it, those that send it most first (a stable sort keeps
        // the calendar's order among equals); the warning points at the first.
        let mut users: Vec<&Schedule> = calendar
            .schedules()
            .iter()
            .filter(|s| s.template == template)
            .collect();
        users.sort_by_key(|s| std::cmp::Reverse(by_schedule.get(&s.id).copied().unwrap_or(0)));
        let Some(most) = users.first() else {
            continue;
        };
        let ids: Vec<String> = users.iter().map(|s| format!("{:?}", s.id)).collect();
        out.push(Problem::new(
            &most.file,
            Some(most.template_line),
            format!(
                "warning: template {template:?} is sent {} by {}; residents stop \
                 reading a message they get more than {MAX_SENDS_PER_TEMPLATE_PER_YEAR} times a \
                 year: give the repeats templates of their own",
                over.join(", "),
                ids.join(", ")
            ),
        ));
    }
    out
}
