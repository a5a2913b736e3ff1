//! `notify:` as written: where to tell people about a pipeline's runs.

use schemars::JsonSchema;

use crate::decode::{Decode, Decoder};
use crate::keyword::keyword_enum;
use crate::span::Spanned;
use crate::yaml::Node;

keyword_enum!(
    /// What a notification is about.
    NotifyEvent, "notification event" {
        /// The run failed.
        Failure = "failure",
        /// The run succeeded.
        Success = "success",
        /// A task failed an attempt and will be tried again.
        Retry = "retry",
        /// A task waits for a person to approve it.
        Approval = "approval",
        /// The run or a task missed its `deadline`.
        Deadline = "deadline",
    }
);

keyword_enum!(
    /// The body a webhook receives.
    NotifyFormat, "notification format" {
        /// baton's JSON document (`event`, `pipeline`, `run`, `task`, `at`).
        Json = "json",
        /// A Slack incoming-webhook message (`text` and `blocks`).
        Slack = "slack",
    }
);

/// One notification target: which events go to which webhook, in which format.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NotifySpec {
    /// The events that are sent: one or a list.
    #[schemars(with = "super::schema_helpers::OneOrList<NotifyEvent>")]
    pub on: Vec<Spanned<NotifyEvent>>,
    /// The URL POSTed to (`http://` or `https://`).
    pub webhook: Option<Spanned<String>>,
    /// The name of an environment variable of the baton process holding the URL, for URLs that
    /// are secrets (Slack's are). Give `webhook` or `webhook_env`, not both.
    pub webhook_env: Option<Spanned<String>>,
    /// The body's format (default `json`).
    pub format: Option<NotifyFormat>,
}

impl Decode for NotifySpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "a notification")?;
        let on = m.req(d, "on", |d, n| match &n.value {
            crate::yaml::NodeValue::Str(_) => Spanned::<NotifyEvent>::decode(d, n).map(|e| vec![e]),
            _ => Decode::decode(d, n),
        });
        let spec = Self {
            on: Vec::new(),
            webhook: m.opt(d, "webhook", Decode::decode),
            webhook_env: m.opt(d, "webhook_env", Decode::decode),
            format: m.opt(d, "format", Decode::decode),
        };
        m.finish(d);
        Some(Self { on: on?, ..spec })
    }
}
