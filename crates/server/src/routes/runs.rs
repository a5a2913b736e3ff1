//! Runs: list (filters, cursor), get (task counts, the first page of tasks and attempts),
//! cancel, approve / reject.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use baton_core::ids::{RunId, TaskKey};
use baton_core::state::RunState;
use baton_store::{RunFilter, TaskCursor, TaskPageFilter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::body::{OptionalBody, Query};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::page::{self, Page};
use crate::responses::{AmbiguousRun, OptionalJsonBody, StoreDown};
use crate::routes::run_tasks::{self, TaskSlice};
use crate::routes::{RunPath, TaskPath};
use baton_api::{Attempt, Run, Task};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// Only runs of this pipeline: `name` (any namespace) or `namespace/name`.
    pub pipeline: Option<String>,
    /// Only runs in this state.
    #[param(value_type = Option<RunState>)]
    pub state: Option<String>,
    /// How many runs at most: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (a run id); empty is the first page.
    #[param(pattern = "^([0-9A-Za-z]{26})?$")]
    pub cursor: Option<String>,
    /// Only runs created at or after this instant (RFC 3339, e.g. `2026-03-29T03:00:00Z`).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only runs created before this instant (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
}

/// Reads an RFC 3339 instant given as query parameter `name`.
fn instant(name: &str, text: Option<&str>) -> ApiResult<Option<baton_store::Millis>> {
    text.map(|t| {
        t.parse::<jiff::Timestamp>()
            .map(|ts| ts.as_millisecond())
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "`{name}` is not an RFC 3339 instant: `{t}` ({e})\n(hint: e.g. 2026-03-29T03:00:00Z or 2026-03-29T03:00:00+02:00)"
                ))
            })
    })
    .transpose()
}

/// Runs, newest first.
#[utoipa::path(
    get,
    path = "/runs",
    operation_id = "list_runs",
    tag = "runs",
    params(RunsQuery),
    responses(
        (status = 200, description = "A page of runs", body = Page<Run>),
        (status = 400, description = "`limit` out of 1..=500, a cursor that is not a run id, an unknown state, or `since` / `until` not an RFC 3339 instant", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<Page<Run>>> {
    let run_state = match &q.state {
        Some(s) => Some(RunState::from_name(s).ok_or_else(|| {
            ApiError::bad_request(format!("unknown run state `{s}`")).with_details(
                json!({ "expected": ["queued", "running", "succeeded", "failed", "cancelled"] }),
            )
        })?),
        None => None,
    };
    let limit = page::limit(q.limit)?;
    let before = match page::cursor(q.cursor.as_deref()) {
        Some(c) if !page::is_ulid(c) => return Err(page::invalid_cursor(c)),
        c => c.map(str::to_owned),
    };
    let runs = state
        .store
        .runs(
            &RunFilter {
                state: run_state,
                limit: limit + 1,
                before,
                created_after: instant("since", q.since.as_deref())?,
                created_before: instant("until", q.until.as_deref())?,
                ..RunFilter::default()
            }
            .for_pipeline(q.pipeline.as_deref()),
        )
        .await?;
    let runs = runs.into_iter().map(Run::from).collect();
    Ok(Json(Page::from_extra(runs, limit, |r: &Run| {
        r.id.to_string()
    })))
}

/// A run with the first page of its task instances and their attempts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunDetail {
    #[serde(flatten)]
    run: Run,
    /// How many task instances are in each state (states with none left out), all pages
    /// counted.
    task_counts: BTreeMap<String, u64>,
    /// In pipeline order: the first 500 (all of a run that size or smaller); the rest from
    /// `GET /runs/{id}/tasks` with `cursor` = `tasks_next_cursor`.
    tasks: Vec<Task>,
    /// The attempts of the tasks in `tasks`.
    attempts: Vec<Attempt>,
    /// Pass as `cursor` to `GET /runs/{id}/tasks` for the tasks after `tasks`; absent when
    /// `tasks` holds them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks_next_cursor: Option<String>,
    /// The runs its sub-pipeline tasks started (each names its task and attempt under
    /// `parent`), oldest first.
    children: Vec<Run>,
}

/// A run with its task counts and the first page of its tasks and their attempts.
#[utoipa::path(
    get,
    path = "/runs/{id}",
    operation_id = "get_run",
    tag = "runs",
    params(RunPath),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        (status = 404, description = "No such run", body = ErrorBody),
        AmbiguousRun,
        StoreDown,
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(RunPath { id }): Path<RunPath>,
) -> ApiResult<Json<RunDetail>> {
    let id = state.store.resolve_run(&id).await?;
    let run = state
        .store
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run `{id}` not found")))?;
    let store = state.store.as_ref();
    let first = TaskSlice::read(
        store,
        &id,
        TaskPageFilter {
            limit: run_tasks::FIRST_PAGE,
            ..TaskPageFilter::default()
        },
    )
    .await?;
    let children = store.child_runs(&id).await?;
    let attempts = first.api_attempts();
    let mut tasks: Vec<Task> = first.tasks.into_iter().map(Task::from).collect();
    crate::routes::workers::mark_waiting(&state, &id, &mut tasks);
    Ok(Json(RunDetail {
        run: run.into(),
        task_counts: run_tasks::counts(store, &id).await?,
        tasks_next_cursor: first.next.as_ref().map(TaskCursor::encode),
        tasks,
        attempts,
        children: children.into_iter().map(Run::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CancelAccepted {
    id: RunId,
    /// Always true: the run's driver stops its tasks and ends it `cancelled`.
    cancel_requested: bool,
}

/// Asks a run to stop.
#[utoipa::path(
    post,
    path = "/runs/{id}/cancel",
    operation_id = "cancel_run",
    tag = "runs",
    params(RunPath),
    responses(
        (status = 202, description = "Cancel requested", body = CancelAccepted),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run already finished, or the id prefix matches several runs (`ambiguous_run`)", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(RunPath { id }): Path<RunPath>,
) -> ApiResult<(StatusCode, Json<CancelAccepted>)> {
    let id = cancel_run(&state, &id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CancelAccepted {
            id,
            cancel_requested: true,
        }),
    ))
}

/// Asks the run `id` (or unique prefix) to stop; 409 when it already finished. Shared by the
/// API and the UI.
pub(crate) async fn cancel_run(state: &AppState, id: &str) -> ApiResult<RunId> {
    use baton_engine::control::Cancel;
    let id = state.store.resolve_run(id).await?;
    match baton_engine::control::request_cancel(state.store.as_ref(), &id).await? {
        Cancel::Finished(run_state) => {
            return Err(ApiError::conflict(format!(
                "run `{id}` already {run_state}"
            )));
        }
        Cancel::Requested => {}
        // Nobody drives it: drive it here, and the cancel request ends it.
        Cancel::Orphaned => state.runner.start(id.clone()),
    }
    Ok(id)
}

/// A run made to go again, and the task instances reopened for it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Reopened {
    id: RunId,
    reopened: Vec<TaskKey>,
}

/// Reruns a failed or cancelled run from its failed tasks.
#[utoipa::path(
    post,
    path = "/runs/{id}/retry",
    operation_id = "retry_run",
    tag = "runs",
    params(RunPath),
    responses(
        (status = 202, description = "The run is queued again", body = Reopened),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run succeeded or is still going, or the id prefix matches several runs (`ambiguous_run`)", body = ErrorBody),
        (status = 500, description = "The run's pipeline version cannot be read", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    Path(RunPath { id }): Path<RunPath>,
) -> ApiResult<(StatusCode, Json<Reopened>)> {
    let (id, reopened) = retry_run(&state, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(Reopened { id, reopened })))
}

/// Reruns the failed or cancelled run `id` from its failed tasks and drives it; returns the
/// reopened tasks. Shared by the API and the UI.
pub(crate) async fn retry_run(state: &AppState, id: &str) -> ApiResult<(RunId, Vec<TaskKey>)> {
    use baton_engine::control::RetryError;
    let id = state.store.resolve_run(id).await?;
    let reopened = baton_engine::control::retry(state.store.as_ref(), &id)
        .await
        .map_err(|e| match e {
            RetryError::Store(e) => e.into(),
            RetryError::Definition { .. } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
            other => ApiError::conflict(other.to_string()),
        })?;
    state.runner.start(id.clone());
    Ok((id, reopened))
}

/// A person's decision (or, for pause / unpause, who made the change).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    pub(crate) comment: Option<String>,
    /// Who decides; authentication arrives later, until then the caller says.
    pub(crate) by: Option<String>,
}

/// Records a decision on the gate `key` of run `id`. Shared by the API and the UI.
pub(crate) async fn decide(
    state: &AppState,
    id: &str,
    key: &str,
    approve: bool,
    body: Decision,
) -> ApiResult<Json<Decided>> {
    use baton_engine::control::DecideError;
    let id = state.store.resolve_run(id).await?;
    let key = TaskKey::from_string(key);
    let by = body.by.unwrap_or_else(|| "api".into());
    baton_engine::control::decide(
        state.store.as_ref(),
        &id,
        &key,
        approve,
        &by,
        body.comment.as_deref(),
    )
    .await
    .map_err(|e| match e {
        DecideError::NoTask { run, key, .. } => {
            ApiError::not_found(format!("run `{run}` has no task `{key}`"))
        }
        DecideError::Store(e) => e.into(),
        other => ApiError::conflict(other.to_string()),
    })?;
    Ok(Json(Decided {
        id,
        task: key,
        approved: approve,
        by,
    }))
}

/// A gate's decision as recorded.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Decided {
    id: RunId,
    task: TaskKey,
    approved: bool,
    /// Who decided (`api` unless the body said).
    by: String,
}

/// Approves a task waiting for approval: it runs.
#[utoipa::path(
    post,
    path = "/runs/{id}/tasks/{key}/approve",
    operation_id = "approve_task",
    tag = "runs",
    params(TaskPath),
    request_body(content = Option<Decision>, description = "Optional: who decides and why"),
    responses(
        (status = 200, description = "Approved", body = Decided),
        (status = 404, description = "No such run or task", body = ErrorBody),
        (status = 409, description = "The task is not waiting for approval (already decided, or not a gate), or the id prefix matches several runs (`ambiguous_run`)", body = ErrorBody),
        OptionalJsonBody,
        StoreDown,
    )
)]
pub(crate) async fn approve(
    State(state): State<AppState>,
    Path(TaskPath { id, key }): Path<TaskPath>,
    OptionalBody(decision): OptionalBody<Decision>,
) -> ApiResult<Json<Decided>> {
    decide(&state, &id, &key, true, decision).await
}

/// Rejects a task waiting for approval: it fails.
#[utoipa::path(
    post,
    path = "/runs/{id}/tasks/{key}/reject",
    operation_id = "reject_task",
    tag = "runs",
    params(TaskPath),
    request_body(content = Option<Decision>, description = "Optional: who decides and why"),
    responses(
        (status = 200, description = "Rejected", body = Decided),
        (status = 404, description = "No such run or task", body = ErrorBody),
        (status = 409, description = "The task is not waiting for approval (already decided, or not a gate), or the id prefix matches several runs (`ambiguous_run`)", body = ErrorBody),
        OptionalJsonBody,
        StoreDown,
    )
)]
pub(crate) async fn reject(
    State(state): State<AppState>,
    Path(TaskPath { id, key }): Path<TaskPath>,
    OptionalBody(decision): OptionalBody<Decision>,
) -> ApiResult<Json<Decided>> {
    decide(&state, &id, &key, false, decision).await
}
