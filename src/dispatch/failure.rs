//! After a send: what a failure leads to (the retry policy's decision, unless the channel is
//! down), where a delivery falls back to, and the admins' notice when a channel goes down or
//! comes back.

use super::outage::{self, Turn};
use super::policy::{self, Decision, RetryPolicy};
use super::record::{Change, Outcome, Record, RetryKind};
use super::{ClaimedDelivery, DOWN_WAIT, Dispatcher};
use rand::Rng;
use sqlx::Row;

use crate::channel::ChannelKind;
use crate::channels::SendError;
use crate::delivery::Status;

impl Dispatcher {
    /// Acts on the retry policy's decision for a failed send.
    pub(super) async fn after_failure(
        &self,
        d: &ClaimedDelivery,
        transport: &str,
        error: SendError,
    ) -> anyhow::Result<Outcome> {
        let decision = match &error {
            // The transport is down (maybe this very failure marked it): no attempt spent.
            SendError::Unavailable(_) | SendError::Account(_)
                if self.outages.is_down(d.channel) =>
            {
                Decision::Postpone { after: DOWN_WAIT }
            }
            _ => policy::decide(
                &error,
                d.failures,
                &RetryPolicy::from(&self.config.dispatch),
            ),
        };
        match (decision, error) {
            (
                Decision::Postpone { after },
                SendError::Unavailable(why) | SendError::Account(why),
            ) => {
                self.retry_later(
                    d,
                    after,
                    RetryKind::Postpone,
                    &format!("channel down: {why}"),
                )
                .await
            }
            (Decision::Postpone { after }, _) => {
                // A wait that outlasts the message (a daily quota spent till midnight on the
                // observance's day): its next channel now, rather than nothing at all.
                if let Some(outcome) = self.sooner_elsewhere(d, after).await? {
                    return Ok(outcome);
                }
                tracing::warn!(delivery = d.id, ?after, "rate limited by {transport}");
                self.retry_later(
                    d,
                    after,
                    RetryKind::RateLimited,
                    &format!("retry after {}s", after.as_secs()),
                )
                .await
            }
            (Decision::Retry { after }, error) => {
                tracing::warn!(delivery = d.id, "temporary failure on {transport}: {error}");
                // ±20 % so a gateway coming back is not hit by every retry at once.
                let jitter = rand::rng().random_range(0.8..1.2);
                let after = after.mul_f64(jitter).min(policy::MAX_BACKOFF);
                self.retry_later(d, after, RetryKind::Failure, &reason(&error))
                    .await
            }
            (Decision::Dead, error) => {
                tracing::warn!(delivery = d.id, "temporary failure on {transport}: {error}");
                self.finish(d, Status::Dead, &reason(&error), None).await
            }
            (Decision::Failed, error) => {
                tracing::warn!(delivery = d.id, "message refused: {error}");
                self.finish(d, Status::Failed, &reason(&error), None).await
            }
            (Decision::FallBack, error) => {
                let why = reason(&error);
                tracing::info!(
                    delivery = d.id,
                    contact = d.contact_id,
                    "contact unreachable: {why}"
                );
                match self.fallback_contact(d).await? {
                    Some((channel, contact)) => {
                        let change = Change::FallBack {
                            channel,
                            contact,
                            reason: why,
                            keep_contact: false,
                        };
                        self.record(d, Record::Change(change)).await
                    }
                    None => self.finish(d, Status::Failed, &why, Some(&why)).await,
                }
            }
        }
    }

    /// When waiting `after` would take the delivery past its expiry and the person has a later
    /// channel of the occurrence, the delivery goes by it now; the contact stays.
    async fn sooner_elsewhere(
        &self,
        d: &ClaimedDelivery,
        after: std::time::Duration,
    ) -> anyhow::Result<Option<Outcome>> {
        // A short wait never outlasts a message (expiries are hours away).
        if after < std::time::Duration::from_secs(600) {
            return Ok(None);
        }
        let expires_at: Option<i64> =
            sqlx::query_scalar("SELECT expires_at FROM deliveries WHERE id = $1")
                .bind(d.id)
                .fetch_optional(&self.db.pool)
                .await?;
        let wait = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        let Some(expires_at) = expires_at.map(crate::store::from_epoch) else {
            return Ok(None);
        };
        if self
            .clock
            .now()
            .checked_add_signed(wait)
            .is_some_and(|t| t < expires_at)
        {
            return Ok(None);
        }
        let Some((channel, contact)) = self.fallback_contact(d).await? else {
            return Ok(None);
        };
        tracing::info!(delivery = d.id, %channel, "the wait outlasts the message: its next channel now");
        let change = Change::FallBack {
            channel,
            contact,
            reason: format!("{} cannot send before the message expires", d.channel),
            keep_contact: true,
        };
        Ok(Some(self.record(d, Record::Change(change)).await?))
    }

    /// The person's active contact on the first of the occurrence's later channels they have:
    /// where a delivery refused for good on its channel goes instead.
    async fn fallback_contact(
        &self,
        d: &ClaimedDelivery,
    ) -> anyhow::Result<Option<(ChannelKind, i64)>> {
        for channel in d.next_channels() {
            let row = sqlx::query(
                "SELECT id FROM contacts WHERE person_id = $1 AND channel = $2 AND active = 1
                 ORDER BY id LIMIT 1",
            )
            .bind(d.person_id)
            .bind(channel.as_str())
            .fetch_optional(&self.db.pool)
            .await?;
            if let Some(row) = row {
                return Ok(Some((channel, row.try_get(0)?)));
            }
        }
        Ok(None)
    }

    /// Tells the admins that a channel went down or came back (this worker changed its state).
    pub(super) async fn announce_turn(&self, kind: ChannelKind, turn: &Turn) -> anyhow::Result<()> {
        let label = self.config.channels.label(kind);
        match turn {
            Turn::Same => return Ok(()),
            Turn::WentDown { reason } => {
                tracing::error!(channel = %kind, "channel down: {reason}; its deliveries wait")
            }
            Turn::CameBack { since } => {
                tracing::warn!(channel = %kind, %since, "channel back: its deliveries resume")
            }
        }
        let now = self.clock.now();
        let Some(text) = outage::notice(turn, label, self.config.campaign.time_zone, now) else {
            return Ok(());
        };
        let admins: Vec<i64> = self
            .config
            .telegram
            .iter()
            .flat_map(|t| t.admins.iter().copied())
            .collect();
        if admins.is_empty() || self.transports.get(ChannelKind::Telegram).is_none() {
            return Ok(());
        }
        let mut tx = self.db.pool.begin().await?;
        for admin in admins {
            crate::inbound::outbox::queue(
                &mut tx,
                None,
                crate::inbound::outbox::Kind::Notice,
                ChannelKind::Telegram,
                &admin.to_string(),
                &text,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// What a send error says, for `last_error` and the attempt's detail.
fn reason(error: &SendError) -> String {
    match error {
        SendError::RateLimited { retry_after } => {
            format!("retry after {}s", retry_after.as_secs())
        }
        SendError::Retryable(r)
        | SendError::Unavailable(r)
        | SendError::Recipient(r)
        | SendError::Message(r)
        | SendError::Account(r) => r.clone(),
    }
}
