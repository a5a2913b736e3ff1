//! `/healthz` (the process is up) and `/readyz` (the database answers).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiResult;

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(crate) async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state
        .store
        .runs(&baton_store::RunFilter {
            limit: 1,
            ..Default::default()
        })
        .await?;
    Ok(Json(json!({ "status": "ready" })))
}
