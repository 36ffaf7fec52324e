//! Who did what, when. Owns the table `audit_log`; written in the same transaction as the
//! change it describes where there is one, so the log never claims what did not happen.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::store::{Db, from_epoch, to_epoch};

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

/// The latest entries first.
pub async fn latest(db: &Db, limit: i64, offset: i64) -> Result<Vec<Entry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Entry {
                id: r.try_get(0)?,
                at: from_epoch(r.try_get(1)?),
                actor: r.try_get(2)?,
                action: r.try_get(3)?,
                subject: r.try_get(4)?,
                detail: r.try_get(5)?,
            })
        })
        .collect()
}
