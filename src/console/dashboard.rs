//! The officials' view: each commune's reach against the plan's band, for a period and
//! optionally some messages or persons, with engagement, organisations and offline activities.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::activities::{self, Activity};
use super::{Actor, Console, ConsoleError, Permission};
use crate::reach::{self, BandStatus, ChannelSplit, MessageFilter};

/// The dashboard's filters, as a query string carries them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct DashboardQuery {
    /// `year`, `q1`…`q4`, `obs:<observance id>` (its span that year), or `custom`.
    #[serde(default)]
    pub period: Option<String>,
    #[serde(default)]
    pub year: Option<i32>,
    /// For `custom`: YYYY-MM-DD, both inclusive.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    /// Messages of one observance (id).
    #[serde(default)]
    pub observance: Option<String>,
    /// Messages of one queued content item (id).
    #[serde(default)]
    pub content: Option<String>,
    /// Persons carrying this tag.
    #[serde(default)]
    pub tag: Option<String>,
}

/// A period the form offers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeriodOption {
    pub value: String,
    pub label: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub selected: bool,
}

/// One line of the dashboard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AreaLine {
    pub code: String,
    pub name: String,
    pub population: u64,
    pub reached: u64,
    pub split: ChannelSplit,
    /// Percent of the population, two decimals; `None` without a population.
    pub percent: Option<f64>,
    pub status: Option<BandStatus>,
    /// Percentage points below the band's low end (0 when within or above).
    pub gap: f64,
    pub engaged: u64,
    /// Estimated audience of offline activities: shown apart, never added to `reached`.
    pub offline_estimate: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dashboard {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub period: String,
    pub period_label: String,
    pub target_low_percent: f64,
    pub target_high_percent: f64,
    /// The district, or the account's own area.
    pub total: AreaLine,
    /// Communes (leaf areas) in scope, furthest below the band first.
    pub communes: Vec<AreaLine>,
    pub organisations_informed: u64,
    pub organisations_registered: u64,
    pub activities: Vec<Activity>,
    pub filter_observance: Option<String>,
    pub filter_content: Option<i64>,
    pub filter_tag: Option<String>,
}

impl Console {
    /// The periods of `year` the form offers: the year, its quarters, and each observance's
    /// span (the action months among them).
    pub fn period_options(&self, year: i32, selected: &str) -> Vec<PeriodOption> {
        let date = |m: u32, d: u32| NaiveDate::from_ymd_opt(year, m, d).expect("valid date");
        let mut out = vec![(
            "year".to_string(),
            format!("Cả năm {year}"),
            date(1, 1),
            date(12, 31),
        )];
        for (q, (m1, m2, d2)) in [(1, 3, 31), (4, 6, 30), (7, 9, 30), (10, 12, 31)]
            .into_iter()
            .enumerate()
        {
            out.push((
                format!("q{}", q + 1),
                format!("Quý {} năm {year}", ["I", "II", "III", "IV"][q]),
                date(m1, 1),
                date(m2, d2),
            ));
        }
        for o in self.calendar.observances() {
            if let Some((from, to)) = o.span.round(year)
                && from < to
            {
                out.push((
                    format!("obs:{}", o.id),
                    format!(
                        "{} ({} – {})",
                        o.name,
                        from.format("%d/%m"),
                        to.format("%d/%m/%Y")
                    ),
                    from,
                    to,
                ));
            }
        }
        out.into_iter()
            .map(|(value, label, from, to)| PeriodOption {
                selected: value == selected,
                value,
                label,
                from,
                to,
            })
            .collect()
    }

    /// (period key, label, from, to) for a query; the default is this year so far.
    pub fn resolve_period(
        &self,
        q: &DashboardQuery,
    ) -> Result<(String, String, NaiveDate, NaiveDate), ConsoleError> {
        let today = self
            .clock
            .now()
            .with_timezone(&self.config.campaign.time_zone)
            .date_naive();
        let year = q.year.unwrap_or(today.year());
        if !(2000..=2100).contains(&year) {
            return Err(ConsoleError::invalid("year", "Năm không hợp lệ."));
        }
        let period = q.period.as_deref().unwrap_or("year").trim();
        if period == "custom" {
            let parse = |field: &str, v: &Option<String>| {
                v.as_deref()
                    .and_then(|s| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok())
                    .ok_or_else(|| {
                        ConsoleError::invalid(field, "Ngày không hợp lệ (dạng YYYY-MM-DD).")
                    })
            };
            let (from, to) = (parse("from", &q.from)?, parse("to", &q.to)?);
            // Loa's records start this century; far dates only overflow the date arithmetic.
            for (field, date) in [("from", from), ("to", to)] {
                if !(2000..=2100).contains(&date.year()) {
                    return Err(ConsoleError::invalid(
                        field,
                        "Ngày phải trong khoảng năm 2000 đến năm 2100.",
                    ));
                }
            }
            if to < from {
                return Err(ConsoleError::invalid(
                    "to",
                    "Ngày kết thúc trước ngày bắt đầu.",
                ));
            }
            if (to - from).num_days() > 3660 {
                return Err(ConsoleError::invalid(
                    "to",
                    "Khoảng thời gian quá dài (tối đa 10 năm).",
                ));
            }
            let label = format!(
                "Từ {} đến {}",
                from.format("%d/%m/%Y"),
                to.format("%d/%m/%Y")
            );
            return Ok(("custom".to_string(), label, from, to));
        }
        self.period_options(year, period)
            .into_iter()
            .find(|o| o.selected)
            .map(|o| (o.value, o.label, o.from, o.to))
            .ok_or_else(|| {
                ConsoleError::invalid("period", format!("Kỳ báo cáo không hợp lệ: {period:?}."))
            })
    }

    fn message_filter(&self, q: &DashboardQuery) -> Result<MessageFilter, ConsoleError> {
        let clean = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let observance = match clean(&q.observance) {
            None => None,
            Some(id) => Some(
                self.calendar
                    .observances()
                    .iter()
                    .find(|o| o.id == id)
                    .map(|o| o.name.clone())
                    .ok_or_else(|| {
                        ConsoleError::invalid("observance", format!("Không có sự kiện {id:?}."))
                    })?,
            ),
        };
        let schedule_id = match clean(&q.content) {
            None => None,
            Some(id) => Some(format!(
                "content:{}",
                id.parse::<i64>()
                    .map_err(|_| ConsoleError::invalid("content", "Mã nội dung không hợp lệ."))?
            )),
        };
        Ok(MessageFilter {
            observance,
            schedule_id,
            tag: clean(&q.tag).map(|t| t.to_lowercase()),
        })
    }

    pub async fn dashboard(
        &self,
        actor: &Actor,
        q: &DashboardQuery,
    ) -> Result<Dashboard, ConsoleError> {
        actor.require(Permission::ViewFigures)?;
        let (period, period_label, from, to) = self.resolve_period(q)?;
        let filter = self.message_filter(q)?;
        let areas = &self.config.areas;
        let tz = self.config.campaign.time_zone;
        let band = self.config.campaign.target;
        let scope = actor.scope(areas);
        let in_scope = |code: &str| scope.as_ref().is_none_or(|s| s.contains(code));

        let channels = &self.config.channels;
        let split =
            reach::channel_split(&self.db, channels, tz, from, to, "resident", &filter).await?;
        let engaged = reach::engaged_filtered(&self.db, from, to, &filter).await?;
        let organisations =
            reach::channel_split(&self.db, channels, tz, from, to, "organisation", &filter).await?;
        let activities = activities::list(&self.db, areas, actor, from, to).await?;
        let mut offline: HashMap<String, u64> = HashMap::new();
        for a in &activities {
            *offline.entry(a.area.clone()).or_default() += a.audience.max(0) as u64;
        }

        // Every figure is per area as stored; an area's line adds up its subtree.
        let line = |code: &str, name: &str| -> AreaLine {
            let codes: Vec<String> = areas
                .subtree(code)
                .into_iter()
                .map(|a| a.code.clone())
                .collect();
            let mut s = ChannelSplit::default();
            let (mut eng, mut off) = (0, 0);
            for c in &codes {
                if let Some(x) = split.get(c) {
                    s.add(x);
                }
                eng += engaged.get(c).copied().unwrap_or(0);
                off += offline.get(c).copied().unwrap_or(0);
            }
            area_line(code, name, areas.population(code), s, eng, off, band)
        };
        let total = match &actor.area {
            Some(code) => line(
                code,
                &areas.get(code).map(|a| a.name.clone()).unwrap_or_default(),
            ),
            None => {
                let roots: Vec<_> = areas.roots().collect();
                if let [only] = roots.as_slice() {
                    line(&only.code, &only.name)
                } else {
                    let mut s = ChannelSplit::default();
                    let (mut pop, mut eng, mut off) = (0, 0, 0);
                    for r in &roots {
                        let l = line(&r.code, &r.name);
                        s.add(&l.split);
                        pop += l.population;
                        eng += l.engaged;
                        off += l.offline_estimate;
                    }
                    area_line("total", "Tổng", pop, s, eng, off, band)
                }
            }
        };
        let mut communes: Vec<AreaLine> = areas
            .leaves()
            .filter(|a| in_scope(&a.code))
            .map(|a| line(&a.code, &a.name))
            .collect();
        // Furthest below the band first; an unknown population last.
        communes.sort_by(|a, b| {
            b.gap
                .total_cmp(&a.gap)
                .then_with(|| a.percent.is_none().cmp(&b.percent.is_none()))
                .then_with(|| {
                    a.percent
                        .unwrap_or(0.0)
                        .total_cmp(&b.percent.unwrap_or(0.0))
                })
                .then_with(|| a.name.cmp(&b.name))
        });

        let organisations_informed = organisations
            .iter()
            .filter(|(code, _)| in_scope(code))
            .map(|(_, s)| s.reached())
            .sum();
        let mut organisations_registered = 0;
        for row in sqlx::query(
            "SELECT area_code, COUNT(*) FROM persons WHERE kind = 'organisation' AND opted_out_at IS NULL GROUP BY area_code",
        )
        .fetch_all(&self.db.pool)
        .await?
        {
            let code: String = row.try_get(0)?;
            if in_scope(&code) {
                organisations_registered += row.try_get::<i64, _>(1)? as u64;
            }
        }
        Ok(Dashboard {
            from,
            to,
            period,
            period_label,
            target_low_percent: band.low * 100.0,
            target_high_percent: band.high * 100.0,
            total,
            communes,
            organisations_informed,
            organisations_registered,
            activities,
            filter_observance: q.observance.clone().filter(|s| !s.trim().is_empty()),
            filter_content: filter
                .schedule_id
                .as_deref()
                .and_then(|s| s.trim_start_matches("content:").parse().ok()),
            filter_tag: filter.tag,
        })
    }
}

fn area_line(
    code: &str,
    name: &str,
    population: u64,
    split: ChannelSplit,
    engaged: u64,
    offline_estimate: u64,
    band: crate::config::TargetBand,
) -> AreaLine {
    let reached = split.reached();
    let fraction = (population > 0).then(|| reached as f64 / population as f64);
    let percent = fraction.map(|f| (f * 10_000.0).round() / 100.0);
    AreaLine {
        code: code.to_string(),
        name: name.to_string(),
        population,
        reached,
        split,
        percent,
        status: fraction.map(|f| BandStatus::of(f, band)),
        gap: percent
            .map(|p| (band.low * 100.0 - p).max(0.0))
            .unwrap_or(0.0),
        engaged,
        offline_estimate,
    }
}
