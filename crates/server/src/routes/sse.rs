//! A server-sent event response from a source of frames (the log stream, the run events).

use std::fmt::Display;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// One server-sent event, as an `EventSource` (or any SSE parser) reads it off a
/// `text/event-stream`: the schema the document gives the stream's media type, which in
/// OpenAPI 3.1 describes each event of the stream.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)] // Only its OpenAPI description is used: the frames are written as text.
pub(crate) struct ServerSentEvent {
    /// The event's name; `message` when the frame names none.
    event: String,
    /// Where a client that reconnects with `Last-Event-ID` resumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// The event's `data:` lines, joined with `\n`.
    data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<u64>,
}

/// Streams the frames `step` yields from `source` until it yields `None` or fails (logged as
/// `what` stopping). `step` takes the source and hands it back with its result.
pub(crate) fn response<S, F, Fut, E>(source: S, step: F, what: &'static str) -> Response
where
    S: Send + 'static,
    F: Fn(S) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = (Result<Option<String>, E>, S)> + Send + 'static,
    E: Display,
{
    let body = futures_util::stream::unfold(source, move |s| async move {
        match step(s).await {
            (Ok(Some(frame)), s) => Some((Ok::<_, std::io::Error>(Bytes::from(frame)), s)),
            (Ok(None), _) => None,
            (Err(e), _) => {
                tracing::error!(error = %e, "{what} stopped");
                None
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
