//! In-process stand-ins for the gateways Loa talks to, following their real APIs. Tests use
//! them, and so can demos on a machine with no credentials. Telegram cannot be reached from a
//! test machine; these make its answers reproducible, including the unpleasant ones.

pub mod kannel;
pub mod telegram;
pub mod zalo;
