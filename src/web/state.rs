//! [`WebState`]: what the web side needs from the rest of Loa, handed to every route.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use super::guard;
use crate::bot::Webhook;
use crate::calendar::Calendar;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::console::{Console, ConsoleError};
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
    /// The accounts with an export running.
    pub exports: Arc<ExportSlots>,
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

/// Exports running at once, whoever runs them: each holds a database connection while it
/// reads, and SQLite's pool has four; two leave the dispatcher and the pages theirs.
pub const MAX_EXPORTS_AT_ONCE: usize = 2;

/// One export at a time per account: a year's delivery log keeps a database connection and a
/// core busy for a minute, and a second click (or a script in a loop) would double that.
#[derive(Default)]
pub struct ExportSlots {
    running: Mutex<HashSet<String>>,
}

/// An account's running export; dropping it (the download ended, failed or was closed) lets
/// the account start another.
pub struct ExportSlot {
    slots: Arc<ExportSlots>,
    actor: String,
}

impl ExportSlots {
    /// The slot of `actor` (`user:lan`, `token:bao-cao`), or 429 while it has one running.
    pub fn take(self: &Arc<Self>, actor: &str) -> Result<ExportSlot, ConsoleError> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.contains(actor) {
            return Err(ConsoleError::Busy(
                "Tài khoản của bạn đang tải một tệp dữ liệu khác. Xin chờ tải xong tệp đó rồi \
                 thử lại."
                    .to_string(),
            ));
        }
        if running.len() >= MAX_EXPORTS_AT_ONCE {
            return Err(ConsoleError::Busy(
                "Máy chủ đang bận xuất dữ liệu cho người dùng khác. Xin thử lại sau ít phút."
                    .to_string(),
            ));
        }
        running.insert(actor.to_string());
        Ok(ExportSlot {
            slots: Arc::clone(self),
            actor: actor.to_string(),
        })
    }

    /// Whether `actor` has an export running.
    pub fn is_running(&self, actor: &str) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(actor)
    }
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        self.slots
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.actor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_has_one_export_at_a_time_and_gets_it_back_when_it_ends() {
        let slots = Arc::new(ExportSlots::default());
        let first = slots.take("user:lan").unwrap();
        assert!(matches!(slots.take("user:lan"), Err(ConsoleError::Busy(_))));
        let other = slots
            .take("token:bao-cao")
            .expect("another account is not held up");
        drop(first);
        assert!(!slots.is_running("user:lan"));
        let _again = slots.take("user:lan").unwrap();
        drop(other);
        assert!(slots.is_running("user:lan") && !slots.is_running("token:bao-cao"));
    }

    #[test]
    fn the_server_runs_a_few_exports_at_once_whoever_asks() {
        let slots = Arc::new(ExportSlots::default());
        let held: Vec<ExportSlot> = (0..MAX_EXPORTS_AT_ONCE)
            .map(|i| slots.take(&format!("user:{i}")).unwrap())
            .collect();
        match slots.take("user:mot-nguoi-khac") {
            Err(ConsoleError::Busy(message)) => assert!(message.contains("người dùng khác")),
            _ => panic!("one export too many was let through"),
        }
        drop(held);
        assert!(slots.take("user:mot-nguoi-khac").is_ok());
    }
}
