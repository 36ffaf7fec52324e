//! Workers that move deliveries from `pending` to a final state.
//!
//! A step: expire what is past its occurrence's expiry, claim a batch of due rows under a
//! lease, render and send each, record the outcome. A worker that dies mid-step loses nothing:
//! its rows stay `sending` until the lease passes, then any worker claims them again. The
//! bound on duplicates after a crash is the rows that were sent but not yet recorded.
//!
//! Updates the `deliveries` rows the scheduler created; owns `delivery_attempts`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use rand::Rng;
use sqlx::{AssertSqlSafe, Row};

use crate::audience;
use crate::channels::{Channel, Outbound, SendError};
use crate::clock::SharedClock;
use crate::config::{ChannelKind, Config};
use crate::reach;
use crate::store::{Backend, Db, from_epoch, to_epoch};
use crate::templates::{MessageContext, Recipient, Templates};

/// What one step did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub claimed: usize,
    pub sent: usize,
    /// Rate-limited or temporarily failed: back to `pending` for later.
    pub retrying: usize,
    /// Refused for good (`failed`) or out of attempts (`dead`).
    pub failed: usize,
    pub dead: usize,
    pub expired: usize,
    /// Opted out or contact deactivated since the fan-out.
    pub skipped: usize,
}

impl StepReport {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Sent => self.sent += 1,
            Outcome::Retrying => self.retrying += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Dead => self.dead += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::LeaseLost => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Retrying,
    Failed,
    Dead,
    Skipped,
    /// Another worker took the row over (our lease ran out): nothing recorded by us.
    LeaseLost,
}

/// A delivery this worker holds, with everything needed to render and send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub claim_token: String,
    pub person_id: i64,
    pub contact_id: i64,
    pub channel: ChannelKind,
    pub address: String,
    pub contact_active: bool,
    pub opted_out: bool,
    pub person_name: String,
    pub area_code: String,
    pub area_name: String,
    pub template: String,
    pub observance: String,
    pub fire_at: DateTime<Utc>,
    /// The observance's first day (YYYY-MM-DD), for "days until" in templates.
    pub observance_date: Option<String>,
    pub failures: i64,
}

/// The transport behind each channel kind.
#[derive(Clone, Default)]
pub struct Transports(HashMap<ChannelKind, Arc<dyn Channel>>);

impl Transports {
    pub fn new() -> Self {
        Transports::default()
    }

    pub fn with(mut self, kind: ChannelKind, channel: Arc<dyn Channel>) -> Self {
        self.0.insert(kind, channel);
        self
    }

    pub fn get(&self, kind: ChannelKind) -> Option<&Arc<dyn Channel>> {
        self.0.get(&kind)
    }

    pub fn kinds(&self) -> Vec<ChannelKind> {
        let mut kinds: Vec<_> = self.0.keys().copied().collect();
        kinds.sort();
        kinds
    }

    /// `telegram=log, sms=log`, for the start-up line.
    pub fn describe(&self) -> String {
        self.kinds()
            .iter()
            .map(|k| format!("{k}={}", self.0[k].name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub struct Dispatcher {
    db: Db,
    templates: Arc<Templates>,
    transports: Transports,
    clock: SharedClock,
    /// Dispatch settings, and what message contexts need: campaign, support lines, honours.
    config: Arc<Config>,
}

impl Dispatcher {
    pub fn new(
        db: Db,
        templates: Arc<Templates>,
        transports: Transports,
        clock: SharedClock,
        config: Arc<Config>,
    ) -> Self {
        Dispatcher {
            db,
            templates,
            transports,
            clock,
            config,
        }
    }

    /// One round: expire, claim a batch, send it, record every outcome.
    pub async fn step(&self) -> anyhow::Result<StepReport> {
        let expired = self.expire().await?;
        let batch = self.claim().await?;
        let mut report = self.deliver(batch).await?;
        report.expired = expired;
        Ok(report)
    }

    /// Marks `expired` every delivery nobody is working on whose occurrence has expired.
    pub async fn expire(&self) -> anyhow::Result<usize> {
        let now = to_epoch(self.clock.now());
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'expired', lease_until = NULL, claim_token = NULL, updated_at = $1,
                 last_error = COALESCE(last_error, 'expired before it could be sent')
             WHERE expires_at <= $1 AND (status = 'pending' OR (status = 'sending' AND lease_until < $1))",
        )
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() as usize)
    }

    /// Takes up to `batch_size` due deliveries (or ones whose lease ran out) under a lease.
    pub async fn claim(&self) -> anyhow::Result<Vec<ClaimedDelivery>> {
        let kinds = self.transports.kinds();
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let token = format!("{:016x}", rand::rng().random::<u64>());
        let lease_until = now + Duration::seconds(i64::from(self.config.dispatch.lease_seconds));
        // Channel names come from a closed enum, so they are written inline.
        let channel_list = kinds
            .iter()
            .map(|k| format!("'{}'", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let lock = match self.db.backend {
            // Several processes on one PostgreSQL: each takes rows no one else has locked.
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            // SQLite has one writer at a time: the UPDATE is atomic on its own.
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE deliveries SET status = 'sending', claim_token = $1, lease_until = $2,
                 attempts = attempts + 1, updated_at = $3
             WHERE id IN (
                 SELECT id FROM deliveries
                 WHERE channel IN ({channel_list})
                   AND ((status = 'pending' AND due_at <= $3) OR (status = 'sending' AND lease_until < $3))
                 ORDER BY due_at, id
                 LIMIT $4 {lock})"
        );
        let claimed = sqlx::query(AssertSqlSafe(sql))
            .bind(&token)
            .bind(to_epoch(lease_until))
            .bind(to_epoch(now))
            .bind(i64::from(self.config.dispatch.batch_size))
            .execute(&self.db.pool)
            .await?
            .rows_affected();
        if claimed == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT d.id, d.person_id, d.contact_id, d.channel, c.address, c.active, p.name, p.opted_out_at,
                    p.area_code, a.name, o.template, o.observance, o.fire_at, d.failures, o.observance_date
             FROM deliveries d
             JOIN contacts c ON c.id = d.contact_id
             JOIN persons p ON p.id = d.person_id
             JOIN areas a ON a.code = p.area_code
             JOIN occurrences o ON o.id = d.occurrence_id
             WHERE d.claim_token = $1
             ORDER BY d.due_at, d.id",
        )
        .bind(&token)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let channel: String = r.try_get(3)?;
                Ok(ClaimedDelivery {
                    id: r.try_get(0)?,
                    claim_token: token.clone(),
                    person_id: r.try_get(1)?,
                    contact_id: r.try_get(2)?,
                    channel: ChannelKind::parse(&channel).ok_or_else(|| {
                        anyhow::anyhow!("unknown channel {channel:?} in deliveries")
                    })?,
                    address: r.try_get(4)?,
                    contact_active: r.try_get::<i64, _>(5)? != 0,
                    person_name: r.try_get(6)?,
                    opted_out: r.try_get::<Option<i64>, _>(7)?.is_some(),
                    area_code: r.try_get(8)?,
                    area_name: r.try_get(9)?,
                    template: r.try_get(10)?,
                    observance: r.try_get(11)?,
                    fire_at: from_epoch(r.try_get(12)?),
                    failures: r.try_get(13)?,
                    observance_date: r.try_get(14)?,
                })
            })
            .collect()
    }

    /// Sends a claimed batch, `concurrency` at a time, and records each outcome.
    pub async fn deliver(&self, batch: Vec<ClaimedDelivery>) -> anyhow::Result<StepReport> {
        let mut report = StepReport {
            claimed: batch.len(),
            ..StepReport::default()
        };
        let mut outcomes = futures::stream::iter(batch)
            .map(|delivery| self.deliver_one(delivery))
            .buffer_unordered(self.config.dispatch.concurrency);
        while let Some(outcome) = outcomes.next().await {
            report.add(outcome?);
        }
        Ok(report)
    }

    async fn deliver_one(&self, d: ClaimedDelivery) -> anyhow::Result<Outcome> {
        if d.opted_out || !d.contact_active {
            let why = if d.opted_out {
                "person opted out"
            } else {
                "contact inactive"
            };
            return self.finish(&d, "skipped", why, None).await;
        }
        let Some(channel) = self.transports.get(d.channel) else {
            return self
                .finish(&d, "failed", "no transport for this channel", None)
                .await;
        };
        let text = match self
            .templates
            .render(&d.template, d.channel, &self.context(&d))
        {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(delivery = d.id, template = %d.template, "cannot render: {e}");
                return self
                    .finish(&d, "failed", &format!("template: {e}"), None)
                    .await;
            }
        };
        let message = Outbound {
            delivery_id: d.id,
            kind: d.channel,
            address: &d.address,
            text: &text,
        };
        match channel.send(&message).await {
            Ok(receipt) => {
                self.record_sent(&d, channel.name(), receipt.provider_message_id)
                    .await
            }
            Err(SendError::RateLimited { retry_after }) => {
                tracing::warn!(
                    delivery = d.id,
                    ?retry_after,
                    "rate limited by {}",
                    channel.name()
                );
                self.retry_later(
                    &d,
                    retry_after,
                    false,
                    "rate_limited",
                    &format!("retry after {}s", retry_after.as_secs()),
                )
                .await
            }
            Err(SendError::Retryable(reason)) => {
                tracing::warn!(
                    delivery = d.id,
                    "temporary failure on {}: {reason}",
                    channel.name()
                );
                if d.failures + 1 >= i64::from(self.config.dispatch.max_attempts) {
                    self.finish(&d, "dead", &reason, None).await
                } else {
                    let delay = self.backoff(d.failures);
                    self.retry_later(&d, delay, true, "retryable", &reason)
                        .await
                }
            }
            Err(SendError::Recipient(reason)) => {
                tracing::info!(
                    delivery = d.id,
                    contact = d.contact_id,
                    "contact unreachable: {reason}"
                );
                self.finish(&d, "failed", &reason, Some(&reason)).await
            }
            Err(SendError::Message(reason)) => {
                tracing::warn!(delivery = d.id, "message refused: {reason}");
                self.finish(&d, "failed", &reason, None).await
            }
        }
    }

    fn context(&self, d: &ClaimedDelivery) -> MessageContext {
        let tz = self.config.campaign.time_zone;
        MessageContext::for_recipient(
            &self.config,
            &Recipient {
                person_name: &d.person_name,
                area_code: &d.area_code,
                area_name: &d.area_name,
                observance: &d.observance,
                observance_date: d.observance_date.as_deref().and_then(|s| s.parse().ok()),
                date: d.fire_at.with_timezone(&tz).date_naive(),
            },
        )
    }

    /// Exponential from `retry_base_seconds`, with ±20 % jitter so a gateway coming back is
    /// not hit by every retry at once.
    fn backoff(&self, failures: i64) -> StdDuration {
        let base = f64::from(self.config.dispatch.retry_base_seconds)
            * 2f64.powi(failures.clamp(0, 16) as i32);
        let jitter = rand::rng().random_range(0.8..1.2);
        StdDuration::from_secs_f64((base * jitter).min(6.0 * 3600.0))
    }

    async fn record_sent(
        &self,
        d: &ClaimedDelivery,
        transport: &str,
        provider_id: Option<String>,
    ) -> anyhow::Result<Outcome> {
        let now = self.clock.now();
        let mut tx = self.db.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE deliveries SET status = 'sent', sent_at = $1, updated_at = $1, provider_message_id = $2,
                 lease_until = NULL, claim_token = NULL, last_error = NULL
             WHERE id = $3 AND claim_token = $4",
        )
        .bind(to_epoch(now))
        .bind(provider_id)
        .bind(d.id)
        .bind(&d.claim_token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            tracing::warn!(
                delivery = d.id,
                "lease lost before the send was recorded; another worker owns it"
            );
            return Ok(Outcome::LeaseLost);
        }
        log_attempt(&mut *tx, d.id, now, "sent", transport).await?;
        reach::record(
            &mut *tx,
            d.person_id,
            &d.area_code,
            d.channel,
            now,
            self.config.campaign.time_zone,
        )
        .await?;
        tx.commit().await?;
        Ok(Outcome::Sent)
    }

    async fn retry_later(
        &self,
        d: &ClaimedDelivery,
        delay: StdDuration,
        counts_as_failure: bool,
        outcome: &str,
        detail: &str,
    ) -> anyhow::Result<Outcome> {
        let now = self.clock.now();
        let due = now + Duration::from_std(delay).unwrap_or(Duration::hours(1));
        let mut tx = self.db.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE deliveries SET status = 'pending', due_at = $1, updated_at = $2, lease_until = NULL,
                 claim_token = NULL, last_error = $3, failures = failures + $4
             WHERE id = $5 AND claim_token = $6",
        )
        .bind(to_epoch(due))
        .bind(to_epoch(now))
        .bind(detail)
        .bind(i64::from(counts_as_failure))
        .bind(d.id)
        .bind(&d.claim_token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Ok(Outcome::LeaseLost);
        }
        log_attempt(&mut *tx, d.id, now, outcome, detail).await?;
        tx.commit().await?;
        Ok(Outcome::Retrying)
    }

    /// A final state other than `sent`; `deactivate` also stops all sending to the contact.
    async fn finish(
        &self,
        d: &ClaimedDelivery,
        status: &str,
        reason: &str,
        deactivate: Option<&str>,
    ) -> anyhow::Result<Outcome> {
        let now = self.clock.now();
        let mut tx = self.db.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE deliveries SET status = $1, updated_at = $2, lease_until = NULL, claim_token = NULL,
                 last_error = $3, failures = failures + $4
             WHERE id = $5 AND claim_token = $6",
        )
        .bind(status)
        .bind(to_epoch(now))
        .bind(reason)
        .bind(i64::from(status == "dead"))
        .bind(d.id)
        .bind(&d.claim_token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Ok(Outcome::LeaseLost);
        }
        if let Some(why) = deactivate {
            audience::deactivate_contact(&mut *tx, d.contact_id, why).await?;
        }
        log_attempt(&mut *tx, d.id, now, status, reason).await?;
        tx.commit().await?;
        Ok(match status {
            "dead" => Outcome::Dead,
            "skipped" => Outcome::Skipped,
            _ => Outcome::Failed,
        })
    }
}

async fn log_attempt<'c, E>(
    executor: E,
    delivery_id: i64,
    at: DateTime<Utc>,
    outcome: &str,
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
    .bind(outcome)
    .bind(detail)
    .execute(executor)
    .await?;
    Ok(())
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
