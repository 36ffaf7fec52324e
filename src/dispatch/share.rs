//! Rate sharing across processes: a channel's rate belongs to the account (bot token, gateway
//! login), so every worker on one database takes an equal share of it. Each worker renews a
//! heartbeat row in `dispatch_workers` once a second and divides by the workers heard from in
//! the last ten seconds; a worker joining others holds back until each of them has recounted,
//! so the shares never add up to more than the limit.
//!
//! Owns the table `dispatch_workers`.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use super::limits::RateLimits;
use crate::store::{Db, to_epoch};

/// A worker not heard from for this long no longer holds a share of the rate limits.
const WORKER_TIMEOUT_SECONDS: i64 = 10;
/// How often a worker renews its heartbeat and recounts the others.
const HEARTBEAT_SECONDS: i64 = 1;

/// This worker's place among the workers sharing the rate limits.
pub(super) struct Share {
    /// This worker's row in `dispatch_workers`.
    worker_id: String,
    last_heartbeat: Mutex<Option<DateTime<Utc>>>,
    /// A worker joining others sends nothing until they have all recounted the workers.
    hold_until: Mutex<Option<DateTime<Utc>>>,
    pub(super) limits: RateLimits,
}

impl Share {
    pub(super) fn new(worker_id: String, limits: RateLimits) -> Share {
        Share {
            worker_id,
            last_heartbeat: Mutex::new(None),
            hold_until: Mutex::new(None),
            limits,
        }
    }

    /// Renews this worker's heartbeat at most once a second and takes its share of the rate
    /// limits: 1 / (live workers).
    pub(super) async fn heartbeat(&self, db: &Db, now: DateTime<Utc>) -> anyhow::Result<()> {
        {
            let last = self.last_heartbeat.lock().expect("heartbeat lock");
            if last.is_some_and(|t| now - t < Duration::seconds(HEARTBEAT_SECONDS)) {
                return Ok(());
            }
        }
        sqlx::query(
            "INSERT INTO dispatch_workers (id, heartbeat_at) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )
        .bind(&self.worker_id)
        .bind(to_epoch(now))
        .execute(&db.pool)
        .await?;
        let live: i64 =
            sqlx::query("SELECT COUNT(*) FROM dispatch_workers WHERE heartbeat_at >= $1")
                .bind(to_epoch(now - Duration::seconds(WORKER_TIMEOUT_SECONDS)))
                .fetch_one(&db.pool)
                .await?
                .try_get(0)?;
        let first = self
            .last_heartbeat
            .lock()
            .expect("heartbeat lock")
            .is_none();
        if first && live > 1 {
            *self.hold_until.lock().expect("hold lock") =
                Some(now + Duration::seconds(2 * HEARTBEAT_SECONDS));
        }
        sqlx::query("UPDATE dispatch_workers SET share_of = $1 WHERE id = $2")
            .bind(live)
            .bind(&self.worker_id)
            .execute(&db.pool)
            .await?;
        let before = self.limits.share();
        self.limits.set_share(live.max(1) as u32);
        if before != self.limits.share() {
            tracing::info!(workers = live, "rate limits shared among {live} worker(s)");
            self.limits.forget_idle();
        }
        *self.last_heartbeat.lock().expect("heartbeat lock") = Some(now);
        Ok(())
    }

    /// Whether this worker, new among others, must still wait for them to recount the workers:
    /// until each live worker has divided the rate by at least as many as this one, or at most
    /// the hold's two seconds.
    pub(super) async fn holding(&self, db: &Db, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let until = *self.hold_until.lock().expect("hold lock");
        let Some(until) = until.filter(|until| now < *until) else {
            return Ok(false);
        };
        let behind: i64 = sqlx::query(
            "SELECT COUNT(*) FROM dispatch_workers WHERE heartbeat_at >= $1 AND share_of < $2",
        )
        .bind(to_epoch(now - Duration::seconds(WORKER_TIMEOUT_SECONDS)))
        .bind(i64::from(self.limits.share()))
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?;
        if behind == 0 {
            tracing::debug!(until = %until, "every worker has recounted: sending");
            *self.hold_until.lock().expect("hold lock") = None;
            return Ok(false);
        }
        Ok(true)
    }

    /// Leaves the worker table, so the others take over this worker's share of the limits.
    pub(super) async fn retire(&self, db: &Db) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM dispatch_workers WHERE id = $1")
            .bind(&self.worker_id)
            .execute(&db.pool)
            .await?;
        Ok(())
    }
}
