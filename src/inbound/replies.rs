//! Text messages residents send to the SMS number. In order:
//!
//! 1. a call for help ([`super::urgent`]) is kept in the inbox as urgent, forwarded to the
//!    contact point and the admins, and the hotlines go back once a day — whatever word it
//!    starts with, so "Dừng lại, chồng tôi đánh tôi" never opts anyone out;
//! 2. a stop word opts the number out;
//! 3. a subscribe word (DK, ĐĂNG KÝ), optionally with a commune's name, takes a number that
//!    opted out back and moves its person to that commune; an unknown number with a commune is
//!    added there, subscribed at its own request (the one way a resident adds themself by SMS);
//! 4. anything else goes to the inbox and gets a short help reply with the hotlines and both
//!    words.
//!
//! At most one automatic reply goes to a number per local day, so two machines answering each
//! other cannot run up a bill; the hotlines after an urgent text are apart from that limit
//! (once a day of their own) and are queued, so a gateway failing once does not lose them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::audience::area_match::{AreaMatch, find_area};
use crate::audience::consent::{self, ConsentSource};
use crate::audience::phone::MobileNumber;
use crate::channel::ChannelKind;
use crate::channels::{Channel, Outbound, mask_address};
use crate::config::{Area, Config};
use crate::store::{Db, to_epoch};
use crate::templates::{MessageContext, Recipient, Templates};

use super::outbox::{self, Kind};
use super::{alerts, inbox, urgent};

/// Template of the opt-out confirmation.
pub const OPT_OUT_REPLY: &str = "tra-loi-huy";
/// Template of the reply to a number that subscribed again.
pub const RESUBSCRIBE_REPLY: &str = "tra-loi-dang-ky";
/// Template of the reply to a number that subscribed for the first time, in a commune.
pub const NEW_SUBSCRIBER_REPLY: &str = "tra-loi-dang-ky-moi";
/// Template of the help reply.
pub const HELP_REPLY: &str = "tra-loi-tro-giup";
/// Template of the reply to an urgent text: the hotlines.
pub const URGENT_REPLY: &str = "tra-loi-khan-cap";

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
    /// number had opted out, or the number is unknown and named no commune).
    Resubscribed {
        subscribed: bool,
        replied: bool,
    },
    /// DK with a commune's name (`area`, its code): the number's subscribed person moved there,
    /// or (`added`) an unknown number is now a subscribed person of that commune. Neither when
    /// the person opted out another way: they stay out, where they were.
    Registered {
        area: String,
        added: bool,
        replied: bool,
    },
    /// Not a command: kept in the inbox (`inbox` its id), a help reply once a day.
    Helped {
        inbox: i64,
        replied: bool,
    },
    /// A call for help: kept as urgent, `alerts` forwards queued, the hotlines queued to the
    /// sender when this is their first urgent text today.
    Urgent {
        inbox: i64,
        alerts: usize,
        hotlines: bool,
    },
}

/// What a DK's words after it name.
enum Commune<'a> {
    /// Nothing, or only filler ("DK lại", "đăng ký nhận tin").
    None,
    Found(&'a Area),
    /// A name that is no commune, or fits several: the text goes to the inbox for staff.
    Unclear,
}

/// Words people put after DK that name no place: "DK lại", "đăng ký nhận tin", "DK tại …".
const FILLER: [&str; 6] = ["lai", "nhan", "tin", "tai", "o", "vao"];

/// The commune `rest` names, by code or name as people type it; a commune, not a district.
fn commune<'a>(config: &'a Config, rest: &str) -> Commune<'a> {
    let found = |text: &str| match find_area(&config.areas, text) {
        AreaMatch::Found(area) if config.areas.is_leaf(&area.code) => Some(area),
        _ => None,
    };
    if rest.trim().is_empty() {
        return Commune::None;
    }
    if let Some(area) = found(rest) {
        return Commune::Found(area);
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    let skip = words
        .iter()
        .take_while(|w| {
            let folded = crate::text::unaccent(w).to_lowercase();
            FILLER.contains(&folded.trim_matches(|c: char| !c.is_alphanumeric()))
        })
        .count();
    let rest = words[skip..].join(" ");
    if rest.trim_matches(|c: char| !c.is_alphanumeric()).is_empty() {
        return Commune::None;
    }
    match found(&rest) {
        Some(area) => Commune::Found(area),
        None => Commune::Unclear,
    }
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
        if urgent::is_urgent(text) {
            return self.urgent(&number, text, now).await;
        }
        if is_stop_word(text) {
            self.opt_out(&number, now).await?;
            let replied = self.reply_once_a_day(&number, OPT_OUT_REPLY, now).await?;
            return Ok(InboundOutcome::OptedOut { replied });
        }
        if let Some(rest) = crate::text::stop_words::after_start_phrase(text) {
            match commune(&self.config, &rest) {
                Commune::Found(area) => return self.register(&number, area, now).await,
                Commune::Unclear => {
                    // Staff can read what was meant and add the person by hand.
                    inbox::record(
                        &self.db,
                        ChannelKind::Sms,
                        number.as_str(),
                        text,
                        false,
                        now,
                    )
                    .await?;
                }
                Commune::None => {}
            }
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
        let (inbox, _) = inbox::record(
            &self.db,
            ChannelKind::Sms,
            number.as_str(),
            text,
            false,
            now,
        )
        .await?;
        let replied = self.reply_once_a_day(&number, HELP_REPLY, now).await?;
        Ok(InboundOutcome::Helped { inbox, replied })
    }

    /// A call for help: kept and forwarded; the hotlines to the sender once a day, queued so a
    /// gateway failing once does not lose them.
    async fn urgent(
        &self,
        number: &MobileNumber,
        text: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<InboundOutcome> {
        let raised = alerts::raise(
            &self.db,
            &self.config,
            ChannelKind::Sms,
            number.as_str(),
            text,
            now,
        )
        .await?;
        let mut hotlines = false;
        if self.sms.is_some()
            && alerts::first_hotlines_today(
                &self.db,
                &self.config,
                ChannelKind::Sms,
                number.as_str(),
                now,
            )
            .await?
        {
            let reply = self.render(number, URGENT_REPLY, now).await?;
            let mut tx = self.db.pool.begin().await?;
            outbox::queue(
                &mut tx,
                Some(raised.inbox_id),
                Kind::Hotlines,
                ChannelKind::Sms,
                number.as_str(),
                &reply,
                now,
            )
            .await?;
            tx.commit().await?;
            hotlines = true;
        }
        Ok(InboundOutcome::Urgent {
            inbox: raised.inbox_id,
            alerts: raised.alerts,
            hotlines,
        })
    }

    /// DK with a commune: the number's own opt-out taken back, its subscribed persons moved to
    /// `area`; an unknown number becomes a person of `area`, subscribed at its own request.
    /// A person who opted out another way stays out (as a DK without a commune leaves them)
    /// and stays where they were.
    async fn register(
        &self,
        number: &MobileNumber,
        area: &Area,
        now: DateTime<Utc>,
    ) -> anyhow::Result<InboundOutcome> {
        let subscribed = self.opt_in(number).await?;
        let moved = sqlx::query(
            "UPDATE persons SET area_code = $1
             WHERE opted_out_at IS NULL AND kind = 'resident'
               AND id IN (SELECT person_id FROM contacts
                          WHERE channel = $2 AND address = $3 AND active = 1)",
        )
        .bind(&area.code)
        .bind(ChannelKind::Sms.as_str())
        .bind(number.as_str())
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        let added = moved == 0 && self.add_person(number, area, now).await?;
        let template = if added {
            NEW_SUBSCRIBER_REPLY
        } else if moved > 0 || subscribed {
            RESUBSCRIBE_REPLY
        } else {
            HELP_REPLY
        };
        tracing::info!(
            number = %mask_address(number.as_str()),
            area = %area.code,
            moved,
            added,
            "registered by SMS"
        );
        let replied = self.reply_once_a_day(number, template, now).await?;
        Ok(InboundOutcome::Registered {
            area: area.code.clone(),
            added,
            replied,
        })
    }

    /// A person for an unknown number, in `area`, with the number as their contact; false when
    /// the number is known after all (another request added it meanwhile, or its contact is
    /// inactive), in which case nothing is added.
    async fn add_person(
        &self,
        number: &MobileNumber,
        area: &Area,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.db.pool.begin().await?;
        let known = sqlx::query("SELECT 1 FROM contacts WHERE channel = $1 AND address = $2")
            .bind(ChannelKind::Sms.as_str())
            .bind(number.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if known {
            return Ok(false);
        }
        // No name: the messages greet "ông/bà" without one.
        let person: i64 = sqlx::query(
            "INSERT INTO persons (name, area_code, created_at, name_given) VALUES ('', $1, $2, 0)
             RETURNING id",
        )
        .bind(&area.code)
        .bind(to_epoch(now))
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let inserted = sqlx::query(
            "INSERT INTO contacts (person_id, channel, address, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (channel, address) DO NOTHING",
        )
        .bind(person)
        .bind(ChannelKind::Sms.as_str())
        .bind(number.as_str())
        .bind(to_epoch(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        consent::record(&mut *tx, person, ConsentSource::Sms, Some(&area.code), now).await?;
        tx.commit().await?;
        Ok(true)
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
        let text = self.render(number, template, now).await?;
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

    /// An automatic reply to `number`, with its person's commune when known.
    async fn render(
        &self,
        number: &MobileNumber,
        template: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let today = now
            .with_timezone(&self.config.campaign.time_zone)
            .date_naive();
        let area = sqlx::query(
            "SELECT p.area_code FROM contacts c JOIN persons p ON p.id = c.person_id
             WHERE c.channel = $1 AND c.address = $2 ORDER BY c.active DESC, c.id LIMIT 1",
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
        Ok(self
            .templates
            .render(template, ChannelKind::Sms, &context)?)
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
