//! The baton control plane: the REST API under `/api/v1` over the store, the pipeline catalog
//! and the engine. `router` builds the whole app, so tests drive it without a socket.

mod body;
pub mod catalog;
mod concurrency;
mod error;
mod page;
mod routes;
mod runner;
pub mod scheduler;
pub mod secrets;
pub mod serve;
pub mod upstream;
pub mod watch;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use baton_core::spec::Overlap;
use tokio::sync::RwLock;

pub use catalog::Catalog;
pub use error::ApiError;
pub use runner::Runner;

/// Requests larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn baton_store::Store>,
    pub catalog: Arc<RwLock<Catalog>>,
    pub runner: Runner,
    pub secrets: Arc<dyn secrets::Secrets>,
}

/// How a run of a catalog pipeline starts; the rest comes from the version.
#[derive(Debug, Default)]
pub struct Launch {
    pub params: serde_json::Map<String, serde_json::Value>,
    /// `manual`, `schedule`, `webhook`, `pipeline`.
    pub trigger: &'static str,
    pub logical_date: Option<String>,
    pub idempotency_key: Option<String>,
}

impl AppState {
    /// Creates a run of `version` and starts driving it (once admitted, under the pipeline's
    /// `concurrency`). When the idempotency key matches an earlier run, that run is returned as
    /// it is (`new: false`) and not started again. `overlap: skip` at the limit fails with 409
    /// `concurrency_limit`.
    pub async fn launch(
        &self,
        version: &catalog::Version,
        launch: Launch,
    ) -> Result<baton_engine::Created, ApiError> {
        let base_dir = version
            .file
            .parent()
            .map_or_else(|| ".".into(), |d| d.display().to_string());
        let admission = baton_engine::pipeline_admission(&version.pipeline);
        let created = baton_engine::create_run(
            self.store.as_ref(),
            baton_engine::RunRequest {
                pipeline: &version.pipeline,
                source: &version.source,
                path: Some(version.file.display().to_string()),
                base_dir,
                params: launch.params,
                trigger: launch.trigger,
                logical_date: launch.logical_date,
                idempotency_key: launch.idempotency_key,
                admission: admission.clone(),
                backfill_id: None,
            },
        )
        .await
        .map_err(concurrency::skipped)?;
        if created.new {
            if let Some(a) = admission.filter(|a| a.overlap == Overlap::CancelPrevious) {
                concurrency::cancel_flagged(self, &a.group, &created.id).await;
            }
            self.runner.start(created.id.clone());
        }
        Ok(created)
    }

    /// Reloads the pipelines directory, recording each valid version in the store.
    pub async fn reload(&self) -> catalog::Reload {
        let mut catalog = self.catalog.write().await;
        let report = catalog.reload();
        for entry in catalog.entries() {
            let Some(v) = &entry.active else { continue };
            let def = baton_store::DefinitionRecord {
                hash: v.pipeline.version.to_string(),
                namespace: v.pipeline.id.namespace.to_string(),
                name: v.pipeline.id.name.to_string(),
                source: v.source.to_string(),
                path: Some(entry.path.clone()),
            };
            if let Err(e) = self
                .store
                .put_definition(&def, baton_engine::now_ms())
                .await
            {
                tracing::error!(error = %e, path = %entry.path, "cannot record pipeline version");
            }
        }
        report
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/pipelines", get(routes::pipelines::list))
        .route("/pipelines/{namespace}/{name}", get(routes::pipelines::get))
        .route(
            "/pipelines/{namespace}/{name}/versions",
            get(routes::pipelines::versions),
        )
        .route(
            "/pipelines/{namespace}/{name}/runs",
            post(routes::pipelines::trigger),
        )
        .route(
            "/pipelines/{namespace}/{name}/pause",
            post(routes::pipelines::pause),
        )
        .route(
            "/pipelines/{namespace}/{name}/unpause",
            post(routes::pipelines::unpause),
        )
        .route(
            "/pipelines/{namespace}/{name}/schedule",
            get(routes::pipelines::next_times),
        )
        .route(
            "/pipelines/{namespace}/{name}/webhook",
            post(routes::webhook::deliver),
        )
        .route(
            "/pipelines/{namespace}/{name}/backfill",
            post(routes::backfills::create),
        )
        .route("/backfills", get(routes::backfills::list))
        .route("/backfills/{id}", get(routes::backfills::get))
        .route("/backfills/{id}/cancel", post(routes::backfills::cancel))
        .route("/reload", post(routes::pipelines::reload))
        .route("/runs", get(routes::runs::list))
        .route("/runs/{id}", get(routes::runs::get))
        .route("/runs/{id}/cancel", post(routes::runs::cancel))
        .route("/runs/{id}/retry", post(routes::runs::retry))
        .route(
            "/runs/{id}/tasks/{key}/approve",
            post(routes::runs::approve),
        )
        .route("/runs/{id}/tasks/{key}/reject", post(routes::runs::reject))
        .route(
            "/runs/{id}/tasks/{key}/requeue",
            post(routes::dead_letters::requeue_one),
        )
        .route("/dead-letters", get(routes::dead_letters::list))
        .route(
            "/dead-letters/requeue",
            post(routes::dead_letters::requeue_bulk),
        )
        .route("/runs/{id}/tasks/{key}/log", get(routes::logs::log));
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
