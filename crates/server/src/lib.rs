//! The baton control plane: the REST API under `/api/v1` over the store, the pipeline catalog
//! and the engine. `router` builds the whole app, so tests drive it without a socket.

pub mod api_model;
mod body;
pub mod catalog;
mod concurrency;
pub mod delivery;
mod error;
pub mod guard;
pub mod lineage;
pub mod metrics;
pub mod notify;
pub mod observers;
mod openapi;
pub mod outbox;
mod page;
mod responses;
mod routes;
mod runner;
pub mod scheduler;
pub mod secrets;
pub mod serve;
pub mod takeover;
pub mod traces;
mod ui;
pub mod upstream;
pub mod watch;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Router};
use baton_core::spec::Overlap;
use tokio::sync::RwLock;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use catalog::Catalog;
pub use error::ApiError;
pub use routes::events::EventsFallback;
pub use runner::{Leases, Runner};

/// Requests larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn baton_store::Store>,
    pub catalog: Arc<RwLock<Catalog>>,
    pub runner: Runner,
    pub secrets: Arc<dyn secrets::Secrets>,
    /// This app's own registry, scraped at `GET /metrics`.
    pub metrics: metrics::Metrics,
    /// When a run's event stream reads the store without an announced commit.
    pub events_fallback: EventsFallback,
    /// The `Host` values answered (see [`guard`]); loopback names on any port unless
    /// [`AppState::with_allowed_hosts`] says otherwise.
    pub allowed_hosts: Arc<guard::AllowedHosts>,
}

/// How a run of a catalog pipeline starts; the rest comes from the version.
#[derive(Debug, Default)]
pub struct Launch {
    pub params: serde_json::Map<String, serde_json::Value>,
    /// `manual`, `schedule`, `webhook`, `pipeline` (`parent` is a sub-pipeline task's).
    pub trigger: &'static str,
    pub logical_date: Option<String>,
    pub idempotency_key: Option<String>,
    /// Tasks with `cache:` run instead of reusing earlier results (the run keeps the choice).
    pub no_cache: bool,
}

impl AppState {
    /// An app over `pipelines` (loaded by the first [`AppState::reload`]), with a fresh metrics
    /// registry that hears every run `runner` drives, and sub-pipeline tasks that start the
    /// catalog's pipelines: use `state.runner` from here on, since a clone of `runner` taken
    /// before this call does neither.
    pub fn new(
        store: Arc<dyn baton_store::Store>,
        runner: Runner,
        pipelines: impl Into<std::path::PathBuf>,
        secrets: Arc<dyn secrets::Secrets>,
    ) -> Self {
        let metrics = metrics::Metrics::new();
        let pipelines: std::path::PathBuf = pipelines.into();
        let catalog = Arc::new(RwLock::new(Catalog::new(pipelines.clone())));
        let runner = runner
            .with_observer(Arc::new(metrics::RunObserver::new(metrics.clone())))
            .with_pipelines(Arc::new(catalog::CatalogPipelines::new(
                Arc::clone(&catalog),
                pipelines,
            )));
        Self {
            store,
            catalog,
            runner,
            secrets,
            metrics,
            events_fallback: EventsFallback::ByStore,
            allowed_hosts: Arc::new(guard::AllowedHosts::any_port()),
        }
    }

    /// Answers only requests whose `Host` is in `hosts`.
    #[must_use]
    pub fn with_allowed_hosts(mut self, hosts: guard::AllowedHosts) -> Self {
        self.allowed_hosts = Arc::new(hosts);
        self
    }

    /// Creates a run of `version` and starts driving it (once admitted, under the pipeline's
    /// `concurrency`). When the idempotency key matches an earlier run, that run is returned as
    /// it is (`new: false`) and not started again. `overlap: skip` at the limit fails with 409
    /// `concurrency_limit`.
    pub async fn launch(
        &self,
        version: &catalog::Version,
        launch: Launch,
    ) -> Result<baton_engine::Created, ApiError> {
        let admission = baton_engine::pipeline_admission(&version.pipeline);
        let created = baton_engine::create_run(
            self.store.as_ref(),
            baton_engine::RunRequest {
                pipeline: &version.pipeline,
                source: &version.source,
                path: Some(version.file.display().to_string()),
                base_dir: version.base_dir(),
                params: launch.params,
                trigger: launch.trigger,
                logical_date: launch.logical_date,
                idempotency_key: launch.idempotency_key,
                admission: admission.clone(),
                backfill_id: None,
                no_cache: launch.no_cache,
            },
        )
        .await
        .map_err(concurrency::skipped)
        .inspect_err(|e| {
            if e.code == concurrency::CONCURRENCY_LIMIT {
                self.metrics.denied("concurrency_skip");
            }
        })?;
        if created.new {
            if let Some(a) = admission.filter(|a| a.overlap == Overlap::CancelPrevious) {
                concurrency::cancel_flagged(self, &a.group, &created.id).await;
            }
            self.runner.start(created.id.clone());
        }
        Ok(created)
    }

    /// The version runs of `namespace/name` start with: 404 for an unknown pipeline, 409 when
    /// it has never validated.
    pub async fn active_version(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<catalog::Version, ApiError> {
        self.catalog
            .read()
            .await
            .find(namespace, name)
            .ok_or_else(|| ApiError::not_found(format!("pipeline `{namespace}/{name}` not found")))?
            .active
            .clone()
            .ok_or_else(|| {
                ApiError::conflict(format!(
                    "pipeline `{namespace}/{name}` has no valid version"
                ))
            })
    }

    /// A pipeline's datasets, and the pipelines linked to it through them (among the valid
    /// versions loaded now).
    pub async fn lineage(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<baton_core::lineage::PipelineLineage, ApiError> {
        let version = self.active_version(namespace, name).await?;
        let catalog = self.catalog.read().await;
        let others = catalog
            .entries()
            .filter_map(|e| e.active.as_ref())
            .map(|v| v.pipeline.as_ref());
        Ok(baton_core::lineage::lineage(&version.pipeline, others))
    }

    /// Reloads the pipelines directory, recording each new valid version in the store.
    ///
    /// Files are read and parsed on a copy of the catalog, off the async threads, so the API
    /// and the scheduler keep reading the current one meanwhile; the copy then replaces it.
    pub async fn reload(&self) -> catalog::Reload {
        let mut next = self.catalog.read().await.clone();
        let (next, report) = match tokio::task::spawn_blocking(move || {
            let report = next.reload();
            (next, report)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "pipeline reload failed");
                return catalog::Reload::default();
            }
        };
        let mut catalog = self.catalog.write().await;
        *catalog = next;
        let catalog = catalog.downgrade();
        let broken = catalog.entries().filter(|e| !e.errors.is_empty()).count();
        #[allow(clippy::cast_precision_loss)] // a count of files
        self.metrics
            .gauge("baton_definition_load_errors", &[], broken as f64);
        self.metrics
            .counter("baton_definition_reloads_total", &[], 1);
        for v in catalog.entries().filter_map(|e| e.active.as_ref()) {
            self.metrics.known_pipeline(&v.pipeline);
        }
        self.withhold_secrets(&catalog);
        for path in &report.changed {
            let Some(entry) = catalog.entry(path) else {
                continue;
            };
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

impl AppState {
    /// Keeps every loaded pipeline's secret variables out of every task's environment, not
    /// only out of its own pipeline's tasks.
    fn withhold_secrets(&self, catalog: &Catalog) {
        let secrets: std::collections::BTreeSet<String> = catalog
            .entries()
            .filter_map(|e| e.active.as_ref())
            .flat_map(|v| {
                v.pipeline
                    .secret_variables()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        let environment = self.runner.environment();
        for name in environment.allowed_secrets(secrets.iter().map(String::as_str)) {
            tracing::warn!(
                variable = name,
                "`[engine] inherit_env` names a pipeline's secret variable: tasks do not get it"
            );
        }
        environment.withheld().set(secrets);
    }
}

/// The whole API as an [`OpenApiRouter`]: each handler is registered with `routes!`, which
/// takes its path and methods from the handler's `#[utoipa::path]`, so what is served and what
/// is documented are one list.
fn api() -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(routes::pipelines::list))
        .routes(routes!(routes::pipelines::get))
        .routes(routes!(routes::pipelines::versions))
        .routes(routes!(routes::pipelines::trigger))
        .routes(routes!(routes::pipelines::pause))
        .routes(routes!(routes::pipelines::unpause))
        .routes(routes!(routes::pipelines::next_times))
        .routes(routes!(routes::pipelines::lineage))
        .routes(routes!(routes::webhook::deliver))
        .routes(routes!(routes::backfills::create))
        .routes(routes!(routes::backfills::list))
        .routes(routes!(routes::backfills::get))
        .routes(routes!(routes::backfills::cancel))
        .routes(routes!(routes::pipelines::reload))
        .routes(routes!(routes::runs::list))
        .routes(routes!(routes::runs::get))
        .routes(routes!(routes::runs::cancel))
        .routes(routes!(routes::runs::retry))
        .routes(routes!(routes::runs::approve))
        .routes(routes!(routes::runs::reject))
        .routes(routes!(routes::dead_letters::requeue_one))
        .routes(routes!(routes::dead_letters::list))
        .routes(routes!(routes::dead_letters::requeue_bulk))
        .routes(routes!(routes::pools::list))
        .routes(routes!(
            routes::pools::get,
            routes::pools::put,
            routes::pools::delete
        ))
        .routes(routes!(routes::logs::log))
        .routes(routes!(routes::events::events))
        .routes(routes!(routes::health::openapi));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(routes::health::healthz))
        .routes(routes!(routes::health::readyz))
        .routes(routes!(routes::metrics::metrics))
        .nest("/api/v1", v1)
}

/// The OpenAPI 3.1 document of the API, as served at `GET /api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    openapi::finish(&mut doc);
    doc
}

pub fn router(state: AppState) -> Router {
    let (router, mut doc) = api().split_for_parts();
    openapi::finish(&mut doc);
    let json = doc
        .to_json()
        .expect("the OpenAPI document serializes to JSON");
    router
        .merge(ui::routes())
        .layer(Extension(routes::health::OpenApiJson(json.into())))
        .fallback(|uri: axum::http::Uri| async move {
            // The API answers JSON; everything else is the UI's, which answers a page.
            if uri.path().starts_with("/api/") {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response()
            } else {
                ui::not_found_page(uri.path())
            }
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outside the routes, so a refused request reaches no handler, but inside the metrics
        // layer, so refusals are counted.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.allowed_hosts),
            guard::check,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::http::track,
        ))
        .with_state(state)
}
