//! When and after how long a failed attempt is tried again.

use serde::Serialize;

use crate::duration::Duration;
use crate::spec::{Backoff, Jitter};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub limit: u32,
    pub delay: Duration,
    pub backoff: Backoff,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Duration>,
    pub jitter: Jitter,
    /// Retry only on these exit codes; `None` retries any failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_exit_codes: Option<Vec<i32>>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            limit: 0,
            delay: Duration::from_secs(1),
            backoff: Backoff::Fixed,
            max_delay: None,
            jitter: Jitter::None,
            on_exit_codes: None,
        }
    }
}

impl RetryPolicy {
    /// Whether attempt number `attempt` (1-based) that ended with `exit_code` (`None` for a
    /// signal, a timeout or an interrupted worker) gets another attempt.
    pub fn should_retry(&self, attempt: u32, exit_code: Option<i32>) -> bool {
        if attempt > self.limit {
            return false;
        }
        match (&self.on_exit_codes, exit_code) {
            (None, _) => true,
            (Some(codes), Some(code)) => codes.contains(&code),
            // A timeout or crash is not an exit code the user listed.
            (Some(_), None) => false,
        }
    }

    /// The delay before retry number `retry` (1 for the first retry), given a uniform random
    /// number in `[0, 1)` for the jitter. Pure, so callers choose the randomness.
    pub fn delay_before(&self, retry: u32, random: f64) -> Duration {
        let base = self.delay.as_millis();
        let step = u64::from(retry.max(1));
        let raw = match self.backoff {
            Backoff::Fixed => base,
            Backoff::Linear => base.saturating_mul(step),
            Backoff::Exponential => {
                let shift = u32::try_from(step - 1).unwrap_or(u32::MAX).min(63);
                base.saturating_mul(1u64 << shift)
            }
        };
        let capped = self.max_delay.map_or(raw, |m| raw.min(m.as_millis()));
        let random = random.clamp(0.0, 1.0);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "the product is within [0, capped]"
        )]
        let scaled = |ms: u64| (ms as f64 * random) as u64;
        let ms = match self.jitter {
            Jitter::None => capped,
            Jitter::Full => scaled(capped),
            Jitter::Equal => capped / 2 + scaled(capped - capped / 2),
        };
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn policy(backoff: Backoff, jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            limit: 5,
            delay: Duration::from_secs(2),
            backoff,
            max_delay: Some(Duration::from_secs(60)),
            jitter,
            on_exit_codes: None,
        }
    }

    #[test]
    fn backoff_shapes() {
        let secs = |p: &RetryPolicy| -> Vec<u64> {
            (1..=6)
                .map(|r| p.delay_before(r, 0.0).as_millis() / 1000)
                .collect()
        };
        assert_eq!(
            secs(&policy(Backoff::Fixed, Jitter::None)),
            [2, 2, 2, 2, 2, 2]
        );
        assert_eq!(
            secs(&policy(Backoff::Linear, Jitter::None)),
            [2, 4, 6, 8, 10, 12]
        );
        assert_eq!(
            secs(&policy(Backoff::Exponential, Jitter::None)),
            [2, 4, 8, 16, 32, 60]
        );
    }

    #[test]
    fn retries_respect_limit_and_exit_codes() {
        let mut p = policy(Backoff::Fixed, Jitter::None);
        assert!(p.should_retry(5, Some(1)));
        assert!(!p.should_retry(6, Some(1)));
        p.on_exit_codes = Some(vec![75]);
        assert!(p.should_retry(1, Some(75)));
        assert!(!p.should_retry(1, Some(1)));
        assert!(!p.should_retry(1, None));
    }

    fn millis(p: &RetryPolicy, retry: u32, random: f64) -> u64 {
        p.delay_before(retry, random).as_millis()
    }

    #[test]
    fn full_jitter_scales_the_delay_by_the_random_number() {
        let p = policy(Backoff::Fixed, Jitter::Full);
        assert_eq!(millis(&p, 1, 0.0), 0);
        assert_eq!(millis(&p, 1, 0.25), 500);
        assert_eq!(millis(&p, 1, 0.5), 1_000);
        assert_eq!(millis(&p, 1, 0.999), 1_998);
    }

    #[test]
    fn equal_jitter_keeps_half_and_randomises_the_other_half() {
        let p = policy(Backoff::Fixed, Jitter::Equal);
        assert_eq!(millis(&p, 1, 0.0), 1_000);
        assert_eq!(millis(&p, 1, 0.5), 1_500);
        assert_eq!(millis(&p, 1, 0.999), 1_999);
        // An odd delay: the fixed half rounds down, the random half gets the extra millisecond.
        let odd = RetryPolicy {
            delay: Duration::from_millis(3),
            ..p
        };
        assert_eq!(millis(&odd, 1, 0.0), 1);
        assert_eq!(millis(&odd, 1, 0.5), 2);
        assert_eq!(millis(&odd, 1, 0.999), 2);
    }

    #[test]
    fn random_numbers_outside_the_unit_interval_are_clamped() {
        let p = policy(Backoff::Fixed, Jitter::Full);
        assert_eq!(millis(&p, 1, -3.0), 0);
        assert_eq!(millis(&p, 1, 7.0), 2_000);
        assert_eq!(millis(&p, 1, f64::NAN), 0);
    }

    #[test]
    fn tiny_and_zero_delays_never_panic_and_stay_tiny() {
        for ms in [0, 1, 2] {
            for backoff in [Backoff::Fixed, Backoff::Linear, Backoff::Exponential] {
                for jitter in [Jitter::None, Jitter::Full, Jitter::Equal] {
                    let p = RetryPolicy {
                        delay: Duration::from_millis(ms),
                        max_delay: None,
                        ..policy(backoff, jitter)
                    };
                    for random in [0.0, 0.5, 0.999] {
                        let got = millis(&p, 1, random);
                        assert!(got <= ms, "{backoff:?} {jitter:?} {ms}ms {random}: {got}");
                        if ms == 0 {
                            assert_eq!(got, 0, "{backoff:?} {jitter:?} {random}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn retry_zero_counts_as_the_first_retry() {
        for backoff in [Backoff::Linear, Backoff::Exponential] {
            let p = policy(backoff, Jitter::None);
            assert_eq!(millis(&p, 0, 0.0), 2_000, "{backoff:?}");
        }
    }

    #[test]
    fn exponential_backoff_saturates_instead_of_overflowing() {
        let p = RetryPolicy {
            max_delay: None,
            ..policy(Backoff::Exponential, Jitter::None)
        };
        assert_eq!(millis(&p, 64, 0.0), u64::MAX);
        assert_eq!(millis(&p, u32::MAX, 0.0), u64::MAX);
        let linear = RetryPolicy {
            max_delay: None,
            delay: Duration::from_millis(u64::MAX / 2),
            ..policy(Backoff::Linear, Jitter::None)
        };
        assert_eq!(millis(&linear, 3, 0.0), u64::MAX);
    }

    #[test]
    fn the_default_policy_never_retries_and_waits_one_second() {
        let p = RetryPolicy::default();
        assert_eq!(p.limit, 0);
        assert!(!p.should_retry(1, Some(1)));
        assert_eq!(p.delay_before(1, 0.7), Duration::from_secs(1));
        assert_eq!(p.max_delay, None);
        assert_eq!(p.on_exit_codes, None);
    }

    proptest! {
        #[test]
        fn jitter_stays_within_bounds(retry in 1u32..100, random in 0.0f64..1.0) {
            for backoff in [Backoff::Fixed, Backoff::Linear, Backoff::Exponential] {
                let none = policy(backoff, Jitter::None).delay_before(retry, random);
                let full = policy(backoff, Jitter::Full).delay_before(retry, random);
                let equal = policy(backoff, Jitter::Equal).delay_before(retry, random);
                prop_assert!(none <= Duration::from_secs(60));
                prop_assert!(full <= none);
                prop_assert!(equal <= none);
                prop_assert!(equal.as_millis() >= none.as_millis() / 2);
            }
        }
    }
}
