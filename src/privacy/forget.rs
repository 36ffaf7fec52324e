//! `loa person forget`: a person's name, contacts, tags and texts deleted, in one transaction,
//! while every count stays what it was.
//!
//! Their deliveries, reach rows and engagements move to a new anonymous person of the same area
//! and kind: no name, no tag, no birth year, no consent, one inactive placeholder contact (the
//! deliveries' `contact_id` must point somewhere), marked `forgotten_at`. One anonymous person
//! per forgotten person, not one per area: reports count *distinct* persons over several
//! periods (`COUNT(DISTINCT person_id)` over day, month and year reach rows), split by channel
//! per person, and count engagements per person; two forgotten persons merged into one would
//! count once where they counted twice (reached on two days of one range, on two channels), and
//! their deliveries of one occurrence would collide on the key (occurrence, person). A fresh id
//! also leaves nothing that knew the old one (an earlier export, a log line, an audit subject)
//! able to find the history: only the counts remain.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::export::text_ids;
use super::{PrivacyError, Who, find, like_containing, person_traces, traces};
use crate::console::audit;
use crate::store::{Db, Sql, to_epoch};

/// The name of every anonymous person.
pub const ANONYMOUS_NAME: &str = "(đã xoá)";
/// The channel of their placeholder contact: no channel has this name, so nothing is ever
/// sent through it.
pub const PLACEHOLDER_CHANNEL: &str = "forgotten";
/// What a forgotten person's number or name becomes in free text kept for others (an audit
/// detail, a note on an activity).
pub const ERASED: &str = "[đã xoá]";

/// What forgetting did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ForgetReport {
    /// The forgotten person's id (no longer in the database).
    pub person_id: i64,
    pub area_code: String,
    pub contacts: u64,
    pub tags: u64,
    pub deliveries: u64,
    pub reach_rows: u64,
    pub engagements: u64,
    pub texts: u64,
    pub dry_run: bool,
}

/// Forgets the person `who` names, audited as done by `actor`; with `dry_run`, everything is
/// done and then rolled back, so the report says exactly what would happen.
pub async fn forget(
    db: &Db,
    who: &Who,
    actor: &str,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<ForgetReport, PrivacyError> {
    let mut tx = db.pool.begin().await?;
    let person = find(&mut *tx, who).await?;
    let at = to_epoch(now);
    let row = sqlx::query("SELECT area_code, kind, opted_out_at FROM persons WHERE id = $1")
        .bind(person)
        .fetch_one(&mut *tx)
        .await?;
    let (area, kind): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let opted_out_at: Option<i64> = row.try_get(2)?;
    let (name, addresses) = person_traces(&mut tx, person).await?;
    let texts = text_ids(&mut tx, person, &addresses).await?;

    // Stays opted out or not as the person was: an organisation still counts as registered,
    // as the dashboard counted it. It is never sent anything: its only contact is inactive,
    // on no channel, and a queued delivery is skipped for it.
    let anonymous: i64 = sqlx::query(
        "INSERT INTO persons (name, area_code, created_at, opted_out_at, kind, name_given, forgotten_at)
         VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING id",
    )
    .bind(ANONYMOUS_NAME)
    .bind(&area)
    .bind(at)
    .bind(opted_out_at)
    .bind(&kind)
    .bind(at)
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;
    let placeholder: i64 = sqlx::query(
        "INSERT INTO contacts (person_id, channel, address, active, inactive_reason, created_at)
         VALUES ($1, $2, $3, 0, 'forgotten', $4) RETURNING id",
    )
    .bind(anonymous)
    .bind(PLACEHOLDER_CHANNEL)
    .bind(format!("anonymous:{anonymous}"))
    .bind(at)
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;

    // A delivery in the hands of a worker would be recorded under the old id when its send
    // returns: wait for it rather than lose that count.
    let sending: i64 =
        sqlx::query("SELECT COUNT(*) FROM deliveries WHERE person_id = $1 AND status = 'sending'")
            .bind(person)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
    if sending > 0 {
        tx.rollback().await?;
        return Err(PrivacyError::Busy);
    }
    // Errors and attempt details may quote what the gateway said about the number.
    sqlx::query(
        "UPDATE delivery_attempts SET detail = NULL
         WHERE delivery_id IN (SELECT id FROM deliveries WHERE person_id = $1)",
    )
    .bind(person)
    .execute(&mut *tx)
    .await?;
    let deliveries = sqlx::query(
        "UPDATE deliveries SET person_id = $1, contact_id = $2, last_error = NULL
         WHERE person_id = $3",
    )
    .bind(anonymous)
    .bind(placeholder)
    .bind(person)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // A chat that was merged into this person (a shared number) may carry another person
    // row's deliveries.
    sqlx::query(
        "UPDATE deliveries SET contact_id = $1
         WHERE contact_id IN (SELECT id FROM contacts WHERE person_id = $2)",
    )
    .bind(placeholder)
    .bind(person)
    .execute(&mut *tx)
    .await?;
    let reach_rows = moved(&mut tx, "reach", anonymous, person).await?;
    let engagements = moved(&mut tx, "engagements", anonymous, person).await?;

    let text_count = texts.len() as u64;
    for chunk in texts.chunks(500) {
        let mut sql = Sql::new("DELETE FROM inbox_outbox WHERE inbox_id IN (");
        sql.list(chunk.iter().copied()).push(")");
        sql.query()?.execute(&mut *tx).await?;
        let mut sql = Sql::new("DELETE FROM inbox WHERE id IN (");
        sql.list(chunk.iter().copied()).push(")");
        sql.query()?.execute(&mut *tx).await?;
    }
    for (channel, address) in &addresses {
        for table in ["inbox_outbox", "inbox_hotline_replies"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE channel = $1 AND address = $2"
            )))
            .bind(channel)
            .bind(address)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM sms_auto_replies WHERE number = $1")
            .bind(address)
            .execute(&mut *tx)
            .await?;
    }
    // Text kept for others (who did what, a note on an activity) keeps its sense, without them.
    for trace in traces(&name, &addresses) {
        let pattern = like_containing(&trace);
        for (table, column) in [
            ("audit_log", "subject"),
            ("audit_log", "detail"),
            ("offline_activities", "note"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET {column} = REPLACE({column}, $1, $2)
                 WHERE {column} LIKE $3 ESCAPE '\\'"
            )))
            .bind(&trace)
            .bind(ERASED)
            .bind(&pattern)
            .execute(&mut *tx)
            .await?;
        }
    }
    // A list uploaded in the console within the hour may hold the number, inside a workbook
    // Loa cannot search: every list waiting for confirmation goes (the clerk uploads it again).
    sqlx::query("DELETE FROM pending_imports")
        .execute(&mut *tx)
        .await?;

    let tags = sqlx::query("DELETE FROM person_tags WHERE person_id = $1")
        .bind(person)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let contacts = sqlx::query("DELETE FROM contacts WHERE person_id = $1")
        .bind(person)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM persons WHERE id = $1")
        .bind(person)
        .execute(&mut *tx)
        .await?;

    let report = ForgetReport {
        person_id: person,
        area_code: area,
        contacts,
        tags,
        deliveries,
        reach_rows,
        engagements,
        texts: text_count,
        dry_run,
    };
    if dry_run {
        tx.rollback().await?;
        return Ok(report);
    }
    audit::record(
        &mut *tx,
        now,
        actor,
        "person.forget",
        Some(&format!("person:{person}")),
        Some(&format!(
            "{deliveries} deliveries, {reach_rows} reach rows and {engagements} engagements kept without the person; {text_count} texts deleted"
        )),
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}

/// Moves a person's rows of `table` (keyed by person, never twice for a new one) to `to`.
async fn moved(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    to: i64,
    from: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET person_id = $1 WHERE person_id = $2"
    )))
    .bind(to)
    .bind(from)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}
