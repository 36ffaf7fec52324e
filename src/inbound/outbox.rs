//! Messages Loa sends that are not campaign deliveries: an urgent text forwarded to the
//! contact point and the admins (`alert`), the hotlines to its sender (`hotlines`), a staff
//! answer (`answer`), a notice to the admins about Loa itself (`notice`). Owns the table `inbox_outbox`.
//!
//! Queued here, sent by the dispatcher in its next step (`dispatch::outbox`) under the
//! channels' rate limits. A claim takes rows under a lease, as deliveries are claimed, so two
//! workers never send one row; a temporary failure comes back later, a permanent one stays
//! `failed`. Alerts, hotlines and notices go at any hour; answers wait for the end of quiet hours.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::channel::ChannelKind;
use crate::store::{Db, from_epoch, to_epoch};

/// What a queued message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An urgent text forwarded to a contact point or an admin, with the sender's number.
    Alert,
    /// The hotlines, to the sender of an urgent text.
    Hotlines,
    /// A staff answer to a text.
    Answer,
    /// A message to the admins about Loa itself (a channel down, back up). No personal data.
    Notice,
}

impl Kind {
    pub fn sql(self) -> &'static str {
        match self {
            Kind::Alert => "alert",
            Kind::Hotlines => "hotlines",
            Kind::Answer => "answer",
            Kind::Notice => "notice",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "alert" => Kind::Alert,
            "hotlines" => Kind::Hotlines,
            "notice" => Kind::Notice,
            _ => Kind::Answer,
        }
    }
}

/// A queued message's states, spelled once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Sent,
    Failed,
}

impl Status {
    pub fn sql(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Failed => "failed",
        }
    }
}

/// A queued message claimed for sending.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: i64,
    pub kind: Kind,
    pub channel: String,
    pub address: String,
    pub text: String,
    pub attempts: u32,
    pub claim_token: String,
}

/// Queues a message, in the caller's transaction.
pub async fn queue(
    tx: &mut sqlx::AnyConnection,
    inbox_id: Option<i64>,
    kind: Kind,
    channel: ChannelKind,
    address: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO inbox_outbox (inbox_id, kind, channel, address, text, status, due_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(inbox_id)
    .bind(kind.sql())
    .bind(channel.as_str())
    .bind(address)
    .bind(text)
    .bind(Status::Pending.sql())
    .bind(to_epoch(now))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Claims up to `limit` due messages until `lease_until`; answers only when `answers` (outside
/// quiet hours). Alerts first, then hotlines, then answers, oldest first.
pub async fn claim(
    db: &Db,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
    answers: bool,
) -> anyhow::Result<Vec<Queued>> {
    let token = uuid_like();
    let kinds = if answers {
        "('alert', 'hotlines', 'notice', 'answer')"
    } else {
        "('alert', 'hotlines', 'notice')"
    };
    // The outer conditions are checked again on the row itself, so a worker that raced another
    // to the same row takes nothing (PostgreSQL re-reads a row updated meanwhile).
    let sql = format!(
        "UPDATE inbox_outbox SET claim_token = $1, lease_until = $2
         WHERE status = $3 AND due_at <= $4 AND (lease_until IS NULL OR lease_until < $4)
           AND id IN (SELECT id FROM inbox_outbox
                      WHERE status = $3 AND due_at <= $4 AND kind IN {kinds}
                        AND (lease_until IS NULL OR lease_until < $4)
                      ORDER BY CASE kind WHEN 'alert' THEN 0 WHEN 'hotlines' THEN 1 WHEN 'notice' THEN 2 ELSE 3 END, id
                      LIMIT $5)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&token)
        .bind(to_epoch(lease_until))
        .bind(Status::Pending.sql())
        .bind(to_epoch(now))
        .bind(limit)
        .execute(&db.pool)
        .await?;
    let rows = sqlx::query(
        "SELECT id, kind, channel, address, text, attempts FROM inbox_outbox
         WHERE claim_token = $1 ORDER BY CASE kind WHEN 'alert' THEN 0 WHEN 'hotlines' THEN 1 WHEN 'notice' THEN 2 ELSE 3 END, id",
    )
    .bind(&token)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Queued {
                id: r.try_get(0)?,
                kind: Kind::parse(&r.try_get::<String, _>(1)?),
                channel: r.try_get(2)?,
                address: r.try_get(3)?,
                text: r.try_get(4)?,
                attempts: u32::try_from(r.try_get::<i64, _>(5)?).unwrap_or(u32::MAX),
                claim_token: token.clone(),
            })
        })
        .collect()
}

/// A claim token: unique enough among workers (time and a random number).
fn uuid_like() -> String {
    format!(
        "ob-{}-{:016x}",
        Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        rand::random::<u64>()
    )
}

/// The message went out.
pub async fn sent(db: &Db, q: &Queued, now: DateTime<Utc>) -> anyhow::Result<()> {
    finish(db, q, Status::Sent, None, now).await
}

/// The message is refused for good, or out of attempts; `reason` holds no address.
pub async fn failed(db: &Db, q: &Queued, reason: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
    finish(db, q, Status::Failed, Some(reason), now).await
}

async fn finish(
    db: &Db,
    q: &Queued,
    status: Status,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE inbox_outbox SET status = $1, last_error = $2, sent_at = $3, attempts = attempts + 1,
                lease_until = NULL, claim_token = NULL
         WHERE id = $4 AND claim_token = $5",
    )
    .bind(status.sql())
    .bind(reason)
    .bind((status == Status::Sent).then(|| to_epoch(now)))
    .bind(q.id)
    .bind(&q.claim_token)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Back to the queue until `due`; `counted` when it was a failed attempt (not a rate limit).
pub async fn retry(
    db: &Db,
    q: &Queued,
    due: DateTime<Utc>,
    counted: bool,
    reason: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE inbox_outbox SET due_at = $1, attempts = attempts + $2, last_error = $3,
                lease_until = NULL, claim_token = NULL
         WHERE id = $4 AND claim_token = $5",
    )
    .bind(to_epoch(due))
    .bind(i64::from(counted))
    .bind(reason)
    .bind(q.id)
    .bind(&q.claim_token)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Deletes messages queued before `before` and those of texts that came before it.
pub(super) async fn forget_before(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    before: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM inbox_outbox
         WHERE created_at < $1 OR inbox_id IN (SELECT id FROM inbox WHERE at < $1)",
    )
    .bind(to_epoch(before))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The answers queued for a text, oldest first: when, status, the text sent.
pub(super) async fn answers_of(
    db: &Db,
    inbox_id: i64,
) -> Result<Vec<(DateTime<Utc>, String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT created_at, status, text FROM inbox_outbox
         WHERE inbox_id = $1 AND kind = 'answer' ORDER BY id",
    )
    .bind(inbox_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((from_epoch(r.try_get(0)?), r.try_get(1)?, r.try_get(2)?)))
        .collect()
}
