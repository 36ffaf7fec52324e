//! What is kept only as long as it serves: delivery attempts (what the gateway said, each try)
//! and the details of audit entries are deleted `privacy.keep_months` after they happened,
//! once a day. The counts stay: a delivery keeps its number of attempts and its outcome, an
//! audit entry who did what and when. (Residents' texts have their own, shorter retention:
//! `inbox.keep_days`.)

use chrono::{DateTime, Duration, Months, Utc};
use serde::Serialize;

use crate::store::{Db, to_epoch};

/// The `upkeep_runs` row of the daily purge.
const RUN_NAME: &str = "retention";

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Purged {
    pub attempts: u64,
    pub audit_details: u64,
}

/// The instant before which records are purged: `keep_months` calendar months before `now`.
pub fn cutoff(now: DateTime<Utc>, keep_months: u32) -> DateTime<Utc> {
    now.checked_sub_months(Months::new(keep_months))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Attempts deleted per statement: the first purge of a large database must not hold
/// SQLite's one writer (and the dispatcher behind it) for long.
const PURGE_BATCH: i64 = 5_000;

/// Deletes delivery attempts, and clears audit details, from before `before`.
pub async fn purge(db: &Db, before: DateTime<Utc>) -> Result<Purged, sqlx::Error> {
    let before = to_epoch(before);
    let mut attempts = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM delivery_attempts WHERE id IN (
                 SELECT id FROM delivery_attempts WHERE at < $1 ORDER BY at LIMIT $2)",
        )
        .bind(before)
        .bind(PURGE_BATCH)
        .execute(&db.pool)
        .await?
        .rows_affected();
        attempts += deleted;
        if deleted < PURGE_BATCH as u64 {
            break;
        }
    }
    // A repeated entry (failed sign-ins) is as old as its last repeat. The audit log is small
    // beside the attempts: one statement.
    let audit_details = sqlx::query(
        "UPDATE audit_log SET detail = NULL WHERE detail IS NOT NULL AND COALESCE(last_at, at) < $1",
    )
    .bind(before)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(Purged {
        attempts,
        audit_details,
    })
}

/// The purge, once a day per database: of several processes on one database, the one that
/// first moves the day's mark runs it; `None` when it was not this one's turn.
pub async fn daily(
    db: &Db,
    keep_months: u32,
    now: DateTime<Utc>,
) -> Result<Option<Purged>, sqlx::Error> {
    let at = to_epoch(now);
    // Also when the mark is ahead of the clock (a virtual clock set back): the day is counted
    // from now.
    let claimed = sqlx::query(
        "INSERT INTO upkeep_runs (name, at) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET at = excluded.at
         WHERE upkeep_runs.at <= $3 OR upkeep_runs.at > $4",
    )
    .bind(RUN_NAME)
    .bind(at)
    .bind(to_epoch(now - Duration::days(1)))
    .bind(at)
    .execute(&db.pool)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(None);
    }
    purge(db, cutoff(now, keep_months)).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_months_is_a_calendar_year() {
        let now: DateTime<Utc> = "2026-12-04T01:00:00Z".parse().unwrap();
        assert_eq!(
            cutoff(now, 12),
            "2025-12-04T01:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
