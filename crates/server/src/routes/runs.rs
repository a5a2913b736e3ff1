//! Runs: list (filters, cursor), get (tasks and attempts), cancel, approve / reject.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use baton_core::ids::TaskKey;
use baton_core::state::RunState;
use baton_store::{RunFilter, RunRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::page::Page;

#[derive(Debug, Deserialize)]
pub(crate) struct RunsQuery {
    /// `name` or `namespace/name`.
    pub pipeline: Option<String>,
    pub state: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Only runs created at or after this instant (RFC 3339).
    pub since: Option<String>,
    /// Only runs created before this instant (RFC 3339).
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

pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<Page<RunRecord>>> {
    let run_state = match &q.state {
        Some(s) => Some(RunState::from_name(s).ok_or_else(|| {
            ApiError::bad_request(format!("unknown run state `{s}`")).with_details(
                json!({ "expected": ["queued", "running", "succeeded", "failed", "cancelled"] }),
            )
        })?),
        None => None,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let runs = state
        .store
        .runs(
            &RunFilter {
                state: run_state,
                limit: limit + 1,
                before: q.cursor.clone(),
                created_after: instant("since", q.since.as_deref())?,
                created_before: instant("until", q.until.as_deref())?,
                ..RunFilter::default()
            }
            .for_pipeline(q.pipeline.as_deref()),
        )
        .await?;
    Ok(Json(Page::from_extra(runs, limit, |r| r.id.to_string())))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = state.store.resolve_run(&id).await?;
    let run = state
        .store
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run `{id}` not found")))?;
    let tasks = state.store.tasks(&id).await?;
    let attempts = state.store.attempts(&id).await?;
    let mut doc = serde_json::to_value(&run).unwrap_or_default();
    doc["tasks"] = serde_json::to_value(tasks).unwrap_or_default();
    doc["attempts"] = serde_json::to_value(attempts).unwrap_or_default();
    Ok(Json(doc))
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    use baton_engine::control::Cancel;
    let id = state.store.resolve_run(&id).await?;
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
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "cancel_requested": true })),
    ))
}

/// Reruns a failed or cancelled run from its failed tasks.
pub(crate) async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    use baton_engine::control::RetryError;
    let id = state.store.resolve_run(&id).await?;
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
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "reopened": reopened })),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    pub(crate) comment: Option<String>,
    /// Who decides; authentication arrives later, until then the caller says.
    pub(crate) by: Option<String>,
}

async fn decide(
    state: &AppState,
    id: &str,
    key: &str,
    approve: bool,
    body: Decision,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(
        json!({ "id": id, "task": key, "approved": approve, "by": by }),
    ))
}

pub(crate) async fn approve(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    decide(&state, &id, &key, true, crate::body::optional(&body)?).await
}

pub(crate) async fn reject(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    decide(&state, &id, &key, false, crate::body::optional(&body)?).await
}
