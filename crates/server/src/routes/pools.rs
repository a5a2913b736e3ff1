//! Pools: named numbers of slots shared by the tasks that name them, across every run and
//! every replica on the database. Listed with their slots in use and tasks waiting.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use baton_api::Pool;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::body::Body;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::responses::{JsonBody, StoreDown};

/// `/pools/{name}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct PoolPath {
    /// The pool's name: letters, digits, `.`, `_` and `-`, at most 100.
    #[param(pattern = "^[A-Za-z0-9._-]{1,100}$")]
    name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolBody {
    /// Tasks of the pool running at once at most, 0 to 1000000; 0 pauses the pool.
    #[serde(deserialize_with = "crate::body::whole::required")]
    #[schema(minimum = 0, maximum = 1_000_000)]
    slots: i64,
    /// Omitted: the pool keeps its description.
    description: Option<String>,
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("pool `{name}` does not exist"))
}

/// Every pool, by name, with its slots in use and tasks waiting now.
#[utoipa::path(
    get,
    path = "/pools",
    operation_id = "list_pools",
    tag = "pools",
    responses(
        (status = 200, description = "Every pool", body = Vec<Pool>),
        StoreDown,
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Pool>>> {
    let pools = state.store.pools(baton_engine::now_ms()).await?;
    Ok(Json(pools.into_iter().map(Pool::from).collect()))
}

/// One pool, with its slots in use and tasks waiting now.
#[utoipa::path(
    get,
    path = "/pools/{name}",
    operation_id = "get_pool",
    tag = "pools",
    params(PoolPath),
    responses(
        (status = 200, description = "The pool", body = Pool),
        (status = 404, description = "No such pool", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(PoolPath { name }): Path<PoolPath>,
) -> ApiResult<Json<Pool>> {
    let pool = state.store.pool(&name, baton_engine::now_ms()).await?;
    Ok(Json(pool.ok_or_else(|| not_found(&name))?.into()))
}

/// Creates a pool or sets its slots (and description). Tasks waiting for it ask again
/// within a moment, so more slots let them start at once; fewer stop none that run.
#[utoipa::path(
    put,
    path = "/pools/{name}",
    operation_id = "put_pool",
    tag = "pools",
    params(PoolPath),
    request_body = PoolBody,
    responses(
        (status = 200, description = "The pool as it is now", body = Pool),
        (status = 422, description = "Bad name or slots (`invalid_pool`), or a body that is not an object of this shape (`invalid_body`)", body = ErrorBody),
        JsonBody,
        StoreDown,
    )
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(PoolPath { name }): Path<PoolPath>,
    Body(body): Body<PoolBody>,
) -> ApiResult<Json<Pool>> {
    if let Some(problem) = baton_engine::pool_problem(&name, body.slots) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_pool",
            problem,
        ));
    }
    let slots = u32::try_from(body.slots).unwrap_or(0);
    let now = baton_engine::now_ms();
    let pool = state
        .store
        .put_pool(&name, slots, body.description.as_deref(), now)
        .await?;
    Ok(Json(pool.into()))
}

/// Deletes a pool. Tasks holding its slots finish; tasks that ask it for a slot afterwards
/// fail (``pool `x` does not exist``).
#[utoipa::path(
    delete,
    path = "/pools/{name}",
    operation_id = "delete_pool",
    tag = "pools",
    params(PoolPath),
    responses(
        (status = 200, description = "The pool as it was", body = Pool),
        (status = 404, description = "No such pool", body = ErrorBody),
        StoreDown,
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(PoolPath { name }): Path<PoolPath>,
) -> ApiResult<Json<Pool>> {
    let pool = state
        .store
        .pool(&name, baton_engine::now_ms())
        .await?
        .ok_or_else(|| not_found(&name))?;
    if !state.store.delete_pool(&name).await? {
        return Err(not_found(&name));
    }
    Ok(Json(pool.into()))
}
