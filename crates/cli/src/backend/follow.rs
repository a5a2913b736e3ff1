//! Following a remote attempt's log over the server's event stream.

use baton_core::ids::{RunId, TaskKey};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};

use super::{RECONNECT_WAIT, RECONNECTS, attempt_query, log_path};
use crate::client::{Client, bad_answer};
use crate::error::ExpectedError;
use crate::output::Output;

/// Follows a log over server-sent events: each event's `data:` lines, joined with `\n`, are
/// a piece of the log; `end` closes it. A dropped stream (a server restarting) is reopened
/// from the last event's id, a few times.
pub(super) async fn follow_remote(
    c: &Client,
    run: &RunId,
    key: &TaskKey,
    attempt: Option<u32>,
    out: &mut Output,
) -> Result<(), ExpectedError> {
    let mut last_id: Option<String> = None;
    let mut reconnects = 0;
    loop {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(id) = last_id
            .as_deref()
            .and_then(|i| HeaderValue::from_str(i).ok())
        {
            headers.insert("last-event-id", id);
        }
        let sent = c
            .send(
                Method::GET,
                &log_path(run, key),
                &attempt_query(attempt, None),
                headers,
                None,
            )
            .await;
        let mut resp = match sent {
            Ok(resp) => resp,
            Err(ExpectedError::Unreachable { .. })
                if reconnects > 0 && reconnects <= RECONNECTS =>
            {
                reconnects += 1;
                tokio::time::sleep(RECONNECT_WAIT).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let url = resp.url().clone();
        let is_stream = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_stream {
            // The attempt has ended: the rest of the log (from `Last-Event-ID` on) comes as
            // plain text.
            let bytes = resp.bytes().await.map_err(|e| bad_answer(&url, &e))?;
            out.print_bytes(&bytes)?;
            return Ok(());
        }
        let mut parser = SseParser::default();
        while let Ok(Some(chunk)) = resp.chunk().await {
            for event in parser.feed(&chunk) {
                if let Some(id) = event.id {
                    last_id = Some(id);
                }
                match event.name.as_str() {
                    "end" => return Ok(()),
                    "message" => out.print(&event.data)?,
                    _ => {}
                }
            }
        }
        reconnects += 1;
        if reconnects > RECONNECTS {
            return Err(bad_answer(
                &url,
                &"the log stream ended before the attempt did",
            ));
        }
        tokio::time::sleep(RECONNECT_WAIT).await;
    }
}

#[derive(Debug, PartialEq)]
struct SseEvent {
    name: String,
    id: Option<String>,
    data: String,
}

/// Server-sent events from a byte stream, by the rules of the HTML standard (lines end with
/// `\r\n`, `\r` or `\n`; `data` lines join with `\n`; comments and unknown fields ignored).
#[derive(Debug, Default)]
struct SseParser {
    buf: Vec<u8>,
    name: Option<String>,
    id: Option<String>,
    data: Option<String>,
    /// A `\r` ended the last line; a `\n` right after it belongs to it.
    after_cr: bool,
}

impl SseParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    let line = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                    if let Some(e) = self.line(&line) {
                        events.push(e);
                    }
                }
                _ => self.buf.push(b),
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let name = self.name.take();
            let data = self.data.take()?;
            return Some(SseEvent {
                name: name.unwrap_or_else(|| "message".into()),
                id: self.id.clone(),
                data,
            });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_across_chunks_and_line_ends() {
        let mut p = SseParser::default();
        assert!(p.feed(b"id: 4\ndata: one\r").is_empty());
        let e = p.feed(b"\ndata: \n\n: keep-alive\n\nevent: end\nid: 9\ndata: {}\n\n");
        assert_eq!(
            e,
            [
                SseEvent {
                    name: "message".into(),
                    id: Some("4".into()),
                    data: "one\n".into()
                },
                SseEvent {
                    name: "end".into(),
                    id: Some("9".into()),
                    data: "{}".into()
                },
            ]
        );
    }
}
