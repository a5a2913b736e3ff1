//! Backfills: create (one run per schedule tick over a range), list, get with run counts,
//! cancel.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use baton_core::ids::{BackfillId, RunId};
use baton_core::state::RunState;
use baton_store::{BackfillFilter, BackfillRecord};

use baton_api::Backfill;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::body::{Body, Query};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::page::{self, Page};
use crate::responses::{JsonBody, StoreDown};
use crate::routes::PipelinePath;

/// `/backfills/{id}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct BackfillPath {
    /// The backfill's id (`bf_...`).
    id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackfillBody {
    /// RFC 3339, or a date in the schedule's zone.
    start: String,
    /// Inclusive; a date means the whole day.
    end: String,
    /// Runs active at once (default: the pipeline's `max_active_runs`, else 1).
    #[serde(default, deserialize_with = "crate::body::whole::optional")]
    #[schema(minimum = 1, maximum = 4_294_967_295_u64)]
    parallelism: Option<u32>,
    #[serde(default)]
    params: Map<String, Value>,
    /// Which schedule's ticks, by index (default 0, the first).
    #[serde(default, deserialize_with = "crate::body::whole::required")]
    #[schema(minimum = 0, maximum = 4_294_967_295_u64)]
    schedule: usize,
    idempotency_key: Option<String>,
}

/// A backfill with how many of its runs are in each state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BackfillDetail {
    #[serde(flatten)]
    backfill: Backfill,
    counts: RunCounts,
    /// Every run has ended.
    done: bool,
}

/// Runs by state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunCounts {
    queued: u64,
    running: u64,
    succeeded: u64,
    failed: u64,
    cancelled: u64,
}

/// The backfill, with how many of its runs are in each state and whether all have ended.
async fn describe(state: &AppState, record: BackfillRecord) -> ApiResult<BackfillDetail> {
    let counts = state.store.backfill_counts(&record.id).await?;
    let done = counts.iter().all(|(s, n)| s.is_final() || *n == 0);
    let count = |s: RunState| counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
    Ok(BackfillDetail {
        counts: RunCounts {
            queued: count(RunState::Queued),
            running: count(RunState::Running),
            succeeded: count(RunState::Succeeded),
            failed: count(RunState::Failed),
            cancelled: count(RunState::Cancelled),
        },
        backfill: record.into(),
        done,
    })
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
#[utoipa::path(
    post,
    path = "/pipelines/{namespace}/{name}/backfill",
    operation_id = "create_backfill",
    tag = "backfills",
    params(
        PipelinePath,
        ("Idempotency-Key" = Option<String>, Header, description = "Used when the body has no `idempotency_key`"),
    ),
    request_body = BackfillBody,
    responses(
        (status = 201, description = "A new backfill and its runs", body = BackfillDetail),
        (status = 200, description = "The earlier backfill the idempotency key matched", body = BackfillDetail),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The pipeline has no valid version", body = ErrorBody),
        (status = 422, description = "Invalid params (`invalid_params`), a range that cannot be backfilled (`invalid_backfill`), or a body that is not an object of this shape (`invalid_body`)", body = ErrorBody),
        JsonBody,
        StoreDown,
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Path(PipelinePath {
        namespace: ns,
        name,
    }): Path<PipelinePath>,
    headers: HeaderMap,
    Body(body): Body<BackfillBody>,
) -> ApiResult<(StatusCode, Json<BackfillDetail>)> {
    let version = state.active_version(&ns, &name).await?;
    let key = super::idempotency_key(body.idempotency_key, &headers);
    let created = baton_engine::create_backfill(
        state.store.as_ref(),
        baton_engine::BackfillRequest {
            pipeline: &version.pipeline,
            source: &version.source,
            path: Some(version.file.display().to_string()),
            base_dir: version.base_dir(),
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BackfillsQuery {
    /// Only backfills of this pipeline: `name` (any namespace) or `namespace/name`.
    pipeline: Option<String>,
    /// How many at most: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page (a backfill id); empty is the first page.
    #[param(pattern = "^(bf_[0-9A-Za-z]{26})?$")]
    cursor: Option<String>,
}

/// `GET /backfills`: newest first.
#[utoipa::path(
    get,
    path = "/backfills",
    operation_id = "list_backfills",
    tag = "backfills",
    params(BackfillsQuery),
    responses(
        (status = 200, description = "A page of backfills", body = Page<Backfill>),
        (status = 400, description = "`limit` out of 1..=500, or a cursor that is not a backfill id", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<BackfillsQuery>,
) -> ApiResult<Json<Page<Backfill>>> {
    let limit = page::limit(q.limit)?;
    let before = match page::cursor(q.cursor.as_deref()) {
        Some(c) if !c.strip_prefix("bf_").is_some_and(page::is_ulid) => {
            return Err(page::invalid_cursor(c));
        }
        c => c.map(str::to_owned),
    };
    let items = state
        .store
        .backfills(
            &BackfillFilter {
                limit: limit + 1,
                before,
                ..BackfillFilter::default()
            }
            .for_pipeline(q.pipeline.as_deref()),
        )
        .await?;
    let items = items.into_iter().map(Backfill::from).collect();
    Ok(Json(Page::from_extra(items, limit, |b: &Backfill| {
        b.id.to_string()
    })))
}

/// A backfill with how many of its runs are in each state.
#[utoipa::path(
    get,
    path = "/backfills/{id}",
    operation_id = "get_backfill",
    tag = "backfills",
    params(BackfillPath),
    responses(
        (status = 200, description = "The backfill", body = BackfillDetail),
        (status = 404, description = "No such backfill", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(BackfillPath { id }): Path<BackfillPath>,
) -> ApiResult<Json<BackfillDetail>> {
    let record = find(&state, &id).await?;
    Ok(Json(describe(&state, record).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BackfillCancelled {
    id: BackfillId,
    /// Waiting runs ended at once.
    cancelled: usize,
    /// Active runs asked to stop.
    cancel_requested: Vec<RunId>,
}

/// `POST /backfills/{id}/cancel`: runs still waiting end at once; active ones are asked to
/// stop. 202; 409 when every run has ended already.
#[utoipa::path(
    post,
    path = "/backfills/{id}/cancel",
    operation_id = "cancel_backfill",
    tag = "backfills",
    params(BackfillPath),
    responses(
        (status = 202, description = "Waiting runs ended, active ones asked to stop", body = BackfillCancelled),
        (status = 404, description = "No such backfill", body = ErrorBody),
        (status = 409, description = "Every run of the backfill has ended", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(BackfillPath { id }): Path<BackfillPath>,
) -> ApiResult<(StatusCode, Json<BackfillCancelled>)> {
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
        Json(BackfillCancelled {
            id: record.id,
            cancelled: cancelled.len(),
            cancel_requested: requested,
        }),
    ))
}
