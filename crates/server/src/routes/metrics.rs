//! `GET /metrics`: Prometheus text, or OpenMetrics when the scraper asks for it.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;

use crate::AppState;
use baton_observe::metrics::openmetrics;

/// The control plane's metrics (docs/observability.md lists them). Gauges of tasks, approvals
/// and dead letters are read from the database, at most once a second.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    params(
        ("Accept" = Option<String>, Header, description = "`application/openmetrics-text` for OpenMetrics 1.0; anything else gets the Prometheus text format 0.0.4"),
    ),
    responses(
        (status = 200, description = "The metrics, in the Prometheus text format or OpenMetrics", content(
            (String = "text/plain"),
            (String = "application/openmetrics-text"),
        )),
    )
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let known: Vec<(String, String)> = state
        .catalog
        .read()
        .await
        .entries()
        .filter_map(|e| e.active.as_ref())
        .map(|v| {
            (
                v.pipeline.id.namespace.to_string(),
                v.pipeline.id.name.to_string(),
            )
        })
        .collect();
    state
        .metrics
        .refresh_live(state.store.as_ref(), known)
        .await;
    // Zeros where the worker API is off, so a dashboard's series exist either way.
    {
        let c = state
            .workers
            .as_ref()
            .map(|api| api.hub.counts())
            .unwrap_or_default();
        let m = &state.metrics;
        for (s, n) in [("live", c.live), ("draining", c.draining), ("lost", c.lost)] {
            m.gauge("baton_workers", &[("state", s.to_owned())], n as f64);
        }
        m.gauge(
            "baton_worker_slots",
            &[("state", "busy".to_owned())],
            c.busy as f64,
        );
        m.gauge(
            "baton_worker_slots",
            &[("state", "free".to_owned())],
            c.slots.saturating_sub(c.busy) as f64,
        );
        m.gauge("baton_worker_queue", &[], c.waiting as f64);
        m.counter_total("baton_worker_leases_expired_total", &[], c.leases_expired);
        m.counter_total("baton_worker_stale_reports_total", &[], c.stale_reports);
    }
    let text = state.metrics.render();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if openmetrics::wanted(accept) {
        (
            [(header::CONTENT_TYPE, openmetrics::CONTENT_TYPE)],
            openmetrics::from_prometheus(&text),
        )
    } else {
        (
            [(header::CONTENT_TYPE, openmetrics::PROMETHEUS_CONTENT_TYPE)],
            text,
        )
    }
}
