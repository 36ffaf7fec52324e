//! Text messages residents send to the SMS number: a stop word opts the number out, a
//! subscribe word (DK) takes a number that opted out back; anything else gets a short help
//! reply with the hotlines and both words. At most one automatic reply goes to a number
//! per local day, so two machines answering each other cannot run up a bill.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::audience::phone::MobileNumber;
use crate::channel::ChannelKind;
use crate::channels::{Channel, Outbound, mask_address};
use crate::config::Config;
use crate::store::{Db, to_epoch};
use crate::templates::{MessageContext, Recipient, Templates};

/// Template of the opt-out confirmation.
pub const OPT_OUT_REPLY: &str = "tra-loi-huy";
/// Template of the reply to a number that subscribed again.
pub const RESUBSCRIBE_REPLY: &str = "tra-loi-dang-ky";
/// Template of the help reply.
pub const HELP_REPLY: &str = "tra-loi-tro-giup";

/// Whether a text asks to stop: a stop word first, as people write it
/// ([`crate::text::stop_words`]).
pub fn is_stop_word(text: &str) -> bool {
    crate::text::stop_words::is_stop_phrase(text)
}

/// Whether a text asks to receive messages again: DK, ĐĂNG KÝ, DANG KY, START first.
pub fn is_start_word(text: &str) -> bool {
    crate::text::stop_words::is_start_phrase(text)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundOutcome {
    OptedOut {
        replied: bool,
    },
    /// The number's person had opted out and is back (`subscribed` false: nobody with this
    /// number had opted out, or the number is unknown, which only the commune can add).
    Resubscribed {
        subscribed: bool,
        replied: bool,
    },
    Helped {
        replied: bool,
    },
}

pub struct Inbound {
    pub db: Db,
    pub config: Arc<Config>,
    pub templates: Arc<Templates>,
    /// The SMS transport replies go through, if one is configured.
    pub sms: Option<Arc<dyn Channel>>,
}

impl Inbound {
    pub async fn handle(
        &self,
        from: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<InboundOutcome> {
        // Masked like any number in a log line: the caller logs this error.
        let number = MobileNumber::parse(from)
            .map_err(|e| anyhow::anyhow!("sender {}: {}", mask_address(e.input()), e.reason()))?;
        if is_stop_word(text) {
            self.opt_out(&number, now).await?;
            let replied = self.reply_once_a_day(&number, OPT_OUT_REPLY, now).await?;
            return Ok(InboundOutcome::OptedOut { replied });
        }
        if is_start_word(text) {
            let subscribed = self.opt_in(&number).await?;
            let template = if subscribed {
                RESUBSCRIBE_REPLY
            } else {
                HELP_REPLY
            };
            let replied = self.reply_once_a_day(&number, template, now).await?;
            return Ok(InboundOutcome::Resubscribed {
                subscribed,
                replied,
            });
        }
        let replied = self.reply_once_a_day(&number, HELP_REPLY, now).await?;
        Ok(InboundOutcome::Helped { replied })
    }

    /// Takes back an opt-out this number sent, for the people whose active contact it still
    /// is; false when there was none. An opt-out given another way (Telegram's /stop, a request
    /// at the commune) or from another number is not this number's to undo, and a number that is
    /// no longer the person's (recycled, deactivated) undoes nothing.
    async fn opt_in(&self, number: &MobileNumber) -> anyhow::Result<bool> {
        let updated = sqlx::query(
            "UPDATE persons SET opted_out_at = NULL, opted_out_via = NULL
             WHERE opted_out_at IS NOT NULL AND opted_out_via = $3
               AND id IN (SELECT person_id FROM contacts
                          WHERE channel = $1 AND address = $2 AND active = 1)",
        )
        .bind(ChannelKind::Sms.as_str())
        .bind(number.as_str())
        .bind(format!("sms:{}", number.as_str()))
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        tracing::info!(number = %mask_address(number.as_str()), persons = updated, "subscribed again by SMS");
        Ok(updated > 0)
    }

    async fn opt_out(&self, number: &MobileNumber, now: DateTime<Utc>) -> anyhow::Result<()> {
        let updated = sqlx::query(
            "UPDATE persons SET opted_out_at = $1, opted_out_via = $4
             WHERE opted_out_at IS NULL
               AND id IN (SELECT person_id FROM contacts WHERE channel = $2 AND address = $3)",
        )
        .bind(to_epoch(now))
        .bind(ChannelKind::Sms.as_str())
        .bind(number.as_str())
        .bind(format!("sms:{}", number.as_str()))
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        tracing::info!(number = %mask_address(number.as_str()), persons = updated, "opted out by SMS");
        Ok(())
    }

    /// Sends `template` unless this number already had an automatic reply today.
    async fn reply_once_a_day(
        &self,
        number: &MobileNumber,
        template: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let Some(sms) = &self.sms else {
            return Ok(false);
        };
        let today = now
            .with_timezone(&self.config.campaign.time_zone)
            .date_naive();
        let first_today = sqlx::query(
            "INSERT INTO sms_auto_replies (number, day, kind, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (number, day) DO NOTHING",
        )
        .bind(number.as_str())
        .bind(today.to_string())
        .bind(template)
        .bind(to_epoch(now))
        .execute(&self.db.pool)
        .await?
        .rows_affected()
            == 1;
        if !first_today {
            return Ok(false);
        }
        let area = sqlx::query(
            "SELECT p.area_code FROM contacts c JOIN persons p ON p.id = c.person_id
             WHERE c.channel = $1 AND c.address = $2 LIMIT 1",
        )
        .bind(ChannelKind::Sms.as_str())
        .bind(number.as_str())
        .fetch_optional(&self.db.pool)
        .await?
        .map(|r| r.try_get::<String, _>(0))
        .transpose()?
        .unwrap_or_default();
        let area_name = self
            .config
            .areas
            .get(&area)
            .map(|a| a.name.clone())
            .unwrap_or_default();
        let context = MessageContext::for_recipient(
            &self.config,
            &Recipient {
                person_name: "",
                person_kind: "resident",
                name_given: true,
                area_code: &area,
                area_name: &area_name,
                observance: "",
                theme: "",
                observance_date: None,
                date: today,
            },
        );
        let text = self
            .templates
            .render(template, ChannelKind::Sms, &context)?;
        let message = Outbound {
            delivery_id: 0,
            kind: ChannelKind::Sms,
            address: number.as_str(),
            text: &text,
        };
        if let Err(e) = sms.send(&message).await {
            tracing::warn!("automatic SMS reply failed: {e}");
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_in_every_spelling() {
        for text in [
            "STOP",
            "stop",
            " Huy ",
            "HỦY",
            "hủy",
            "DUNG",
            "dừng",
            "Tu choi",
            "TỪ CHỐI",
            "từ  chối",
            "tc",
            "TC\n",
        ] {
            assert!(is_stop_word(text), "{text:?}");
        }
        for text in ["Đúng rồi", "toi muon hoi", "STOPP", ""] {
            assert!(!is_stop_word(text), "{text:?}");
        }
    }
}
