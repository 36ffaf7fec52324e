//! What to do after a send failed: a pure function of the error, the failures so far and the
//! configuration — no clock, no database, no randomness (the worker adds jitter to a retry's
//! wait so a gateway coming back is not hit by every retry at once).

use std::time::Duration;

use crate::channels::SendError;
use crate::config::DispatchConfig;

/// The longest wait between two attempts, however many failures came before.
pub const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// A delivery whose channel's account is refused waits this long (the channel is down).
pub const ACCOUNT_WAIT: Duration = Duration::from_secs(60);

/// The next step for a delivery whose send failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this long; the failure counts towards `max_attempts`.
    Retry { after: Duration },
    /// Wait this long without spending an attempt: the provider said when (a 429), or cannot
    /// take messages now (a quota, a channel that is down).
    Postpone { after: Duration },
    /// Out of attempts: give up.
    Dead,
    /// This message cannot be sent as it is (too long, refused); the contact is fine.
    Failed,
    /// The person cannot be reached on this channel any more (blocked the bot, number gone):
    /// stop using this contact, and send the same delivery by the occurrence's next channel
    /// if the person has one — never both.
    FallBack,
}

/// The retry settings of `dispatch` in `loa.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failures a delivery may have in all; the last one makes it dead.
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub base: Duration,
}

impl From<&DispatchConfig> for RetryPolicy {
    fn from(config: &DispatchConfig) -> Self {
        RetryPolicy {
            max_attempts: config.max_attempts,
            base: Duration::from_secs(u64::from(config.retry_base_seconds)),
        }
    }
}

/// What to do after `error`, for a delivery that had failed `failures` times before.
pub fn decide(error: &SendError, failures: i64, policy: &RetryPolicy) -> Decision {
    match error {
        SendError::RateLimited { retry_after } => Decision::Postpone {
            after: *retry_after,
        },
        SendError::Retryable(_) | SendError::Unavailable(_)
            if failures + 1 >= i64::from(policy.max_attempts) =>
        {
            Decision::Dead
        }
        SendError::Retryable(_) | SendError::Unavailable(_) => Decision::Retry {
            after: backoff(failures, policy.base),
        },
        SendError::Recipient(_) => Decision::FallBack,
        SendError::Message(_) => Decision::Failed,
        // The channel is marked down at once (`outage`); should that fail, wait anyway: no
        // attempt of this delivery can change the account.
        SendError::Account(_) => Decision::Postpone {
            after: ACCOUNT_WAIT,
        },
    }
}

/// `base` doubled for each failure so far, up to [`MAX_BACKOFF`].
pub fn backoff(failures: i64, base: Duration) -> Duration {
    let doublings = failures.clamp(0, 30) as u32;
    base.checked_mul(1 << doublings)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        base: Duration::from_secs(30),
    };

    fn retryable() -> SendError {
        SendError::Retryable("503".into())
    }

    #[test]
    fn temporary_failures_back_off_doubling_until_the_last_attempt() {
        let table = [
            (
                0,
                Decision::Retry {
                    after: Duration::from_secs(30),
                },
            ),
            (
                1,
                Decision::Retry {
                    after: Duration::from_secs(60),
                },
            ),
            (
                2,
                Decision::Retry {
                    after: Duration::from_secs(120),
                },
            ),
            (
                3,
                Decision::Retry {
                    after: Duration::from_secs(240),
                },
            ),
            (4, Decision::Dead),
            (9, Decision::Dead),
        ];
        for (failures, expected) in table {
            assert_eq!(
                decide(&retryable(), failures, &POLICY),
                expected,
                "{failures}"
            );
        }
    }

    #[test]
    fn a_single_attempt_policy_gives_up_at_the_first_failure() {
        let once = RetryPolicy {
            max_attempts: 1,
            ..POLICY
        };
        assert_eq!(decide(&retryable(), 0, &once), Decision::Dead);
    }

    #[test]
    fn the_providers_wait_is_a_postponement_whatever_the_failures() {
        let limited = SendError::RateLimited {
            retry_after: Duration::from_secs(7),
        };
        for failures in [0, 3, 4, 100] {
            assert_eq!(
                decide(&limited, failures, &POLICY),
                Decision::Postpone {
                    after: Duration::from_secs(7)
                }
            );
        }
    }

    #[test]
    fn refusals_fail_and_a_lost_recipient_falls_back() {
        for failures in [0, 4] {
            assert_eq!(
                decide(&SendError::Message("too long".into()), failures, &POLICY),
                Decision::Failed
            );
            assert_eq!(
                decide(&SendError::Recipient("blocked".into()), failures, &POLICY),
                Decision::FallBack
            );
        }
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(-3, POLICY.base), Duration::from_secs(30));
        assert_eq!(backoff(9, POLICY.base), Duration::from_secs(15_360));
        assert_eq!(backoff(10, POLICY.base), MAX_BACKOFF);
        assert_eq!(backoff(i64::MAX, POLICY.base), MAX_BACKOFF);
        assert_eq!(backoff(40, Duration::from_secs(u64::MAX / 2)), MAX_BACKOFF);
    }
}
