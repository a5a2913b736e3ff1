//! Dead letters: task instances that failed for good in runs that ended, listed and requeued
//! (one by one or in bulk). Requeued runs are driven by the server's runner.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use baton_core::ids::{RunId, TaskKey};
use baton_engine::control::RetryError;
use baton_store::{DeadLetterCursor, DeadLetterFilter, DeadLetterRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::page::{Page, PageQuery};

/// Most dead letters one bulk request requeues; requeued ones leave the list, so repeating
/// the request handles the rest.
pub(crate) const MAX_BULK: usize = 1000;

#[derive(Debug, Deserialize)]
pub(crate) struct DeadLettersQuery {
    /// `name` or `namespace/name`.
    pub pipeline: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn cursor(text: Option<&str>) -> ApiResult<Option<DeadLetterCursor>> {
    text.map(|c| {
        DeadLetterCursor::decode(c).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid cursor `{c}`\n(hint: pass the `next_cursor` of the previous page)"
            ))
        })
    })
    .transpose()
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<DeadLettersQuery>,
) -> ApiResult<Json<Page<DeadLetterRecord>>> {
    let limit = PageQuery {
        limit: q.limit,
        cursor: None,
    }
    .limit();
    let items = state
        .store
        .dead_letters(
            &DeadLetterFilter {
                limit: limit + 1,
                before: cursor(q.cursor.as_deref())?,
                ..DeadLetterFilter::default()
            }
            .for_pipeline(q.pipeline.as_deref()),
        )
        .await?;
    Ok(Json(Page::from_extra(items, limit, |d| {
        d.cursor().encode()
    })))
}

fn requeue_error(e: RetryError) -> ApiError {
    match e {
        RetryError::Store(e) => e.into(),
        RetryError::NoTask { run, key, .. } => {
            ApiError::not_found(format!("run `{run}` has no task `{key}`"))
        }
        RetryError::Definition { .. } => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
        other => ApiError::conflict(other.to_string()),
    }
}

/// `POST /runs/{id}/tasks/{key}/requeue`: one dead letter, and what did not succeed
/// downstream of it, run again with a fresh retry budget.
pub(crate) async fn requeue_one(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = state.store.resolve_run(&id).await?;
    let key = TaskKey::from_string(key);
    let reopened =
        baton_engine::control::requeue(state.store.as_ref(), &id, std::slice::from_ref(&key))
            .await
            .map_err(requeue_error)?;
    state.runner.start(id.clone());
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "task": key, "reopened": reopened })),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkBody {
    items: Option<Vec<BulkItem>>,
    /// Every current dead letter of this pipeline (`name` or `namespace/name`).
    pipeline: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkItem {
    run: String,
    task: String,
}

/// `POST /dead-letters/requeue`: the listed items, or every current dead letter (of one
/// pipeline). Answers with each item's outcome; one that cannot be requeued does not stop
/// the others.
pub(crate) async fn requeue_bulk(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let body: BulkBody = crate::body::optional(&body)?;
    let items: Vec<(String, TaskKey)> = match (body.items, body.pipeline) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give `items` or `pipeline`, not both",
            ));
        }
        (Some(items), None) => {
            if items.len() > MAX_BULK {
                return Err(ApiError::bad_request(format!(
                    "at most {MAX_BULK} items per request, got {}",
                    items.len()
                )));
            }
            items
                .into_iter()
                .map(|i| (i.run, TaskKey::from_string(i.task)))
                .collect()
        }
        (None, pipeline) => state
            .store
            .dead_letters(
                &DeadLetterFilter {
                    limit: u32::try_from(MAX_BULK).unwrap_or(u32::MAX),
                    ..DeadLetterFilter::default()
                }
                .for_pipeline(pipeline.as_deref()),
            )
            .await?
            .into_iter()
            .map(|d| (d.run.to_string(), d.key))
            .collect(),
    };
    // A run is requeued once with all its chosen tasks: after that it is queued, no longer
    // ended, and a second requeue would be refused.
    let mut runs: Vec<(String, Vec<TaskKey>)> = Vec::new();
    for (run, key) in items {
        match runs.iter_mut().find(|(r, _)| *r == run) {
            Some((_, keys)) if keys.contains(&key) => {}
            Some((_, keys)) => keys.push(key),
            None => runs.push((run, vec![key])),
        }
    }
    let mut results = Vec::new();
    let (mut requeued, mut failed) = (0, 0);
    for (run, keys) in runs {
        let outcome = requeue_run(&state, &run, keys).await;
        for (key, result) in outcome.items {
            let mut item = json!({ "run": outcome.run, "task": key });
            match result {
                Ok(()) => {
                    requeued += 1;
                    item["status"] = json!("requeued");
                    item["reopened"] = json!(outcome.reopened);
                }
                Err(e) => {
                    failed += 1;
                    item["status"] = json!("error");
                    item["error"] = json!({ "code": e.code, "message": e.message });
                }
            }
            results.push(item);
        }
    }
    Ok(Json(
        json!({ "requeued": requeued, "failed": failed, "results": results }),
    ))
}

struct RunOutcome {
    /// The resolved id, or the text given when it did not resolve.
    run: String,
    items: Vec<(TaskKey, Result<(), ApiError>)>,
    reopened: Vec<TaskKey>,
}

/// Requeues `keys` of one run; a key that is not a dead letter is reported and the rest are
/// requeued without it (the engine checks every key before it changes anything).
async fn requeue_run(state: &AppState, run: &str, mut keys: Vec<TaskKey>) -> RunOutcome {
    let id: RunId = match state.store.resolve_run(run).await {
        Ok(id) => id,
        Err(e) => {
            let message = e.to_string();
            let error: ApiError = e.into();
            return RunOutcome {
                run: run.to_owned(),
                items: keys
                    .into_iter()
                    .map(|k| {
                        (
                            k,
                            Err(ApiError::new(error.status, error.code, message.clone())),
                        )
                    })
                    .collect(),
                reopened: Vec::new(),
            };
        }
    };
    let mut items = Vec::new();
    let mut reopened = Vec::new();
    while !keys.is_empty() {
        match baton_engine::control::requeue(state.store.as_ref(), &id, &keys).await {
            Ok(keys_reopened) => {
                state.runner.start(id.clone());
                reopened = keys_reopened;
                items.extend(keys.drain(..).map(|k| (k, Ok(()))));
            }
            Err(e) => {
                let bad_key = match &e {
                    RetryError::NotDeadLetter { key, .. } | RetryError::NoTask { key, .. } => {
                        Some(key.clone())
                    }
                    _ => None,
                };
                let error = requeue_error(e);
                if let Some(key) = bad_key {
                    keys.retain(|k| *k != key);
                    items.push((key, Err(error)));
                } else {
                    items.extend(keys.drain(..).map(|k| {
                        (
                            k,
                            Err(ApiError::new(
                                error.status,
                                error.code,
                                error.message.clone(),
                            )),
                        )
                    }));
                }
            }
        }
    }
    RunOutcome {
        run: id.to_string(),
        items,
        reopened,
    }
}
