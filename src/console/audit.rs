//! Who did what, when. Owns the table `audit_log`; written in the same transaction as the
//! change it describes where there is one, so the log never claims what did not happen.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::store::{Db, Sql, from_epoch, to_epoch};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `user:lan`, `token:bao-cao`, or `cli` for the `loa` commands.
    pub actor: String,
    /// `content.create`, `content.approve`, `session.sign_in`, …
    pub action: String,
    pub subject: Option<String>,
    pub detail: Option<String>,
    /// How many times it happened (repeated failures are one row), the last at `last_at`.
    pub repeats: i64,
    pub last_at: Option<DateTime<Utc>>,
}

pub async fn record<'c, E>(
    conn: E,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: Option<&str>,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(to_epoch(at))
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records something that may repeat (a failed sign-in): within `window` of the last time the
/// same actor did the same to the same subject with the same detail, that row's count goes up
/// instead of a new row being written.
pub async fn record_repeated(
    db: &Db,
    at: DateTime<Utc>,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: Option<&str>,
    window: chrono::Duration,
) -> Result<(), sqlx::Error> {
    let counted = sqlx::query(
        "UPDATE audit_log SET repeats = repeats + 1, last_at = $1
         WHERE id = (SELECT id FROM audit_log
                     WHERE actor = $2 AND action = $3 AND COALESCE(subject, '') = $4
                       AND COALESCE(detail, '') = $5 AND COALESCE(last_at, at) >= $6
                     ORDER BY id DESC LIMIT 1)",
    )
    .bind(to_epoch(at))
    .bind(actor)
    .bind(action)
    .bind(subject.unwrap_or(""))
    .bind(detail.unwrap_or(""))
    .bind(to_epoch(at - window))
    .execute(&db.pool)
    .await?
    .rows_affected();
    if counted == 0 {
        record(&db.pool, at, actor, action, subject, detail).await?;
    }
    Ok(())
}

/// The latest entries first.
pub async fn latest(db: &Db, limit: i64, offset: i64) -> Result<Vec<Entry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, subject, detail, repeats, last_at FROM audit_log
         ORDER BY id DESC LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(entry).collect()
}

/// The latest entries first, starting below entry `before` (from the latest when `None`): a
/// page that stays put while new entries arrive, as an offset would not.
pub async fn older_than(
    db: &Db,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Entry>, sqlx::Error> {
    let mut sql =
        Sql::new("SELECT id, at, actor, action, subject, detail, repeats, last_at FROM audit_log");
    if let Some(id) = before {
        sql.push(" WHERE id < ");
        sql.bind(id);
    }
    sql.push(" ORDER BY id DESC LIMIT ");
    sql.bind(limit);
    let rows = sql.query()?.fetch_all(&db.pool).await?;
    rows.iter().map(entry).collect()
}

fn entry(r: &sqlx::any::AnyRow) -> Result<Entry, sqlx::Error> {
    Ok(Entry {
        id: r.try_get(0)?,
        at: from_epoch(r.try_get(1)?),
        actor: r.try_get(2)?,
        action: r.try_get(3)?,
        subject: r.try_get(4)?,
        detail: r.try_get(5)?,
        repeats: r.try_get(6)?,
        last_at: r.try_get::<Option<i64>, _>(7)?.map(from_epoch),
    })
}
