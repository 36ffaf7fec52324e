//! Sending rates, enforced with `governor` on Loa's own clock (so a virtual clock drives them
//! in tests and demos exactly as the system clock does in production).
//!
//! A channel's overall rate belongs to the bot token or the gateway account, not to a process.
//! Each dispatcher therefore takes an equal share of it — rate ÷ live workers, counted from
//! the `dispatch_workers` heartbeats — so any number of `loa run` processes on one database
//! together stay within the provider's limit. Per-chat and per-group limits are per process:
//! one chat is rarely in flight in two processes at once.
//!
//! The overall limiters have a burst of one: in any sliding second no more than the rate passes,
//! which is what a provider counting "messages per second" sees.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::channel::{AddressKind, ChannelKind, ChannelSet};
use crate::clock::SharedClock;

/// governor's view of Loa's clock: time since the epoch.
#[derive(Clone, Debug)]
struct LoaClock(SharedClock);

impl GovernorClock for LoaClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        let micros = self.0.now().timestamp_micros().max(0) as u64;
        Duration::from_micros(micros)
    }
}

type Direct = RateLimiter<NotKeyed, InMemoryState, LoaClock, NoOpMiddleware<Duration>>;
type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, LoaClock, NoOpMiddleware<Duration>>;

/// Whether a message may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Now,
    /// Not before this much (clock) time has passed.
    Wait(Duration),
}

pub struct RateLimits {
    clock: LoaClock,
    /// Each channel's overall rate, for the whole deployment.
    rates: HashMap<ChannelKind, u32>,
    burst: u32,
    /// Workers sharing each overall rate, and the limiters built for that share.
    overall: Mutex<(u32, HashMap<ChannelKind, Arc<Direct>>)>,
    /// Per address (a Telegram chat) and per group, for the channels that have such limits.
    per_address: HashMap<ChannelKind, Keyed>,
    per_group: HashMap<ChannelKind, Keyed>,
}

/// Spacing kept a little wider than the rate itself: a provider counts arrivals, and network
/// jitter can bring two sends closer than they left. 2 % keeps 30/s at 29.4/s, 20 ms of slack
/// per second.
const SAFETY_MARGIN: f64 = 0.98;

fn per_second(n: u32, burst: u32) -> Quota {
    let period = Duration::from_secs_f64(1.0 / (f64::from(n.max(1)) * SAFETY_MARGIN));
    Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least 1"))
}

impl RateLimits {
    /// The limits of every channel of `channels`; `burst` messages may leave at one instant.
    pub fn new(channels: &ChannelSet, burst: u32, clock: SharedClock) -> Self {
        let clock = LoaClock(clock);
        let keyed = |quota: Quota| {
            RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock.clone())
        };
        let per_address = channels
            .iter()
            .filter_map(|d| {
                let n = d.limits.per_address_per_second?;
                Some((d.kind, keyed(per_second(n, 1))))
            })
            .collect();
        // Groups are Telegram chats with a negative id: only channels addressing chats have them.
        let per_group = channels
            .iter()
            .filter(|d| d.address == AddressKind::ChatId)
            .filter_map(|d| {
                let n = NonZeroU32::new(d.limits.per_group_per_minute?.max(1))?;
                Some((
                    d.kind,
                    keyed(Quota::per_minute(n).allow_burst(NonZeroU32::MIN)),
                ))
            })
            .collect();
        let this = RateLimits {
            clock,
            rates: channels
                .iter()
                .map(|d| (d.kind, d.limits.per_second))
                .collect(),
            burst,
            overall: Mutex::new((0, HashMap::new())),
            per_address,
            per_group,
        };
        this.set_share_unchecked(1, false);
        this
    }

    /// The overall rate of a channel for the whole deployment.
    pub fn overall_rate(&self, kind: ChannelKind) -> u32 {
        self.rates.get(&kind).copied().unwrap_or(1)
    }

    /// Takes a 1/`workers` share of every overall rate.
    pub fn set_share(&self, workers: u32) {
        let workers = workers.max(1);
        if self.overall.lock().expect("limits lock").0 != workers {
            self.set_share_unchecked(workers, true);
        }
    }

    fn set_share_unchecked(&self, workers: u32, spent: bool) {
        let mut overall = self.overall.lock().expect("limits lock");
        overall.0 = workers;
        overall.1 = self
            .rates
            .iter()
            .map(|(&kind, &total)| {
                let quota = per_second((total / workers).max(1), self.burst);
                let limiter = RateLimiter::direct_with_clock(quota, self.clock.clone());
                // A new limiter would grant a turn at once, right after the old one's last:
                // start it spent, so a share change cannot squeeze two sends together.
                if spent {
                    let _ = limiter.check();
                }
                (kind, Arc::new(limiter))
            })
            .collect();
    }

    pub fn share(&self) -> u32 {
        self.overall.lock().expect("limits lock").0
    }

    /// Takes a permit for one message to `address` if the rates allow it now: the chat's
    /// own rate first, then the channel's overall one. (The worker asks the two apart, so it
    /// can queue for the overall turn; the tests ask both at once.)
    #[cfg(test)]
    pub fn check(&self, kind: ChannelKind, address: &str) -> Permit {
        match self.check_chat(kind, address) {
            Permit::Now => self.check_overall(kind),
            wait => wait,
        }
    }

    /// The per-address (Telegram: 1/s to a chat) or per-group (20/min) rate of one address.
    pub fn check_chat(&self, kind: ChannelKind, address: &str) -> Permit {
        // Negative chat ids are groups and channels.
        let keyed = match self.per_group.get(&kind) {
            Some(groups) if address.starts_with('-') => groups,
            _ => match self.per_address.get(&kind) {
                Some(addresses) => addresses,
                None => return Permit::Now,
            },
        };
        let now = self.clock.now();
        match keyed.check_key(&address.to_string()) {
            Ok(()) => Permit::Now,
            Err(e) => Permit::Wait(e.wait_time_from(now)),
        }
    }

    /// This worker's share of the channel's overall rate.
    pub fn check_overall(&self, kind: ChannelKind) -> Permit {
        let now = self.clock.now();
        let Some(overall) = self
            .overall
            .lock()
            .expect("limits lock")
            .1
            .get(&kind)
            .map(Arc::clone)
        else {
            return Permit::Now;
        };
        match overall.check() {
            Ok(()) => Permit::Now,
            Err(e) => Permit::Wait(e.wait_time_from(now)),
        }
    }

    /// Forgets per-chat state that no longer limits anything, so memory stays flat.
    pub fn forget_idle(&self) {
        for keyed in self.per_address.values().chain(self.per_group.values()) {
            keyed.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use chrono::DateTime;

    fn limits(clock: &Arc<VirtualClock>) -> RateLimits {
        RateLimits::new(&ChannelSet::builtin(), 1, Arc::clone(clock) as SharedClock)
    }

    fn clock() -> Arc<VirtualClock> {
        Arc::new(VirtualClock::frozen(
            DateTime::from_timestamp(1_678_237_200, 0).unwrap(),
        ))
    }

    #[test]
    fn thirty_per_second_evenly_in_any_sliding_second() {
        let clock = clock();
        let limits = limits(&clock);
        let mut sent = 0;
        // Step through two seconds in 1 ms ticks, each chat distinct.
        for ms in 0..2000 {
            if limits.check(ChannelKind::Telegram, &format!("{ms}")) == Permit::Now {
                sent += 1;
            }
            clock.advance(chrono::Duration::milliseconds(1));
        }
        // 2 s at 30/s less the 2 % safety margin.
        assert!((58..=59).contains(&sent), "{sent}");
    }

    #[test]
    fn one_per_second_to_one_chat_and_twenty_per_minute_to_a_group() {
        let clock = clock();
        let limits = limits(&clock);
        assert_eq!(limits.check(ChannelKind::Telegram, "42"), Permit::Now);
        clock.advance(chrono::Duration::milliseconds(100));
        assert!(
            matches!(limits.check(ChannelKind::Telegram, "42"), Permit::Wait(w) if w <= Duration::from_millis(950))
        );
        let mut group = 0;
        for _ in 0..120 {
            if limits.check(ChannelKind::Telegram, "-100123") == Permit::Now {
                group += 1;
            }
            clock.advance(chrono::Duration::milliseconds(500));
        }
        assert_eq!(group, 20, "20 in one minute");
    }

    #[test]
    fn workers_share_the_overall_rate() {
        let clock = clock();
        let limits = limits(&clock);
        limits.set_share(2);
        let mut sent = 0;
        for ms in 0..1000 {
            if limits.check(ChannelKind::Telegram, &format!("{ms}")) == Permit::Now {
                sent += 1;
            }
            clock.advance(chrono::Duration::milliseconds(1));
        }
        // A new share starts spent (one period), so the first second holds 14, not 15.
        assert_eq!(sent, 14);
    }
}
