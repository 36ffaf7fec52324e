//! An admin's decision on an occurrence held over budget: send it anyway, cancel it, or send it
//! to the subset that fits what the budgets have left.
//!
//! The subset is chosen from the held deliveries in this order: people not yet reached this
//! year first, then everyone in the communes furthest below the band (share of the population
//! reached this year, lowest first), then by person. Each person goes by the cheapest channel
//! of the occurrence they have an active contact on whose budget still has room for them; who
//! fits nowhere is cancelled. The subset is part of what was approved: it needs no new approval.
//! A held occurrence that reaches its expiry expires with the other undelivered rows
//! (`dispatch::claim`), and can no longer be decided.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::hold::Over;
use super::{Message, Pricer};
use crate::channel::{ChannelKind, ChannelSet};
use crate::delivery::Status;
use crate::store::{Sql, from_epoch, to_epoch};

/// What an admin may decide for a held occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Send to everyone, over the budget.
    Send,
    /// Send to no one.
    Cancel,
    /// Send to the people that fit the budgets left.
    Subset,
}

impl Decision {
    pub const ALL: [Decision; 3] = [Decision::Subset, Decision::Send, Decision::Cancel];

    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Send => "send",
            Decision::Cancel => "cancel",
            Decision::Subset => "subset",
        }
    }

    pub fn parse(s: &str) -> Option<Decision> {
        Decision::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// As the console's button says it.
    pub const fn label(self) -> &'static str {
        match self {
            Decision::Send => "Vẫn gửi cho tất cả (chi vượt ngân sách)",
            Decision::Cancel => "Hủy đợt gửi",
            Decision::Subset => "Chỉ gửi trong phạm vi ngân sách còn lại",
        }
    }
}

/// Why a decision was not taken.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no such occurrence")]
    NotFound,
    #[error("this occurrence is not held for a decision")]
    NotHeld,
    #[error("already decided: {0}")]
    Decided(String),
    #[error("expired before a decision")]
    Expired,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decided {
    pub decision: Decision,
    /// Deliveries released to the dispatcher.
    pub sending: u64,
    pub cancelled: u64,
    /// The released deliveries' estimated cost per channel, in đồng.
    pub cost: BTreeMap<ChannelKind, f64>,
}

/// A held occurrence, for the console.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    pub occurrence_id: i64,
    pub schedule_id: String,
    pub observance: String,
    pub template: String,
    pub fire_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub recipients: i64,
    pub over: Vec<Over>,
    pub decision: Option<Decision>,
    pub decided_by: Option<String>,
}

/// Occurrences held over budget: undecided first (soonest to expire first), then the decided
/// ones, latest first.
pub async fn held(conn: &mut sqlx::AnyConnection, limit: i64) -> Result<Vec<Held>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, schedule_id, observance, template, fire_at, expires_at, recipients,
                hold_detail, decision, decided_by
         FROM occurrences WHERE hold_detail IS NOT NULL
         ORDER BY CASE WHEN decision IS NULL THEN 0 ELSE 1 END,
                  CASE WHEN decision IS NULL THEN expires_at ELSE -expires_at END LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let detail: String = r.try_get(7)?;
            let decision: Option<String> = r.try_get(8)?;
            Ok(Held {
                occurrence_id: r.try_get(0)?,
                schedule_id: r.try_get(1)?,
                observance: r.try_get(2)?,
                template: r.try_get(3)?,
                fire_at: from_epoch(r.try_get(4)?),
                expires_at: from_epoch(r.try_get(5)?),
                recipients: r.try_get(6)?,
                over: serde_json::from_str(&detail).unwrap_or_default(),
                decision: decision.as_deref().and_then(Decision::parse),
                decided_by: r.try_get(9)?,
            })
        })
        .collect()
}

/// Takes `decision` for held occurrence `id`, within the caller's transaction.
pub async fn decide(
    conn: &mut sqlx::AnyConnection,
    pricer: &Pricer,
    id: i64,
    decision: Decision,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Decided, DecideError> {
    super::lock(&mut *conn).await?;
    let taken = sqlx::query(
        "UPDATE occurrences SET decision = $1, decided_by = $2, decided_at = $3
         WHERE id = $4 AND hold_detail IS NOT NULL AND decision IS NULL AND expires_at > $3",
    )
    .bind(decision.as_str())
    .bind(by)
    .bind(to_epoch(now))
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if taken == 0 {
        return Err(why_not(conn, id, now).await?);
    }
    let (sending, cost) = match decision {
        Decision::Send => release_all(conn, pricer.channels(), id).await?,
        Decision::Cancel => (0, BTreeMap::new()),
        Decision::Subset => release_subset(conn, pricer, id).await?,
    };
    let mut cancel = Sql::new(format!(
        "UPDATE deliveries SET status = {}, last_error = 'over budget' WHERE status = {} AND occurrence_id = ",
        Status::Cancelled.sql(),
        Status::Held.sql()
    ));
    cancel.bind(id);
    let cancelled = cancel.query()?.execute(&mut *conn).await?.rows_affected();
    Ok(Decided {
        decision,
        sending,
        cancelled,
        cost,
    })
}

async fn why_not(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    now: DateTime<Utc>,
) -> Result<DecideError, sqlx::Error> {
    let row =
        sqlx::query("SELECT hold_detail, decision, expires_at FROM occurrences WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else {
        return Ok(DecideError::NotFound);
    };
    let detail: Option<String> = row.try_get(0)?;
    let decision: Option<String> = row.try_get(1)?;
    Ok(match (detail, decision) {
        (None, _) => DecideError::NotHeld,
        (_, Some(d)) => DecideError::Decided(d),
        _ if from_epoch(row.try_get(2)?) <= now => DecideError::Expired,
        _ => DecideError::NotHeld,
    })
}

async fn release_all(
    conn: &mut sqlx::AnyConnection,
    channels: &ChannelSet,
    id: i64,
) -> Result<(u64, BTreeMap<ChannelKind, f64>), sqlx::Error> {
    let mut sql =
        Sql::new("SELECT channel, COALESCE(SUM(cost), 0.0) FROM deliveries WHERE status = ");
    sql.push(&Status::Held.sql())
        .push(" AND occurrence_id = ")
        .bind(id)
        .push(" GROUP BY channel");
    let mut cost = BTreeMap::new();
    for row in sql.query()?.fetch_all(&mut *conn).await? {
        let channel: String = row.try_get(0)?;
        if let Some(kind) = channels.parse(&channel) {
            cost.insert(kind, row.try_get::<f64, _>(1)?);
        }
    }
    let mut release = Sql::new(format!(
        "UPDATE deliveries SET status = {} WHERE status = {} AND occurrence_id = ",
        Status::Pending.sql(),
        Status::Held.sql()
    ));
    release.bind(id);
    let n = release.query()?.execute(&mut *conn).await?.rows_affected();
    Ok((n, cost))
}

/// A held delivery and what the subset's order needs of it.
struct Candidate {
    delivery: i64,
    person: i64,
    area: String,
    reached: bool,
}

/// The occurrence as the pricer needs it, and its channels in order of preference.
async fn message_of(
    conn: &mut sqlx::AnyConnection,
    known: &ChannelSet,
    id: i64,
    tz: Tz,
) -> Result<(Message, Vec<ChannelKind>), sqlx::Error> {
    let row = sqlx::query(
        "SELECT template, observance, theme, observance_date, fire_at, channels
         FROM occurrences WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let date = from_epoch(row.try_get(4)?).with_timezone(&tz).date_naive();
    let observance_date: Option<String> = row.try_get(3)?;
    let channels: String = row.try_get(5)?;
    let mut bodies = BTreeMap::new();
    for b in sqlx::query("SELECT channel, body FROM occurrence_bodies WHERE occurrence_id = $1")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
    {
        let channel: String = b.try_get(0)?;
        if let Some(kind) = known.parse(&channel) {
            bodies.insert(kind, b.try_get(1)?);
        }
    }
    let message = Message {
        template: row.try_get(0)?,
        observance: row.try_get(1)?,
        theme: row.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
        observance_date: observance_date
            .and_then(|d| d.parse::<NaiveDate>().ok())
            .unwrap_or(date),
        date,
        bodies,
    };
    Ok((
        message,
        channels.split(',').filter_map(|c| known.parse(c)).collect(),
    ))
}

async fn release_subset(
    conn: &mut sqlx::AnyConnection,
    pricer: &Pricer,
    id: i64,
) -> Result<(u64, BTreeMap<ChannelKind, f64>), sqlx::Error> {
    let config = pricer.config();
    let tz = config.campaign.time_zone;
    let (message, channels) = message_of(conn, &config.channels, id, tz).await?;
    let year = message.date.year();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut sql = Sql::new(
        "SELECT d.id, d.person_id, p.area_code,
                CASE WHEN EXISTS (SELECT 1 FROM reach r WHERE r.person_id = d.person_id AND r.period = ",
    );
    sql.bind(format!("Y{year}"))
        .push(&format!(
            ") THEN 1 ELSE 0 END
             FROM deliveries d JOIN persons p ON p.id = d.person_id
             WHERE d.status = {} AND d.occurrence_id = ",
            Status::Held.sql()
        ))
        .bind(id);
    for row in sql.query()?.fetch_all(&mut *conn).await? {
        candidates.push(Candidate {
            delivery: row.try_get(0)?,
            person: row.try_get(1)?,
            area: row.try_get(2)?,
            reached: row.try_get::<i64, _>(3)? == 1,
        });
    }
    // Each held person's active contacts on the occurrence's channels.
    let mut contacts: HashMap<i64, Vec<(ChannelKind, i64)>> = HashMap::new();
    let mut sql = Sql::new(
        "SELECT c.person_id, c.channel, c.id FROM contacts c
         WHERE c.active = 1 AND c.person_id IN (SELECT person_id FROM deliveries WHERE status = ",
    );
    sql.push(&Status::Held.sql())
        .push(" AND occurrence_id = ")
        .bind(id)
        .push(")");
    for row in sql.query()?.fetch_all(&mut *conn).await? {
        let channel: String = row.try_get(1)?;
        let Some(kind) = channels.iter().copied().find(|k| k.as_str() == channel) else {
            continue;
        };
        contacts
            .entry(row.try_get(0)?)
            .or_default()
            .push((kind, row.try_get(2)?));
    }
    let shares = crate::reach::year_shares(&mut *conn, &config.areas, year).await?;
    candidates.sort_by(|a, b| {
        let share = |c: &Candidate| shares.get(&c.area).copied().unwrap_or(f64::INFINITY);
        a.reached
            .cmp(&b.reached)
            .then(share(a).total_cmp(&share(b)))
            .then(a.person.cmp(&b.person))
    });
    let mut left: BTreeMap<ChannelKind, f64> = super::year(&mut *conn, &config.channels, tz, year)
        .await?
        .into_iter()
        .map(|s| (s.channel, s.left().unwrap_or(f64::INFINITY)))
        .collect();
    let mut prices: HashMap<(ChannelKind, String), f64> = HashMap::new();
    let mut chosen: Vec<(i64, ChannelKind, i64, f64)> = Vec::new();
    let mut cost: BTreeMap<ChannelKind, f64> = BTreeMap::new();
    for c in &candidates {
        let Some(options) = contacts.get(&c.person) else {
            continue;
        };
        let mut priced: Vec<(f64, usize, ChannelKind, i64)> = options
            .iter()
            .map(|&(kind, contact)| {
                let each = *prices
                    .entry((kind, c.area.clone()))
                    .or_insert_with(|| pricer.each(&message, kind, &c.area));
                let preference = channels
                    .iter()
                    .position(|&k| k == kind)
                    .unwrap_or(usize::MAX);
                (each, preference, kind, contact)
            })
            .collect();
        priced.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let fits = priced
            .into_iter()
            .find(|(each, _, kind, _)| left.get(kind).copied().unwrap_or(f64::INFINITY) >= *each);
        if let Some((each, _, kind, contact)) = fits {
            if let Some(room) = left.get_mut(&kind) {
                *room -= each;
            }
            *cost.entry(kind).or_default() += each;
            chosen.push((c.delivery, kind, contact, each));
        }
    }
    for chunk in chosen.chunks(500) {
        let mut update = Sql::new(format!(
            "UPDATE deliveries SET status = {pending}, channel = v.column2, contact_id = v.column3,
                 cost = v.column4
             FROM (VALUES ",
            pending = Status::Pending.sql(),
        ));
        update
            .tuples(chunk, |row, (delivery, kind, contact, each)| {
                row.bind(*delivery)
                    .bind(kind.as_str())
                    .bind(*contact)
                    .bind(*each);
            })
            .push(&format!(
                ") AS v WHERE deliveries.id = v.column1 AND deliveries.status = {}",
                Status::Held.sql()
            ));
        update.query()?.execute(&mut *conn).await?;
    }
    Ok((chosen.len() as u64, cost))
}
