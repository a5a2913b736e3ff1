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
