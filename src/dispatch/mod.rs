//! Workers that move deliveries from `pending` to a final state.
//!
//! A step: expire what is past its occurrence's expiry, claim a batch of due rows under a
//! lease, render and send each, record the outcome. A worker that dies mid-step loses nothing:
//! its rows stay `sending` until its liveness stamp is a few seconds old, then any worker
//! claims them again; a worker that could not renew its stamp in time sends nothing more (it
//! fences itself, see `liveness`). The bound on duplicates after a crash is the rows that were
//! sent but not yet recorded: at most the sends in flight, `dispatch.concurrency`.
//!
//! Before a send: quiet hours (nothing is claimed inside them), the per-person daily cap
//! (the surplus waits for the next day or expires) and the channel's rate limits; a worker
//! that cannot wait for its turn puts the row back, not as a failure. After a failure the
//! `policy` decides: retry, postpone, give up, or fall back to the next channel — unless the
//! transport itself is down (`outage`): then its deliveries wait, spending no attempts, while
//! one probe at a time finds out when it is back.
//!
//! # Layout
//!
//! * this file — [`Dispatcher`], the worker: a step, and one delivery's way through it.
//! * `pump` — the same parts in a continuous flow, as `loa run` drives them.
//! * `claim` — expiry, leases, claiming a batch with everything a send needs.
//! * `liveness` — each worker's stamp on the database's clock, and the fence.
//! * `outage` — transports marked down and probed back; the admins' notices.
//! * `failure` — after a failed send: the policy's decision, falling back, the admins' notice.
//! * `rescue` — a channel down: its deliveries about to expire go by the next channel.
//! * `record` — writing outcomes by group commit, guarded by the claim token.
//! * `policy` — what to do after a failed send: a pure function.
//! * `share` — the rate limits' share among the workers on one database.
//! * `limits` — the limits themselves (`governor` on Loa's clock).
//! * `cap` — the per-person daily cap.
//!
//! Updates the `deliveries` rows the scheduler created; owns `delivery_attempts` and
//! `dispatch_workers`.

mod cap;
mod claim;
mod failure;
mod limits;
mod liveness;
mod outage;
mod outbox;
mod policy;
mod pump;
mod record;
mod rescue;
mod share;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use rand::Rng;

use crate::channel::{BodySettings, ChannelKind};
use crate::channels::{Channel, Outbound, SendError};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::delivery::Status;
pub use crate::delivery::{DeliveryRecord, deliveries};
use crate::metrics::Metrics;
use crate::store::Db;
use crate::templates::{MessageContext, Recipient, Templates};
use cap::DailyCounts;
pub use claim::ClaimedDelivery;
use limits::{Permit, RateLimits};
use liveness::Liveness;
pub use liveness::live_workers;
pub use outage::{Outage, current as current_outages};
use outage::{Outages, Turn};
use record::{Change, Outcome, Record, Recorder, RetryKind, Sent};
use share::Share;

/// What a step's chores did, and whether it may claim.
struct Chores {
    expired: usize,
    outbox: usize,
    may_claim: bool,
}

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
    /// Queued messages of the inbox sent (urgent forwards, hotlines, staff answers).
    pub outbox: usize,
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

/// The transport behind each channel.
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

    /// These and `other`'s; a channel in both keeps `other`'s.
    pub fn with_all(mut self, other: Transports) -> Self {
        self.0.extend(other.0);
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

    /// `sms=log, telegram=log`, for the start-up line.
    pub fn describe(&self) -> String {
        self.kinds()
            .iter()
            .map(|k| format!("{k}={}", self.0[k].name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Longest wait for a rate-limit turn inside a step; beyond it the row goes back to the table.
const MAX_INLINE_WAIT: StdDuration = StdDuration::from_secs(5);

/// A delivery of a channel that is down goes back with this delay; it is claimed again only
/// once the channel is back (or as its probe).
const DOWN_WAIT: StdDuration = StdDuration::from_secs(1);

pub struct Dispatcher {
    db: Db,
    templates: Arc<Templates>,
    transports: Transports,
    clock: SharedClock,
    /// Dispatch settings, the channels, and what message contexts need: campaign, support
    /// lines, honours.
    config: Arc<Config>,
    share: Share,
    liveness: Liveness,
    outages: Outages,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    stopping: AtomicBool,
    /// The queue of sends waiting for a rate-limit turn.
    turns: tokio::sync::Mutex<()>,
    /// When this worker last deleted residents' texts past `inbox.keep_days`.
    last_upkeep: std::sync::Mutex<Option<DateTime<Utc>>>,
}

impl Dispatcher {
    pub fn new(
        db: Db,
        templates: Arc<Templates>,
        transports: Transports,
        clock: SharedClock,
        config: Arc<Config>,
    ) -> Self {
        let limits = RateLimits::new(&config.channels, config.limits.burst, Arc::clone(&clock));
        let worker_id = format!("{:016x}", rand::rng().random::<u64>());
        Dispatcher {
            recorder: Recorder::new(db.clone(), config.campaign.time_zone),
            db,
            templates,
            transports,
            clock,
            config,
            share: Share::new(worker_id.clone(), limits),
            liveness: Liveness::new(worker_id),
            outages: Outages::default(),
            metrics: Arc::new(Metrics::default()),
            stopping: AtomicBool::new(false),
            turns: tokio::sync::Mutex::new(()),
            last_upkeep: std::sync::Mutex::new(None),
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
        self.share.limits.share()
    }

    /// Stops sending: the current step gives back what it has not sent yet.
    pub fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Leaves the worker table, so the others take over this worker's share of the limits.
    pub async fn retire(&self) -> anyhow::Result<()> {
        self.share.retire(&self.db).await
    }

    /// Renews this worker's heartbeat (at most once a second) and its share of the limits.
    pub async fn heartbeat(&self) -> anyhow::Result<()> {
        self.share.heartbeat(&self.db, self.clock.now()).await
    }

    /// Stamps this worker alive on the database's clock, at most once a second. `loa run`
    /// calls it every second apart from the steps, so a long send does not fence the worker;
    /// a worker that cannot stamp for a few seconds stops sending (see `liveness`).
    pub async fn keep_alive(&self) -> anyhow::Result<()> {
        self.liveness.renew(&self.db, self.clock.now()).await
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

    /// One round: the inbox's upkeep and queued messages (urgent forwards first: they go even
    /// in quiet hours), then expire, claim a batch, send it, record every outcome.
    pub async fn step(&self) -> anyhow::Result<StepReport> {
        let Chores {
            expired,
            outbox,
            may_claim,
        } = self.chores().await?;
        if !may_claim {
            return Ok(StepReport {
                expired,
                outbox,
                ..StepReport::default()
            });
        }
        let batch = self.claim().await?;
        let mut report = self.deliver(batch).await?;
        report.expired = expired;
        report.outbox = outbox;
        Ok(report)
    }

    /// What comes before a claim: this worker's stamps, the channels that are down, the
    /// inbox's upkeep and queued messages, expiry; then whether claiming may go on now (not
    /// while joining other workers, fenced, stopping, or in quiet hours).
    async fn chores(&self) -> anyhow::Result<Chores> {
        self.keep_alive().await?;
        self.heartbeat().await?;
        self.outages
            .refresh(&self.db, &self.config.channels)
            .await?;
        let down = self.outages.down();
        if !down.is_empty() {
            let now = self.clock.now();
            let moved = rescue::rescue(&self.db, &down, &self.config.channels, now).await?;
            if moved > 0 {
                tracing::warn!(moved, channels = ?down, "about to expire on a channel that is down: sent by the next channel");
            }
        }
        self.inbox_upkeep().await?;
        let outbox = if self.stopping.load(Ordering::SeqCst) {
            0
        } else {
            self.send_outbox().await?
        };
        let expired = claim::expire(&self.db, self.liveness.worker_id(), self.clock.now()).await?;
        if expired > 0 {
            self.metrics.count("all", "expired", expired as u64);
        }
        let now = self.clock.now();
        let holding = self.share.holding(&self.db, now).await?;
        let fenced = !self.liveness.may_send();
        let may_claim =
            !(holding || fenced || self.stopping.load(Ordering::SeqCst) || self.is_quiet(now));
        Ok(Chores {
            expired,
            outbox,
            may_claim,
        })
    }

    /// Takes due deliveries under a lease: per channel with a transport, no more than this
    /// worker's share of the rate can send before the batch's tail would wait too long; of a
    /// channel that is down, only its probe when this worker takes it.
    pub async fn claim(&self) -> anyhow::Result<Vec<ClaimedDelivery>> {
        self.keep_alive().await?;
        let now = self.clock.now();
        let mut limits: Vec<(ChannelKind, i64)> = Vec::new();
        let mut probes = Vec::new();
        for kind in self.transports.kinds() {
            if !self.outages.is_down(kind) {
                limits.push((kind, self.claim_limit(kind)));
            } else if self.outages.take_probe(&self.db, kind, now).await? {
                tracing::info!(channel = %kind, "probing a channel that is down");
                limits.push((kind, 1));
                probes.push(kind);
            }
        }
        let lease = Duration::seconds(i64::from(self.config.dispatch.lease_seconds));
        let worker = self.liveness.worker_id();
        let batch = claim::claim(
            &self.db,
            worker,
            &self.config.channels,
            &limits,
            now,
            now + lease,
        )
        .await?;
        for kind in probes {
            let probe = batch.iter().find(|d| d.channel == kind).map(|d| d.id);
            self.outages.hold_probe(kind, probe);
        }
        Ok(batch)
    }

    /// Time a send may take: a row whose lease ends sooner goes back unsent, since the lease
    /// could pass while it is on its way and another worker send it again (30 s: above the
    /// transports' timeouts; a quarter of a shorter lease).
    fn send_margin(&self) -> Duration {
        let lease = i64::from(self.config.dispatch.lease_seconds);
        Duration::seconds(30.min(lease / 4))
    }

    /// Deliveries of one channel worth claiming in one step: what this worker's share of the
    /// channel's rate sends in `MAX_INLINE_WAIT`, within the configured batch size.
    fn claim_limit(&self, kind: ChannelKind) -> i64 {
        let limits = &self.share.limits;
        let per_worker = u64::from(limits.overall_rate(kind) / limits.share().max(1)).max(1);
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

    /// Sends a claimed batch, `concurrency` at a time, and records each outcome.
    pub async fn deliver(&self, batch: Vec<ClaimedDelivery>) -> anyhow::Result<StepReport> {
        let mut report = StepReport {
            claimed: batch.len(),
            ..StepReport::default()
        };
        let persons: Vec<i64> = batch.iter().map(|d| d.person_id).collect();
        let today = self.daily_counts(&persons).await?;
        let mut outcomes = futures::stream::iter(batch)
            .map(|delivery| self.deliver_one(delivery, &today))
            .buffer_unordered(self.config.dispatch.concurrency);
        while let Some(outcome) = outcomes.next().await {
            report.add(outcome?);
        }
        Ok(report)
    }

    /// How many messages each of `persons` was sent today, against the daily cap.
    async fn daily_counts(&self, persons: &[i64]) -> Result<DailyCounts, sqlx::Error> {
        DailyCounts::read(
            &self.db,
            persons,
            self.config.dispatch.max_per_person_per_day,
            self.clock.now(),
            self.config.campaign.time_zone,
        )
        .await
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
            return self.finish(&d, Status::Skipped, why, None).await;
        }
        let Some(channel) = self.transports.get(d.channel) else {
            return self
                .finish(&d, Status::Failed, "no transport for this channel", None)
                .await;
        };
        let text = match self.render(&d) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(delivery = d.id, template = %d.template, "cannot render: {e}");
                return self
                    .finish(&d, Status::Failed, &format!("template: {e}"), None)
                    .await;
            }
        };
        if !today.reserve(d.id, d.person_id) {
            self.metrics.count(d.channel.as_str(), "postponed", 1);
            let opening = cap::tomorrows_opening(
                self.clock.now(),
                self.config.campaign.time_zone,
                self.config.dispatch.quiet_hours,
            );
            let wait = (opening - self.clock.now()).to_std().unwrap_or_default();
            return self
                .retry_later(&d, wait, RetryKind::Postpone, "daily cap reached")
                .await;
        }
        if self.outages.is_down(d.channel) && !self.outages.is_probe(d.channel, d.id) {
            // Claimed before the channel went down: it waits with the others.
            self.metrics.count(d.channel.as_str(), "postponed", 1);
            return self
                .retry_later(&d, DOWN_WAIT, RetryKind::Postpone, "channel down")
                .await;
        }
        if let Some(wait) = self.wait_for_turn(d.channel, &d.address).await {
            self.metrics.count(d.channel.as_str(), "postponed", 1);
            return self
                .retry_later(&d, wait, RetryKind::Postpone, "rate limit")
                .await;
        }
        if let Err(e) = self.keep_alive().await {
            tracing::warn!("liveness: {e:#}");
        }
        // The last moment to decide: a worker stopping, or one that could not renew its stamp
        // (it was paused, or the database is out of reach), hands nothing more to a transport.
        if self.stopping.load(Ordering::SeqCst)
            || !self.liveness.may_send_claimed(d.claimed_at)
            || self.clock.now() + self.send_margin() >= d.lease_until
        {
            claim::release(&self.db, &d, self.clock.now()).await?;
            return Ok(Outcome::Released);
        }
        let message = Outbound {
            delivery_id: d.id,
            kind: d.channel,
            address: &d.address,
            text: &text,
        };
        let started = Instant::now();
        let result = tokio::select! {
            biased;
            () = self.liveness.lapsed(d.claimed_at) => {
                tracing::warn!(
                    delivery = d.id,
                    "paused while sending: the send is dropped, the row may be another's now"
                );
                claim::release(&self.db, &d, self.clock.now()).await?;
                return Ok(Outcome::Released);
            }
            result = channel.send(&message) => result,
        };
        self.metrics
            .observe_send(channel.name(), started.elapsed().as_secs_f64());
        // What the send says of the transport. A database error here must not keep the send
        // itself from being recorded: it is logged, and the outcome written below.
        let turn = match &result {
            Err(SendError::Unavailable(why)) => {
                let now = self.clock.now();
                self.outages
                    .failed(&self.db, d.channel, d.id, &d.address, why, now)
                    .await
            }
            Err(SendError::Account(why)) => {
                let now = self.clock.now();
                self.outages
                    .account_refused(&self.db, d.channel, d.id, why, now)
                    .await
            }
            _ => self.outages.answered(&self.db, d.channel, d.id).await,
        };
        let turn = turn.unwrap_or_else(|e| {
            tracing::warn!(channel = %d.channel, "cannot keep the channel's state: {e}");
            Turn::Same
        });
        if let Err(e) = self.announce_turn(d.channel, &turn).await {
            tracing::warn!(channel = %d.channel, "cannot queue the admins' notice: {e:#}");
        }
        self.metrics.count(
            d.channel.as_str(),
            match &result {
                Ok(_) => "sent",
                Err(SendError::RateLimited { .. }) => "rate_limited",
                Err(
                    SendError::Retryable(_) | SendError::Unavailable(_) | SendError::Account(_),
                ) => "retry",
                Err(_) => "failed",
            },
            1,
        );
        match result {
            Ok(receipt) => {
                let sent = Sent {
                    transport: channel.name().to_string(),
                    provider_id: receipt.provider_message_id,
                    awaits_report: channel.reports_delivery(),
                    cost: self.cost_of(d.channel, &text),
                };
                let outcome = self.record(&d, Record::Sent(sent)).await?;
                if outcome == Outcome::LeaseLost {
                    tracing::warn!(
                        delivery = d.id,
                        "lease lost before the send was recorded; another worker owns it"
                    );
                }
                Ok(outcome)
            }
            Err(error) => self.after_failure(&d, channel.name(), error).await,
        }
    }

    /// The text for this delivery: the occurrence's own words for its channel (staff text,
    /// placeholders filled in, never compiled), or its template.
    fn render(&self, d: &ClaimedDelivery) -> Result<String, String> {
        let context = self.context(d);
        match &d.body {
            Some(body) => {
                let channel = self
                    .config
                    .channels
                    .get(d.channel)
                    .ok_or_else(|| format!("no channel {}", d.channel))?;
                self.templates
                    .staff_body(channel, body, &context, &BodySettings::default())
                    .map_err(|e| e.to_string())
            }
            None => self
                .templates
                .render(&d.template, d.channel, &context)
                .map_err(|e| e.to_string()),
        }
    }

    /// What the provider charges for `text` on `kind`, in đồng: its price, by the parts of the
    /// text where it is priced by the part.
    fn cost_of(&self, kind: ChannelKind, text: &str) -> f64 {
        self.config.channels.get(kind).map_or(0.0, |d| {
            d.price
                .cost(d.format.size(text).map(|s| s.segments))
                .unwrap_or(0.0)
        })
    }

    fn context(&self, d: &ClaimedDelivery) -> MessageContext {
        let tz = self.config.campaign.time_zone;
        MessageContext::for_recipient(
            &self.config,
            &Recipient {
                person_name: &d.person_name,
                person_kind: &d.person_kind,
                name_given: d.name_given,
                area_code: &d.area_code,
                area_name: &d.area_name,
                observance: &d.observance,
                theme: &d.theme,
                observance_date: d.observance_date.as_deref().and_then(|s| s.parse().ok()),
                date: d.fire_at.with_timezone(&tz).date_naive(),
            },
        )
    }

    /// Waits for this message's turn under the rate limits, when the clock lets us wait;
    /// `Some(delay)` when the row should rather go back to the table for that long.
    async fn wait_for_turn(&self, channel: ChannelKind, address: &str) -> Option<StdDuration> {
        let limits = &self.share.limits;
        // A chat that just got a message waits its second without holding up the others.
        if let Permit::Wait(wait) = limits.check_chat(channel, address) {
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
            match limits.check_overall(channel) {
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

    async fn retry_later(
        &self,
        d: &ClaimedDelivery,
        delay: StdDuration,
        kind: RetryKind,
        detail: &str,
    ) -> anyhow::Result<Outcome> {
        let change = Change::Retry {
            delay,
            kind,
            detail: detail.to_string(),
        };
        self.record(d, Record::Change(change)).await
    }

    /// A final state other than `sent`; `deactivate` also stops all sending to the contact.
    async fn finish(
        &self,
        d: &ClaimedDelivery,
        status: Status,
        reason: &str,
        deactivate: Option<&str>,
    ) -> anyhow::Result<Outcome> {
        let change = Change::Finish {
            status,
            reason: reason.to_string(),
            deactivate: deactivate.map(str::to_string),
        };
        self.record(d, Record::Change(change)).await
    }

    async fn record(&self, d: &ClaimedDelivery, record: Record) -> anyhow::Result<Outcome> {
        self.recorder.record(d, record, self.clock.now()).await
    }
}
