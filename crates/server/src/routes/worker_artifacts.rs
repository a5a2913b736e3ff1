//! Artifacts through the worker API: a worker fetches the files its attempt downloads and
//! sends those it uploads, each under the lease epoch of its claim. A worker may fetch only
//! what its lease's attempt names, and what it sends is stored only once it hashes to the
//! digest it was sent under: a worker cannot read other runs' files or plant a forgery.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_core::ids::WorkerId;
use baton_engine::artifacts::{ArtifactError, ArtifactStore, Op};
use baton_engine::workers::{Epoch, WorkerHub};
use baton_store::ArtifactFile;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::worker_api::Agent;

/// `/workers/{id}/leases/{epoch}/artifacts/{digest}`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ArtifactPath {
    /// The id the registration returned.
    id: String,
    /// The lease's epoch, from the claim.
    epoch: u64,
    /// `sha256:HEX` of the content.
    digest: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// The file's path in the working directory, for messages.
    path: String,
}

impl From<ArtifactError> for ApiError {
    fn from(e: ArtifactError) -> Self {
        let message = e.to_string();
        match e {
            ArtifactError::Missing { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "artifact_missing", message)
            }
            ArtifactError::Corrupt { .. } | ArtifactError::Pattern { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "artifact_invalid",
                message,
            ),
            ArtifactError::Io {
                what: "receive", ..
            } => ApiError::new(StatusCode::BAD_REQUEST, "artifact_cut", message),
            _ => {
                tracing::warn!(error = %message, "artifact store failed a worker's transfer");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "artifact_store_unavailable",
                    message,
                )
            }
        }
    }
}

fn store_of(hub: &WorkerHub) -> ApiResult<ArtifactStore> {
    hub.artifact_store().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "artifact_store_unavailable",
            "this server has no artifact store",
        )
    })
}

/// The content of a file the attempt under the lease downloads.
#[utoipa::path(
    get,
    path = "/workers/{id}/leases/{epoch}/artifacts/{digest}",
    operation_id = "fetch_artifact",
    tag = "workers",
    params(ArtifactPath),
    security(("worker_secret" = [])),
    responses(
        (status = 200, description = "The file's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, description = "`bad_worker_secret`", body = ErrorBody),
        (status = 403, description = "`workers_disabled`; or `artifact_not_leased`: the lease's attempt does not download it", body = ErrorBody),
        (status = 404, description = "`unknown_worker`; or `artifact_missing`: not in the artifact store", body = ErrorBody),
        (status = 409, description = "`stale_lease`", body = ErrorBody),
        (status = 503, description = "`artifact_store_unavailable`", body = ErrorBody),
    )
)]
pub(crate) async fn fetch(
    Agent(hub): Agent,
    Path(ArtifactPath { id, epoch, digest }): Path<ArtifactPath>,
) -> ApiResult<Response> {
    let plan = hub.lease_artifacts(&WorkerId::from_string(id), Epoch(epoch))?;
    let Some(file) = plan.download.into_iter().find(|f| f.digest == digest) else {
        return Err(not_leased(&digest));
    };
    let store = store_of(&hub)?;
    let (size, stream) = store.get(&file).await.inspect_err(|_| {
        baton_engine::artifacts::count_error(store.kind(), Op::Download);
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Stores a file the attempt under the lease uploads; the body must hash to `digest`.
#[utoipa::path(
    put,
    path = "/workers/{id}/leases/{epoch}/artifacts/{digest}",
    operation_id = "upload_artifact",
    tag = "workers",
    params(ArtifactPath, UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("worker_secret" = [])),
    responses(
        (status = 200, description = "Stored, or held already", body = ArtifactStored),
        (status = 400, description = "`artifact_cut`: the body ended early", body = ErrorBody),
        (status = 401, description = "`bad_worker_secret`", body = ErrorBody),
        (status = 403, description = "`workers_disabled`; or `artifact_not_leased`: the lease's attempt uploads nothing", body = ErrorBody),
        (status = 404, description = "`unknown_worker`", body = ErrorBody),
        (status = 409, description = "`stale_lease`", body = ErrorBody),
        (status = 422, description = "`artifact_invalid`: the body does not hash to `digest`", body = ErrorBody),
        (status = 503, description = "`artifact_store_unavailable`", body = ErrorBody),
    )
)]
pub(crate) async fn upload(
    Agent(hub): Agent,
    Path(ArtifactPath { id, epoch, digest }): Path<ArtifactPath>,
    Query(UploadQuery { path }): Query<UploadQuery>,
    body: Body,
) -> ApiResult<Json<ArtifactStored>> {
    let plan = hub.lease_artifacts(&WorkerId::from_string(id), Epoch(epoch))?;
    if plan.upload.is_empty() {
        return Err(not_leased(&digest));
    }
    let store = store_of(&hub)?;
    if store.contains(&path, &digest).await? {
        return Ok(Json(ArtifactStored { digest, held: true }));
    }
    let stream = body.into_data_stream().map_err(|e| e.to_string());
    store
        .put_stream(&path, &digest, stream)
        .await
        .inspect_err(|_| baton_engine::artifacts::count_error(store.kind(), Op::Upload))?;
    Ok(Json(ArtifactStored {
        digest,
        held: false,
    }))
}

/// An upload's answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ArtifactStored {
    digest: String,
    /// The store held this content already: the body was not read.
    held: bool,
}

fn not_leased(digest: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "artifact_not_leased",
        format!("the attempt under this lease does not move artifact `{digest}`"),
    )
}

/// The files a worker's final report names, each checked to be in the store (sent before the
/// report); the first that is not, as the attempt's error.
pub(crate) async fn reported(
    hub: &WorkerHub,
    files: Vec<baton_api::Artifact>,
) -> Result<Option<baton_engine::artifacts::StoredArtifacts>, String> {
    if files.is_empty() {
        return Ok(None);
    }
    let Some(store) = hub.artifact_store() else {
        return Err("this server has no artifact store".into());
    };
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let f: ArtifactFile = f.into();
        baton_engine::artifacts::destination(std::path::Path::new("/"), &f.path)
            .map_err(|e| e.to_string())?;
        match store.contains(&f.path, &f.digest).await {
            Ok(true) => out.push(f),
            Ok(false) => {
                return Err(ArtifactError::Missing {
                    path: f.path,
                    digest: f.digest,
                    store: store.label().to_owned(),
                }
                .to_string());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(Some(baton_engine::artifacts::StoredArtifacts {
        store: store.label().to_owned(),
        files: out,
    }))
}
