//! A worker's liveness, on the database's clock, and the fence that keeps a worker that lost
//! it from sending.
//!
//! Every worker stamps `dispatch_workers.alive_at` with the database's own clock about once a
//! second (a task of `loa run`, and every step and send). A worker not stamped for
//! [`RELEASE_AFTER_MS`] is dead to the others: the next step of any worker puts its claimed
//! rows back in the queue (`claim::release_orphans`), so a `kill -9` costs seconds, not the
//! lease.
//!
//! A worker cannot know when the database wrote its stamp, only when it asked: it counts its
//! silence on its own monotonic clock from that moment, which is never later than the stamp,
//! and stops sending after [`FENCE_AFTER`], well before the others may take its rows. So a
//! process that was paused (SIGSTOP, a frozen VM, a swap storm) and wakes up cannot send what
//! another worker has taken over: it gives its rows back unsent. The two clocks never need
//! to agree; only their rates do. A monotonic clock may stand still while a VM is paused or a
//! host suspended, so each renewal also asks the database how long it has not heard from this
//! worker: past the fence, too, what the worker held stays unsent. What a worker had already
//! handed to a transport when it was paused is the documented duplicate bound: the sends in
//! flight.
//!
//! Owns `dispatch_workers.alive_at` and `deliveries.claimed_by` (see `share` for the rest of
//! the worker table).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;

use crate::store::{Db, to_epoch};

/// How often a worker stamps its liveness.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// A worker whose last stamp was asked for this long ago sends nothing more until it renews.
pub const FENCE_AFTER: Duration = Duration::from_secs(3);
/// A worker not stamped for this long (database clock) has its claimed rows released.
pub const RELEASE_AFTER_MS: i64 = 5_000;

// A worker stops sending at least two seconds before anyone may release its rows, and renews
// well within its fence.
const _: () = assert!(FENCE_AFTER.as_millis() as i64 + 2_000 <= RELEASE_AFTER_MS);
const _: () = assert!(RENEW_EVERY.as_millis() * 2 < FENCE_AFTER.as_millis());

pub(super) struct Liveness {
    worker_id: String,
    stamps: Mutex<Stamps>,
    /// One renewal at a time: concurrent sends that find it due do not all write.
    renewing: tokio::sync::Mutex<()>,
}

impl Liveness {
    pub(super) fn new(worker_id: String) -> Liveness {
        Liveness {
            worker_id,
            stamps: Mutex::new(Stamps::default()),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Stamps this worker alive if its last stamp is [`RENEW_EVERY`] old; `loa_now` (Loa's
    /// clock) only fills the rate share's column for a new row.
    pub(super) async fn renew(&self, db: &Db, loa_now: DateTime<Utc>) -> anyhow::Result<()> {
        if self.since_confirmed().is_some_and(|d| d < RENEW_EVERY) {
            return Ok(());
        }
        let Ok(_one) = self.renewing.try_lock() else {
            return Ok(());
        };
        let asked = Asked::now();
        // The database's view of the silence too: a paused VM or a suspended host may not
        // advance this process's monotonic clock while the database's went on.
        let gap_sql = format!(
            "SELECT {now} - alive_at FROM dispatch_workers WHERE id = $1",
            now = db.backend.now_millis()
        );
        let db_gap: Option<Option<i64>> = sqlx::query_scalar(AssertSqlSafe(gap_sql))
            .bind(&self.worker_id)
            .fetch_optional(&db.pool)
            .await?;
        let sql = format!(
            "INSERT INTO dispatch_workers (id, heartbeat_at, alive_at) VALUES ($1, $2, {now})
             ON CONFLICT (id) DO UPDATE SET alive_at = {now}",
            now = db.backend.now_millis()
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(&self.worker_id)
            .bind(to_epoch(loa_now))
            .execute(&db.pool)
            .await?;
        let mut stamps = self.stamps.lock().expect("liveness lock");
        // The fence was closed for a while (paused, database out of reach): what was claimed
        // before may have been taken over, so only rows claimed from now on may go.
        let silent_for_the_database = db_gap
            .flatten()
            .is_some_and(|ms| ms >= FENCE_AFTER.as_millis() as i64);
        if silent_for_the_database
            || stamps
                .asked
                .is_none_or(|last| last.elapsed() >= FENCE_AFTER)
        {
            stamps.unbroken_since = Some(asked.monotonic);
        }
        stamps.asked = Some(asked);
        Ok(())
    }

    /// Whether this worker may claim rows: its last confirmed stamp was asked for less than
    /// [`FENCE_AFTER`] ago.
    pub(super) fn may_send(&self) -> bool {
        self.since_confirmed().is_some_and(|d| d < FENCE_AFTER)
    }

    /// Whether this worker may hand a row it claimed at `claimed` to a transport: the fence
    /// is open, and has not closed since the claim — a worker that wakes up from a pause
    /// stamps itself alive again at once, but what it held before may be another's by now.
    pub(super) fn may_send_claimed(&self, claimed: Instant) -> bool {
        let stamps = self.stamps.lock().expect("liveness lock");
        stamps.asked.is_some_and(|at| at.elapsed() < FENCE_AFTER)
            && stamps.unbroken_since.is_some_and(|since| claimed >= since)
    }

    /// Resolves as soon as a row claimed at `claimed` may no longer go. Checked first on every
    /// poll, so a process that wakes from a pause drops a send it had not handed over yet
    /// instead of finishing it (another worker may have sent that row meanwhile).
    pub(super) fn lapsed(&self, claimed: Instant) -> impl Future<Output = ()> + '_ {
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        std::future::poll_fn(move |cx| {
            if !self.may_send_claimed(claimed) {
                return Poll::Ready(());
            }
            let left = FENCE_AFTER
                .saturating_sub(self.since_confirmed().unwrap_or_default())
                .max(Duration::from_millis(20));
            let sleep = timer.insert(Box::pin(tokio::time::sleep(left)));
            if sleep.as_mut().poll(cx).is_ready() {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
    }

    fn since_confirmed(&self) -> Option<Duration> {
        self.stamps
            .lock()
            .expect("liveness lock")
            .asked
            .map(|at| at.elapsed())
    }
}

/// When a stamp was asked for, on two clocks: the monotonic one does not jump, but may stand
/// still while a VM is paused or a host suspended; the wall clock goes on (and may jump).
#[derive(Clone, Copy)]
struct Asked {
    monotonic: Instant,
    wall: std::time::SystemTime,
}

impl Asked {
    fn now() -> Asked {
        Asked {
            monotonic: Instant::now(),
            wall: std::time::SystemTime::now(),
        }
    }

    /// The longer of the two clocks' readings since (a wall clock set back reads nothing).
    fn elapsed(&self) -> Duration {
        let wall = self.wall.elapsed().unwrap_or_default();
        self.monotonic.elapsed().max(wall)
    }
}

/// A worker's stamps.
#[derive(Default)]
struct Stamps {
    /// When it asked for its last stamp that the database confirmed.
    asked: Option<Asked>,
    /// When it asked for the first stamp of its current unbroken run: its fence has stayed
    /// open since.
    unbroken_since: Option<Instant>,
}

/// Workers stamped alive within [`RELEASE_AFTER_MS`] by the database's clock: whether some
/// `loa run` is working on this database now.
pub async fn live_workers(db: &Db) -> Result<i64, sqlx::Error> {
    let sql = format!(
        "SELECT COUNT(*) FROM dispatch_workers WHERE alive_at >= {now} - {RELEASE_AFTER_MS}",
        now = db.backend.now_millis()
    );
    sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(&db.pool)
        .await
}
