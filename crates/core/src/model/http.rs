//! A checked `http:` step: the request a task makes instead of starting a process.

use indexmap::IndexMap;
use serde::Serialize;

use crate::duration::Duration;
use crate::model::task::Template;
use crate::spec::{HttpMethod, OutputsFrom};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpCall {
    pub url: Template,
    pub method: HttpMethod,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
    /// Statuses that mean success; empty for any 2xx.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
    /// When set, a `202 Accepted` with a `Location` is polled this often until it answers
    /// something else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll: Option<Duration>,
    /// When set, the request carries a callback URL, and the attempt waits this long for
    /// the callee to call it with the result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs_from: Option<OutputsFrom>,
}

impl HttpCall {
    /// The poll interval when `poll: true` names none.
    pub const DEFAULT_POLL: Duration = Duration::from_secs(2);
    /// How long a callback is waited for when `callback: true` names no `wait`.
    pub const DEFAULT_CALLBACK_WAIT: Duration = Duration::from_secs(3600);

    /// Whether a response with `status` is a success.
    pub fn expects(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpBody {
    /// Sent as written, once rendered.
    Text(Template),
    /// Sent as JSON; its strings are templates, rendered one by one (so a value cannot
    /// break the document's syntax).
    Json(serde_json::Value),
}
