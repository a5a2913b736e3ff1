//! A server-sent event response from a source of frames (the log stream, the run events).

use std::fmt::Display;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};

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
