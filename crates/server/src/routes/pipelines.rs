//! Pipelines: list, get (with validation errors), versions, trigger, reload.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use baton_core::diagnostic::Diagnostic;
use baton_core::graph::Graph;
use baton_core::model::{Param, Schedule};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::body::{Body, OptionalBody, Query};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::page::{self, Page};
use crate::responses::{JsonBody, OptionalJsonBody, StoreDown};
use crate::routes::PipelinePath;
use crate::routes::runs::Decision;
use baton_api::{Run, Version};
use baton_control::Launch;
use baton_control::catalog::Entry;

use crate::AppState;

/// A pipeline file: the pipeline of its active version (the last one that validated) and the
/// file's current problems. A file that never validated has only `id` (null), `path`, `valid`
/// and `errors`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PipelineSummary {
    /// `namespace/name`; null when the file never had a valid version.
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The file, relative to the pipelines directory.
    path: String,
    /// Content hash of the active version.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    // Present (maybe null) whenever there is an active version, absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    owner: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<String>>,
    /// The run parameters, by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<IndexMap<String, Param>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedules: Option<Vec<Schedule>>,
    /// False when the file has errors now (an earlier version may still be active).
    valid: bool,
    errors: Vec<Diagnostic>,
}

fn summary(e: &Entry) -> PipelineSummary {
    let errors = e.errors.clone();
    match &e.active {
        Some(v) => {
            let p = &v.pipeline;
            PipelineSummary {
                id: Some(p.id.to_string()),
                namespace: Some(p.id.namespace.to_string()),
                name: Some(p.id.name.to_string()),
                path: e.path.clone(),
                version: Some(p.version.to_string()),
                description: Some(p.description.clone()),
                owner: Some(p.owner.clone()),
                tags: Some(p.tags.clone()),
                params: Some(p.params.clone()),
                schedules: Some(p.schedules.clone()),
                valid: e.errors.is_empty(),
                errors,
            }
        }
        None => PipelineSummary {
            id: None,
            namespace: None,
            name: None,
            path: e.path.clone(),
            version: None,
            description: None,
            owner: None,
            tags: None,
            params: None,
            schedules: None,
            valid: false,
            errors,
        },
    }
}

/// A pipeline with its pause state and, when it has an active version, its graph and source.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PipelineDetail {
    #[serde(flatten)]
    summary: PipelineSummary,
    paused: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    graph: Option<Graph>,
    /// The YAML text of the active version.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
}

/// Whether `c` has the shape of a version's content hash: 64 lowercase hex digits.
fn is_version_hash(c: &str) -> bool {
    c.len() == 64
        && c.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `?limit=N&cursor=C` of the version list, whose cursors are content hashes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VersionsQuery {
    /// How many at most: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page: a version's hash; empty is the first page.
    #[param(pattern = "^([0-9a-f]{64})?$")]
    cursor: Option<String>,
}

/// `?limit=N&cursor=C` of the pipeline list, whose cursors are pipeline ids.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PipelinesQuery {
    /// How many at most: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page: `namespace/name`, or `~path` for a file that
    /// never validated; empty is the first page.
    #[param(pattern = "^(~.+|[^/]+/[^/]+)?$")]
    cursor: Option<String>,
}

/// Whether `c` has the shape of a [`sort_key`]: `namespace/name`, or `~path`.
fn is_pipeline_cursor(c: &str) -> bool {
    c.strip_prefix('~').is_some_and(|path| !path.is_empty())
        || c.split_once('/')
            .is_some_and(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
}

fn sort_key(e: &Entry) -> String {
    e.active
        .as_ref()
        .map_or_else(|| format!("~{}", e.path), |v| v.pipeline.id.to_string())
}

/// Every pipeline file, sorted by pipeline id (files that never validated last).
#[utoipa::path(
    get,
    path = "/pipelines",
    operation_id = "list_pipelines",
    tag = "pipelines",
    params(PipelinesQuery),
    responses(
        (status = 200, description = "A page of pipelines", body = Page<PipelineSummary>),
        (status = 400, description = "`limit` out of 1..=500, or a cursor that is not a pipeline id", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<PipelinesQuery>,
) -> ApiResult<Json<Page<PipelineSummary>>> {
    let limit = page::limit(q.limit)?;
    let cursor = page::cursor(q.cursor.as_deref());
    if let Some(c) = cursor.filter(|c| !is_pipeline_cursor(c)) {
        return Err(page::invalid_cursor(c));
    }
    let catalog = state.catalog.read().await;
    let mut entries: Vec<&Entry> = catalog.entries().collect();
    entries.sort_by_key(|e| sort_key(e));
    let items: Vec<&Entry> = entries
        .into_iter()
        .filter(|e| cursor.is_none_or(|c| sort_key(e).as_str() > c))
        .take(limit as usize + 1)
        .collect();
    let page = Page::from_extra(items, limit, |e| sort_key(e));
    Ok(Json(Page {
        items: page.items.into_iter().map(summary).collect(),
        next_cursor: page.next_cursor,
    }))
}

fn find<'a>(
    catalog: &'a baton_control::catalog::Catalog,
    ns: &str,
    name: &str,
) -> ApiResult<&'a Entry> {
    catalog
        .find(ns, name)
        .ok_or_else(|| ApiError::not_found(format!("pipeline `{ns}/{name}` not found")))
}

/// A pipeline's datasets (what each task reads and writes, as declared by `inputs:` and
/// `outputs:`), and the pipelines upstream (writing what it reads) and downstream (reading what
/// it writes).
#[utoipa::path(
    get,
    path = "/pipelines/{namespace}/{name}/lineage",
    operation_id = "get_pipeline_lineage",
    tag = "pipelines",
    params(PipelinePath),
    responses(
        (status = 200, description = "The pipeline's datasets and neighbours", body = baton_core::lineage::PipelineLineage),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The pipeline has no valid version", body = ErrorBody),
    )
)]
pub(crate) async fn lineage(
    State(state): State<AppState>,
    Path(PipelinePath {
        namespace: ns,
        name,
    }): Path<PipelinePath>,
) -> ApiResult<Json<baton_core::lineage::PipelineLineage>> {
    Ok(Json(state.lineage(&ns, &name).await?))
}

/// One pipeline, with its graph and source.
#[utoipa::path(
    get,
    path = "/pipelines/{namespace}/{name}",
    operation_id = "get_pipeline",
    tag = "pipelines",
    params(PipelinePath),
    responses(
        (status = 200, description = "The pipeline", body = PipelineDetail),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(PipelinePath {
        namespace: ns,
        name,
    }): Path<PipelinePath>,
) -> ApiResult<Json<PipelineDetail>> {
    let catalog = state.catalog.read().await;
    let entry = find(&catalog, &ns, &name)?;
    Ok(Json(PipelineDetail {
        summary: summary(entry),
        paused: state.store.is_paused(&ns, &name).await?,
        graph: entry.active.as_ref().map(|v| Graph::of(&v.pipeline)),
        source: entry.active.as_ref().map(|v| v.source.to_string()),
    }))
}

/// The recorded versions of a pipeline, newest first.
#[utoipa::path(
    get,
    path = "/pipelines/{namespace}/{name}/versions",
    operation_id = "list_pipeline_versions",
    tag = "pipelines",
    params(PipelinePath, VersionsQuery),
    responses(
        (status = 200, description = "A page of versions", body = Page<Version>),
        (status = 400, description = "`limit` out of 1..=500, or a cursor that is not a version hash", body = ErrorBody),
        (status = 404, description = "No such pipeline, or the cursor is not one of its versions", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn versions(
    State(state): State<AppState>,
    Path(PipelinePath {
        namespace: ns,
        name,
    }): Path<PipelinePath>,
    Query(q): Query<VersionsQuery>,
) -> ApiResult<Json<Page<Version>>> {
    let all = state.store.versions(&ns, &name).await?;
    if all.is_empty() && state.catalog.read().await.find(&ns, &name).is_none() {
        return Err(ApiError::not_found(format!(
            "pipeline `{ns}/{name}` not found"
        )));
    }
    // The cursor is the last hash of the previous page; versions are only ever added, and
    // they are listed newest first, so what follows it stays put.
    let limit = page::limit(q.limit)?;
    let start = match page::cursor(q.cursor.as_deref()) {
        None => 0,
        Some(c) if !is_version_hash(c) => return Err(page::invalid_cursor(c)),
        // A well-formed hash names a version, which may not be one of this pipeline's.
        Some(c) => {
            all.iter()
                .position(|v| v.hash == c)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "cursor `{c}` is not a version of `{ns}/{name}`\n(hint: pass the `next_cursor` of the previous page)"
                    ))
                })?
                + 1
        }
    };
    let items = all
        .into_iter()
        .skip(start)
        .take(limit as usize + 1)
        .map(Version::from)
        .collect();
    Ok(Json(Page::from_extra(items, limit, |v: &Version| {
        v.hash.clone()
    })))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerBody {
    /// The run's params by name; missing ones take their defaults.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// A run started earlier with the same key is returned instead of starting another.
    pub idempotency_key: Option<String>,
    /// Run every task with `cache:` instead of reusing an earlier result (fresh results are
    /// still stored). Kept on the run (`no_cache`), so whoever resumes it does the same.
    #[serde(default)]
    pub no_cache: bool,
}

/// Starts a run of the pipeline's active version. The same idempotency key (body field or
/// `Idempotency-Key` header) returns the same run instead of starting another.
#[utoipa::path(
    post,
    path = "/pipelines/{namespace}/{name}/runs",
    operation_id = "trigger_run",
    tag = "pipelines",
    params(
        PipelinePath,
        ("Idempotency-Key" = Option<String>, Header, description = "Used when the body has no `idempotency_key`"),
    ),
    request_body = TriggerBody,
    responses(
        (status = 201, description = "A new run", body = Run),
        (status = 200, description = "The earlier run the idempotency key matched", body = Run),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The pipeline has no valid version, the idempotency key belongs to another pipeline, or `concurrency_limit` (overlap `skip`; `details.active_runs` names the runs in the way)", body = ErrorBody),
        (status = 422, description = "Invalid params (`invalid_params`: `details.problems` lists every problem), or a body that is not an object of this shape (`invalid_body`)", body = ErrorBody),
        JsonBody,
        StoreDown,
    )
)]
pub(crate) async fn trigger(
    State(state): State<AppState>,
    Path(PipelinePath {
        namespace: ns,
        name,
    }): Path<PipelinePath>,
    headers: HeaderMap,
    Body(body): Body<TriggerBody>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let version = state.active_version(&ns, &name).await?;
    let launch = Launch {
        params: body.params,
        trigger: baton_core::state::RunTrigger::Manual,
        logical_date: None,
        idempotency_key: super::idempotency_key(body.idempotency_key, &headers),
        no_cache: body.no_cache,
    };
    let created = state.launch(&version, launch).await?;
    created_response(&state, created).await
}

/// 201 with the run when it is new, 200 with the earlier run an idempotency key matched.
pub(crate) async fn created_response(
    state: &AppState,
    created: baton_engine::Created,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let id = created.id;
    let run = state
        .store
        .run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run `{id}` not found")))?;
    let status = if created.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(run.into())))
}

/// What a reload found, in files.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReloadReport {
    /// Valid files whose version was read (new or changed).
    loaded: usize,
    /// Files with errors.
    invalid: usize,
    /// Files that are gone.
    removed: usize,
}

/// Reads the pipelines directory again.
#[utoipa::path(
    post,
    path = "/reload",
    operation_id = "reload_pipelines",
    tag = "pipelines",
    responses(
        (status = 200, description = "What the reload found", body = ReloadReport),
    )
)]
pub(crate) async fn reload(State(state): State<AppState>) -> ApiResult<Json<ReloadReport>> {
    let report = state.reload().await;
    Ok(Json(ReloadReport {
        loaded: report.loaded,
        invalid: report.invalid,
        removed: report.removed,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct NextQuery {
    /// How many fire times per schedule: 1 to 100, default 5.
    #[param(minimum = 1, maximum = 100)]
    n: Option<u32>,
}

/// The next fire times of the pipeline's schedules.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NextTimes {
    /// `namespace/name`.
    pipeline: String,
    schedules: Vec<ScheduleTimes>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleTimes {
    cron: String,
    /// IANA time zone the cron is read in.
    timezone: String,
    /// The cron in words.
    description: String,
    next: Vec<FireTime>,
}

/// One fire time, in the schedule's zone and in UTC.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FireTime {
    /// `2026-03-29T03:00:00+02:00`.
    local: String,
    /// `2026-03-29T01:00:00Z`.
    utc: String,
}

/// The next fire times of each of the pipeline's schedules, in its zone and in UTC.
#[utoipa::path(
    get,
    path = "/pipelines/{namespace}/{name}/schedule",
    operation_id = "next_schedule_times",
    tag = "pipelines",
    params(PipelinePath, NextQuery),
    responses(
        (status = 200, description = "Fire times per schedule", body = NextTimes),
        (status = 400, description = "`n` not an integer in 1..=100", body = ErrorBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The pipeline has no valid version", body = ErrorBody),
    )
)]
pub(crate) async fn next_times(
    State(state): State<AppState>,
    Path(PipelinePath {
        namespace: ns,
        name,
    }): Path<PipelinePath>,
    Query(q): Query<NextQuery>,
) -> ApiResult<Json<NextTimes>> {
    let version = state.active_version(&ns, &name).await?;
    let n = match q.n {
        None => 5,
        Some(n @ 1..=100) => n as usize,
        Some(n) => {
            return Err(
                ApiError::bad_request(format!("`n` must be 1 to 100, got `{n}`"))
                    .with_details(serde_json::json!({ "minimum": 1, "maximum": 100 })),
            );
        }
    };
    let now = jiff::Timestamp::now();
    let schedules = version
        .pipeline
        .schedules
        .iter()
        .map(|s| ScheduleTimes {
            cron: s.cron.clone(),
            timezone: s.timezone.clone(),
            description: s.describe(),
            next: s
                .next_times(now, n)
                .iter()
                .map(|t| FireTime {
                    local: t.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                    utc: t.timestamp().to_string(),
                })
                .collect(),
        })
        .collect();
    Ok(Json(NextTimes {
        pipeline: format!("{ns}/{name}"),
        schedules,
    }))
}

/// Whether a pipeline is paused now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PauseState {
    /// `namespace/name`.
    pipeline: String,
    paused: bool,
    /// False when it already was in that state.
    changed: bool,
}

/// `POST .../pause` and `.../unpause`: a paused pipeline's schedules and webhooks start no runs
/// (ticks that pass meanwhile are skipped, not caught up); manual triggers still work.
pub(crate) async fn set_paused(
    state: &AppState,
    ns: &str,
    name: &str,
    paused: bool,
    decision: Decision,
) -> ApiResult<Json<PauseState>> {
    if state.catalog.read().await.find(ns, name).is_none() {
        return Err(ApiError::not_found(format!(
            "pipeline `{ns}/{name}` not found"
        )));
    }
    let by = decision.by.unwrap_or_else(|| "api".into());
    let changed = state
        .store
        .set_paused(ns, name, paused, &by, baton_engine::now_ms())
        .await?;
    Ok(Json(PauseState {
        pipeline: format!("{ns}/{name}"),
        paused,
        changed,
    }))
}

/// Pauses a pipeline: its schedule ticks pass without runs and its webhooks answer 409;
/// manual triggers still work.
#[utoipa::path(
    post,
    path = "/pipelines/{namespace}/{name}/pause",
    operation_id = "pause_pipeline",
    tag = "pipelines",
    params(PipelinePath),
    request_body(content = Option<Decision>, description = "Optional; `by` is recorded (`comment` is ignored)"),
    responses(
        (status = 200, description = "Paused", body = PauseState),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        OptionalJsonBody,
        StoreDown,
    )
)]
pub(crate) async fn pause(
    State(state): State<AppState>,
    Path(PipelinePath {
        namespace: ns,
        name,
    }): Path<PipelinePath>,
    OptionalBody(decision): OptionalBody<Decision>,
) -> ApiResult<Json<PauseState>> {
    set_paused(&state, &ns, &name, true, decision).await
}

/// Unpauses a pipeline; the ticks that passed while it was paused are not caught up.
#[utoipa::path(
    post,
    path = "/pipelines/{namespace}/{name}/unpause",
    operation_id = "unpause_pipeline",
    tag = "pipelines",
    params(PipelinePath),
    request_body(content = Option<Decision>, description = "Optional; `by` is recorded (`comment` is ignored)"),
    responses(
        (status = 200, description = "Unpaused", body = PauseState),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        OptionalJsonBody,
        StoreDown,
    )
)]
pub(crate) async fn unpause(
    State(state): State<AppState>,
    Path(PipelinePath {
        namespace: ns,
        name,
    }): Path<PipelinePath>,
    OptionalBody(decision): OptionalBody<Decision>,
) -> ApiResult<Json<PauseState>> {
    set_paused(&state, &ns, &name, false, decision).await
}
