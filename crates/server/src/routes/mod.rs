//! The HTTP routes; handlers are thin over the store, the catalog and the engine. Each carries
//! its `#[utoipa::path]`, and `crate::api` registers it with `routes!`, so a route cannot be
//! served without being documented.

use axum::http::HeaderMap;
use serde::Deserialize;
use utoipa::IntoParams;

/// A request's idempotency key: the body's field, else the `Idempotency-Key` header.
pub(crate) fn idempotency_key(from_body: Option<String>, headers: &HeaderMap) -> Option<String> {
    from_body.or_else(|| {
        headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

pub(crate) mod backfills;
pub(crate) mod callbacks;
pub(crate) mod dead_letters;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod pipelines;
pub(crate) mod pools;
pub(crate) mod run_tasks;
pub(crate) mod runs;
pub(crate) mod sse;
pub(crate) mod webhook;
pub(crate) mod worker_artifacts;
pub(crate) mod workers;

/// `/pipelines/{namespace}/{name}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct PipelinePath {
    /// The pipeline's namespace (`default` unless its file sets one).
    pub namespace: String,
    /// The pipeline's name.
    pub name: String,
}

/// `/runs/{id}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct RunPath {
    /// The run's id, or a unique prefix of it.
    pub id: String,
}

/// `/runs/{id}/tasks/{key}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TaskPath {
    /// The run's id, or a unique prefix of it.
    pub id: String,
    /// The task instance: the task id, or `id[item]` for a fan-out instance.
    pub key: String,
}
