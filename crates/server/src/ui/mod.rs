//! The web UI: server-rendered HTML pages under `/` (maud templates, so every interpolated
//! string is escaped), one small hand-written script for live updates and confirm dialogs,
//! one stylesheet, both embedded in the binary. No page fetches anything from elsewhere, so
//! the UI works air-gapped.
//!
//! Forms post plain HTML (they work without JavaScript); every POST is checked against
//! cross-site requests first (`csrf`).

mod actions;
mod approvals;
mod assets;
mod confirm;
pub(crate) mod cron_words;
mod csrf;
pub(crate) mod dag_svg;
mod dead_letters;
mod error;
mod gantt;
mod pipeline;
mod pipelines;
mod run;
mod runs;
mod shell;
mod stats;
mod widgets;
mod workers;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

pub(crate) use error::{error_page, not_found_page};

/// The UI's routes; merged next to `/api/v1` by [`crate::router`].
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pipelines::page))
        .route("/pipelines/{namespace}/{name}", get(pipeline::page))
        .route(
            "/pipelines/{namespace}/{name}/trigger",
            post(pipeline::trigger),
        )
        .route("/pipelines/{namespace}/{name}/pause", post(actions::pause))
        .route(
            "/pipelines/{namespace}/{name}/unpause",
            post(actions::unpause),
        )
        .route("/runs", get(runs::page))
        .route("/runs/{id}", get(run::page))
        // Destructive actions: a confirm page (for browsers without the script), the post.
        .route(
            "/runs/{id}/{verb}",
            get(actions::confirm_run).post(actions::run_action),
        )
        .route(
            "/runs/{id}/tasks/{key}/{verb}",
            get(actions::confirm_task).post(actions::task_action),
        )
        .route("/approvals", get(approvals::page))
        .route("/dead-letters", get(dead_letters::page))
        .route("/workers", get(workers::page))
        .route("/assets/{file}", get(assets::serve))
}
