//! Persons, their contacts, areas and tags: who Loa speaks to, and the audience filter the
//! fan-out uses.
//!
//! Owns the tables `areas`, `persons` (with how they consented: [`consent`]), `person_tags`,
//! `contacts`.

pub mod area_match;
pub mod consent;
pub mod import;
pub mod phone;
pub mod phone_cell;

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::calendar::Audience;
use crate::channel::ChannelKind;
use crate::config::AreaTree;
use crate::store::{Db, Sql, to_epoch};

#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error("unknown area code {0:?}")]
    UnknownArea(String),
    #[error("a name has at most {MAX_NAME_CHARS} characters")]
    NameTooLong,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Mirrors the areas of `loa.toml` into the database, so reports and the fan-out can join on
/// them. Areas removed from the file stay (persons may still point at them).
pub async fn sync_areas(db: &Db, areas: &AreaTree) -> Result<(), sqlx::Error> {
    let mut tx = db.pool.begin().await?;
    for area in areas.iter() {
        sqlx::query(
            "INSERT INTO areas (code, name, parent_code, population) VALUES ($1, $2, $3, $4)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, parent_code = excluded.parent_code,
                 population = excluded.population",
        )
        .bind(&area.code)
        .bind(&area.name)
        .bind(area.parent.as_deref())
        .bind(area.population.map(|p| p as i64))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// A sentence said twice: in English for the operator's terminal and logs, in Vietnamese for
/// the commune clerk who reads the console and the rejected rows' file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    pub en: String,
    pub vi: String,
}

impl Said {
    pub fn new(en: impl Into<String>, vi: impl Into<String>) -> Said {
        Said {
            en: en.into(),
            vi: vi.into(),
        }
    }

    /// Both, each after its own prefix ("phone: …", "Số điện thoại: …").
    pub fn prefixed(&self, en: &str, vi: &str) -> Said {
        Said::new(format!("{en}{}", self.en), format!("{vi}{}", self.vi))
    }
}

/// A new person in an area, with tags (e.g. `thanh-nien` for youth).
/// The longest name stored for a person or an organisation.
pub const MAX_NAME_CHARS: usize = 200;

/// A name from someone else's system (a Telegram profile, a group's title), cut to what Loa
/// stores. Telegram's own limits keep them shorter; this only guards against a fake or a change.
pub fn clip_name(name: &str) -> String {
    name.trim().chars().take(MAX_NAME_CHARS).collect()
}

pub async fn add_person(
    db: &Db,
    areas: &AreaTree,
    name: &str,
    area_code: &str,
    tags: &[&str],
    now: DateTime<Utc>,
) -> Result<i64, AudienceError> {
    if !areas.contains(area_code) {
        return Err(AudienceError::UnknownArea(area_code.to_string()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AudienceError::NameTooLong);
    }
    let mut tx = db.pool.begin().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO persons (name, area_code, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(area_code)
    .bind(to_epoch(now))
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;
    for tag in tags {
        sqlx::query(
            "INSERT INTO person_tags (person_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(*tag)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Adds a way to reach a person, or returns the existing contact with that address.
pub async fn add_contact(
    db: &Db,
    person_id: i64,
    channel: ChannelKind,
    address: &str,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO contacts (person_id, channel, address, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (channel, address) DO NOTHING",
    )
    .bind(person_id)
    .bind(channel.as_str())
    .bind(address)
    .bind(to_epoch(now))
    .execute(&db.pool)
    .await?;
    sqlx::query("SELECT id FROM contacts WHERE channel = $1 AND address = $2")
        .bind(channel.as_str())
        .bind(address)
        .fetch_one(&db.pool)
        .await?
        .try_get(0)
}

/// Gives every active contact of channel `source` a contact of `target` at the same address,
/// where `target` has none yet: Zalo reaches the phone numbers Loa has for SMS. A contact
/// `target` deactivated (the number has no Zalo account) stays so. Returns the contacts added.
pub async fn mirror_contacts(
    conn: &mut sqlx::AnyConnection,
    target: ChannelKind,
    source: ChannelKind,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    // (`WHERE` before `ON CONFLICT`: SQLite needs it in INSERT … SELECT.)
    let added = sqlx::query(
        "INSERT INTO contacts (person_id, channel, address, created_at)
         SELECT c.person_id, $1, c.address, $2 FROM contacts c
         WHERE c.channel = $3 AND c.active = 1
           AND NOT EXISTS (SELECT 1 FROM contacts t WHERE t.channel = $1 AND t.address = c.address)
         ON CONFLICT (channel, address) DO NOTHING",
    )
    .bind(target.as_str())
    .bind(to_epoch(now))
    .bind(source.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(added)
}

/// The person asked to receive nothing more: every later send to them is skipped.
pub async fn opt_out(db: &Db, person_id: i64, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    // An opt-out given here is not one a text message may take back (`opted_out_via`).
    sqlx::query(
        "UPDATE persons SET opted_out_at = COALESCE(opted_out_at, $1), opted_out_via = NULL
         WHERE id = $2",
    )
    .bind(to_epoch(now))
    .bind(person_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Stops all sending to a contact that cannot be reached (blocked the bot, number gone).
pub async fn deactivate_contact<'c, E>(
    executor: E,
    contact_id: i64,
    reason: &str,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query("UPDATE contacts SET active = 0, inactive_reason = $1 WHERE id = $2")
        .bind(reason)
        .bind(contact_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Which contacts an audience reaches: areas (with everything under them), tags, channels in
/// order of preference. Written into a statement over `persons p` and `contacts c`, its values
/// bound there (their placeholders numbered by the statement's builder).
#[derive(Debug, Clone)]
pub struct AudienceFilter {
    /// Leaf-or-not area codes, each area's subtree included; empty: everyone.
    areas: Vec<String>,
    tags: Vec<String>,
    channels: Vec<ChannelKind>,
    /// The year derived tags are computed for (`thanh-nien`: the ages in that year).
    year: i32,
    /// Leaves out whoever has a reach row in one of these periods.
    reached_in: Vec<String>,
    /// Only these areas (exactly: the communes below the band); `Some(empty)`: nobody.
    within: Option<Vec<String>>,
}

impl AudienceFilter {
    /// The audience as of `year` (the local year of the send).
    pub fn new(audience: &Audience, channels: &[ChannelKind], areas: &AreaTree, year: i32) -> Self {
        let mut codes: Vec<String> = audience
            .areas
            .iter()
            .flat_map(|code| areas.subtree(code).into_iter().map(|a| a.code.clone()))
            .collect();
        codes.sort();
        codes.dedup();
        AudienceFilter {
            areas: codes,
            tags: audience.tags.clone(),
            channels: channels.to_vec(),
            year,
            reached_in: Vec::new(),
            within: None,
        }
    }

    /// Leaves out the persons reached in any of `periods` (reach period keys).
    pub fn not_reached_in(mut self, periods: Vec<String>) -> Self {
        self.reached_in = periods;
        self
    }

    /// Only persons of these areas (as well as the audience's own); empty: nobody.
    pub fn within(mut self, areas: Vec<String>) -> Self {
        self.within = Some(areas);
        self
    }

    /// The channels it picks among, in order of preference.
    pub fn channels(&self) -> &[ChannelKind] {
        &self.channels
    }

    /// The condition selecting eligible contacts.
    pub fn condition(&self, sql: &mut Sql) {
        // Channel names are lowercase letters, digits and '-' (`ChannelKind::new`): written
        // inline, so the channel index serves the statement.
        let channel_list = self
            .channels
            .iter()
            .map(|c| format!("'{}'", c.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        sql.push(&format!(
            "c.active = 1 AND p.opted_out_at IS NULL AND c.channel IN ({channel_list})"
        ));
        if !self.areas.is_empty() {
            sql.push(" AND p.area_code IN (")
                .list(self.areas.iter().map(String::as_str))
                .push(")");
        }
        for tag in &self.tags {
            sql.push(" AND ");
            tag_condition(sql, "p.id", tag, self.year);
        }
        if !self.reached_in.is_empty() {
            sql.push(
                " AND NOT EXISTS (SELECT 1 FROM reach r WHERE r.person_id = p.id AND r.period IN (",
            )
            .list(self.reached_in.iter().map(String::as_str))
            .push("))");
        }
        match &self.within {
            Some(areas) if areas.is_empty() => {
                sql.push(" AND 1 = 0");
            }
            Some(areas) => {
                sql.push(" AND p.area_code IN (")
                    .list(areas.iter().map(String::as_str))
                    .push(")");
            }
            None => {}
        }
    }

    /// One row per person of the audience — `person_id, contact_id, channel` — through the
    /// contact whose channel comes first in the order of preference (then the oldest).
    ///
    /// Rank and contact id are folded into one number and the smallest kept per person: a
    /// plain `GROUP BY`, twice as fast as numbering each person's contacts with a window
    /// function (measured on SQLite at 1,000,000 persons).
    pub fn picks(&self, sql: &mut Sql) {
        let ranks: String = self
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| format!(" WHEN '{}' THEN {i}", c.as_str()))
            .collect();
        let names: String = self
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| format!(" WHEN {i} THEN '{}'", c.as_str()))
            .collect();
        sql.push(&format!(
            "SELECT person_id, pick % {PICK_SCALE} AS contact_id, CASE pick / {PICK_SCALE}{names} END AS channel FROM (
                 SELECT c.person_id AS person_id, MIN(CASE c.channel{ranks} ELSE 99 END * {PICK_SCALE} + c.id) AS pick
                 FROM contacts c JOIN persons p ON p.id = c.person_id
                 WHERE "
        ));
        self.condition(sql);
        sql.push(" GROUP BY c.person_id) picked");
    }
}

/// The tag of young people, which a birth year also gives: aged 16 to 30 in the year an
/// audience or a report is computed for (the Youth Law's ages), so it never goes stale.
pub const TAG_YOUTH: &str = "thanh-nien";
/// Ages of [`TAG_YOUTH`], inclusive.
pub const YOUTH_AGES: (i32, i32) = (16, 30);

/// `(condition)`: the person whose id is the column `person` carries `tag` in `year` — as a
/// stored tag or, for [`TAG_YOUTH`], by their birth year.
pub fn tag_condition(sql: &mut Sql, person: &str, tag: &str, year: i32) {
    sql.push(&format!(
        "(EXISTS (SELECT 1 FROM person_tags t WHERE t.person_id = {person} AND t.tag = "
    ))
    .bind(tag)
    .push(")");
    if tag == TAG_YOUTH {
        let (youngest, oldest) = YOUTH_AGES;
        sql.push(&format!(
            " OR EXISTS (SELECT 1 FROM persons y WHERE y.id = {person} AND y.birth_year BETWEEN "
        ))
        .bind(year - oldest)
        .push(" AND ")
        .bind(year - youngest)
        .push(")");
    }
    sql.push(")");
}

/// Above any contact id: `rank * PICK_SCALE + id` orders by rank, then by id.
const PICK_SCALE: i64 = 1 << 40;

/// How many persons an audience reaches today (one per person, whatever their contacts).
pub async fn count(
    db: &Db,
    audience: &Audience,
    channels: &[ChannelKind],
    areas: &AreaTree,
    year: i32,
) -> Result<i64, sqlx::Error> {
    let mut sql = Sql::new(
        "SELECT COUNT(DISTINCT p.id) FROM persons p JOIN contacts c ON c.person_id = p.id WHERE ",
    );
    AudienceFilter::new(audience, channels, areas, year).condition(&mut sql);
    sql.query()?.fetch_one(&db.pool).await?.try_get(0)
}

/// How many persons an audience reaches on each channel: each person counts once, on the
/// channel the fan-out would pick for them (the first of `channels` they have), in `year`.
pub async fn count_by_channel(
    db: &Db,
    audience: &Audience,
    channels: &[ChannelKind],
    areas: &AreaTree,
    year: i32,
) -> Result<std::collections::BTreeMap<ChannelKind, i64>, sqlx::Error> {
    count_filtered(db, &AudienceFilter::new(audience, channels, areas, year)).await
}

/// The same for a filter already made (one that leaves out people reached, say).
pub async fn count_filtered(
    db: &Db,
    filter: &AudienceFilter,
) -> Result<std::collections::BTreeMap<ChannelKind, i64>, sqlx::Error> {
    let mut sql = Sql::new("SELECT channel, COUNT(*) FROM (");
    filter.picks(&mut sql);
    sql.push(") chosen GROUP BY channel");
    let mut out = std::collections::BTreeMap::new();
    for row in sql.query()?.fetch_all(&db.pool).await? {
        let channel: String = row.try_get(0)?;
        if let Some(&kind) = filter.channels().iter().find(|k| k.as_str() == channel) {
            out.insert(kind, row.try_get::<i64, _>(1)?);
        }
    }
    Ok(out)
}

/// How many persons a filter picks in each area.
pub async fn count_by_area(
    db: &Db,
    filter: &AudienceFilter,
) -> Result<std::collections::BTreeMap<String, i64>, sqlx::Error> {
    let mut sql = Sql::new("SELECT p.area_code, COUNT(*) FROM (");
    filter.picks(&mut sql);
    sql.push(") chosen JOIN persons p ON p.id = chosen.person_id GROUP BY p.area_code");
    let mut out = std::collections::BTreeMap::new();
    for row in sql.query()?.fetch_all(&db.pool).await? {
        out.insert(row.try_get(0)?, row.try_get::<i64, _>(1)?);
    }
    Ok(out)
}
