//! `http:` steps: the URL, headers and body as templates, the method, the statuses that mean
//! success, polling, and the fields that make no sense beside a request.

use indexmap::IndexMap;

use crate::decode::Decoder;
use crate::model::{HttpBody, HttpCall};
use crate::span::{Span, Spanned};
use crate::spec::{HttpMethod, HttpSpec, OutputsFrom, TaskSpec};

use super::Compiler;
use super::fields::check_positive;
use super::templates::Scope;

impl Compiler<'_> {
    pub(super) fn http_call(
        &self,
        d: &mut Decoder,
        h: &HttpSpec,
        outputs_from: Option<OutputsFrom>,
        scope: Scope<'_>,
    ) -> Option<HttpCall> {
        let url = d.at("url", |d| {
            let url = &h.url;
            let template = self.template(d, url.span, &url.value, scope)?;
            // A URL that is all template is checked once rendered, before the request.
            let literal_start = !url.value.trim_start().starts_with("{{");
            if literal_start && !has_http_scheme(&url.value) {
                d.error(
                    url.span,
                    format!("`{}` is not an `http://` or `https://` URL", url.value),
                )
                .hint = Some("write the whole URL, e.g. `https://api.example.com/jobs`".into());
                return None;
            }
            Some(template)
        });
        let method = h
            .method
            .as_ref()
            .map(|m| m.value)
            .unwrap_or(if h.body.is_some() {
                HttpMethod::Post
            } else {
                HttpMethod::Get
            });
        let headers = d.at("headers", |d| {
            let mut out = IndexMap::new();
            for (name, value) in &h.headers {
                d.at(name.value.clone(), |d| {
                    if !is_header_name(&name.value) {
                        d.error(name.span, format!("`{}` is not a header name", name.value))
                            .hint = Some(
                            "letters, digits and `!#$%&'*+-.^_|~`, e.g. `Authorization`".into(),
                        );
                        return;
                    }
                    if let Some(t) = self.template(d, value.span, &value.value.0, scope) {
                        out.insert(name.value.clone(), t);
                    }
                });
            }
            out
        });
        let body = h.body.as_ref().and_then(|b| {
            d.at("body", |d| {
                if matches!(method, HttpMethod::Get | HttpMethod::Head) {
                    d.error(b.span, format!("a `{method}` request has no body"))
                        .hint = Some("use `method: POST` (the default with a body)".into());
                    return None;
                }
                match &b.value {
                    serde_json::Value::String(text) => {
                        self.template(d, b.span, text, scope).map(HttpBody::Text)
                    }
                    json => self
                        .json_templates(d, b.span, json, scope)
                        .then(|| HttpBody::Json(json.clone())),
                }
            })
        });
        let expect_status = h.expect.as_ref().map_or_else(Vec::new, |e| {
            d.at("expect", |d| {
                d.at("status", |d| {
                    e.status
                        .iter()
                        .filter_map(|s| status_code(d, s))
                        .collect::<Vec<_>>()
                })
            })
        });
        let poll = h.poll.as_ref().map(|p| {
            d.at("poll", |d| {
                if let Some(i) = &p.interval {
                    d.at("interval", |d| check_positive(d, i, "interval"));
                }
                p.interval
                    .as_ref()
                    .map_or(HttpCall::DEFAULT_POLL, |i| i.value)
            })
        });
        let callback = h.callback.as_ref().map(|c| {
            d.at("callback", |d| {
                if let Some(w) = &c.wait {
                    d.at("wait", |d| check_positive(d, w, "wait"));
                }
                c.wait
                    .as_ref()
                    .map_or(HttpCall::DEFAULT_CALLBACK_WAIT, |w| w.value)
            })
        });
        if h.poll.is_some() && h.callback.is_some() {
            d.at("callback", |d| {
                d.error(
                    h.url.span,
                    "`poll` and `callback` are two ways to wait for the result: keep one",
                )
                .hint = Some(
                    "`poll` follows a `202` to its `Location`; `callback` waits for the callee \
                     to call baton back"
                        .into(),
                );
            });
        }
        if h.body.is_some() && body.is_none() {
            return None;
        }
        Some(HttpCall {
            url: url?,
            method,
            headers,
            body,
            expect_status,
            poll,
            callback,
            outputs_from,
        })
    }

    /// Checks every string of a JSON body as a template.
    fn json_templates(
        &self,
        d: &mut Decoder,
        span: Span,
        json: &serde_json::Value,
        scope: Scope<'_>,
    ) -> bool {
        // Every string is checked, not only up to the first bad one: all problems are told.
        let mut ok = true;
        match json {
            serde_json::Value::String(text) => ok = self.template(d, span, text, scope).is_some(),
            serde_json::Value::Array(items) => {
                for v in items {
                    ok &= self.json_templates(d, span, v, scope);
                }
            }
            serde_json::Value::Object(members) => {
                for v in members.values() {
                    ok &= self.json_templates(d, span, v, scope);
                }
            }
            _ => {}
        }
        ok
    }
}

/// Reports the fields of a task that an `http:` step does not use, and an `outputs_from`
/// without one. Returns whether there was none.
pub(super) fn check_http_fields(d: &mut Decoder, id: &Spanned<String>, t: &TaskSpec) -> bool {
    let mut ok = true;
    match (&t.http, &t.outputs_from) {
        (Some(_), _) => {
            if let Some(shell) = &t.shell {
                ok = false;
                d.at("shell", |d| {
                    d.error(shell.span, "`shell` is not used by an `http` step")
                        .hint = Some("remove it, or make the task a `run` command".into());
                });
            }
        }
        (None, Some(from)) => {
            ok = false;
            d.at("outputs_from", |d| {
                d.error(from.span, "`outputs_from` is only used with `http`")
                    .hint = Some(format!(
                    "task `{}` writes its outputs to `$BATON_OUTPUTS` as `key=value` lines",
                    id.value
                ));
            });
        }
        (None, None) => {}
    }
    ok
}

fn has_http_scheme(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// RFC 9110's `token`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_|~`".contains(&b))
}

fn status_code(d: &mut Decoder, s: &Spanned<u32>) -> Option<u16> {
    match u16::try_from(s.value) {
        Ok(code) if (100..=599).contains(&code) => Some(code),
        _ => {
            d.error(s.span, format!("{} is not an HTTP status code", s.value))
                .hint = Some("a number from 100 to 599, e.g. `200` or `202`".into());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_http_and_https_only() {
        assert!(has_http_scheme("https://x"));
        assert!(has_http_scheme("HTTP://x"));
        assert!(!has_http_scheme("ftp://x"));
        assert!(!has_http_scheme("x.example.com"));
    }

    #[test]
    fn header_names_are_tokens() {
        assert!(is_header_name("X-Request-Id"));
        assert!(!is_header_name("Bad Header"));
        assert!(!is_header_name(""));
        assert!(!is_header_name("a:b"));
    }
}
