//! Pipelines: list, get (with validation errors), versions, trigger, reload.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::body::Body;
use crate::catalog::Entry;
use crate::error::{ApiError, ApiResult};
use crate::page::{Page, PageQuery};
use crate::{AppState, Launch};

fn summary(e: &Entry) -> Value {
    let errors = serde_json::to_value(&e.errors).unwrap_or_default();
    match &e.active {
        Some(v) => {
            let p = &v.pipeline;
            json!({
                "id": p.id.to_string(),
                "namespace": p.id.namespace,
                "name": p.id.name,
                "path": e.path,
                "version": p.version,
                "description": p.description,
                "owner": p.owner,
                "tags": p.tags,
                "params": p.params,
                "schedules": p.schedules,
                "valid": e.errors.is_empty(),
                "errors": errors,
            })
        }
        None => json!({ "id": null, "path": e.path, "valid": false, "errors": errors }),
    }
}

fn sort_key(e: &Entry) -> String {
    e.active
        .as_ref()
        .map_or_else(|| format!("~{}", e.path), |v| v.pipeline.id.to_string())
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<Value>>> {
    let catalog = state.catalog.read().await;
    let mut entries: Vec<&Entry> = catalog.entries().collect();
    entries.sort_by_key(|e| sort_key(e));
    let items: Vec<&Entry> = entries
        .into_iter()
        .filter(|e| q.cursor.as_ref().is_none_or(|c| sort_key(e) > *c))
        .take(q.limit() as usize + 1)
        .collect();
    let page = Page::from_extra(items, q.limit(), |e| sort_key(e));
    Ok(Json(Page {
        items: page.items.into_iter().map(summary).collect(),
        next_cursor: page.next_cursor,
    }))
}

fn find<'a>(catalog: &'a crate::catalog::Catalog, ns: &str, name: &str) -> ApiResult<&'a Entry> {
    catalog
        .find(ns, name)
        .ok_or_else(|| ApiError::not_found(format!("pipeline `{ns}/{name}` not found")))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let catalog = state.catalog.read().await;
    let entry = find(&catalog, &ns, &name)?;
    let mut doc = summary(entry);
    doc["paused"] = Value::Bool(state.store.is_paused(&ns, &name).await?);
    if let Some(v) = &entry.active {
        doc["graph"] = baton_core::graph::to_json(&v.pipeline);
        doc["source"] = Value::String(v.source.to_string());
    }
    Ok(Json(doc))
}

pub(crate) async fn versions(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<baton_store::VersionRecord>>> {
    let all = state.store.versions(&ns, &name).await?;
    if all.is_empty() && state.catalog.read().await.find(&ns, &name).is_none() {
        return Err(ApiError::not_found(format!(
            "pipeline `{ns}/{name}` not found"
        )));
    }
    // The cursor is the last hash of the previous page; versions are only ever added, and
    // they are listed newest first, so what follows it stays put.
    let start = match &q.cursor {
        None => 0,
        Some(c) => {
            all.iter()
                .position(|v| &v.hash == c)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid cursor `{c}`: not a version of `{ns}/{name}`\n(hint: pass the `next_cursor` of the previous page)"
                    ))
                })?
                + 1
        }
    };
    let items = all
        .into_iter()
        .skip(start)
        .take(q.limit() as usize + 1)
        .collect();
    Ok(Json(Page::from_extra(items, q.limit(), |v| v.hash.clone())))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerBody {
    #[serde(default)]
    pub params: Map<String, Value>,
    pub idempotency_key: Option<String>,
}

/// Starts a run of the pipeline's active version. The same idempotency key (body field or
/// `Idempotency-Key` header) returns the same run instead of starting another.
pub(crate) async fn trigger(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    Body(body): Body<TriggerBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let version = {
        let catalog = state.catalog.read().await;
        find(&catalog, &ns, &name)?.active.clone().ok_or_else(|| {
            ApiError::conflict(format!("pipeline `{ns}/{name}` has no valid version"))
        })?
    };
    let key = body.idempotency_key.or_else(|| {
        headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let launch = Launch {
        params: body.params,
        trigger: "manual",
        logical_date: None,
        idempotency_key: key,
    };
    let created = state.launch(&version, launch).await?;
    created_response(&state, created).await
}

/// 201 with the run when it is new, 200 with the earlier run an idempotency key matched.
pub(crate) async fn created_response(
    state: &AppState,
    created: baton_engine::Created,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    Ok((status, Json(serde_json::to_value(run).unwrap_or_default())))
}

pub(crate) async fn reload(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let report = state.reload().await;
    Ok(Json(json!({
        "loaded": report.loaded,
        "invalid": report.invalid,
        "removed": report.removed,
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct NextQuery {
    /// How many fire times per schedule (default 5, at most 100).
    n: Option<usize>,
}

/// The next fire times of each of the pipeline's schedules, in its zone and in UTC.
pub(crate) async fn next_times(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<NextQuery>,
) -> ApiResult<Json<Value>> {
    let catalog = state.catalog.read().await;
    let entry = find(&catalog, &ns, &name)?;
    let Some(version) = &entry.active else {
        return Err(ApiError::conflict(format!(
            "pipeline `{ns}/{name}` has no valid version"
        )));
    };
    let n = q.n.unwrap_or(5).clamp(1, 100);
    let now = jiff::Timestamp::now();
    let schedules: Vec<Value> = version
        .pipeline
        .schedules
        .iter()
        .map(|s| {
            let times: Vec<Value> = s
                .next_times(now, n)
                .iter()
                .map(|t| {
                    json!({
                        "local": t.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                        "utc": t.timestamp().to_string(),
                    })
                })
                .collect();
            json!({
                "cron": s.cron,
                "timezone": s.timezone,
                "description": s.describe(),
                "next": times,
            })
        })
        .collect();
    Ok(Json(
        json!({ "pipeline": format!("{ns}/{name}"), "schedules": schedules }),
    ))
}

/// `POST .../pause` and `.../unpause`: a paused pipeline's schedules and webhooks start no runs
/// (ticks that pass meanwhile are skipped, not caught up); manual triggers still work.
async fn set_paused(
    state: &AppState,
    ns: &str,
    name: &str,
    paused: bool,
    body: &[u8],
) -> ApiResult<Json<Value>> {
    if state.catalog.read().await.find(ns, name).is_none() {
        return Err(ApiError::not_found(format!(
            "pipeline `{ns}/{name}` not found"
        )));
    }
    let decision: crate::routes::runs::Decision = crate::body::optional(body)?;
    let by = decision.by.unwrap_or_else(|| "api".into());
    let changed = state
        .store
        .set_paused(ns, name, paused, &by, baton_engine::now_ms())
        .await?;
    Ok(Json(
        json!({ "pipeline": format!("{ns}/{name}"), "paused": paused, "changed": changed }),
    ))
}

pub(crate) async fn pause(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    set_paused(&state, &ns, &name, true, &body).await
}

pub(crate) async fn unpause(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    set_paused(&state, &ns, &name, false, &body).await
}
