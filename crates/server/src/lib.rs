//! The baton control plane: the REST API under `/api/v1` over the store, the pipeline catalog
//! and the engine. `router` builds the whole app, so tests drive it without a socket.

mod body;
pub mod catalog;
mod error;
mod page;
mod routes;
mod runner;
pub mod scheduler;
pub mod secrets;
pub mod serve;
pub mod upstream;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
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

impl AppState {
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
        .route("/reload", post(routes::pipelines::reload))
        .route("/runs", get(routes::runs::list))
        .route("/runs/{id}", get(routes::runs::get))
        .route("/runs/{id}/cancel", post(routes::runs::cancel))
        .route("/runs/{id}/retry", post(routes::runs::retry))
        .route(
            "/runs/{id}/tasks/{key}/approve",
            post(routes::runs::approve),
        )
        .route("/runs/{id}/tasks/{key}/reject", post(routes::runs::reject));
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
