//! The inbox's messages (`inbound::outbox`): urgent forwards to contact points and admins, the
//! hotlines to their senders, staff answers. Sent at the start of every step, before the
//! campaign's deliveries, under the same rate limits; forwards and hotlines go even in quiet
//! hours, answers wait for them to end. A temporary failure is tried again (doubling from
//! `dispatch.retry_base_seconds`, up to `dispatch.max_attempts`), a 429 after its
//! `retry_after`; a refusal is final. Also here: deleting residents' texts past
//! `inbox.keep_days`, once an hour, and delivery attempts and audit details past
//! `privacy.keep_months`, once a day per database.

use std::time::Duration as StdDuration;

use chrono::Duration;

use super::Dispatcher;
use crate::channels::{Outbound, SendError};
use crate::inbound::{inbox, outbox};

/// Queued messages one step sends at most.
const OUTBOX_BATCH: i64 = 20;

impl Dispatcher {
    /// Sends the queued messages that are due; returns how many went out.
    pub(super) async fn send_outbox(&self) -> anyhow::Result<usize> {
        // A worker that lost its liveness claims nothing (another may have sent these).
        if !self.liveness.may_send() {
            return Ok(0);
        }
        let now = self.clock.now();
        let lease = Duration::seconds(i64::from(self.config.dispatch.lease_seconds));
        let queued = outbox::claim(
            &self.db,
            now,
            now + lease,
            OUTBOX_BATCH,
            !self.is_quiet(now),
        )
        .await?;
        let mut sent = 0;
        for q in queued {
            let now = self.clock.now();
            let transport = self
                .config
                .channels
                .parse(&q.channel)
                .and_then(|kind| self.transports.get(kind).map(|t| (kind, t)));
            let Some((kind, transport)) = transport else {
                outbox::failed(&self.db, &q, "no transport for this channel", now).await?;
                continue;
            };
            // Checked for each message: a batch sent one by one can outlast a pause.
            if !self.liveness.may_send() {
                outbox::retry(&self.db, &q, now, false, "worker paused").await?;
                continue;
            }
            // A channel that is down would hold every later message up to its timeout, each
            // step: the message waits until the channel is back.
            if self.outages.is_down(kind) {
                let later = now + Duration::minutes(1);
                outbox::retry(&self.db, &q, later, false, "channel down").await?;
                continue;
            }
            // The log channel prints what it sends: a forward holds a resident's number.
            if q.kind == outbox::Kind::Alert && transport.name() == "log" {
                tracing::warn!(
                    outbox = q.id,
                    "urgent forward not sent: Telegram is not configured"
                );
                outbox::failed(&self.db, &q, "no Telegram transport", now).await?;
                continue;
            }
            if let Some(wait) = self.wait_for_turn(kind, &q.address).await {
                outbox::retry(&self.db, &q, now + wait_duration(wait), false, "rate limit").await?;
                continue;
            }
            let message = Outbound {
                delivery_id: 0,
                kind,
                address: &q.address,
                text: &q.text,
            };
            let result = transport.send(&message).await;
            self.metrics.count(
                kind.as_str(),
                if result.is_ok() { "sent" } else { "failed" },
                1,
            );
            let now = self.clock.now();
            match result {
                Ok(_) => {
                    outbox::sent(&self.db, &q, now).await?;
                    sent += 1;
                }
                Err(SendError::RateLimited { retry_after }) => {
                    let reason = format!("retry after {}s", retry_after.as_secs());
                    outbox::retry(
                        &self.db,
                        &q,
                        now + wait_duration(retry_after),
                        false,
                        &reason,
                    )
                    .await?;
                }
                Err(
                    SendError::Retryable(reason)
                    | SendError::Unavailable(reason)
                    | SendError::Account(reason),
                ) => {
                    tracing::warn!(outbox = q.id, "temporary failure: {reason}");
                    // A call for help (or the admins' notice of an outage) is tried until it
                    // goes (every few minutes at most): an hour of network trouble must not
                    // lose it.
                    if !matches!(q.kind, outbox::Kind::Alert | outbox::Kind::Notice)
                        && q.attempts + 1 >= self.config.dispatch.max_attempts
                    {
                        outbox::failed(&self.db, &q, &reason, now).await?;
                    } else {
                        let base = u64::from(self.config.dispatch.retry_base_seconds);
                        let after = StdDuration::from_secs(base << q.attempts.min(10))
                            .min(super::policy::MAX_BACKOFF);
                        outbox::retry(&self.db, &q, now + wait_duration(after), true, &reason)
                            .await?;
                    }
                }
                Err(SendError::Recipient(reason) | SendError::Message(reason)) => {
                    if q.kind == outbox::Kind::Alert {
                        tracing::error!(outbox = q.id, "an urgent forward was refused: {reason}");
                    } else {
                        tracing::warn!(outbox = q.id, "refused: {reason}");
                    }
                    outbox::failed(&self.db, &q, &reason, now).await?;
                }
            }
        }
        Ok(sent)
    }

    /// Deletes residents' texts older than `inbox.keep_days`, and lists uploaded for import more
    /// than an hour ago, at most once an hour per worker.
    pub(super) async fn inbox_upkeep(&self) -> anyhow::Result<()> {
        let now = self.clock.now();
        {
            let mut last = self.last_upkeep.lock().expect("not poisoned");
            if last.is_some_and(|at| now - at < Duration::hours(1) && now >= at) {
                return Ok(());
            }
            *last = Some(now);
        }
        let before = inbox::retention_cutoff(now, self.config.inbox.keep_days);
        let deleted = inbox::forget_before(&self.db, before).await?;
        if deleted > 0 {
            tracing::info!(deleted, "residents' texts past inbox.keep_days deleted");
        }
        // Lists uploaded in the console and never confirmed: kept an hour, no longer.
        crate::console::imports::purge_expired(&self.db, now).await?;
        let keep_months = self.config.privacy.keep_months;
        if let Some(purged) = crate::privacy::retention::daily(&self.db, keep_months, now).await? {
            tracing::info!(
                attempts = purged.attempts,
                audit_details = purged.audit_details,
                "delivery attempts and audit details past privacy.keep_months deleted"
            );
        }
        Ok(())
    }
}

/// A wait as the clock adds it: at most a day (a provider's absurd `retry_after` must not
/// overflow the clock).
fn wait_duration(wait: StdDuration) -> Duration {
    Duration::from_std(wait)
        .unwrap_or(Duration::seconds(1))
        .min(Duration::days(1))
}
