//! Backfills: create (one run per schedule tick over a range), list, get with run counts,
//! cancel.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use baton_core::ids::BackfillId;
use baton_core::state::RunState;
use baton_store::{BackfillFilter, BackfillRecord};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::body::Body;
use crate::error::{ApiError, ApiResult};
use crate::page::Page;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackfillBody {
    /// RFC 3339, or a date in the schedule's zone.
    start: String,
    /// Inclusive; a date means the whole day.
    end: String,
    /// Runs active at once (default: the pipeline's `max_active_runs`, else 1).
    parallelism: Option<u32>,
    #[serde(default)]
    params: Map<String, Value>,
    /// Which schedule's ticks (default the first).
    #[serde(default)]
    schedule: usize,
    idempotency_key: Option<String>,
}

/// The backfill, with how many of its runs are in each state and whether all have ended.
async fn describe(state: &AppState, record: BackfillRecord) -> ApiResult<Value> {
    let counts = state.store.backfill_counts(&record.id).await?;
    let done = counts.iter().all(|(s, n)| s.is_final() || *n == 0);
    let mut doc = serde_json::to_value(&record).unwrap_or_default();
    let by_state: Map<String, Value> = [
        RunState::Queued,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
    ]
    .iter()
    .map(|s| {
        let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
        (s.as_str().to_owned(), json!(n))
    })
    .collect();
    doc["counts"] = Value::Object(by_state);
    doc["done"] = Value::Bool(done);
    Ok(doc)
}

async fn find(state: &AppState, id: &str) -> ApiResult<BackfillRecord> {
    state
        .store
        .backfill(&BackfillId::from_string(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("backfill `{id}` not found")))
}

/// `POST /pipelines/{ns}/{name}/backfill`: one run per tick of a schedule over `[start, end]`,
/// pinned to the active version, at most `parallelism` at once. 201 new; 200 when the
/// idempotency key (body or `Idempotency-Key` header) matched an earlier backfill.
pub(crate) async fn create(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    Body(body): Body<BackfillBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let version = {
        let catalog = state.catalog.read().await;
        catalog
            .find(&ns, &name)
            .ok_or_else(|| ApiError::not_found(format!("pipeline `{ns}/{name}` not found")))?
            .active
            .clone()
            .ok_or_else(|| {
                ApiError::conflict(format!("pipeline `{ns}/{name}` has no valid version"))
            })?
    };
    let key = body.idempotency_key.or_else(|| {
        headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let base_dir = version
        .file
        .parent()
        .map_or_else(|| ".".into(), |d| d.display().to_string());
    let created = baton_engine::create_backfill(
        state.store.as_ref(),
        baton_engine::BackfillRequest {
            pipeline: &version.pipeline,
            source: &version.source,
            path: Some(version.file.display().to_string()),
            base_dir,
            params: body.params,
            schedule: body.schedule,
            start: body.start,
            end: body.end,
            parallelism: body.parallelism,
            idempotency_key: key,
        },
    )
    .await?;
    let record = find(&state, created.id.as_str()).await?;
    if created.new {
        // The store admitted the first `parallelism` runs with the backfill; the rest wait.
        let admitted = usize::try_from(record.parallelism).unwrap_or(usize::MAX);
        let mut runs = created.runs.into_iter();
        for run in runs.by_ref().take(admitted) {
            state.runner.start(run);
        }
        state
            .runner
            .wait_for_admission(&record.id.admission_group(), runs);
    }
    let status = if created.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(describe(&state, record).await?)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct BackfillsQuery {
    /// `name` or `namespace/name`.
    pipeline: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /backfills`: newest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<BackfillsQuery>,
) -> ApiResult<Json<Page<BackfillRecord>>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let items = state
        .store
        .backfills(
            &BackfillFilter {
                limit: limit + 1,
                before: q.cursor.clone(),
                ..BackfillFilter::default()
            }
            .for_pipeline(q.pipeline.as_deref()),
        )
        .await?;
    Ok(Json(Page::from_extra(items, limit, |b| b.id.to_string())))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = find(&state, &id).await?;
    Ok(Json(describe(&state, record).await?))
}

/// `POST /backfills/{id}/cancel`: runs still waiting end at once; active ones are asked to
/// stop. 202; 409 when every run has ended already.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    use baton_engine::control::Cancel;
    let record = find(&state, &id).await?;
    let group = record.id.admission_group();
    let cancelled = state
        .store
        .cancel_waiting(&group, baton_engine::now_ms())
        .await?;
    let active = state.store.group_runs(&group).await?;
    if cancelled.is_empty() && active.is_empty() {
        return Err(ApiError::conflict(format!(
            "backfill `{id}` is done: all its runs have ended"
        )));
    }
    let mut requested = Vec::new();
    for run in &active {
        match baton_engine::control::request_cancel(state.store.as_ref(), &run.id).await? {
            Cancel::Finished(_) => continue,
            Cancel::Requested => {}
            // Nobody drives it: drive it here, and the cancel request ends it.
            Cancel::Orphaned => state.runner.start(run.id.clone()),
        }
        requested.push(run.id.clone());
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": record.id,
            "cancelled": cancelled.len(),
            "cancel_requested": requested,
        })),
    ))
}
