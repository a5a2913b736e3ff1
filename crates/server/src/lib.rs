//! baton's HTTP face: the REST API under `/api/v1` and the web UI over a [`Control`], and
//! `serve`, which runs them with the control plane's background work. `router` builds the
//! whole app, so tests drive it without a socket.

mod body;
mod error;
pub mod guard;
mod http_metrics;
mod openapi;
mod page;
mod responses;
mod routes;
pub mod serve;
pub mod tls;
mod ui;
pub mod worker_api;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Router};
use baton_control::Control;
use baton_observe::secrets::Secrets;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
pub use routes::events::EventsFallback;

/// Requests larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The HTTP app's state: the control plane it fronts, and what only HTTP needs. It derefs to
/// its [`Control`], so handlers reach the store, catalog, runner and metrics directly.
#[derive(Debug, Clone)]
pub struct AppState {
    pub control: Control,
    pub secrets: Arc<dyn Secrets>,
    /// When a run's event stream reads the store without an announced commit.
    pub events_fallback: EventsFallback,
    /// The `Host` values answered (see [`guard`]); loopback names on any port unless
    /// [`AppState::with_allowed_hosts`] says otherwise.
    pub allowed_hosts: Arc<guard::AllowedHosts>,
    /// The worker API, where `[workers] secret_file` is set.
    pub workers: Option<worker_api::WorkerApi>,
    /// The callbacks `http:` steps with `callback` wait for.
    pub callbacks: Option<baton_engine::executor::Callbacks>,
}

impl std::ops::Deref for AppState {
    type Target = Control;

    fn deref(&self) -> &Control {
        &self.control
    }
}

impl AppState {
    /// An app over `pipelines`: see [`Control::new`] (use `state.runner` from here on).
    pub fn new(
        store: Arc<dyn baton_store::Store>,
        runner: baton_control::Runner,
        pipelines: impl Into<std::path::PathBuf>,
        secrets: Arc<dyn Secrets>,
    ) -> Self {
        Self {
            control: Control::new(store, runner, pipelines),
            secrets,
            events_fallback: EventsFallback::ByStore,
            allowed_hosts: Arc::new(guard::AllowedHosts::any_port()),
            workers: None,
            callbacks: None,
        }
    }

    /// Takes the calls of `callbacks`' callees (the HTTP executor's).
    #[must_use]
    pub fn with_callbacks(mut self, callbacks: baton_engine::executor::Callbacks) -> Self {
        self.callbacks = Some(callbacks);
        self
    }

    /// Serves the worker API over `api`'s hub (the one the runner's executors queue on).
    #[must_use]
    pub fn with_workers(mut self, api: worker_api::WorkerApi) -> Self {
        self.workers = Some(api);
        self
    }

    /// Answers only requests whose `Host` is in `hosts`.
    #[must_use]
    pub fn with_allowed_hosts(mut self, hosts: guard::AllowedHosts) -> Self {
        self.allowed_hosts = Arc::new(hosts);
        self
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
        .routes(routes!(routes::run_tasks::list))
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
        .routes(routes!(routes::workers::register, routes::workers::list))
        .routes(routes!(routes::workers::deregister))
        .routes(routes!(routes::workers::claim))
        .routes(routes!(routes::workers::heartbeat))
        .routes(routes!(routes::workers::log))
        .routes(routes!(routes::workers::finish))
        .routes(routes!(routes::callbacks::deliver))
        .routes(routes!(
            routes::worker_artifacts::fetch,
            routes::worker_artifacts::upload
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
            http_metrics::track,
        ))
        .with_state(state)
}
