//! A delivery's states and the outcomes of its attempts: the one spelling of them, in Rust and
//! in SQL. Statements that name a state build it from [`Status::sql`] (a literal, so partial
//! indexes on `status = 'pending'` keep serving them), never from a string typed again.
//!
//! ```text
//! pending ──claim──> sending ──ok──> sent ──report──> delivered | failed | buffered
//!    ^                  │ retry / postpone / fall back to the next channel
//!    └──────────────────┘
//! sending ──> failed | dead | skipped ;  pending ──past its expiry──> expired
//! held (over budget) ──an admin──> pending | cancelled ;  held ──past its expiry──> expired
//! ```

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::store::{Db, from_epoch, to_epoch};

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for its time (`due_at`) and a worker.
    Pending,
    /// Claimed by a worker under a lease.
    Sending,
    /// Accepted by the provider.
    Sent,
    /// Reported delivered by an SMS gateway.
    Delivered,
    /// Reported queued on the way (SMSC buffered).
    Buffered,
    /// Refused for good, or reported undelivered.
    Failed,
    /// Out of attempts.
    Dead,
    /// Not sent before its occurrence expired.
    Expired,
    /// Not sent: the person opted out or the contact went inactive after the fan-out.
    Skipped,
    /// Waiting for an admin's decision: its occurrence would take a channel over its yearly
    /// budget (`budget::hold`).
    Held,
    /// Not sent: an admin cancelled its held occurrence, or it was left out of the subset that
    /// fits the budget.
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 11] = [
        Status::Pending,
        Status::Sending,
        Status::Sent,
        Status::Delivered,
        Status::Buffered,
        Status::Failed,
        Status::Dead,
        Status::Expired,
        Status::Skipped,
        Status::Held,
        Status::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Buffered => "buffered",
            Status::Failed => "failed",
            Status::Dead => "dead",
            Status::Expired => "expired",
            Status::Skipped => "skipped",
            Status::Held => "held",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// As a SQL literal: `'pending'`.
    pub fn sql(self) -> String {
        format!("'{}'", self.as_str())
    }

    /// A SQL list for `IN`: `('pending', 'sending')`.
    pub fn sql_list(states: &[Status]) -> String {
        let items: Vec<String> = states.iter().map(|s| s.sql()).collect();
        format!("({})", items.join(", "))
    }

    /// States a delivery is still on its way in: not finished.
    pub const WAITING: [Status; 3] = [Status::Pending, Status::Sending, Status::Held];
    /// States in which the message left (counted by the daily cap).
    pub const OUT: [Status; 3] = [Status::Sent, Status::Delivered, Status::Buffered];
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one attempt came to, as `delivery_attempts.outcome` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Sent,
    /// The provider's 429: waited out, not a failure.
    RateLimited,
    /// A temporary failure: counted towards the attempts.
    Retryable,
    Failed,
    Dead,
    Skipped,
    /// A gateway's delivery report.
    Delivered,
    Buffered,
}

impl Attempt {
    pub const fn as_str(self) -> &'static str {
        match self {
            Attempt::Sent => "sent",
            Attempt::RateLimited => "rate_limited",
            Attempt::Retryable => "retryable",
            Attempt::Failed => "failed",
            Attempt::Dead => "dead",
            Attempt::Skipped => "skipped",
            Attempt::Delivered => "delivered",
            Attempt::Buffered => "buffered",
        }
    }
}

/// One row of `delivery_attempts`.
pub async fn log_attempt<'c, E>(
    executor: E,
    delivery_id: i64,
    at: DateTime<Utc>,
    outcome: Attempt,
    detail: &str,
) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, at, outcome, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(delivery_id)
    .bind(to_epoch(at))
    .bind(outcome.as_str())
    .bind(detail)
    .execute(executor)
    .await?;
    Ok(())
}

/// Deliveries still on their way — (channel, status, how many) — for `/metrics`.
pub async fn waiting(db: &Db) -> Result<Vec<(String, Status, i64)>, sqlx::Error> {
    static WAITING: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT channel, status, COUNT(*) FROM deliveries WHERE status IN {}
             GROUP BY channel, status ORDER BY channel, status",
            Status::sql_list(&Status::WAITING)
        )
    });
    let rows = sqlx::query(sqlx::AssertSqlSafe(WAITING.as_str()))
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .filter_map(|r| {
            let status: String = r.try_get(1).ok()?;
            Some(Ok((
                r.try_get(0).ok()?,
                Status::parse(&status)?,
                r.try_get(2).ok()?,
            )))
        })
        .collect()
}

/// Deliveries still waiting whose time came before `at`: how far behind the workers are.
pub async fn overdue(db: &Db, at: DateTime<Utc>) -> Result<i64, sqlx::Error> {
    static OVERDUE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT COUNT(*) FROM deliveries WHERE status IN {} AND due_at < $1",
            Status::sql_list(&Status::WAITING)
        )
    });
    sqlx::query(sqlx::AssertSqlSafe(OVERDUE.as_str()))
        .bind(to_epoch(at))
        .fetch_one(&db.pool)
        .await?
        .try_get(0)
}

/// A delivery as stored, for reports and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub occurrence_id: i64,
    pub person_id: i64,
    pub channel: String,
    pub status: String,
    pub attempts: i64,
    pub failures: i64,
    pub due_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// Every delivery, in order.
pub async fn deliveries(db: &Db) -> Result<Vec<DeliveryRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, occurrence_id, person_id, channel, status, attempts, failures, due_at, last_error
         FROM deliveries ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeliveryRecord {
                id: r.try_get(0)?,
                occurrence_id: r.try_get(1)?,
                person_id: r.try_get(2)?,
                channel: r.try_get(3)?,
                status: r.try_get(4)?,
                attempts: r.try_get(5)?,
                failures: r.try_get(6)?,
                due_at: from_epoch(r.try_get(7)?),
                last_error: r.try_get(8)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_has_one_spelling() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(
            Status::sql_list(&Status::WAITING),
            "('pending', 'sending', 'held')"
        );
    }

    #[test]
    fn the_migrations_spell_states_as_the_code_does() {
        // Partial indexes and old data migrations name states in SQL files: each such name must
        // be one the code knows.
        for dir in ["migrations/sqlite", "migrations/postgres"] {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for entry in std::fs::read_dir(&root).unwrap() {
                let path = entry.unwrap().path();
                let sql = std::fs::read_to_string(&path).unwrap();
                for part in sql.split("status").skip(1) {
                    let rest = part.trim_start();
                    // `status = 'x'` names one state; `status IN ('x', 'y')` a list.
                    let named: Vec<&str> = if let Some(rest) = rest.strip_prefix('=') {
                        rest.split('\'').skip(1).take(1).collect()
                    } else if let Some(rest) = rest.strip_prefix("IN") {
                        let list = rest.split(')').next().unwrap_or("");
                        list.split('\'').skip(1).step_by(2).collect()
                    } else {
                        continue;
                    };
                    for literal in named {
                        assert!(
                            Status::parse(literal).is_some(),
                            "{}: status {literal:?} is not a state the code knows",
                            path.display()
                        );
                    }
                }
            }
        }
    }
}
