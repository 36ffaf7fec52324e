//! What comes back from residents and gateways: messages residents send to the SMS number
//! (`replies`: urgent first, then stop and subscribe words, one automatic reply a day), the
//! inbox every other text goes to (`inbox`, with `urgent`: the words that call for help, and
//! `alerts`: forwarding an urgent text), the messages queued for the dispatcher (`outbox`:
//! forwards, hotlines, staff answers) and the gateways' delivery reports (`reports`: an SMS
//! reaches its person when reported delivered). The web module and the bot turn HTTP and
//! Telegram updates into calls here.
//!
//! Owns the tables `sms_auto_replies`, `inbox`, `inbox_outbox`, `inbox_hotline_replies`;
//! updates the `deliveries` of SMS with their reports.

pub mod alerts;
pub mod inbox;
pub mod outbox;
mod replies;
mod reports;
pub mod urgent;

pub use replies::{
    HELP_REPLY, Inbound, InboundOutcome, NEW_SUBSCRIBER_REPLY, OPT_OUT_REPLY, RESUBSCRIBE_REPLY,
    URGENT_REPLY, is_start_word, is_stop_word,
};
pub use reports::{ReportOutcome, delivery_of_provider_message, record_delivery_report};
