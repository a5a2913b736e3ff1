//! `POST /api/v1/callbacks/{token}`: where the callee of an `http:` step with `callback`
//! delivers its result. The token in the URL is the only credential: one-time, signed by this
//! server, and issued for one attempt.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct CallbackPath {
    /// From the `X-Baton-Callback-Url` the request carried.
    token: String,
}

/// The call was taken.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CallbackAccepted {
    /// Always true: the waiting attempt ends with this result.
    accepted: bool,
}

/// Delivers the result of an `http:` step with `callback`: a JSON object; `"status":
/// "failed"` (with an `"error"`) fails the attempt, anything else succeeds it with the
/// object's members as its outputs (with `outputs_from: json`).
#[utoipa::path(
    post,
    path = "/callbacks/{token}",
    operation_id = "deliver_callback",
    tag = "runs",
    params(CallbackPath),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "Taken: the attempt ends with it", body = CallbackAccepted),
        (status = 404, description = "`unknown_callback`: used already, its attempt ended, or never issued", body = ErrorBody),
        (status = 422, description = "`invalid_body`: not a JSON object", body = ErrorBody),
    )
)]
pub(crate) async fn deliver(
    State(state): State<AppState>,
    Path(CallbackPath { token }): Path<CallbackPath>,
    body: Bytes,
) -> ApiResult<Json<CallbackAccepted>> {
    if !matches!(
        serde_json::from_slice::<serde_json::Value>(&body),
        Ok(serde_json::Value::Object(_))
    ) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "a callback's body is a JSON object",
        ));
    }
    let Some(callbacks) = &state.callbacks else {
        return Err(unknown());
    };
    callbacks
        .deliver(&token, body.to_vec())
        .map_err(|_| unknown())?;
    Ok(Json(CallbackAccepted { accepted: true }))
}

fn unknown() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_callback",
        baton_engine::executor::CallbackError::Unknown.to_string(),
    )
}
