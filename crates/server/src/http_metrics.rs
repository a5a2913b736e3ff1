//! Counting and timing HTTP requests by route template (`MatchedPath`), never by the path
//! itself, so run ids and task keys in URLs do not become labels.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use baton_observe::metrics::Metrics;

/// Requests that matched no route share one label.
const UNMATCHED: &str = "unmatched";

/// The layer's function: `axum::middleware::from_fn_with_state(metrics, track)`.
pub(crate) async fn track(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let elapsed = start.elapsed().as_secs_f64();
    metrics.counter(
        "baton_http_requests_total",
        &[
            ("method", method.clone()),
            ("route", route.clone()),
            ("status", response.status().as_str().to_owned()),
        ],
        1,
    );
    metrics.observe(
        "baton_http_request_duration_seconds",
        &[("method", method), ("route", route)],
        elapsed,
    );
    response
}
