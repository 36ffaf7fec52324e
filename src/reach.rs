//! Who has been reached, counted once per period however many messages and channels reached
//! them.
//!
//! Owns the table `reach`: one row per (period, person), written when a delivery succeeds, for
//! three period sizes — the local day, month and year. A report over any date range is then a
//! `COUNT(DISTINCT)` over the fewest period rows that tile the range exactly (whole years, then
//! whole months, then days), never a scan of every delivery.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::Row;

use crate::audience::AudienceFilter;
use crate::calendar::Audience;
use crate::channel::{ChannelKind, ChannelSet};
use crate::config::{AreaTree, TargetBand};
use crate::store::{Db, Sql, to_epoch};

/// A person reached, for `record_many`.
#[derive(Debug, Clone)]
pub struct Reached<'a> {
    pub person_id: i64,
    pub area_code: &'a str,
    pub channel: ChannelKind,
    /// `resident` or `organisation`.
    pub kind: &'a str,
    pub at: DateTime<Utc>,
}

/// Records that a person was reached at `at`; a second call for the same period is a no-op.
/// The per-area counts of the periods that are new for this person go up by one.
pub async fn record(
    conn: &mut sqlx::AnyConnection,
    person_id: i64,
    area_code: &str,
    channel: ChannelKind,
    kind: &str,
    at: DateTime<Utc>,
    tz: Tz,
) -> Result<(), sqlx::Error> {
    let reached = Reached {
        person_id,
        area_code,
        channel,
        kind,
        at,
    };
    record_many(conn, std::slice::from_ref(&reached), tz).await
}

/// Rows per statement: six values each.
const ROWS_PER_STATEMENT: usize = 300;

/// `record` for many persons in a few statements: the reach rows of every period, then one
/// upsert of the counts that went up. Rows and counts are written in key order, so concurrent
/// writers (several processes on PostgreSQL) always lock them in the same order and cannot
/// deadlock.
pub async fn record_many(
    conn: &mut sqlx::AnyConnection,
    reached: &[Reached<'_>],
    tz: Tz,
) -> Result<(), sqlx::Error> {
    let mut rows: Vec<(String, &Reached<'_>)> = reached
        .iter()
        .flat_map(|r| {
            periods_of(r.at.with_timezone(&tz).date_naive())
                .into_iter()
                .map(move |period| (period, r))
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, a.1.person_id).cmp(&(&b.0, b.1.person_id)));
    rows.dedup_by(|a, b| a.0 == b.0 && a.1.person_id == b.1.person_id);
    let mut new: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::new(
            "INSERT INTO reach (period, person_id, area_code, channel, first_at, kind) VALUES ",
        );
        sql.tuples(chunk, |row, (period, r)| {
            row.bind(period.as_str())
                .bind(r.person_id)
                .bind(r.area_code)
                .bind(r.channel.as_str())
                .bind(to_epoch(r.at))
                .bind(r.kind);
        })
        .push(
            " ON CONFLICT (period, person_id) DO NOTHING
             RETURNING period, area_code, kind",
        );
        for row in sql.query()?.fetch_all(&mut *conn).await? {
            *new.entry((row.try_get(0)?, row.try_get(2)?, row.try_get(1)?))
                .or_default() += 1;
        }
    }
    let new: Vec<_> = new.into_iter().collect();
    for chunk in new.chunks(ROWS_PER_STATEMENT) {
        let mut sql =
            Sql::new("INSERT INTO reach_counts (period, kind, area_code, persons) VALUES ");
        sql.tuples(chunk, |row, ((period, kind, area), persons)| {
            row.bind(period.as_str())
                .bind(kind.as_str())
                .bind(area.as_str())
                .bind(*persons);
        })
        .push(
            " ON CONFLICT (period, kind, area_code)
             DO UPDATE SET persons = reach_counts.persons + excluded.persons",
        );
        sql.query()?.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The reach periods in which a person reached already is left out of an audience that asks
/// for the unreached (`audience.unreached`), for a send on the local date `on`: the year, the
/// quarter's months, the month, or the observance's days from `observance_from` to the send.
pub fn unreached_periods(
    span: crate::calendar::Unreached,
    on: NaiveDate,
    observance_from: NaiveDate,
) -> Vec<String> {
    use crate::calendar::Unreached;
    match span {
        Unreached::Year => vec![format!("Y{}", on.year())],
        Unreached::Month => vec![format!("M{}", on.format("%Y-%m"))],
        Unreached::Quarter => {
            let first = (on.month0() / 3) * 3 + 1;
            (first..first + 3)
                .map(|m| format!("M{}-{m:02}", on.year()))
                .collect()
        }
        Unreached::Observance if observance_from <= on => periods_covering(observance_from, on),
        // Before the observance's first day nobody can have been reached in it.
        Unreached::Observance => Vec::new(),
    }
}

/// The fan-out's filter for `audience` sent on local `date`: its areas and tags, and, where it
/// asks, only the people not reached in its span (`unreached`) and only the communes still below
/// `band` (`below_band`). The scheduler fans out through it; the console counts with it.
pub async fn audience_filter(
    conn: &mut sqlx::AnyConnection,
    audience: &Audience,
    channels: &[ChannelKind],
    areas: &AreaTree,
    band: TargetBand,
    date: NaiveDate,
    observance_date: NaiveDate,
) -> Result<AudienceFilter, sqlx::Error> {
    let year = date.year();
    let mut filter = AudienceFilter::new(audience, channels, areas, year);
    if let Some(span) = audience.unreached {
        filter = filter.not_reached_in(unreached_periods(span, date, observance_date));
    }
    if audience.below_band {
        filter = filter.within(below_band(conn, areas, band, year).await?);
    }
    Ok(filter)
}

/// The communes (areas without children) whose residents reached in `year` are still fewer
/// than the band's low end of their population. An area without a population is left out.
pub async fn below_band(
    conn: &mut sqlx::AnyConnection,
    areas: &AreaTree,
    band: TargetBand,
    year: i32,
) -> Result<Vec<String>, sqlx::Error> {
    Ok(year_shares(conn, areas, year)
        .await?
        .into_iter()
        .filter(|(_, share)| *share < band.low)
        .map(|(code, _)| code)
        .collect())
}

/// Each commune's share of its population reached in `year` (0–1); a commune without a
/// population is left out.
pub async fn year_shares(
    conn: &mut sqlx::AnyConnection,
    areas: &AreaTree,
    year: i32,
) -> Result<BTreeMap<String, f64>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT area_code, persons FROM reach_counts WHERE period = $1 AND kind = $2")
            .bind(format!("Y{year}"))
            .bind("resident")
            .fetch_all(&mut *conn)
            .await?;
    let mut reached: HashMap<String, u64> = HashMap::new();
    for row in rows {
        reached.insert(row.try_get(0)?, row.try_get::<i64, _>(1)?.max(0) as u64);
    }
    Ok(areas
        .leaves()
        .filter_map(|a| {
            let population = areas.population(&a.code);
            (population > 0).then(|| {
                (
                    a.code.clone(),
                    reached.get(&a.code).copied().unwrap_or(0) as f64 / population as f64,
                )
            })
        })
        .collect())
}

/// The day, month and year periods a local date belongs to.
pub fn periods_of(date: NaiveDate) -> [String; 3] {
    [
        format!("D{}", date.format("%Y-%m-%d")),
        format!("M{}", date.format("%Y-%m")),
        format!("Y{}", date.year()),
    ]
}

/// The fewest periods that together are exactly the local dates `from..=to`.
pub fn periods_covering(from: NaiveDate, to: NaiveDate) -> Vec<String> {
    let mut out = Vec::new();
    let mut day = from;
    while day <= to {
        let year_end = NaiveDate::from_ymd_opt(day.year(), 12, 31).expect("valid");
        let month_end = last_day_of_month(day);
        if day.ordinal() == 1 && year_end <= to {
            out.push(format!("Y{}", day.year()));
            day = year_end + Duration::days(1);
        } else if day.day() == 1 && month_end <= to {
            out.push(format!("M{}", day.format("%Y-%m")));
            day = month_end + Duration::days(1);
        } else {
            out.push(format!("D{}", day.format("%Y-%m-%d")));
            day += Duration::days(1);
        }
    }
    out
}

fn last_day_of_month(date: NaiveDate) -> NaiveDate {
    let (y, m) = if date.month() == 12 {
        (date.year() + 1, 1)
    } else {
        (date.year(), date.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).expect("valid") - Duration::days(1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BandStatus {
    Below,
    Within,
    Above,
}

impl BandStatus {
    pub fn of(fraction: f64, band: TargetBand) -> BandStatus {
        // Compare in whole basis points so 40.00 % is within a 0.40 band despite float noise.
        let bp = (fraction * 10_000.0).round() as i64;
        if bp < (band.low * 10_000.0).round() as i64 {
            BandStatus::Below
        } else if bp > (band.high * 10_000.0).round() as i64 {
            BandStatus::Above
        } else {
            BandStatus::Within
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BandStatus::Below => "below",
            BandStatus::Within => "within",
            BandStatus::Above => "above",
        }
    }
}

/// One area's line of the report; parents include everything under them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReachRow {
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
    /// 0 for the top level, 1 for the next, …
    pub depth: usize,
    pub population: u64,
    pub reached: u64,
    /// Persons who pressed "Tôi đã đọc" on a message in the period.
    pub engaged: u64,
    /// Reached ÷ population × 100, or `None` when the population is unknown.
    pub percent: Option<f64>,
    pub status: Option<BandStatus>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReachReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub target_low_percent: f64,
    pub target_high_percent: f64,
    /// In tree order: each area followed by its children.
    pub areas: Vec<ReachRow>,
    /// Every top-level area together.
    pub total: ReachRow,
    /// Registered organisations (group chats) that received a message in the period, and all
    /// registered: the plan's "100 % of organisations informed", counted apart from residents.
    pub organisations_informed: u64,
    pub organisations_registered: u64,
}

/// Above this many periods (a range of over a year with odd days at both ends) the report
/// counts day rows by range instead of listing periods as parameters.
const MAX_LISTED_PERIODS: usize = 500;

/// Persons reached on the local dates `from..=to`, per area, rolled up the tree.
pub async fn report(
    db: &Db,
    areas: &AreaTree,
    band: TargetBand,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<ReachReport, sqlx::Error> {
    let periods = periods_covering(from, to);
    let direct = count_by_area(db, "resident", &periods, from, to).await?;
    let engaged = engaged_filtered(db, from, to, &MessageFilter::default()).await?;
    let (informed, registered) = organisations(db, from, to).await?;
    let mut report = build(areas, band, from, to, &direct, &engaged);
    report.organisations_informed = informed;
    report.organisations_registered = registered;
    Ok(report)
}

/// (organisations that received a message on `from..=to`, organisations registered).
pub async fn organisations(
    db: &Db,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(u64, u64), sqlx::Error> {
    let registered: i64 = sqlx::query(
        "SELECT COUNT(*) FROM persons WHERE kind = 'organisation' AND opted_out_at IS NULL",
    )
    .fetch_one(&db.pool)
    .await?
    .try_get(0)?;
    let periods = periods_covering(from, to);
    let informed: u64 = count_by_area(db, "organisation", &periods, from, to)
        .await?
        .values()
        .sum();
    Ok((informed, registered as u64))
}

/// Persons of `kind` reached per area over `periods` (which tile `from..=to`).
async fn count_by_area(
    db: &Db,
    kind: &str,
    periods: &[String],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashMap<String, u64>, sqlx::Error> {
    let rows = if periods.len() == 1 {
        // Within one period a person is counted once, as the reach rows were written.
        sqlx::query("SELECT area_code, persons FROM reach_counts WHERE period = $1 AND kind = $2")
            .bind(&periods[0])
            .bind(kind)
            .fetch_all(&db.pool)
            .await?
    } else if periods.len() <= MAX_LISTED_PERIODS {
        let mut sql =
            Sql::new("SELECT area_code, COUNT(DISTINCT person_id) FROM reach WHERE kind = ");
        sql.bind(kind)
            .push(" AND period IN (")
            .list(periods.iter().map(String::as_str))
            .push(") GROUP BY area_code");
        sql.query()?.fetch_all(&db.pool).await?
    } else {
        // Day periods sort as text in date order.
        sqlx::query(
            "SELECT area_code, COUNT(DISTINCT person_id) FROM reach
             WHERE kind = $1 AND period >= $2 AND period <= $3 GROUP BY area_code",
        )
        .bind(kind)
        .bind(format!("D{}", from.format("%Y-%m-%d")))
        .bind(format!("D{}", to.format("%Y-%m-%d")))
        .fetch_all(&db.pool)
        .await?
    };
    let mut out = HashMap::new();
    for row in rows {
        out.insert(
            row.try_get::<String, _>(0)?,
            row.try_get::<i64, _>(1)? as u64,
        );
    }
    Ok(out)
}

/// Narrows the dashboard's figures to some messages or persons.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageFilter {
    /// Messages of this observance (its name, as occurrences record it).
    pub observance: Option<String>,
    /// Messages of this schedule or queued content (`content:7`).
    pub schedule_id: Option<String>,
    /// Persons carrying this tag.
    pub tag: Option<String>,
}

impl MessageFilter {
    /// Its conditions over `occurrences o` and the person id column `person`, each starting
    /// with ` AND`; a tag derived from a birth year is taken as of `year`.
    fn conditions(&self, person: &str, year: i32, sql: &mut Sql) {
        if let Some(observance) = &self.observance {
            sql.push(" AND o.observance = ").bind(observance.as_str());
        }
        if let Some(schedule) = &self.schedule_id {
            sql.push(" AND o.schedule_id = ").bind(schedule.as_str());
        }
        if let Some(tag) = &self.tag {
            sql.push(" AND ");
            crate::audience::tag_condition(sql, person, tag, year);
        }
    }
}

/// Persons reached, by the set of channels that reached them: `telegram`, `sms`,
/// `telegram+sms` (names in the deployment's channel order, joined by `+`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(transparent)]
pub struct ChannelSplit(pub BTreeMap<String, u64>);

impl ChannelSplit {
    pub fn reached(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn add(&mut self, other: &ChannelSplit) {
        for (set, n) in &other.0 {
            *self.0.entry(set.clone()).or_default() += n;
        }
    }

    /// Persons reached by exactly this set of channels.
    pub fn get(&self, set: &str) -> u64 {
        self.0.get(set).copied().unwrap_or(0)
    }
}

/// The keys of every set of channels a person can be reached by, smaller sets first:
/// `telegram`, `sms`, `telegram+sms` for the built-in two.
pub fn channel_set_keys(channels: &ChannelSet) -> Vec<String> {
    let n = channels.kinds().count().min(16);
    let mut masks: Vec<u64> = (1..(1u64 << n)).collect();
    masks.sort_by_key(|m| (m.count_ones(), m.reverse_bits()));
    masks
        .into_iter()
        .map(|m| channel_set_key(channels, m))
        .collect()
}

/// The key of a set of channels in a [`ChannelSplit`]: `telegram+sms`.
pub fn channel_set_key(channels: &ChannelSet, mask: u64) -> String {
    channels
        .kinds()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, k)| k.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// Persons of `kind` reached on the local dates `from..=to` per area (the person's area),
/// split by channel, from the deliveries themselves: a delivery reaches its person when sent,
/// or for an SMS gateway that reports delivery, when delivered (`deliveries.reached_at`).
pub async fn channel_split(
    db: &Db,
    channels: &ChannelSet,
    tz: Tz,
    from: NaiveDate,
    to: NaiveDate,
    kind: &str,
    filter: &MessageFilter,
) -> Result<HashMap<String, ChannelSplit>, sqlx::Error> {
    // Each channel is a bit; a person's set of channels is the sum of their distinct bits.
    let bits: String = channels
        .kinds()
        .enumerate()
        .map(|(i, c)| format!(" WHEN '{}' THEN {}", c.as_str(), 1u64 << i))
        .collect();
    let mut sql = Sql::new(format!(
        "SELECT p.area_code, r.channels, COUNT(*)
         FROM (SELECT d.person_id AS person_id, SUM(DISTINCT CASE d.channel{bits} ELSE 0 END) AS channels
               FROM deliveries d JOIN occurrences o ON o.id = d.occurrence_id
               WHERE d.reached_at >= "
    ));
    sql.bind(to_epoch(crate::calendar::local_midnight(from, tz)))
        .push(" AND d.reached_at < ")
        .bind(to_epoch(crate::calendar::local_midnight(
            to + Duration::days(1),
            tz,
        )));
    filter.conditions("d.person_id", to.year(), &mut sql);
    sql.push(
        " GROUP BY d.person_id) r
         JOIN persons p ON p.id = r.person_id
         WHERE p.kind = ",
    )
    .bind(kind)
    .push(" GROUP BY p.area_code, r.channels");
    let mut out: HashMap<String, ChannelSplit> = HashMap::new();
    for row in sql.query()?.fetch_all(&db.pool).await? {
        let mask = row.try_get::<i64, _>(1)?.max(0) as u64;
        if mask == 0 {
            continue;
        }
        out.entry(row.try_get::<String, _>(0)?)
            .or_default()
            .0
            .insert(
                channel_set_key(channels, mask),
                row.try_get::<i64, _>(2)? as u64,
            );
    }
    Ok(out)
}

/// Persons who pressed "Tôi đã đọc" on the local dates `from..=to`, per area, on the messages
/// `filter` selects.
pub async fn engaged_filtered(
    db: &Db,
    from: NaiveDate,
    to: NaiveDate,
    filter: &MessageFilter,
) -> Result<HashMap<String, u64>, sqlx::Error> {
    // The occurrence only matters to a filter on messages.
    let join = if filter.observance.is_some() || filter.schedule_id.is_some() {
        "JOIN occurrences o ON o.id = e.occurrence_id"
    } else {
        ""
    };
    let mut sql = Sql::new(format!(
        "SELECT e.area_code, COUNT(DISTINCT e.person_id) FROM engagements e {join} WHERE e.day >= "
    ));
    sql.bind(from.to_string())
        .push(" AND e.day <= ")
        .bind(to.to_string());
    filter.conditions("e.person_id", to.year(), &mut sql);
    sql.push(" GROUP BY e.area_code");
    let mut out = HashMap::new();
    for row in sql.query()?.fetch_all(&db.pool).await? {
        out.insert(
            row.try_get::<String, _>(0)?,
            row.try_get::<i64, _>(1)? as u64,
        );
    }
    Ok(out)
}

fn build(
    areas: &AreaTree,
    band: TargetBand,
    from: NaiveDate,
    to: NaiveDate,
    direct: &HashMap<String, u64>,
    engaged: &HashMap<String, u64>,
) -> ReachReport {
    fn under(areas: &AreaTree, code: &str, counts: &HashMap<String, u64>) -> u64 {
        counts.get(code).copied().unwrap_or(0)
            + areas
                .children(code)
                .map(|c| under(areas, &c.code, counts))
                .sum::<u64>()
    }
    let row = |code: String,
               name: String,
               parent: Option<String>,
               depth: usize,
               population: u64,
               reached: u64,
               engaged: u64| {
        let fraction = (population > 0).then(|| reached as f64 / population as f64);
        ReachRow {
            code,
            name,
            parent,
            depth,
            population,
            reached,
            engaged,
            percent: fraction.map(|f| (f * 10_000.0).round() / 100.0),
            status: fraction.map(|f| BandStatus::of(f, band)),
        }
    };
    let rows: Vec<ReachRow> = areas
        .tree_order()
        .into_iter()
        .map(|(depth, a)| {
            row(
                a.code.clone(),
                a.name.clone(),
                a.parent.clone(),
                depth,
                areas.population(&a.code),
                under(areas, &a.code, direct),
                under(areas, &a.code, engaged),
            )
        })
        .collect();
    let top: Vec<&ReachRow> = rows.iter().filter(|r| r.depth == 0).collect();
    let total = if let [only] = top.as_slice() {
        (*only).clone()
    } else {
        row(
            "total".to_string(),
            "Tổng".to_string(),
            None,
            0,
            top.iter().map(|r| r.population).sum(),
            top.iter().map(|r| r.reached).sum(),
            top.iter().map(|r| r.engaged).sum(),
        )
    };
    ReachReport {
        from,
        to,
        target_low_percent: band.low * 100.0,
        target_high_percent: band.high * 100.0,
        areas: rows,
        total,
        organisations_informed: 0,
        organisations_registered: 0,
    }
}

impl ReachReport {
    /// A plain-text table for a terminal, indented by level.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "Reach {} – {} (target {:.0}–{:.0} % of the population)\n\n",
            self.from, self.to, self.target_low_percent, self.target_high_percent
        );
        let name_width = self
            .areas
            .iter()
            .map(|r| r.name.chars().count() + 2 * r.depth)
            .chain(std::iter::once(5))
            .max()
            .unwrap_or(10);
        out.push_str(&format!(
            "{:<name_width$}  {:>10}  {:>10}  {:>8}  {:<7} {:>8}\n",
            "area", "population", "reached", "percent", "target", "engaged"
        ));
        let line = |r: &ReachRow| {
            let name = format!("{}{}", "  ".repeat(r.depth), r.name);
            let pad = name_width.saturating_sub(name.chars().count());
            format!(
                "{name}{}  {:>10}  {:>10}  {:>8}  {:<7} {:>8}\n",
                " ".repeat(pad),
                r.population,
                r.reached,
                r.percent.map_or("-".to_string(), |p| format!("{p:.2}%")),
                r.status.map_or("-", BandStatus::as_str),
                r.engaged,
            )
        };
        for r in &self.areas {
            out.push_str(&line(r));
        }
        if self.areas.iter().filter(|r| r.depth == 0).count() > 1 {
            out.push_str(&line(&self.total));
        }
        if self.organisations_registered > 0 {
            out.push_str(&format!(
                "\norganisations informed: {} of {} registered\n",
                self.organisations_informed, self.organisations_registered
            ));
        }
        out
    }

    /// CSV with a header, one line per area, then the total.
    pub fn to_csv(&self) -> Result<String, csv::Error> {
        use crate::export::{Cell, guarded_csv};

        let total_is_row = self.areas.iter().any(|r| r.code == self.total.code);
        let rows = self
            .areas
            .iter()
            .chain((!total_is_row).then_some(&self.total))
            .map(|r| {
                // Area names are typed by people (loa.toml) and may start like a formula; codes
                // (lowercase letters, digits, '-'), figures and band words are Loa's own.
                vec![
                    Cell::plain(r.code.as_str()),
                    Cell::text(r.name.as_str()),
                    Cell::plain(r.parent.as_deref().unwrap_or("")),
                    Cell::number(r.population),
                    Cell::number(r.reached),
                    Cell::plain(r.percent.map_or(String::new(), |p| format!("{p:.2}"))),
                    Cell::plain(r.status.map_or("", BandStatus::as_str)),
                    Cell::number(r.engaged),
                ]
            });
        guarded_csv(
            &[
                "code",
                "name",
                "parent",
                "population",
                "reached",
                "percent",
                "status",
                "engaged",
            ],
            rows,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_are_tiled_with_the_fewest_periods() {
        assert_eq!(
            periods_covering(d("2023-01-01"), d("2023-12-31")),
            ["Y2023"]
        );
        assert_eq!(
            periods_covering(d("2023-06-01"), d("2023-06-30")),
            ["M2023-06"]
        );
        let action_month = periods_covering(d("2023-11-15"), d("2023-12-15"));
        assert_eq!(action_month.len(), 16 + 15);
        assert_eq!(action_month.first().unwrap(), "D2023-11-15");
        assert_eq!(action_month.last().unwrap(), "D2023-12-15");
        assert_eq!(
            periods_covering(d("2023-12-31"), d("2024-02-29")),
            ["D2023-12-31", "M2024-01", "M2024-02"]
        );
    }

    #[test]
    fn band_edges_are_within() {
        let band = TargetBand {
            low: 0.40,
            high: 0.60,
        };
        assert_eq!(BandStatus::of(0.3999, band), BandStatus::Below);
        assert_eq!(BandStatus::of(0.40, band), BandStatus::Within);
        assert_eq!(BandStatus::of(0.60, band), BandStatus::Within);
        assert_eq!(BandStatus::of(0.6001, band), BandStatus::Above);
    }
}
