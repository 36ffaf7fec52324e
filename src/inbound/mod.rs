//! What comes back from residents and gateways: messages residents send to the SMS number
//! (`replies`: stop words, one automatic reply a day) and the gateways' delivery reports
//! (`reports`: an SMS reaches its person when reported delivered). The web module turns the
//! callbacks' HTTP into calls here.
//!
//! Owns the table `sms_auto_replies`; updates the `deliveries` of SMS with their reports.

mod replies;
mod reports;

pub use replies::{
    HELP_REPLY, Inbound, InboundOutcome, OPT_OUT_REPLY, RESUBSCRIBE_REPLY, is_start_word,
    is_stop_word,
};
pub use reports::{ReportOutcome, delivery_of_provider_message, record_delivery_report};
