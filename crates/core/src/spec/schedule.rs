//! `schedule:` entries and `triggers:`.

use indexmap::IndexMap;
use schemars::JsonSchema;

use super::kinds::Catchup;
use super::schema_helpers::OrNull;
use crate::decode::{Decode, Decoder};
use crate::span::Spanned;
use crate::yaml::{Node, NodeValue};

/// A cron schedule.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// 5-field cron (`min hour dom month dow`), an optional leading seconds field, or a
    /// nickname: `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`.
    pub cron: Spanned<String>,
    /// IANA time zone the cron is read in (default `UTC`), e.g. `Europe/Berlin`.
    pub timezone: Option<Spanned<String>>,
    /// What to do with ticks missed while baton was down (default `latest`).
    pub catchup: Option<Catchup>,
    /// Parameters for runs started by this schedule.
    #[serde(default)]
    pub params: IndexMap<Spanned<String>, Spanned<serde_json::Value>>,
}

/// Something other than the clock that starts a run. Manual triggers (CLI, API, UI) are always
/// allowed and need no entry.
#[derive(Debug, Clone, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerSpec {
    /// An HTTP webhook: `POST /api/v1/pipelines/{namespace}/{name}/webhook`.
    Webhook(#[schemars(with = "OrNull<WebhookSpec>")] WebhookSpec),
    /// Run when this pipeline (`name` or `namespace/name`) succeeds.
    Pipeline(Spanned<String>),
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Environment variable of the server holding the HMAC-SHA256 secret; when set, requests
    /// must carry a valid `X-Baton-Signature-256: sha256=<hex>` header.
    pub secret_env: Option<String>,
    /// Run parameters taken from the request: templates over `payload` (the JSON body).
    #[serde(default)]
    pub params: IndexMap<Spanned<String>, Spanned<String>>,
}

impl Decode for ScheduleSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "a schedule")?;
        let cron = m.req(d, "cron", Decode::decode);
        let spec = Self {
            cron: Spanned::default(),
            timezone: m.opt(d, "timezone", Decode::decode),
            catchup: m.opt(d, "catchup", Decode::decode),
            params: m.opt(d, "params", Decode::decode).unwrap_or_default(),
        };
        m.finish(d);
        Some(Self {
            cron: cron?,
            ..spec
        })
    }
}

impl Decode for TriggerSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        const KINDS: &[&str] = &["webhook", "pipeline"];
        let NodeValue::Map(entries) = &node.value else {
            d.error(
                node.span,
                format!("expected a mapping, found {}", node.kind()),
            )
            .hint = Some("write `- webhook: {}` or `- pipeline: namespace/name`".into());
            return None;
        };
        if entries.len() != 1 {
            d.error(node.span, "a trigger has exactly one kind").hint =
                Some(crate::diagnostic::one_of(KINDS));
            return None;
        }
        let mut m = d.map(node, "a trigger")?;
        let trigger = if m.has("webhook") {
            m.opt_raw(d, "webhook", |d, n| {
                if n.value == NodeValue::Null {
                    return Some(WebhookSpec::default());
                }
                let mut w = d.map(n, "`webhook`")?;
                let spec = WebhookSpec {
                    secret_env: w.opt(d, "secret_env", Decode::decode),
                    params: w.opt(d, "params", Decode::decode).unwrap_or_default(),
                };
                w.finish(d);
                Some(spec)
            })
            .map(Self::Webhook)
        } else {
            m.opt(d, "pipeline", Decode::decode).map(Self::Pipeline)
        };
        m.finish(d);
        trigger
    }
}
