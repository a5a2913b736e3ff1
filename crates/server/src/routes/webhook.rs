//! `POST /api/v1/pipelines/{ns}/{name}/webhook`: a run per delivery, optionally signed.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use baton_api::Run;
use baton_core::model::Trigger;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::body::RawBody;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::PipelinePath;
use baton_control::Launch;

use crate::AppState;

/// Headers carrying `sha256=<hex HMAC of the body>`; GitHub's name is accepted too.
const SIGNATURE_HEADERS: &[&str] = &["x-baton-signature-256", "x-hub-signature-256"];
/// Headers identifying a delivery, used as the run's idempotency key so redeliveries do not
/// start a second run.
const DELIVERY_HEADERS: &[&str] = &["idempotency-key", "x-github-delivery", "x-request-id"];

fn header<'h>(headers: &'h HeaderMap, names: &[&str]) -> Option<&'h str> {
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
}

/// Checks `sha256=<hex>` against the body in constant time.
fn verify(secret: &[u8], body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex_sig) = signature.and_then(|s| s.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// A delivery of the pipeline's `webhook` trigger: a run with params rendered from the JSON
/// body (`payload` in the trigger's templates). With `secret_env`, the body must be signed.
#[utoipa::path(
    post,
    path = "/pipelines/{namespace}/{name}/webhook",
    operation_id = "deliver_webhook",
    tag = "webhooks",
    params(
        PipelinePath,
        ("X-Baton-Signature-256" = Option<String>, Header, description = "`sha256=<hex HMAC-SHA256 of the body>`, required when the trigger has `secret_env`"),
        ("X-Hub-Signature-256" = Option<String>, Header, description = "GitHub's name for `X-Baton-Signature-256`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Identifies the delivery: a repeated one returns the first run"),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "Used like `Idempotency-Key` when that is absent"),
        ("X-Request-Id" = Option<String>, Header, description = "Used like `Idempotency-Key` when both are absent"),
    ),
    request_body(content = Option<Value>, content_type = "application/json", description = "Any JSON (or nothing): the `payload` the trigger's param templates read"),
    responses(
        (status = 201, description = "A new run", body = Run),
        (status = 200, description = "A redelivery: the run the first delivery started", body = Run),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid signature", body = ErrorBody),
        (status = 404, description = "No such pipeline, or it has no webhook trigger", body = ErrorBody),
        (status = 409, description = "The pipeline is paused or has no valid version, or `concurrency_limit` (overlap `skip`; `details.active_runs`)", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 422, description = "Params that cannot be rendered or read (`details.problems`)", body = ErrorBody),
        (status = 503, description = "The database is not available, or the server lacks the webhook's secret (`webhook_not_configured`)", body = ErrorBody),
    )
)]
pub(crate) async fn deliver(
    State(state): State<AppState>,
    Path(PipelinePath {
        namespace: ns,
        name,
    }): Path<PipelinePath>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let version = state.active_version(&ns, &name).await?;
    if state.store.is_paused(&ns, &name).await? {
        state.metrics.denied("paused");
        return Err(ApiError::conflict(format!(
            "pipeline `{ns}/{name}` is paused"
        )));
    }
    let Some((secret_env, param_templates)) =
        version.pipeline.triggers.iter().find_map(|t| match t {
            Trigger::Webhook { secret_env, params } => Some((secret_env.clone(), params.clone())),
            Trigger::Pipeline { .. } => None,
        })
    else {
        return Err(ApiError::not_found(format!(
            "pipeline `{ns}/{name}` has no webhook trigger"
        )));
    };
    if let Some(var) = secret_env {
        let Some(secret) = state.secrets.get(&var) else {
            tracing::error!(pipeline = %version.pipeline.id, variable = %var, "webhook secret is not set");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhook_not_configured",
                format!("the server has no secret for this webhook (environment variable `{var}`)"),
            ));
        };
        if !verify(
            secret.as_bytes(),
            &body,
            header(&headers, SIGNATURE_HEADERS),
        ) {
            state.metrics.denied("webhook_signature");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "missing or invalid `X-Baton-Signature-256` header (sha256=<hex HMAC-SHA256 of the body>)",
            ));
        }
    }
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the webhook body is not JSON: {e}")))?
    };
    // Each mapped param is rendered from the payload, then read by the param's type.
    let mut params = Map::new();
    let mut problems = Vec::new();
    let ctx = minijinja::Value::from(minijinja::value::Serde(
        serde_json::json!({ "payload": payload }),
    ));
    for (name, template) in &param_templates {
        let text = match baton_core::template::environment().render_str(&template.0, ctx.clone()) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!(
                    "param `{name}`: cannot render from the payload: {}",
                    e.detail().unwrap_or("undefined value")
                ));
                continue;
            }
        };
        match version
            .pipeline
            .params
            .get(name)
            .map(|p| p.parse_text(&text))
        {
            Some(Ok(v)) => {
                params.insert(name.clone(), v);
            }
            Some(Err(e)) => problems.push(format!("param `{name}`: {e}")),
            None => problems.push(format!("unknown param `{name}`")),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            "the run's params are invalid",
        )
        .with_details(serde_json::json!({ "problems": problems })));
    }
    let launch = Launch {
        params,
        trigger: baton_core::state::RunTrigger::Webhook,
        logical_date: None,
        idempotency_key: header(&headers, DELIVERY_HEADERS)
            .map(|d| format!("webhook:{ns}/{name}:{d}")),
        no_cache: false,
    };
    let created = state.launch(&version, launch).await?;
    super::pipelines::created_response(&state, created).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").expect("key");
        mac.update(b"{}");
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(verify(b"s3cret", b"{}", Some(&good)));
        assert!(!verify(b"other", b"{}", Some(&good)));
        assert!(!verify(b"s3cret", b"{ }", Some(&good)));
        assert!(!verify(b"s3cret", b"{}", Some("sha256=zz")));
        assert!(!verify(b"s3cret", b"{}", None));
    }
}
