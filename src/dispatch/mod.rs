//! Workers that move deliveries from `pending` to a final state.
//!
//! A step: expire what is past its occurrence's expiry, claim a batch of due rows under a
//! lease, render and send each, record the outcome. A worker that dies mid-step loses nothing:
//! its rows stay `sending` until the lease passes, then any worker claims them again. The
//! bound on duplicates after a crash is the rows that were sent but not yet recorded.
//!
//! Before a send: quiet hours (nothing is claimed inside them), the per-person daily cap
//! (the surplus waits for the next day or expires) and the channel's rate limits
//! ([`limits`]); a worker that cannot wait for its turn puts the row back, not as a failure.
//!
//! Updates the `deliveries` rows the scheduler created; owns `delivery_attempts` and
//! `dispatch_workers`.

pub mod limits;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use futures::StreamExt;
use rand::Rng;
use sqlx::{AssertSqlSafe, Row};

use crate::audience;
use crate::calendar::local_midnight;
use crate::channels::{Channel, Outbound, SendError};
use crate::clock::SharedClock;
use crate::config::{ChannelKind, Config};
use crate::metrics::Metrics;
use crate::reach;
use crate::store::{Backend, Db, from_epoch, to_epoch};
use crate::templates::{MessageContext, Recipient, Templates};
use limits::{Permit, RateLimits};

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
    /// Put back without a failure: over the daily cap, or its turn under the rate limit has
    /// not come.
    pub postponed: usize,
    /// Given back unsent because the worker is stopping.
    pub released: usize,
}

impl StepReport {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Sent => self.sent += 1,
            Outcome::Retrying => self.retrying += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Dead => self.dead += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Postponed => self.postponed += 1,
            Outcome::Released => self.released += 1,
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
    Postponed,
    Released,
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
    /// The occurrence's channels, comma-separated, in order of preference.
    pub occurrence_channels: String,
    /// `resident` or `organisation`.
    pub person_kind: String,
    pub failures: i64,
    /// The occurrence's own text for this channel (queued content), instead of `template`.
    pub body: Option<String>,
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
    limits: RateLimits,
    metrics: Arc<Metrics>,
    /// This worker's row in `dispatch_workers`.
    worker_id: String,
    last_heartbeat: Mutex<Option<DateTime<Utc>>>,
    /// A worker joining others sends nothing until they have all recounted the workers, so
    /// the shares never add up to more than the limit.
    hold_until: Mutex<Option<DateTime<Utc>>>,
    stopping: AtomicBool,
    /// The queue of sends waiting for a rate-limit turn.
    turns: tokio::sync::Mutex<()>,
    /// Outcomes waiting to be written, and the one writer that writes them (group commit).
    records: Mutex<Vec<QueuedRecord>>,
    record_writer: tokio::sync::Mutex<()>,
}

/// A worker not heard from for this long no longer holds a share of the rate limits.
const WORKER_TIMEOUT_SECONDS: i64 = 10;
/// How often a worker renews its heartbeat and recounts the others.
const HEARTBEAT_SECONDS: i64 = 1;
/// Longest wait for a rate-limit turn inside a step; beyond it the row goes back to the table.
const MAX_INLINE_WAIT: StdDuration = StdDuration::from_secs(5);

impl Dispatcher {
    pub fn new(
        db: Db,
        templates: Arc<Templates>,
        transports: Transports,
        clock: SharedClock,
        config: Arc<Config>,
    ) -> Self {
        let limits = RateLimits::new(config.limits.clone(), Arc::clone(&clock));
        Dispatcher {
            db,
            templates,
            transports,
            clock,
            config,
            limits,
            metrics: Arc::new(Metrics::default()),
            worker_id: format!("{:016x}", rand::rng().random::<u64>()),
            last_heartbeat: Mutex::new(None),
            hold_until: Mutex::new(None),
            stopping: AtomicBool::new(false),
            turns: tokio::sync::Mutex::new(()),
            records: Mutex::new(Vec::new()),
            record_writer: tokio::sync::Mutex::new(()),
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    pub fn transports(&self) -> &Transports {
        &self.transports
    }

    /// Workers sharing the rate limits, as this one last counted them.
    pub fn rate_share(&self) -> u32 {
        self.limits.share()
    }

    /// Stops sending: the current step gives back what it has not sent yet.
    pub fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Leaves the worker table, so the others take over this worker's share of the limits.
    pub async fn retire(&self) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM dispatch_workers WHERE id = $1")
            .bind(&self.worker_id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Renews this worker's heartbeat at most once a second and takes its share of the
    /// rate limits: 1 / (live workers).
    pub async fn heartbeat(&self) -> anyhow::Result<()> {
        let now = self.clock.now();
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
        .execute(&self.db.pool)
        .await?;
        let live: i64 =
            sqlx::query("SELECT COUNT(*) FROM dispatch_workers WHERE heartbeat_at >= $1")
                .bind(to_epoch(now - Duration::seconds(WORKER_TIMEOUT_SECONDS)))
                .fetch_one(&self.db.pool)
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
            .execute(&self.db.pool)
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

    /// Deliveries of one channel worth claiming in one step: what this worker's share of the
    /// channel's rate sends in `MAX_INLINE_WAIT`, within the configured batch size.
    fn claim_limit(&self, kind: ChannelKind) -> i64 {
        let per_worker =
            u64::from(self.limits.overall_rate(kind) / self.limits.share().max(1)).max(1);
        let burst = u64::from(self.config.limits.burst);
        let capacity = if self.clock.real_duration(MAX_INLINE_WAIT).is_some() {
            (per_worker * MAX_INLINE_WAIT.as_secs()).max(burst)
        } else {
            // A clock moved by hand: what may leave at this instant, and no more than a
            // second's worth, so a step per second sends everything it claims.
            burst.min(per_worker)
        };
        capacity.min(u64::from(self.config.dispatch.batch_size)) as i64
    }

    /// Whether `at` falls in the configured quiet hours (campaign time).
    pub fn is_quiet(&self, at: DateTime<Utc>) -> bool {
        let Some((from, to)) = self.config.dispatch.quiet_hours else {
            return false;
        };
        let t = at.with_timezone(&self.config.campaign.time_zone).time();
        if from < to {
            from <= t && t < to
        } else {
            t >= from || t < to
        }
    }

    /// One round: expire, claim a batch, send it, record every outcome.
    pub async fn step(&self) -> anyhow::Result<StepReport> {
        self.heartbeat().await?;
        let expired = self.expire().await?;
        if expired > 0 {
            self.metrics.count("all", "expired", expired as u64);
        }
        let now = self.clock.now();
        let holding = self.holding(now).await?;
        if holding || self.stopping.load(Ordering::SeqCst) || self.is_quiet(now) {
            return Ok(StepReport {
                expired,
                ..StepReport::default()
            });
        }
        let batch = self.claim().await?;
        let mut report = self.deliver(batch).await?;
        report.expired = expired;
        Ok(report)
    }

    /// Whether this worker, new among others, must still wait for them to recount the workers:
    /// until each live worker has divided the rate by at least as many as this one, or at most
    /// the hold's two seconds.
    async fn holding(&self, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let until = *self.hold_until.lock().expect("hold lock");
        let Some(until) = until.filter(|until| now < *until) else {
            return Ok(false);
        };
        let behind: i64 = sqlx::query(
            "SELECT COUNT(*) FROM dispatch_workers WHERE heartbeat_at >= $1 AND share_of < $2",
        )
        .bind(to_epoch(now - Duration::seconds(WORKER_TIMEOUT_SECONDS)))
        .bind(i64::from(self.limits.share()))
        .fetch_one(&self.db.pool)
        .await?
        .try_get(0)?;
        if behind == 0 {
            tracing::debug!(until = %until, "every worker has recounted: sending");
            *self.hold_until.lock().expect("hold lock") = None;
            return Ok(false);
        }
        Ok(true)
    }

    /// Marks `expired` every delivery nobody is working on whose occurrence has expired.
    pub async fn expire(&self) -> anyhow::Result<usize> {
        let now = to_epoch(self.clock.now());
        // Rows of a worker that died mid-step go back to the queue once their lease passes.
        // (Separate from the claim so both statements use the status index.)
        sqlx::query(
            "UPDATE deliveries SET status = 'pending', lease_until = NULL, claim_token = NULL, updated_at = $1
             WHERE status = 'sending' AND lease_until < $1",
        )
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'expired', updated_at = $1,
                 last_error = COALESCE(last_error, 'expired before it could be sent')
             WHERE status = 'pending' AND expires_at <= $1",
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
                 WHERE status = 'pending' AND due_at <= $3 AND channel = $5
                 ORDER BY due_at, id
                 LIMIT $4 {lock})"
        );
        let mut claimed = 0;
        // Per channel, no more than this worker's share of the rate can send before the
        // batch's tail would have to wait too long.
        for &kind in &kinds {
            claimed += sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(&token)
                .bind(to_epoch(lease_until))
                .bind(to_epoch(now))
                .bind(self.claim_limit(kind))
                .bind(kind.as_str())
                .execute(&self.db.pool)
                .await?
                .rows_affected();
        }
        if claimed == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT d.id, d.person_id, d.contact_id, d.channel, c.address, c.active, p.name, p.opted_out_at,
                    p.area_code, a.name, o.template, o.observance, o.fire_at, d.failures, o.observance_date, o.channels, p.kind,
                    CASE WHEN d.channel = 'sms' THEN o.body_sms ELSE o.body_telegram END
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
                    occurrence_channels: r.try_get(15)?,
                    person_kind: r.try_get(16)?,
                    body: r.try_get(17)?,
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
        let today = self.daily_counts(&batch).await?;
        let mut outcomes = futures::stream::iter(batch)
            .map(|delivery| self.deliver_one(delivery, &today))
            .buffer_unordered(self.config.dispatch.concurrency);
        while let Some(outcome) = outcomes.next().await {
            report.add(outcome?);
        }
        Ok(report)
    }

    /// Sends one delivery; a place under the daily cap it took but did not use is given back.
    async fn deliver_one(
        &self,
        d: ClaimedDelivery,
        today: &DailyCounts,
    ) -> anyhow::Result<Outcome> {
        let id = d.id;
        let outcome = self.send_one(d, today).await;
        today.settle(id, matches!(outcome, Ok(Outcome::Sent)));
        outcome
    }

    async fn send_one(&self, d: ClaimedDelivery, today: &DailyCounts) -> anyhow::Result<Outcome> {
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
        let rendered = match &d.body {
            // Staff's own words: placeholders filled in, never compiled as a template.
            Some(body) => Ok(crate::templates::staff::fill(
                body,
                d.channel,
                &self.context(&d),
            )),
            None => self
                .templates
                .render(&d.template, d.channel, &self.context(&d)),
        };
        let text = match rendered {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(delivery = d.id, template = %d.template, "cannot render: {e}");
                return self
                    .finish(&d, "failed", &format!("template: {e}"), None)
                    .await;
            }
        };
        if !today.reserve(d.id, d.person_id) {
            self.metrics.count(d.channel.as_str(), "postponed", 1);
            return self
                .retry_later(
                    &d,
                    self.until_tomorrows_opening(),
                    RetryKind::Postpone,
                    "daily cap reached",
                )
                .await;
        }
        if let Some(wait) = self.wait_for_turn(&d).await {
            self.metrics.count(d.channel.as_str(), "postponed", 1);
            return self
                .retry_later(&d, wait, RetryKind::Postpone, "rate limit")
                .await;
        }
        if self.stopping.load(Ordering::SeqCst) {
            return self.release(&d).await;
        }
        let message = Outbound {
            delivery_id: d.id,
            kind: d.channel,
            address: &d.address,
            text: &text,
        };
        let started = Instant::now();
        let result = channel.send(&message).await;
        self.metrics
            .observe_send(channel.name(), started.elapsed().as_secs_f64());
        self.metrics.count(
            d.channel.as_str(),
            match &result {
                Ok(_) => "sent",
                Err(SendError::RateLimited { .. }) => "rate_limited",
                Err(SendError::Retryable(_)) => "retry",
                Err(_) => "failed",
            },
            1,
        );
        match result {
            Ok(receipt) => {
                self.record_sent(
                    &d,
                    channel.name(),
                    receipt.provider_message_id,
                    channel.reports_delivery(),
                )
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
                    RetryKind::RateLimited,
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
                    self.retry_later(&d, delay, RetryKind::Failure, &reason)
                        .await
                }
            }
            Err(SendError::Recipient(reason)) => {
                tracing::info!(
                    delivery = d.id,
                    contact = d.contact_id,
                    "contact unreachable: {reason}"
                );
                if let Some(outcome) = self.fall_back_to_sms(&d, &reason).await? {
                    return Ok(outcome);
                }
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
        awaits_report: bool,
    ) -> anyhow::Result<Outcome> {
        let outcome = self
            .record(
                d,
                Record::Sent(Sent {
                    transport: transport.to_string(),
                    provider_id,
                    awaits_report,
                }),
            )
            .await?;
        if outcome == Outcome::LeaseLost {
            tracing::warn!(
                delivery = d.id,
                "lease lost before the send was recorded; another worker owns it"
            );
        }
        Ok(outcome)
    }

    /// Telegram refused this person for good: when the occurrence also speaks SMS and the person
    /// has an active number, the same delivery goes by SMS instead — one message, never both.
    async fn fall_back_to_sms(
        &self,
        d: &ClaimedDelivery,
        reason: &str,
    ) -> anyhow::Result<Option<Outcome>> {
        if d.channel != ChannelKind::Telegram
            || !d.occurrence_channels.split(',').any(|c| c == "sms")
        {
            return Ok(None);
        }
        let Some(row) = sqlx::query(
            "SELECT id FROM contacts WHERE person_id = $1 AND channel = 'sms' AND active = 1 ORDER BY id LIMIT 1",
        )
        .bind(d.person_id)
        .fetch_optional(&self.db.pool)
        .await?
        else {
            return Ok(None);
        };
        let sms_contact: i64 = row.try_get(0)?;
        self.record(
            d,
            Record::Change(Change::FallBack {
                sms_contact,
                reason: reason.to_string(),
            }),
        )
        .await
        .map(Some)
    }

    /// Messages each person of the batch has had today (campaign time), in one query.
    async fn daily_counts(&self, batch: &[ClaimedDelivery]) -> anyhow::Result<DailyCounts> {
        let mut persons: Vec<i64> = batch.iter().map(|d| d.person_id).collect();
        persons.sort_unstable();
        persons.dedup();
        let mut counts = HashMap::new();
        if !persons.is_empty() {
            let tz = self.config.campaign.time_zone;
            let today = self.clock.now().with_timezone(&tz).date_naive();
            let placeholders: Vec<String> =
                (2..persons.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT person_id, COUNT(*) FROM deliveries
                 WHERE person_id IN ({}) AND sent_at >= $1 AND status IN ('sent', 'delivered', 'buffered')
                 GROUP BY person_id",
                placeholders.join(", ")
            );
            let mut query =
                sqlx::query(AssertSqlSafe(sql)).bind(to_epoch(local_midnight(today, tz)));
            for p in &persons {
                query = query.bind(*p);
            }
            for row in query.fetch_all(&self.db.pool).await? {
                counts.insert(row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?);
            }
        }
        Ok(DailyCounts {
            cap: i64::from(self.config.dispatch.max_per_person_per_day),
            state: Mutex::new((counts, HashMap::new())),
        })
    }

    /// The delay until the next local day's sending hours open: when a person has had their
    /// share of messages today.
    fn until_tomorrows_opening(&self) -> StdDuration {
        let now = self.clock.now();
        let tz = self.config.campaign.time_zone;
        let today = now.with_timezone(&tz).date_naive();
        let opening = self
            .config
            .dispatch
            .quiet_hours
            .map_or(NaiveTime::MIN, |(_, end)| end);
        let tomorrow = today + Duration::days(1);
        let next = tz
            .from_local_datetime(&tomorrow.and_time(opening))
            .earliest()
            .map_or(local_midnight(tomorrow, tz), |t| t.to_utc());
        (next - now).to_std().unwrap_or_default()
    }

    /// Waits for this message's turn under the rate limits, when the clock lets us wait;
    /// `Some(delay)` when the row should rather go back to the table for that long.
    async fn wait_for_turn(&self, d: &ClaimedDelivery) -> Option<StdDuration> {
        // A chat that just got a message waits its second without holding up the others.
        if let Permit::Wait(wait) = self.limits.check_chat(d.channel, &d.address) {
            return Some(wait.max(StdDuration::from_secs(1)));
        }
        // Senders queue for their turn one at a time: without the queue, waiters woken
        // together race for one permit and the losers wait again.
        let _turn = self.turns.lock().await;
        // A step can send for several seconds: recount the workers as it goes, so a worker
        // that joined meanwhile is given its share in time (at most one query a second).
        if let Err(e) = self.heartbeat().await {
            tracing::warn!("heartbeat: {e:#}");
        }
        let started = self.clock.now();
        loop {
            match self.limits.check_overall(d.channel) {
                Permit::Now => return None,
                Permit::Wait(wait) => {
                    let waited = (self.clock.now() - started).to_std().unwrap_or_default();
                    match self.clock.real_duration(wait) {
                        Some(real) if waited + wait <= MAX_INLINE_WAIT => {
                            // The timer wakes up to a millisecond late, and a late turn is a
                            // lost one (the limiter keeps no credit): sleep short of the turn,
                            // then yield until it comes.
                            match real.checked_sub(StdDuration::from_millis(2)) {
                                Some(most) if !most.is_zero() => tokio::time::sleep(most).await,
                                _ => tokio::task::yield_now().await,
                            }
                        }
                        // A frozen clock never lets the turn come: put the row back.
                        _ => return Some(wait.max(StdDuration::from_secs(1))),
                    }
                }
            }
        }
    }

    /// Gives a claimed row back unsent, as if never claimed.
    async fn release(&self, d: &ClaimedDelivery) -> anyhow::Result<Outcome> {
        sqlx::query(
            "UPDATE deliveries SET status = 'pending', lease_until = NULL, claim_token = NULL,
                 attempts = attempts - 1, updated_at = $1
             WHERE id = $2 AND claim_token = $3",
        )
        .bind(to_epoch(self.clock.now()))
        .bind(d.id)
        .bind(&d.claim_token)
        .execute(&self.db.pool)
        .await?;
        Ok(Outcome::Released)
    }

    async fn retry_later(
        &self,
        d: &ClaimedDelivery,
        delay: StdDuration,
        kind: RetryKind,
        detail: &str,
    ) -> anyhow::Result<Outcome> {
        self.record(
            d,
            Record::Change(Change::Retry {
                delay,
                kind,
                detail: detail.to_string(),
            }),
        )
        .await
    }

    /// A final state other than `sent`; `deactivate` also stops all sending to the contact.
    async fn finish(
        &self,
        d: &ClaimedDelivery,
        status: &'static str,
        reason: &str,
        deactivate: Option<&str>,
    ) -> anyhow::Result<Outcome> {
        self.record(
            d,
            Record::Change(Change::Finish {
                status,
                reason: reason.to_string(),
                deactivate: deactivate.map(str::to_string),
            }),
        )
        .await
    }

    /// Records an outcome, committed together with the outcomes other sends of this worker
    /// reach meanwhile (group commit): one transaction for many rows, while each send still
    /// waits for its own record, so a crash leaves at most the sends in flight unrecorded.
    async fn record(&self, d: &ClaimedDelivery, record: Record) -> anyhow::Result<Outcome> {
        let (answer, mut answered) = tokio::sync::oneshot::channel();
        self.records
            .lock()
            .expect("record queue lock")
            .push(QueuedRecord {
                delivery: d.clone(),
                record,
                at: self.clock.now(),
                answer,
            });
        let _writer = self.record_writer.lock().await;
        // Another sender may have written ours while we waited for the writer.
        if let Ok(result) = answered.try_recv() {
            return result.map_err(|e| anyhow::anyhow!("recording a delivery: {e}"));
        }
        let batch = std::mem::take(&mut *self.records.lock().expect("record queue lock"));
        let results = self.write_records(&batch).await;
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
    async fn write_records(&self, batch: &[QueuedRecord]) -> Vec<Result<Outcome, String>> {
        let written: Result<Vec<Outcome>, sqlx::Error> = async {
            let mut tx = self.db.pool.begin().await?;
            let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
            // Sends, by far the most common outcome, a few statements for all of them.
            let sent: Vec<usize> = (0..batch.len())
                .filter(|&i| matches!(batch[i].record, Record::Sent(_)))
                .collect();
            let mut reached = Vec::new();
            for chunk in sent.chunks(SENT_PER_STATEMENT) {
                let recorded = self.write_sent(&mut tx, batch, chunk).await?;
                for &i in chunk {
                    let (q, ok) = (&batch[i], recorded.contains(&batch[i].delivery.id));
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
            reach::record_many(&mut tx, &reached, self.config.campaign.time_zone).await?;
            for (queued, outcome) in batch.iter().zip(outcomes.iter_mut()) {
                if let Record::Change(change) = &queued.record {
                    *outcome = Some(
                        self.write_change(&mut tx, &queued.delivery, queued.at, change)
                            .await?,
                    );
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

    /// Records the sends `chunk` points at in `batch`: one guarded update, one insert of
    /// attempts, the reach rows. Returns the ids recorded; the others' leases were lost.
    async fn write_sent(
        &self,
        tx: &mut sqlx::AnyConnection,
        batch: &[QueuedRecord],
        chunk: &[usize],
    ) -> Result<std::collections::HashSet<i64>, sqlx::Error> {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = i * 5;
                format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5
                )
            })
            .collect();
        // VALUES columns are column1… in both SQLite and PostgreSQL: id, provider id, time,
        // awaits a delivery report, claim token.
        let sql = format!(
            "UPDATE deliveries SET
                 status = CASE WHEN deliveries.status = 'sending' THEN 'sent' ELSE deliveries.status END,
                 sent_at = v.column3, updated_at = v.column3, provider_message_id = v.column2,
                 lease_until = NULL, claim_token = NULL, last_error = NULL,
                 reached_at = CASE WHEN v.column4 = 1 THEN deliveries.reached_at ELSE v.column3 END
             FROM (VALUES {}) AS v
             WHERE deliveries.id = v.column1 AND deliveries.claim_token = v.column5
             RETURNING deliveries.id",
            values.join(", ")
        );
        let mut update = sqlx::query(AssertSqlSafe(sql));
        for &i in chunk {
            let (d, at) = (&batch[i].delivery, batch[i].at);
            let Record::Sent(Sent {
                provider_id,
                awaits_report,
                ..
            }) = &batch[i].record
            else {
                continue;
            };
            update = update
                .bind(d.id)
                .bind(provider_id.clone())
                .bind(to_epoch(at))
                .bind(i64::from(*awaits_report))
                .bind(d.claim_token.clone());
        }
        let mut recorded = std::collections::HashSet::new();
        for row in update.fetch_all(&mut *tx).await? {
            recorded.insert(row.try_get::<i64, _>(0)?);
        }
        let mine: Vec<&QueuedRecord> = chunk
            .iter()
            .map(|&i| &batch[i])
            .filter(|q| recorded.contains(&q.delivery.id))
            .collect();
        if mine.is_empty() {
            return Ok(recorded);
        }
        let values: Vec<String> = (0..mine.len())
            .map(|i| {
                let p = i * 3;
                format!("(${}, ${}, 'sent', ${})", p + 1, p + 2, p + 3)
            })
            .collect();
        let mut attempts = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO delivery_attempts (delivery_id, at, outcome, detail) VALUES {}",
            values.join(", ")
        )));
        for q in &mine {
            let Record::Sent(Sent { transport, .. }) = &q.record else {
                continue;
            };
            attempts = attempts
                .bind(q.delivery.id)
                .bind(to_epoch(q.at))
                .bind(transport.clone());
        }
        attempts.execute(&mut *tx).await?;
        Ok(recorded)
    }

    /// One outcome. Every change is guarded by the claim token: a worker whose lease passed
    /// and whose row another worker took writes nothing (`LeaseLost`).
    async fn write_change(
        &self,
        tx: &mut sqlx::AnyConnection,
        d: &ClaimedDelivery,
        now: DateTime<Utc>,
        change: &Change,
    ) -> Result<Outcome, sqlx::Error> {
        let guarded = match change {
            Change::Retry {
                delay,
                kind,
                detail,
            } => {
                let due = now + Duration::from_std(*delay).unwrap_or(Duration::hours(1));
                // A postponement is not an attempt: nothing was sent.
                let (failure, not_an_attempt) = match kind {
                    RetryKind::Failure => (1, 0),
                    RetryKind::RateLimited => (0, 0),
                    RetryKind::Postpone => (0, 1),
                };
                sqlx::query(
                    "UPDATE deliveries SET status = 'pending', due_at = $1, updated_at = $2, lease_until = NULL,
                         claim_token = NULL, last_error = $3, failures = failures + $6,
                         attempts = attempts - $7
                     WHERE id = $4 AND claim_token = $5",
                )
                .bind(to_epoch(due))
                .bind(to_epoch(now))
                .bind(detail.clone())
                .bind(d.id)
                .bind(d.claim_token.clone())
                .bind(failure)
                .bind(not_an_attempt)
            }
            Change::Finish { status, reason, .. } => sqlx::query(
                "UPDATE deliveries SET status = $1, updated_at = $2, lease_until = NULL, claim_token = NULL,
                     last_error = $3, failures = failures + $6
                 WHERE id = $4 AND claim_token = $5",
            )
            .bind(*status)
            .bind(to_epoch(now))
            .bind(reason.clone())
            .bind(d.id)
            .bind(d.claim_token.clone())
            .bind(i64::from(*status == "dead")),
            Change::FallBack {
                sms_contact,
                reason,
            } => sqlx::query(
                "UPDATE deliveries SET channel = 'sms', contact_id = $1, status = 'pending', due_at = $2,
                     updated_at = $2, lease_until = NULL, claim_token = NULL, last_error = $3
                 WHERE id = $4 AND claim_token = $5",
            )
            .bind(*sms_contact)
            .bind(to_epoch(now))
            .bind(format!("telegram: {reason}; falling back to SMS")),
        };
        // FallBack binds the row's id and token last; the others did above.
        let guarded = match change {
            Change::FallBack { .. } => guarded.bind(d.id).bind(d.claim_token.clone()),
            _ => guarded,
        };
        if guarded.execute(&mut *tx).await?.rows_affected() == 0 {
            return Ok(Outcome::LeaseLost);
        }
        Ok(match change {
            Change::Retry { kind, detail, .. } => match kind {
                RetryKind::Postpone => Outcome::Postponed,
                RetryKind::Failure => {
                    log_attempt(&mut *tx, d.id, now, "retryable", detail).await?;
                    Outcome::Retrying
                }
                RetryKind::RateLimited => {
                    log_attempt(&mut *tx, d.id, now, "rate_limited", detail).await?;
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
                log_attempt(&mut *tx, d.id, now, status, reason).await?;
                match *status {
                    "dead" => Outcome::Dead,
                    "skipped" => Outcome::Skipped,
                    _ => Outcome::Failed,
                }
            }
            Change::FallBack { reason, .. } => {
                audience::deactivate_contact(&mut *tx, d.contact_id, reason).await?;
                log_attempt(
                    &mut *tx,
                    d.id,
                    now,
                    "failed",
                    &format!("{reason}; falling back to SMS"),
                )
                .await?;
                Outcome::Retrying
            }
        })
    }
}

/// The daily cap within one step: messages each person has had today, counting those this
/// step has reserved a place for (two deliveries of one person can be in one batch).
struct DailyCounts {
    cap: i64,
    /// (messages per person today, person of each delivery holding a reserved place).
    state: Mutex<(HashMap<i64, i64>, HashMap<i64, i64>)>,
}

impl DailyCounts {
    /// Takes a place for `delivery`; false when its person has had their share today.
    fn reserve(&self, delivery: i64, person: i64) -> bool {
        let mut state = self.state.lock().expect("daily counts lock");
        let (counts, reserved) = &mut *state;
        let count = counts.entry(person).or_default();
        if *count >= self.cap {
            return false;
        }
        *count += 1;
        reserved.insert(delivery, person);
        true
    }

    /// Keeps the place of a delivery that was sent; gives back any other's.
    fn settle(&self, delivery: i64, sent: bool) {
        let mut state = self.state.lock().expect("daily counts lock");
        let (counts, reserved) = &mut *state;
        if let Some(person) = reserved.remove(&delivery)
            && !sent
        {
            *counts.entry(person).or_default() -= 1;
        }
    }
}

/// Sends recorded per statement (five values each).
const SENT_PER_STATEMENT: usize = 200;

/// What a worker records about one claimed delivery.
#[derive(Debug)]
enum Record {
    Sent(Sent),
    Change(Change),
}

#[derive(Debug)]
struct Sent {
    transport: String,
    provider_id: Option<String>,
    awaits_report: bool,
}

/// Any outcome but a send: rarer, written row by row.
#[derive(Debug)]
enum Change {
    Retry {
        delay: StdDuration,
        kind: RetryKind,
        detail: String,
    },
    /// A final state other than `sent`; `deactivate` also stops all sending to the contact.
    Finish {
        status: &'static str,
        reason: String,
        deactivate: Option<String>,
    },
    /// Telegram refused the person for good: the same delivery goes by SMS.
    FallBack { sms_contact: i64, reason: String },
}

/// An outcome waiting for the next group commit.
struct QueuedRecord {
    delivery: ClaimedDelivery,
    record: Record,
    at: DateTime<Utc>,
    answer: tokio::sync::oneshot::Sender<Result<Outcome, String>>,
}

/// Why a delivery goes back to `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryKind {
    /// A temporary failure: counts towards `max_attempts`.
    Failure,
    /// The provider's 429: waits `retry_after`, not a failure.
    RateLimited,
    /// Not sent at all (daily cap, rate-limit turn): not an attempt.
    Postpone,
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

/// What a gateway's delivery report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The delivery moved to this status.
    Updated(&'static str),
    /// Nothing to change (a report of submission, or an older report after a final one).
    Unchanged,
    UnknownDelivery,
}

/// Applies an SMS delivery report, by Kannel's DLR type: 1 delivered, 2 failed, 4 buffered,
/// 8 submitted to the SMSC, 16 rejected by the SMSC. A delivered SMS counts the person as
/// reached. A report names an SMS delivery or it is unknown: an SMS gateway's callback must
/// never mark a Telegram message delivered or failed.
pub async fn record_delivery_report(
    db: &Db,
    config: &Config,
    delivery_id: i64,
    dlr: u32,
    at: DateTime<Utc>,
) -> anyhow::Result<ReportOutcome> {
    let Some(row) = sqlx::query(
        "SELECT d.status, d.person_id, p.area_code, d.channel, p.kind FROM deliveries d
         JOIN persons p ON p.id = d.person_id WHERE d.id = $1 AND d.channel = 'sms'",
    )
    .bind(delivery_id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(ReportOutcome::UnknownDelivery);
    };
    let status: String = row.try_get(0)?;
    let person_id: i64 = row.try_get(1)?;
    let area_code: String = row.try_get(2)?;
    let channel = ChannelKind::parse(&row.try_get::<String, _>(3)?).unwrap_or(ChannelKind::Sms);
    let kind: String = row.try_get(4)?;
    let new_status = match dlr {
        1 => "delivered",
        2 | 16 => "failed",
        4 => "buffered",
        _ => return Ok(ReportOutcome::Unchanged),
    };
    // Final states stay final. A report can beat the worker that sent the message to the
    // database (the gateway answers, the SMSC reports at once): a `sending` row takes it, and
    // the worker's own record keeps it.
    if !matches!(status.as_str(), "sending" | "sent" | "buffered") || status == new_status {
        return Ok(ReportOutcome::Unchanged);
    }
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "UPDATE deliveries SET status = $1, updated_at = $2,
             delivered_at = CASE WHEN $1 = 'delivered' THEN $2 ELSE delivered_at END,
             reached_at = CASE WHEN $1 = 'delivered' THEN $2 ELSE reached_at END,
             last_error = CASE WHEN $1 = 'failed' THEN $3 ELSE last_error END
         WHERE id = $4",
    )
    .bind(new_status)
    .bind(to_epoch(at))
    .bind(format!("delivery report {dlr}"))
    .bind(delivery_id)
    .execute(&mut *tx)
    .await?;
    log_attempt(
        &mut *tx,
        delivery_id,
        at,
        new_status,
        &format!("delivery report {dlr}"),
    )
    .await?;
    if new_status == "delivered" {
        reach::record(
            &mut tx,
            person_id,
            &area_code,
            channel,
            &kind,
            at,
            config.campaign.time_zone,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ReportOutcome::Updated(new_status))
}

/// One line of the delivery log export.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryLogLine {
    pub id: i64,
    pub fire_at: DateTime<Utc>,
    pub schedule_id: String,
    pub observance: String,
    pub person_name: String,
    pub area_code: String,
    pub channel: String,
    pub address: String,
    pub status: String,
    pub attempts: i64,
    pub sent_at: Option<DateTime<Utc>>,
    pub reached_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Deliveries of the occurrences that fired in `[from, until)`, in order, for the export.
pub async fn delivery_log(
    db: &Db,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<DeliveryLogLine>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.id, o.fire_at, o.schedule_id, o.observance, p.name, p.area_code, d.channel, c.address,
                d.status, d.attempts, d.sent_at, d.reached_at, d.last_error
         FROM deliveries d
         JOIN occurrences o ON o.id = d.occurrence_id
         JOIN persons p ON p.id = d.person_id
         JOIN contacts c ON c.id = d.contact_id
         WHERE o.fire_at >= $1 AND o.fire_at < $2
         ORDER BY o.fire_at, d.id",
    )
    .bind(to_epoch(from))
    .bind(to_epoch(until))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeliveryLogLine {
                id: r.try_get(0)?,
                fire_at: from_epoch(r.try_get(1)?),
                schedule_id: r.try_get(2)?,
                observance: r.try_get(3)?,
                person_name: r.try_get(4)?,
                area_code: r.try_get(5)?,
                channel: r.try_get(6)?,
                address: r.try_get(7)?,
                status: r.try_get(8)?,
                attempts: r.try_get(9)?,
                sent_at: r.try_get::<Option<i64>, _>(10)?.map(from_epoch),
                reached_at: r.try_get::<Option<i64>, _>(11)?.map(from_epoch),
                last_error: r.try_get(12)?,
            })
        })
        .collect()
}
