//! API errors: a status and a JSON body `{ "error": { "code", "message", "details" } }`.
//! Server-side failures are logged in full and shown to clients without internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// The error code of a run `overlap: skip` refused.
const CONCURRENCY_LIMIT: &str = "concurrency_limit";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable code, e.g. `invalid_params`.
    pub code: &'static str,
    pub message: String,
    pub details: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: serde_json::Value::Null,
        }
    }

    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 409 `concurrency_limit`: `overlap: skip` refused a run, because of `active` in `group`.
    fn concurrency_limit(message: String, group: &str, active: &[baton_core::ids::RunId]) -> Self {
        Self::new(StatusCode::CONFLICT, CONCURRENCY_LIMIT, message)
            .with_details(json!({ "group": group, "active_runs": active }))
    }
}

impl From<baton_store::Error> for ApiError {
    fn from(e: baton_store::Error) -> Self {
        match e {
            baton_store::Error::RunNotFound(id) => Self::not_found(format!("run `{id}` not found")),
            baton_store::Error::AmbiguousRun { .. } => {
                Self::new(StatusCode::CONFLICT, "ambiguous_run", e.to_string())
            }
            baton_store::Error::IdempotencyConflict(_) => Self::conflict(e.to_string()),
            baton_store::Error::BackfillNotFound(id) => {
                Self::not_found(format!("backfill `{id}` not found"))
            }
            baton_store::Error::Skipped {
                ref group,
                ref active,
            } => Self::concurrency_limit(e.to_string(), group, active),
            other => {
                tracing::error!(error = %other, "store error");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the database is not available",
                )
            }
        }
    }
}

impl From<baton_engine::Error> for ApiError {
    fn from(e: baton_engine::Error) -> Self {
        match e {
            baton_engine::Error::Params(problems) => {
                let list: Vec<&str> = problems.lines().collect();
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_params",
                    "the run's params are invalid",
                )
                .with_details(json!({ "problems": list }))
            }
            baton_engine::Error::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, "engine error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong",
                )
            }
        }
    }
}

impl From<baton_control::LaunchError> for ApiError {
    fn from(e: baton_control::LaunchError) -> Self {
        use baton_control::LaunchError;
        match e {
            LaunchError::UnknownPipeline(_) => Self::not_found(e.to_string()),
            LaunchError::NoValidVersion(_) => Self::conflict(e.to_string()),
            LaunchError::ConcurrencyLimit {
                ref group,
                ref active,
            } => Self::concurrency_limit(e.to_string(), group, active),
            LaunchError::Engine(e) => e.into(),
        }
    }
}

impl From<baton_engine::BackfillError> for ApiError {
    fn from(e: baton_engine::BackfillError) -> Self {
        use baton_engine::BackfillError;
        match e {
            BackfillError::Params(problems) => {
                let list: Vec<&str> = problems.lines().collect();
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_params",
                    "the backfill's params are invalid",
                )
                .with_details(json!({ "problems": list }))
            }
            BackfillError::Store(e) => e.into(),
            other => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_backfill",
                other.to_string(),
            ),
        }
    }
}

/// The body of every 4xx and 5xx answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "run `01J...` not found", "details": null}}))]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable and machine-readable: `bad_request`, `invalid_body`, `not_found`, `conflict`,
    /// `invalid_params`, `body_too_large`, `unsupported_media_type`, `invalid_signature`,
    /// `concurrency_limit`, `ambiguous_run` (409: a run-id prefix that matches several runs),
    /// `invalid_backfill`, `invalid_pool`, `store_unavailable`,
    /// `webhook_not_configured`, `host_not_allowed` (421: the `Host` header names no allowed
    /// host), `cross_site_request` (403: a state change sent by another site's page),
    /// `internal`.
    pub(crate) code: String,
    /// For people: a lowercase sentence, sometimes followed by a `(hint: ...)` line.
    pub(crate) message: String,
    /// More, by code: `problems` (a list of strings) for `invalid_params`, `expected` for an
    /// unknown state; null when there is nothing more.
    pub(crate) details: serde_json::Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
