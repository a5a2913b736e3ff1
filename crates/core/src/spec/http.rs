//! A task's `http:` step as written: a request baton makes instead of starting a process.

use indexmap::IndexMap;
use schemars::JsonSchema;

use super::schema_helpers::{OrTrue, ScalarText};
use super::task::TemplateText;
use crate::decode::{Decode, Decoder, Text};
use crate::duration::Duration;
use crate::keyword::keyword_enum;
use crate::span::Spanned;
use crate::yaml::{Node, NodeValue};

keyword_enum!(
    /// The HTTP method of an `http:` step.
    HttpMethod, "HTTP method" {
        Get = "GET",
        Post = "POST",
        Put = "PUT",
        Patch = "PATCH",
        Delete = "DELETE",
        Head = "HEAD",
    }
);

keyword_enum!(
    /// Where a task's outputs come from, besides `$BATON_OUTPUTS`.
    OutputsFrom, "outputs source" {
        /// The response body of an `http:` step, a JSON object: its members named under
        /// `outputs:` become the task's outputs.
        Json = "json",
    }
);

/// Call a service or a serverless function instead of running a process. The attempt
/// succeeds when the response status is one `expect.status` lists (any 2xx by default).
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct HttpSpec {
    /// `http://` or `https://` URL; a template.
    pub url: TemplateText,
    /// The method: `GET` by default, `POST` when there is a `body`.
    pub method: Option<Spanned<HttpMethod>>,
    /// Request headers; values are templates.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, ScalarText>")]
    pub headers: IndexMap<Spanned<String>, Spanned<Text>>,
    /// The body: a string, sent as written (a template), or a mapping or list, sent as JSON
    /// with its string values rendered as templates.
    pub body: Option<Spanned<serde_json::Value>>,
    /// What counts as success.
    pub expect: Option<ExpectSpec>,
    /// The asynchronous pattern: a `202 Accepted` with a `Location` header is polled (GET)
    /// until it answers something else, and that answer is the result. `true` polls every
    /// 2 s.
    #[schemars(with = "Option<OrTrue<PollSpec>>")]
    pub poll: Option<PollSpec>,
    /// The other asynchronous pattern: the request carries a one-time, signed callback URL
    /// (`X-Baton-Callback-Url`), and the attempt ends when the callee POSTs its result there
    /// (a JSON object; `"status": "failed"` with an `"error"` fails it). `true` waits up to
    /// an hour. Needs a `baton server`, which receives the call.
    #[schemars(with = "Option<OrTrue<CallbackSpec>>")]
    pub callback: Option<CallbackSpec>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CallbackSpec {
    /// How long to wait for the call after the request was answered (default `1h`).
    pub wait: Option<Spanned<Duration>>,
}

impl Decode for CallbackSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        if node.value == NodeValue::Bool(true) {
            return Some(Self::default());
        }
        let mut m = d.map(node, "`callback`")?;
        let spec = Self {
            wait: m.opt(d, "wait", Decode::decode),
        };
        m.finish(d);
        Some(spec)
    }
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ExpectSpec {
    /// Status codes that mean success (default: any from 200 to 299).
    #[serde(default)]
    pub status: Vec<Spanned<u32>>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PollSpec {
    /// Time between polls (default `2s`).
    pub interval: Option<Spanned<Duration>>,
}

impl Decode for HttpSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "`http`")?;
        let url = m.req(d, "url", Decode::decode);
        let method = m.opt(d, "method", Decode::decode);
        let headers = m.opt(d, "headers", Decode::decode).unwrap_or_default();
        let body = m.opt(d, "body", Decode::decode);
        let expect = m.opt(d, "expect", Decode::decode);
        let poll = m.opt(d, "poll", Decode::decode);
        let callback = m.opt(d, "callback", Decode::decode);
        m.finish(d);
        Some(Self {
            url: url?,
            method,
            headers,
            body,
            expect,
            poll,
            callback,
        })
    }
}

impl Decode for ExpectSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let mut m = d.map(node, "`expect`")?;
        let spec = Self {
            status: m.opt(d, "status", decode_statuses).unwrap_or_default(),
        };
        m.finish(d);
        Some(spec)
    }
}

/// `status: 200` is accepted as `status: [200]`.
fn decode_statuses(d: &mut Decoder, node: &Node) -> Option<Vec<Spanned<u32>>> {
    match &node.value {
        NodeValue::Int(_) => Spanned::<u32>::decode(d, node).map(|s| vec![s]),
        _ => Decode::decode(d, node),
    }
}

impl Decode for PollSpec {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        if node.value == NodeValue::Bool(true) {
            return Some(Self::default());
        }
        let mut m = d.map(node, "`poll`")?;
        let spec = Self {
            interval: m.opt(d, "interval", Decode::decode),
        };
        m.finish(d);
        Some(spec)
    }
}
