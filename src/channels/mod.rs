//! The ways out: one trait, one implementation per transport.
//!
//! A channel sends one rendered text to one address and says what went wrong in the terms
//! dispatch acts on — wait and retry, give up on this message, or give up on this contact. It
//! knows nothing of deliveries, leases or the database.

mod http;
pub mod log;
mod quote;
pub mod sms;
pub mod telegram;
pub mod zalo;

pub use quote::{Secrets, describe_http_error, excerpt, redact};

use std::time::Duration;

use async_trait::async_trait;

use crate::channel::ChannelKind;

/// One message on its way to one contact.
#[derive(Debug, Clone)]
pub struct Outbound<'a> {
    /// Loa's delivery id: a request id for gateways that deduplicate, and the key of
    /// delivery reports.
    pub delivery_id: i64,
    pub kind: ChannelKind,
    /// A Telegram chat id or an E.164 phone number.
    pub address: &'a str,
    pub text: &'a str,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receipt {
    /// The provider's id for the message, when it gives one.
    pub provider_message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The provider asked us to slow down: wait exactly this long. Not a failure.
    #[error("rate limited: retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The transport itself failed: connection refused or reset, a timeout, a 5xx. Retried
    /// like [`SendError::Retryable`]; in a row, across recipients, such failures mark the
    /// transport down (see `dispatch::outage`), and while it is down nothing spends attempts.
    #[error("transport unavailable: {0}")]
    Unavailable(String),
    /// Worth trying again later, though the transport answered: an answer that does not parse,
    /// a wrong token, a gateway's odd status.
    #[error("temporary failure: {0}")]
    Retryable(String),
    /// This contact cannot be reached any more (blocked the bot, account deleted, no such
    /// chat): stop sending to it.
    #[error("recipient unreachable: {0}")]
    Recipient(String),
    /// This message cannot be sent as it is (too long, malformed); the contact is fine.
    #[error("message refused: {0}")]
    Message(String),
    /// The provider refuses the account itself — a refresh token revoked or expired, the
    /// balance used up, the app not set up — so nothing will go until an operator acts: the
    /// channel is marked down at once (see `dispatch::outage`) and its deliveries wait.
    #[error("account refused: {0}")]
    Account(String),
}

#[async_trait]
pub trait Channel: Send + Sync {
    /// The transport's name for logs and the delivery log: `telegram`, `log`, …
    fn name(&self) -> &'static str;

    async fn send(&self, message: &Outbound<'_>) -> Result<Receipt, SendError>;

    /// Whether acceptance is only a hand-over and a delivery report will follow (SMS
    /// gateways); otherwise an accepted message counts as delivered.
    fn reports_delivery(&self) -> bool {
        false
    }
}

/// An address fit for logs: enough to tell contacts apart, not enough to contact anyone.
pub fn mask_address(address: &str) -> String {
    let chars: Vec<char> = address.chars().collect();
    let n = chars.len();
    if n <= 4 {
        return "*".repeat(n);
    }
    let keep_start = if address.starts_with('+') {
        4.min(n / 3)
    } else {
        2
    };
    let keep_end = 2;
    let mut out: String = chars[..keep_start].iter().collect();
    out.push_str(&"*".repeat(n - keep_start - keep_end));
    out.extend(&chars[n - keep_end..]);
    out
}
