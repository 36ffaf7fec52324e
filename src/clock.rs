//! Where "now" comes from: the system clock in production, a virtual clock for tests, demos
//! and `loa run --clock … --clock-speed …`.
//!
//! Everything that decides by time (scheduler, dispatch, reach) asks a [`Clock`], never the
//! system directly, so a test can stand on 8 March 2023 at 07:59 and step forward by hand.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// How long to wait in real time for `d` of this clock's time to pass; `None` for a clock
    /// that moves only when told (a frozen test clock), where waiting would never end.
    fn real_duration(&self, d: std::time::Duration) -> Option<std::time::Duration> {
        Some(d)
    }
}

pub type SharedClock = Arc<dyn Clock>;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that starts at a chosen instant and runs `speed` times faster than real time
/// (speed 0: frozen, moved only by [`VirtualClock::advance`] and [`VirtualClock::set`]).
#[derive(Debug)]
pub struct VirtualClock {
    speed: f64,
    state: Mutex<Anchor>,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    virtual_at: DateTime<Utc>,
    real_at: Instant,
}

impl VirtualClock {
    pub fn running(start: DateTime<Utc>, speed: f64) -> Self {
        VirtualClock {
            speed: speed.max(0.0),
            state: Mutex::new(Anchor {
                virtual_at: start,
                real_at: Instant::now(),
            }),
        }
    }

    /// A clock that stands still until a test moves it.
    pub fn frozen(start: DateTime<Utc>) -> Self {
        VirtualClock::running(start, 0.0)
    }

    pub fn advance(&self, by: Duration) {
        let mut anchor = self.state.lock().expect("clock lock");
        let now = self.read(&anchor);
        *anchor = Anchor {
            virtual_at: now + by,
            real_at: Instant::now(),
        };
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.state.lock().expect("clock lock") = Anchor {
            virtual_at: to,
            real_at: Instant::now(),
        };
    }

    fn read(&self, anchor: &Anchor) -> DateTime<Utc> {
        if self.speed == 0.0 {
            return anchor.virtual_at;
        }
        let real = anchor.real_at.elapsed().as_secs_f64() * self.speed;
        anchor.virtual_at + Duration::microseconds((real * 1e6) as i64)
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        self.read(&self.state.lock().expect("clock lock"))
    }

    fn real_duration(&self, d: std::time::Duration) -> Option<std::time::Duration> {
        (self.speed > 0.0).then(|| d.div_f64(self.speed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2023-03-08T07:59:00+07:00")
            .unwrap()
            .to_utc();
        let clock = VirtualClock::frozen(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::minutes(1));
        assert_eq!(clock.now(), start + Duration::minutes(1));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn running_clock_never_goes_backwards() {
        let start = Utc::now();
        let clock = VirtualClock::running(start, 3600.0);
        let a = clock.now();
        let b = clock.now();
        assert!(a >= start && b >= a);
    }
}
