//! [`WebState`]: what the web side needs from the rest of Loa, handed to every route.

use std::sync::Arc;

use super::guard;
use crate::bot::Webhook;
use crate::calendar::Calendar;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::console::Console;
use crate::inbound::Inbound;
use crate::metrics::Metrics;
use crate::store::Db;
use crate::templates::Templates;

/// What the web side needs from the rest of Loa.
#[derive(Clone)]
pub struct WebState {
    pub db: Db,
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub metrics: Arc<Metrics>,
    /// (channel, transport) pairs, e.g. ("telegram", "log").
    pub channels: Arc<Vec<(String, String)>>,
    pub inbound: Arc<Inbound>,
    /// Set in webhook mode: Telegram posts updates to `/webhooks/telegram`.
    pub telegram: Option<Arc<Webhook>>,
    /// For the console: checking and previewing content, the calendar page.
    pub templates: Arc<Templates>,
    pub calendar: Arc<Calendar>,
    /// Failed sign-ins per name and client address.
    pub throttle: Arc<guard::SignInThrottle>,
}

impl WebState {
    pub fn console(&self) -> Console {
        Console {
            db: self.db.clone(),
            config: Arc::clone(&self.config),
            templates: Arc::clone(&self.templates),
            calendar: Arc::clone(&self.calendar),
            clock: Arc::clone(&self.clock),
        }
    }
}
