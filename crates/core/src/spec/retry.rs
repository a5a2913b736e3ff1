//! `retries:` as written: a number, or the long form.

use schemars::JsonSchema;

use super::kinds::{Backoff, Jitter};
use crate::decode::{Decode, Decoder};
use crate::duration::Duration;
use crate::span::Spanned;
use crate::yaml::{Node, NodeValue};

/// `retries: 3` or `retries: { limit: 3, delay: 2s, ... }`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum RetrySpec {
    /// How many times to retry a failed attempt.
    Limit(u32),
    Policy(RetryPolicySpec),
}

/// The long form of `retries`. Unset fields fall back to `defaults.retries`, then to baton's
/// defaults (no retries, 1s fixed delay, no jitter).
#[derive(Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RetryPolicySpec {
    /// Retries after the first attempt (0 = no retries).
    pub limit: Option<u32>,
    /// Delay before the first retry.
    pub delay: Option<Spanned<Duration>>,
    /// How the delay grows from one retry to the next.
    pub backoff: Option<Backoff>,
    /// Upper bound on the delay.
    pub max_delay: Option<Spanned<Duration>>,
    /// Randomisation of the delay.
    pub jitter: Option<Jitter>,
    /// Retry only when the attempt exited with one of these codes (default: any failure).
    pub on_exit_codes: Option<Vec<i32>>,
}

impl RetrySpec {
    /// The long form, with `retries: N` meaning `{ limit: N }`.
    pub fn into_policy(self) -> RetryPolicySpec {
        match self {
            Self::Limit(limit) => RetryPolicySpec {
                limit: Some(limit),
                ..RetryPolicySpec::default()
            },
            Self::Policy(p) => p,
        }
    }
}

impl RetryPolicySpec {
    /// Fields set here win over `base`.
    #[must_use]
    pub fn over(self, base: &Self) -> Self {
        Self {
            limit: self.limit.or(base.limit),
            delay: self.delay.or_else(|| base.delay.clone()),
            backoff: self.backoff.or(base.backoff),
            max_delay: self.max_delay.or_else(|| base.max_delay.clone()),
            jitter: self.jitter.or(base.jitter),
            on_exit_codes: self.on_exit_codes.or_else(|| base.on_exit_codes.clone()),
        }
    }
}

impl Decode for RetrySpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        match node.value {
            NodeValue::Int(_) => u32::decode(d, node).map(Self::Limit),
            NodeValue::Map(_) => {
                let mut m = d.map(node, "`retries`")?;
                let spec = RetryPolicySpec {
                    limit: m.opt(d, "limit", u32::decode),
                    delay: m.opt(d, "delay", Decode::decode),
                    backoff: m.opt(d, "backoff", Decode::decode),
                    max_delay: m.opt(d, "max_delay", Decode::decode),
                    jitter: m.opt(d, "jitter", Decode::decode),
                    on_exit_codes: m.opt(d, "on_exit_codes", Decode::decode),
                };
                m.finish(d);
                Some(Self::Policy(spec))
            }
            _ => {
                d.error(
                    node.span,
                    format!("expected a retry count or a mapping, found {}", node.kind()),
                )
                .hint = Some("write `retries: 3` or `retries: { limit: 3, delay: 10s }`".into());
                None
            }
        }
    }
}
