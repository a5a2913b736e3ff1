//! Dead letters: task instances that failed for good in runs that ended, listed and requeued
//! (one by one or in bulk). Requeued runs are driven by the server's runner.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use baton_core::ids::{RunId, TaskKey};
use baton_engine::control::RetryError;
use baton_store::{DeadLetterCursor, DeadLetterFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::body::{OptionalBody, Query};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::page::{self, Page};
use crate::responses::StoreDown;
use crate::routes::TaskPath;
use baton_api::DeadLetter;

/// Most dead letters one bulk request requeues; requeued ones leave the list, so repeating
/// the request handles the rest.
pub(crate) const MAX_BULK: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadLettersQuery {
    /// Only dead letters of this pipeline: `name` (any namespace) or `namespace/name`.
    pub pipeline: Option<String>,
    /// How many at most: 1 to 500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (`finished_at.run.key`); empty is the first page.
    #[param(pattern = "^(-?[0-9]{1,18}\\.[^.]+\\..+)?$")]
    pub cursor: Option<String>,
}

fn cursor(text: Option<&str>) -> ApiResult<Option<DeadLetterCursor>> {
    page::cursor(text)
        .map(|c| DeadLetterCursor::decode(c).ok_or_else(|| page::invalid_cursor(c)))
        .transpose()
}

/// Task instances that failed for good in runs that ended failed or cancelled, newest
/// failure first.
#[utoipa::path(
    get,
    path = "/dead-letters",
    operation_id = "list_dead_letters",
    tag = "dead-letters",
    params(DeadLettersQuery),
    responses(
        (status = 200, description = "A page of dead letters", body = Page<DeadLetter>),
        (status = 400, description = "`limit` out of 1..=500, or a cursor no page handed out", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(q): Query<DeadLettersQuery>,
) -> ApiResult<Json<Page<DeadLetter>>> {
    let limit = page::limit(q.limit)?;
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
    let page = Page::from_extra(items, limit, |d| d.cursor().encode());
    Ok(Json(Page {
        items: page.items.into_iter().map(DeadLetter::from).collect(),
        next_cursor: page.next_cursor,
    }))
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

/// A requeued dead letter and the task instances reopened with it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Requeued {
    id: RunId,
    task: TaskKey,
    reopened: Vec<TaskKey>,
}

/// `POST /runs/{id}/tasks/{key}/requeue`: one dead letter, and what did not succeed
/// downstream of it, run again with a fresh retry budget.
#[utoipa::path(
    post,
    path = "/runs/{id}/tasks/{key}/requeue",
    operation_id = "requeue_task",
    tag = "dead-letters",
    params(TaskPath),
    responses(
        (status = 202, description = "The run is queued again", body = Requeued),
        (status = 404, description = "No such run or task", body = ErrorBody),
        (status = 409, description = "The task is not a dead letter (the message says why), or the id prefix matches several runs (`ambiguous_run`)", body = ErrorBody),
        (status = 500, description = "The run's pipeline version cannot be read", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn requeue_one(
    State(state): State<AppState>,
    Path(TaskPath { id, key }): Path<TaskPath>,
) -> ApiResult<(StatusCode, Json<Requeued>)> {
    let (id, key, reopened) = requeue_task(&state, &id, &key).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Requeued {
            id,
            task: key,
            reopened,
        }),
    ))
}

/// Requeues the dead letter `key` of run `id` and drives the run. Shared by the API and the
/// UI.
pub(crate) async fn requeue_task(
    state: &AppState,
    id: &str,
    key: &str,
) -> ApiResult<(RunId, TaskKey, Vec<TaskKey>)> {
    let id = state.store.resolve_run(id).await?;
    let key = TaskKey::from_string(key);
    let reopened =
        baton_engine::control::requeue(state.store.as_ref(), &id, std::slice::from_ref(&key))
            .await
            .map_err(requeue_error)?;
    state.runner.start(id.clone());
    Ok((id, key, reopened))
}

/// Which dead letters to requeue: `items`, or every current one (of `pipeline`); not both.
/// Neither may be `null`: a body is one of the two shapes [`BulkBody::schema`] gives.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkBody {
    #[serde(default, deserialize_with = "present")]
    items: Option<Vec<BulkItem>>,
    #[serde(default, deserialize_with = "present")]
    pipeline: Option<String>,
}

/// A field that may be left out but, when given, is not `null`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

impl utoipa::PartialSchema for BulkBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type,
        };
        let items = ObjectBuilder::new()
            .description(Some("These dead letters"))
            .property(
                "items",
                ArrayBuilder::new()
                    .items(utoipa::openapi::Ref::from_schema_name("BulkItem"))
                    .max_items(Some(MAX_BULK)),
            )
            .required("items")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let every = ObjectBuilder::new()
            .description(Some(
                "Every current dead letter, of `pipeline` when given (at most 1000 per request)",
            ))
            .property(
                "pipeline",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("`name` (any namespace) or `namespace/name`")),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        OneOfBuilder::new()
            .description(Some(
                "Which dead letters to requeue: `items`, or every current one (of `pipeline`); not both",
            ))
            .item(items)
            .item(every)
            .into()
    }
}

impl ToSchema for BulkBody {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema as _;
        schemas.push((BulkItem::name().into(), BulkItem::schema()));
        <BulkItem as ToSchema>::schemas(schemas);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkItem {
    /// A run id or a unique prefix.
    run: String,
    /// A task key of that run.
    task: String,
}

/// The outcome of a bulk requeue, one result per item.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkOutcome {
    requeued: usize,
    failed: usize,
    results: Vec<BulkResult>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkResult {
    /// The resolved run id, or the text given when it did not resolve.
    run: String,
    task: TaskKey,
    status: BulkStatus,
    /// With `requeued`: the run's reopened task instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    reopened: Option<Vec<TaskKey>>,
    /// With `error`: why this item was not requeued.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<BulkError>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BulkStatus {
    Requeued,
    Error,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkError {
    /// As in an error body: `not_found`, `conflict`, ...
    code: String,
    message: String,
}

/// `POST /dead-letters/requeue`: the listed items, or every current dead letter (of one
/// pipeline). Answers with each item's outcome; one that cannot be requeued does not stop
/// the others.
#[utoipa::path(
    post,
    path = "/dead-letters/requeue",
    operation_id = "requeue_dead_letters",
    tag = "dead-letters",
    request_body(content = Option<BulkBody>, description = "Empty or `{}` for every current dead letter (at most 1000 per request)"),
    responses(
        (status = 200, description = "Each item's outcome", body = BulkOutcome),
        (status = 400, description = "`invalid_body`: not JSON, not an object of this shape; `bad_request`: both `items` and `pipeline`, or over 1000 items", body = ErrorBody),
        (status = 413, description = "`body_too_large`: the body is over 1 MiB", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn requeue_bulk(
    State(state): State<AppState>,
    OptionalBody(body): OptionalBody<BulkBody>,
) -> ApiResult<Json<BulkOutcome>> {
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
        for (task, result) in outcome.items {
            let item = match result {
                Ok(()) => {
                    requeued += 1;
                    BulkResult {
                        run: outcome.run.clone(),
                        task,
                        status: BulkStatus::Requeued,
                        reopened: Some(outcome.reopened.clone()),
                        error: None,
                    }
                }
                Err(e) => {
                    failed += 1;
                    BulkResult {
                        run: outcome.run.clone(),
                        task,
                        status: BulkStatus::Error,
                        reopened: None,
                        error: Some(BulkError {
                            code: e.code.to_owned(),
                            message: e.message,
                        }),
                    }
                }
            };
            results.push(item);
        }
    }
    Ok(Json(BulkOutcome {
        requeued,
        failed,
        results,
    }))
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
