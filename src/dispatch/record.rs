//! Writing what happened to each claimed delivery, by group commit: each send waits for its
//! own record, and the sender holding the writer commits every outcome queued meanwhile in one
//! transaction (the sends among them in one `UPDATE … FROM (VALUES …)`, one insert of attempts,
//! one of reach rows, one upsert of counts, in key order so concurrent writers cannot
//! deadlock). A crash therefore leaves at most the sends in flight unrecorded.
//!
//! Every change is guarded by the claim token: a worker whose lease passed and whose row
//! another worker took writes nothing ([`Outcome::LeaseLost`]). Owns `delivery_attempts`.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use sqlx::{AssertSqlSafe, Row};

use super::claim::ClaimedDelivery;
use crate::audience;
use crate::channel::ChannelKind;
use crate::delivery::{Attempt, Status, log_attempt};
use crate::reach;
use crate::store::{Db, Sql, to_epoch};

/// What became of one claimed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Sent,
    Retrying,
    Failed,
    Dead,
    Skipped,
    Postponed,
    Released,
    /// Another worker took the row over (our lease ran out): nothing recorded by us.
    LeaseLost,
}

/// What a worker records about one claimed delivery.
#[derive(Debug)]
pub(super) enum Record {
    Sent(Sent),
    Change(Change),
}

#[derive(Debug)]
pub(super) struct Sent {
    pub(super) transport: String,
    pub(super) provider_id: Option<String>,
    pub(super) awaits_report: bool,
    /// What the provider charges for it, in đồng (`deliveries.spent`).
    pub(super) cost: f64,
}

/// Any outcome but a send: rarer, written row by row.
#[derive(Debug)]
pub(super) enum Change {
    Retry {
        delay: StdDuration,
        kind: RetryKind,
        detail: String,
    },
    /// A final state other than `sent`; `deactivate` also stops all sending to the contact.
    Finish {
        status: Status,
        reason: String,
        deactivate: Option<String>,
    },
    /// The person is gone from this channel for good: the same delivery goes by `channel`,
    /// through `contact`.
    FallBack {
        channel: ChannelKind,
        contact: i64,
        reason: String,
        /// The contact on the channel left stays active: the channel could not take the
        /// message in time (a quota spent till tomorrow), the person is not gone.
        keep_contact: bool,
    },
}

/// Why a delivery goes back to `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RetryKind {
    /// A temporary failure: counts towards `max_attempts`.
    Failure,
    /// The provider's 429: waits `retry_after`, not a failure.
    RateLimited,
    /// Not sent at all (daily cap, rate-limit turn): not an attempt.
    Postpone,
}

/// An outcome waiting for the next group commit.
struct Queued {
    delivery: ClaimedDelivery,
    record: Record,
    at: DateTime<Utc>,
    answer: tokio::sync::oneshot::Sender<Result<Outcome, String>>,
}

/// Sends recorded per statement (five values each).
const SENT_PER_STATEMENT: usize = 200;

/// The outcomes of one worker, and the one writer that writes them.
pub(super) struct Recorder {
    db: Db,
    tz: Tz,
    queue: Mutex<Vec<Queued>>,
    writer: tokio::sync::Mutex<()>,
}

impl Recorder {
    pub(super) fn new(db: Db, tz: Tz) -> Recorder {
        Recorder {
            db,
            tz,
            queue: Mutex::new(Vec::new()),
            writer: tokio::sync::Mutex::new(()),
        }
    }

    /// Records an outcome, committed together with the outcomes other sends of this worker
    /// reach meanwhile; returns once it is in the database.
    pub(super) async fn record(
        &self,
        d: &ClaimedDelivery,
        record: Record,
        at: DateTime<Utc>,
    ) -> anyhow::Result<Outcome> {
        let (answer, mut answered) = tokio::sync::oneshot::channel();
        self.queue.lock().expect("record queue lock").push(Queued {
            delivery: d.clone(),
            record,
            at,
            answer,
        });
        let _writer = self.writer.lock().await;
        // Another sender may have written ours while we waited for the writer.
        if let Ok(result) = answered.try_recv() {
            return result.map_err(|e| anyhow::anyhow!("recording a delivery: {e}"));
        }
        let batch = std::mem::take(&mut *self.queue.lock().expect("record queue lock"));
        let results = self.write(&batch).await;
        for (queued, result) in batch.into_iter().zip(results) {
            let _ = queued.answer.send(result);
        }
        answered
            .await
            .map_err(|_| anyhow::anyhow!("recording a delivery: the writer went away"))?
            .map_err(|e| anyhow::anyhow!("recording a delivery: {e}"))
    }

    /// Writes a batch of outcomes in one transaction: all of them, or (on a database error)
    /// none, each then answered with the error.
    async fn write(&self, batch: &[Queued]) -> Vec<Result<Outcome, String>> {
        let written: Result<Vec<Outcome>, sqlx::Error> = async {
            let mut tx = self.db.pool.begin().await?;
            let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
            // Sends, by far the most common outcome: a few statements for all of them.
            let sent: Vec<usize> = (0..batch.len())
                .filter(|&i| matches!(batch[i].record, Record::Sent(_)))
                .collect();
            let mut reached = Vec::new();
            for chunk in sent.chunks(SENT_PER_STATEMENT) {
                let recorded = write_sent(&mut tx, batch, chunk).await?;
                for &i in chunk {
                    let q = &batch[i];
                    let ok = recorded.contains(&q.delivery.id);
                    outcomes[i] = Some(if ok {
                        Outcome::Sent
                    } else {
                        Outcome::LeaseLost
                    });
                    // A gateway that reports delivery has only accepted the message: the
                    // person counts as reached when the report says delivered.
                    if ok
                        && matches!(
                            q.record,
                            Record::Sent(Sent {
                                awaits_report: false,
                                ..
                            })
                        )
                    {
                        reached.push(reach::Reached {
                            person_id: q.delivery.person_id,
                            area_code: &q.delivery.area_code,
                            channel: q.delivery.channel,
                            kind: &q.delivery.person_kind,
                            at: q.at,
                        });
                    }
                }
            }
            reach::record_many(&mut tx, &reached, self.tz).await?;
            for (queued, outcome) in batch.iter().zip(outcomes.iter_mut()) {
                if let Record::Change(change) = &queued.record {
                    *outcome =
                        Some(write_change(&mut tx, &queued.delivery, queued.at, change).await?);
                }
            }
            tx.commit().await?;
            Ok(outcomes.into_iter().flatten().collect())
        }
        .await;
        match written {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(e) => batch.iter().map(|_| Err(e.to_string())).collect(),
        }
    }
}

/// Records the sends `chunk` points at in `batch`: one guarded update, one insert of attempts.
/// Returns the ids recorded; the others' leases were lost.
async fn write_sent(
    tx: &mut sqlx::AnyConnection,
    batch: &[Queued],
    chunk: &[usize],
) -> Result<HashSet<i64>, sqlx::Error> {
    let sends: Vec<(&Queued, &Sent)> = chunk
        .iter()
        .filter_map(|&i| match &batch[i].record {
            Record::Sent(sent) => Some((&batch[i], sent)),
            Record::Change(_) => None,
        })
        .collect();
    // VALUES columns are column1… in both SQLite and PostgreSQL: id, provider id, time,
    // awaits a delivery report, claim token, cost.
    let mut update = Sql::new(format!(
        "UPDATE deliveries SET
             status = CASE WHEN deliveries.status = {sending} THEN {sent} ELSE deliveries.status END,
             sent_at = v.column3, updated_at = v.column3, provider_message_id = v.column2,
             lease_until = NULL, claim_token = NULL, last_error = NULL,
             cost = v.column6, spent = v.column6,
             reached_at = CASE WHEN v.column4 = 1 THEN deliveries.reached_at ELSE v.column3 END
         FROM (VALUES ",
        sending = Status::Sending.sql(),
        sent = Status::Sent.sql(),
    ));
    update
        .tuples(&sends, |row, (q, sent)| {
            row.bind(q.delivery.id)
                .bind(sent.provider_id.clone())
                .bind(to_epoch(q.at))
                .bind(i64::from(sent.awaits_report))
                .bind(q.delivery.claim_token.clone())
                .bind(sent.cost);
        })
        .push(
            ") AS v
             WHERE deliveries.id = v.column1 AND deliveries.claim_token = v.column5
             RETURNING deliveries.id",
        );
    let mut recorded = HashSet::new();
    for row in update.query()?.fetch_all(&mut *tx).await? {
        recorded.insert(row.try_get::<i64, _>(0)?);
    }
    let mine: Vec<&(&Queued, &Sent)> = sends
        .iter()
        .filter(|(q, _)| recorded.contains(&q.delivery.id))
        .collect();
    if mine.is_empty() {
        return Ok(recorded);
    }
    let mut attempts =
        Sql::new("INSERT INTO delivery_attempts (delivery_id, at, outcome, detail) VALUES ");
    attempts.tuples(mine, |row, (q, sent)| {
        row.bind(q.delivery.id)
            .bind(to_epoch(q.at))
            .bind(Attempt::Sent.as_str())
            .bind(sent.transport.clone());
    });
    attempts.query()?.execute(&mut *tx).await?;
    Ok(recorded)
}

/// One outcome other than a send, guarded by the claim token.
async fn write_change(
    tx: &mut sqlx::AnyConnection,
    d: &ClaimedDelivery,
    now: DateTime<Utc>,
    change: &Change,
) -> Result<Outcome, sqlx::Error> {
    static RETRY: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE deliveries SET status = {pending}, due_at = $1, updated_at = $2, lease_until = NULL,
                 claim_token = NULL, last_error = $3, failures = failures + $4, attempts = attempts - $5
             WHERE id = $6 AND claim_token = $7",
            pending = Status::Pending.sql(),
        )
    });
    static FINISH: LazyLock<String> = LazyLock::new(|| {
        "UPDATE deliveries SET status = $1, updated_at = $2, lease_until = NULL, claim_token = NULL,
             last_error = $3, failures = failures + $4
         WHERE id = $5 AND claim_token = $6"
            .to_string()
    });
    static FALL_BACK: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE deliveries SET channel = $1, contact_id = $2, status = {pending}, due_at = $3,
                 updated_at = $3, lease_until = NULL, claim_token = NULL, last_error = $4
             WHERE id = $5 AND claim_token = $6",
            pending = Status::Pending.sql(),
        )
    });
    let guarded = match change {
        Change::Retry {
            delay,
            kind,
            detail,
        } => {
            // Never past the end of time, whatever a provider asked for.
            let due = Duration::from_std(*delay)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .unwrap_or(now + Duration::hours(1));
            // A postponement is not an attempt: nothing was sent.
            let (failure, not_an_attempt): (i64, i64) = match kind {
                RetryKind::Failure => (1, 0),
                RetryKind::RateLimited => (0, 0),
                RetryKind::Postpone => (0, 1),
            };
            sqlx::query(AssertSqlSafe(RETRY.as_str()))
                .bind(to_epoch(due))
                .bind(to_epoch(now))
                .bind(detail.clone())
                .bind(failure)
                .bind(not_an_attempt)
        }
        Change::Finish { status, reason, .. } => sqlx::query(AssertSqlSafe(FINISH.as_str()))
            .bind(status.as_str())
            .bind(to_epoch(now))
            .bind(reason.clone())
            .bind(i64::from(*status == Status::Dead)),
        Change::FallBack {
            channel,
            contact,
            reason,
            ..
        } => sqlx::query(AssertSqlSafe(FALL_BACK.as_str()))
            .bind(channel.as_str())
            .bind(*contact)
            .bind(to_epoch(now))
            .bind(format!(
                "{}: {reason}; falling back to {channel}",
                d.channel
            )),
    };
    let updated = guarded
        .bind(d.id)
        .bind(d.claim_token.clone())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if updated == 0 {
        return Ok(Outcome::LeaseLost);
    }
    Ok(match change {
        Change::Retry { kind, detail, .. } => match kind {
            RetryKind::Postpone => Outcome::Postponed,
            RetryKind::Failure => {
                log_attempt(&mut *tx, d.id, now, Attempt::Retryable, detail).await?;
                Outcome::Retrying
            }
            RetryKind::RateLimited => {
                log_attempt(&mut *tx, d.id, now, Attempt::RateLimited, detail).await?;
                Outcome::Retrying
            }
        },
        Change::Finish {
            status,
            reason,
            deactivate,
        } => {
            if let Some(why) = deactivate {
                audience::deactivate_contact(&mut *tx, d.contact_id, why).await?;
            }
            let (attempt, outcome) = match status {
                Status::Dead => (Attempt::Dead, Outcome::Dead),
                Status::Skipped => (Attempt::Skipped, Outcome::Skipped),
                _ => (Attempt::Failed, Outcome::Failed),
            };
            log_attempt(&mut *tx, d.id, now, attempt, reason).await?;
            outcome
        }
        Change::FallBack {
            channel,
            reason,
            keep_contact,
            ..
        } => {
            if !keep_contact {
                audience::deactivate_contact(&mut *tx, d.contact_id, reason).await?;
            }
            log_attempt(
                &mut *tx,
                d.id,
                now,
                Attempt::Failed,
                &format!("{reason}; falling back to {channel}"),
            )
            .await?;
            Outcome::Retrying
        }
    })
}
