//! A task attempt's log: plain text, or a server-sent event stream that follows the attempt
//! to its end. The tailing itself is `baton_engine::log_tail`, shared with `baton logs -f`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_core::ids::TaskKey;
use baton_engine::log_tail::{LogError, LogTail, Tail};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use crate::AppState;
use crate::body::Query;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::responses::{AmbiguousRun, StoreDown};
use crate::routes::TaskPath;
use crate::routes::sse::ServerSentEvent;

/// Idle polls (of 200 ms) between keep-alive comments on a quiet stream, so proxies do not
/// close it.
const KEEP_ALIVE_IDLES: u32 = 75;

// Read as text and parsed by hand, so a bad number is a JSON 400 naming the parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// Which attempt (default: the latest).
    #[param(value_type = Option<u32>)]
    attempt: Option<String>,
    /// Start at this byte of the log (default 0); `Last-Event-ID` wins over it.
    #[param(value_type = Option<u64>)]
    offset: Option<String>,
    /// `true`: a server-sent event stream while the attempt runs, like
    /// `Accept: text/event-stream`.
    #[param(value_type = Option<bool>)]
    follow: Option<String>,
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::NoTask { .. } | LogError::NoAttempt { .. } => Self::not_found(e.to_string()),
            LogError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "cannot read a log");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the log cannot be read",
                )
            }
        }
    }
}

fn number<T: std::str::FromStr>(name: &str, text: Option<&str>) -> ApiResult<Option<T>> {
    text.map(|t| {
        t.trim().parse().map_err(|_| {
            ApiError::bad_request(format!(
                "`{name}` must be a non-negative integer, got `{t}`"
            ))
        })
    })
    .transpose()
}

/// `GET /runs/{id}/tasks/{key}/log?attempt=N&offset=B&follow=true`.
#[utoipa::path(
    get,
    path = "/runs/{id}/tasks/{key}/log",
    operation_id = "task_log",
    tag = "runs",
    summary = "An attempt's log: plain text, or server-sent events while it runs.",
    description = "Plain text of what the log holds when the attempt has ended or no stream is \
        asked for. With `Accept: text/event-stream` or `?follow=true` on a running attempt: \
        events whose `data:` lines joined with `\\n` are the log's text and whose `id` is the \
        byte offset after them, then one `end` event whose data is \
        `{\"attempt\", \"state\", \"exit_code\", \"signal\", \"error\"}`.",
    params(
        TaskPath,
        LogQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume a stream after this byte offset"),
        ("Accept" = Option<String>, Header, description = "`text/event-stream` asks for a stream"),
    ),
    responses(
        (status = 200, description = "The log", content(
            (String = "text/plain; charset=utf-8"),
            (ServerSentEvent = "text/event-stream"),
        )),
        (status = 400, description = "A number that does not parse", body = ErrorBody),
        (status = 404, description = "No such run, task or attempt, or the task has not started one", body = ErrorBody),
        AmbiguousRun,
        (status = 500, description = "The log cannot be read", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn log(
    State(state): State<AppState>,
    Path(TaskPath { id, key }): Path<TaskPath>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = state.store.resolve_run(&id).await?;
    let key = TaskKey::from_string(key);
    let attempt = number::<u32>("attempt", q.attempt.as_deref())?;
    // A reconnecting EventSource says where it got to; that wins over the query.
    let resume = number::<u64>(
        "Last-Event-ID",
        headers
            .get("last-event-id")
            .map(|v| v.to_str().unwrap_or_default()),
    )?;
    // Checked even when the header wins: a bad `offset` is refused either way.
    let offset = number::<u64>("offset", q.offset.as_deref())?;
    let offset = resume.or(offset).unwrap_or(0);
    let follow = match q.follow.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`follow` must be `true` or `false`, got `{other}`"
            )));
        }
    };
    let wants_stream = follow
        || headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/event-stream"));
    let tail = LogTail::open(
        Arc::clone(&state.store),
        Arc::clone(&state.runner.logs().store),
        &id,
        &key,
        attempt,
        offset,
    )
    .await?;
    if !wants_stream || tail.ended() {
        return Ok(plain(tail));
    }
    Ok(event_stream(tail, state.runner.closing()))
}

/// What the log holds now, streamed as it is read.
fn plain(tail: LogTail) -> Response {
    let body = futures_util::stream::unfold(Some(tail), |tail| async move {
        let mut tail = tail?;
        match tail.read_available().await {
            Ok(chunk) if chunk.is_empty() => None,
            Ok(chunk) => Some((Ok(Bytes::from(chunk)), Some(tail))),
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(body),
    )
        .into_response()
}

fn event_stream(tail: LogTail, closing: tokio::sync::watch::Receiver<bool>) -> Response {
    let stream = Sse {
        tail,
        closing,
        pending: Vec::new(),
        idles: 0,
        done: false,
    };
    super::sse::response(
        stream,
        |mut s| async move {
            let r = s.step().await;
            (r, s)
        },
        "log stream",
    )
}

/// The log as server-sent events. Each event's data is a piece of the log: its lines become
/// `data:` lines, so a client joining them with `\n` (as the SSE rules say) gets the text
/// back exactly, a partial last line included (`\r` and `\r\n` arrive as `\n`, since SSE
/// treats them as line ends). Its `id` is the byte offset after it, so a reconnect with
/// `Last-Event-ID` resumes without duplicates.
#[derive(Debug)]
struct Sse {
    tail: LogTail,
    /// The server is stopping: end the stream without waiting for the attempt.
    closing: tokio::sync::watch::Receiver<bool>,
    /// Read but not sent: the start of a line still being written.
    pending: Vec<u8>,
    idles: u32,
    done: bool,
}

impl Sse {
    async fn step(&mut self) -> Result<Option<String>, LogError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let step = tokio::select! {
                step = self.tail.next() => step?,
                _ = self.closing.wait_for(|closing| *closing) => return Ok(None),
            };
            match step {
                Tail::Data(data) => {
                    self.idles = 0;
                    self.pending.extend_from_slice(&data);
                    if let Some(frame) = self.take(complete_lines(&self.pending)) {
                        return Ok(Some(frame));
                    }
                }
                // A line that stays unfinished is sent as it is (a prompt, a progress dot).
                Tail::Idle => {
                    let mut n = valid_utf8(&self.pending);
                    if n > 0 && n == self.pending.len() && self.pending.ends_with(b"\r") {
                        n -= 1;
                    }
                    if let Some(frame) = self.take(n) {
                        self.idles = 0;
                        return Ok(Some(frame));
                    }
                    self.idles += 1;
                    if self.idles >= KEEP_ALIVE_IDLES {
                        self.idles = 0;
                        return Ok(Some(": keep-alive\n\n".into()));
                    }
                }
                Tail::End => {
                    self.done = true;
                    let mut frame = self.take(self.pending.len()).unwrap_or_default();
                    let a = self.tail.attempt();
                    let end = json!({
                        "attempt": a.attempt,
                        "state": a.state,
                        "exit_code": a.exit_code,
                        "signal": a.signal,
                        "error": a.error,
                    });
                    frame.push_str(&format!(
                        "event: end\nid: {}\ndata: {end}\n\n",
                        self.tail.offset()
                    ));
                    return Ok(Some(frame));
                }
            }
        }
    }

    /// Sends the first `n` pending bytes as one event.
    fn take(&mut self, n: usize) -> Option<String> {
        if n == 0 {
            return None;
        }
        let piece: Vec<u8> = self.pending.drain(..n).collect();
        let offset = self.tail.offset() - self.pending.len() as u64;
        let text = String::from_utf8_lossy(&piece);
        let mut frame = format!("id: {offset}\n");
        for line in split_lines(&text) {
            frame.push_str("data: ");
            frame.push_str(line);
            frame.push('\n');
        }
        frame.push('\n');
        Some(frame)
    }
}

/// How many leading bytes are whole lines. A trailing `\r` waits: a `\n` may follow.
fn complete_lines(bytes: &[u8]) -> usize {
    let searched = match bytes.last() {
        Some(b'\r') => &bytes[..bytes.len() - 1],
        _ => bytes,
    };
    searched
        .iter()
        .rposition(|&b| b == b'\n' || b == b'\r')
        .map_or(0, |i| i + 1)
}

/// How many leading bytes can be sent now without cutting a character in two.
fn valid_utf8(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        // An incomplete character at the end waits for its other bytes; invalid bytes go as
        // replacement characters.
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    }
}

/// Splits at `\r\n`, `\r` and `\n`, as SSE does: `n` line ends give `n + 1` pieces.
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['\r', '\n']) {
        lines.push(&rest[..i]);
        let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[i + skip..];
    }
    lines.push(rest);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_as_sse_reads_them() {
        assert_eq!(split_lines("a\nb"), ["a", "b"]);
        assert_eq!(split_lines("a\n"), ["a", ""]);
        assert_eq!(split_lines("\n"), ["", ""]);
        assert_eq!(split_lines("50%\r60%\r\ndone"), ["50%", "60%", "done"]);
    }

    #[test]
    fn only_whole_lines_and_whole_characters_are_cut() {
        assert_eq!(complete_lines(b"a\nb"), 2);
        assert_eq!(complete_lines(b"ab"), 0);
        assert_eq!(complete_lines(b"a\r"), 0);
        assert_eq!(complete_lines(b"a\r\n"), 3);
        assert_eq!(complete_lines(b"a\rb"), 2);
        assert_eq!(valid_utf8("é".as_bytes()), 2);
        assert_eq!(valid_utf8(&"é".as_bytes()[..1]), 0);
        assert_eq!(valid_utf8(b"a\xff"), 2);
    }
}
