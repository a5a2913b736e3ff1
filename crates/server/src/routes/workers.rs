//! The worker API: `baton worker` agents register, hold claims for work, send heartbeats, log
//! chunks and final reports, each under the lease epoch their claim returned; and the list of
//! workers that `baton workers` and the UI show.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use baton_api::worker as wire;
use baton_core::ids::WorkerId;
use baton_engine::executor::{ContainerRun, Outcome, Outputs, Work};
use baton_engine::workers::{self as hub, Epoch, HubError};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::body::Body;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::responses::JsonBody;
use crate::worker_api::{Agent, STALE_LEASE, UNKNOWN_WORKER};

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        let message = e.to_string();
        match e {
            HubError::UnknownWorker(_) => {
                ApiError::new(StatusCode::NOT_FOUND, UNKNOWN_WORKER, message)
            }
            HubError::Stale { .. } => ApiError::new(StatusCode::CONFLICT, STALE_LEASE, message),
            HubError::Log { source, .. }
                if matches!(*source, baton_store::LogError::Stale { .. }) =>
            {
                ApiError::new(StatusCode::CONFLICT, STALE_LEASE, message)
            }
            HubError::InvalidWorker(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_worker", message)
            }
            HubError::LogTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "log_too_large", message)
            }
            HubError::Log { .. } => {
                tracing::warn!(error = %message, "cannot keep a worker's log chunk");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "log_unavailable",
                    "the log store is not available: send the chunk again",
                )
            }
        }
    }
}

/// `/workers/{id}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct WorkerPath {
    /// The id the registration returned.
    id: String,
}

/// `/workers/{id}/leases/{epoch}/...`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct LeasePath {
    /// The id the registration returned.
    id: String,
    /// The lease's epoch, from the claim.
    epoch: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// The log's length before this chunk: a chunk sent again after a lost answer is
    /// recognised by it.
    at: u64,
}

/// Registers a worker; it gets a new id each time.
#[utoipa::path(
    post,
    path = "/workers",
    operation_id = "register_worker",
    tag = "workers",
    request_body = wire::WorkerHello,
    security(("worker_secret" = [])),
    responses(
        (status = 201, description = "Registered", body = wire::WorkerRegistered),
        (status = 401, description = "`bad_worker_secret`: no or the wrong worker secret", body = ErrorBody),
        (status = 422, description = "`invalid_worker`: no slots, a bad label or name; or `invalid_body`", body = ErrorBody),
        (status = 403, description = "`workers_disabled`: the server has no worker secret; or `cross_site_request`", body = ErrorBody),
        JsonBody,
    )
)]
pub(crate) async fn register(
    Agent(hub): Agent,
    Body(hello): Body<wire::WorkerHello>,
) -> ApiResult<(StatusCode, Json<wire::WorkerRegistered>)> {
    let name = hello.name.clone();
    let r = hub.register(hub::WorkerInfo {
        name: hello.name,
        labels: hello.labels,
        slots: hello.slots,
        capacity: hub::Capacity {
            cpu: hello.cpu.filter(|c| c.is_finite() && *c >= 0.0),
            memory_bytes: hello.memory_bytes,
            gpu: hello.gpu,
        },
        version: hello.version,
        host: hello.host,
    })?;
    tracing::info!(worker = %r.id, name, "worker registered");
    Ok((
        StatusCode::CREATED,
        Json(wire::WorkerRegistered {
            id: r.id,
            heartbeat_ms: millis(r.heartbeat),
            lease_ms: millis(r.lease),
        }),
    ))
}

/// Ends a worker's registration (a worker that drained); what it still held runs again elsewhere.
#[utoipa::path(
    delete,
    path = "/workers/{id}",
    operation_id = "deregister_worker",
    tag = "workers",
    params(WorkerPath),
    security(("worker_secret" = [])),
    responses(
        (status = 200, description = "Gone", body = wire::Deregistered),
        (status = 401, description = "`bad_worker_secret`", body = ErrorBody),
        (status = 404, description = "`unknown_worker`", body = ErrorBody),
        (status = 403, description = "`workers_disabled`: the server has no worker secret; or `cross_site_request`", body = ErrorBody),
    )
)]
pub(crate) async fn deregister(
    Agent(hub): Agent,
    Path(WorkerPath { id }): Path<WorkerPath>,
) -> ApiResult<Json<wire::Deregistered>> {
    let released = hub.deregister(&WorkerId::from_string(id))?;
    Ok(Json(wire::Deregistered { released }))
}

/// Holds the request open (up to `wait_ms`, at most 30 s) until work the worker's labels
/// match is ready, and leases up to `free` attempts to it.
#[utoipa::path(
    post,
    path = "/workers/{id}/claim",
    operation_id = "claim_work",
    tag = "workers",
    params(WorkerPath),
    request_body = wire::ClaimRequest,
    security(("worker_secret" = [])),
    responses(
        (status = 200, description = "The attempts leased; none when the wait ended first", body = wire::ClaimResponse),
        (status = 401, description = "`bad_worker_secret`", body = ErrorBody),
        (status = 404, description = "`unknown_worker`: register again", body = ErrorBody),
        (status = 403, description = "`workers_disabled`: the server has no worker secret; or `cross_site_request`", body = ErrorBody),
        JsonBody,
    )
)]
pub(crate) async fn claim(
    Agent(hub): Agent,
    Path(WorkerPath { id }): Path<WorkerPath>,
    Body(req): Body<wire::ClaimRequest>,
) -> ApiResult<Json<wire::ClaimResponse>> {
    let taken = hub
        .claim(
            &WorkerId::from_string(id),
            req.free,
            Duration::from_millis(req.wait_ms),
        )
        .await?;
    Ok(Json(wire::ClaimResponse {
        assignments: taken.into_iter().map(assignment).collect(),
    }))
}

/// Extends the leases the worker holds; the answer says which attempts to stop and which are
/// no longer the worker's.
#[utoipa::path(
    post,
    path = "/workers/{id}/heartbeat",
    operation_id = "worker_heartbeat",
    tag = "workers",
    params(WorkerPath),
    request_body = wire::Heartbeat,
    security(("worker_secret" = [])),
    responses(
        (status = 200, description = "What to stop", body = wire::HeartbeatReply),
        (status = 401, description = "`bad_worker_secret`", body = ErrorBody),
        (status = 404, description = "`unknown_worker`: register again (and stop what was held)", body = ErrorBody),
        (status = 403, description = "`workers_disabled`: the server has no worker secret; or `cross_site_request`", body = ErrorBody),
        JsonBody,
    )
)]
pub(crate) async fn heartbeat(
    Agent(hub): Agent,
    Path(WorkerPath { id }): Path<WorkerPath>,
    Body(beat): Body<wire::Heartbeat>,
) -> ApiResult<Json<wire::HeartbeatReply>> {
    let held: Vec<Epoch> = beat.held.into_iter().map(Epoch).collect();
    let reply = hub.heartbeat(&WorkerId::from_string(id), &held, beat.draining)?;
    Ok(Json(wire::HeartbeatReply {
        stop: reply
            .stop
            .into_iter()
            .map(|(epoch, why)| wire::StopRequest {
                epoch: epoch.0,
                reason: match why {
                    hub::StopReason::Cancelled => wire::StopReason::Cancelled,
                    hub::StopReason::TimedOut => wire::StopReason::TimedOut,
                },
            })
            .collect(),
        lost: reply.lost.into_iter().map(|e| e.0).collect(),
    }))
}

/// Appends a chunk of the attempt's output (the raw bytes) to its log.
#[utoipa::path(
    post,
    path = "/workers/{id}/leases/{epoch}/log",
    operation_id = "append_worker_log",
    tag = "workers",
    params(LeasePath, LogQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    security(("worker_secret" = [])),
    responses(
        (status = 200, description = "Kept", body = wire::LogAppended),
        (status = 401, description = "`bad_worker_secret`", body = ErrorBody),
        (status = 404, description = "`unknown_worker`", body = ErrorBody),
        (status = 409, description = "`stale_lease`: the lease ended; stop the attempt", body = ErrorBody),
        (status = 413, description = "`log_too_large`: past the attempt's cap; or `body_too_large`", body = ErrorBody),
        (status = 403, description = "`workers_disabled`: the server has no worker secret; or `cross_site_request`", body = ErrorBody),
        (status = 503, description = "`log_unavailable`: the log store did not answer; send it again", body = ErrorBody),
    )
)]
pub(crate) async fn log(
    Agent(hub): Agent,
    Path(LeasePath { id, epoch }): Path<LeasePath>,
    Query(LogQuery { at }): Query<LogQuery>,
    bytes: Bytes,
) -> ApiResult<Json<wire::LogAppended>> {
    let length = hub
        .append_log(&WorkerId::from_string(id), Epoch(epoch), at, &bytes)
        .await?;
    Ok(Json(wire::LogAppended { length }))
}

/// Reports how the attempt ended, with its outputs; the lease ends.
#[utoipa::path(
    post,
    path = "/workers/{id}/leases/{epoch}/finish",
    operation_id = "finish_work",
    tag = "workers",
    params(LeasePath),
    request_body = wire::FinishReport,
    security(("worker_secret" = [])),
    responses(
        (status = 200, description = "Recorded, for this attempt", body = wire::WorkerAttempt),
        (status = 401, description = "`bad_worker_secret`", body = ErrorBody),
        (status = 404, description = "`unknown_worker`", body = ErrorBody),
        (status = 409, description = "`stale_lease`: the lease ended before the report", body = ErrorBody),
        (status = 403, description = "`workers_disabled`: the server has no worker secret; or `cross_site_request`", body = ErrorBody),
        JsonBody,
    )
)]
pub(crate) async fn finish(
    Agent(hub): Agent,
    Path(LeasePath { id, epoch }): Path<LeasePath>,
    Body(report): Body<wire::FinishReport>,
) -> ApiResult<Json<wire::WorkerAttempt>> {
    let outcome = match report.outcome {
        wire::WorkerOutcome::Exited { exit_code, signal } => Outcome::Exited { exit_code, signal },
        // What was asked for decides; a stop nobody asked for is a loss.
        wire::WorkerOutcome::Stopped => {
            Outcome::Interrupted("the worker stopped the attempt".into())
        }
        wire::WorkerOutcome::Error { message } => Outcome::Error(message),
        wire::WorkerOutcome::Refused { message } => Outcome::Refused(message),
        wire::WorkerOutcome::Interrupted { message } => Outcome::Interrupted(message),
    };
    let (outcome, artifacts) = match super::worker_artifacts::reported(&hub, report.artifacts).await
    {
        Ok(artifacts) => (outcome, artifacts),
        Err(why) => (Outcome::Error(why), None),
    };
    let a = hub.finish(
        &WorkerId::from_string(id),
        Epoch(epoch),
        hub::Report {
            artifacts,
            outcome,
            outputs: Outputs::Text(report.outputs),
            rusage: report.rusage.map(|r| baton_store::Rusage {
                cpu_user_ms: r.cpu_user_ms,
                cpu_sys_ms: r.cpu_sys_ms,
                max_rss_kb: r.max_rss_kb,
            }),
        },
    )?;
    Ok(Json(wire::WorkerAttempt {
        run: a.run,
        task: a.key,
        attempt: a.attempt,
    }))
}

/// The workers (live, draining, and lost ones for a few minutes), and the attempts waiting
/// for one.
#[utoipa::path(
    get,
    path = "/workers",
    operation_id = "list_workers",
    tag = "workers",
    responses(
        (status = 200, description = "Workers and waiting attempts", body = wire::WorkerList),
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> Json<wire::WorkerList> {
    Json(worker_list(&state))
}

/// What the list shows; empty where the worker API is off.
pub(crate) fn worker_list(state: &AppState) -> wire::WorkerList {
    let Some(api) = &state.workers else {
        return wire::WorkerList {
            workers: Vec::new(),
            waiting: Vec::new(),
        };
    };
    wire::WorkerList {
        workers: api
            .hub
            .workers()
            .into_iter()
            .map(|w| wire::Worker {
                id: w.id,
                name: w.info.name,
                labels: w.info.labels,
                slots: w.info.slots,
                cpu: w.info.capacity.cpu,
                memory_bytes: w.info.capacity.memory_bytes,
                gpu: w.info.capacity.gpu,
                state: w.state.as_str().to_owned(),
                version: w.info.version,
                host: w.info.host,
                registered_at: w.registered_at,
                last_heartbeat: w.last_heartbeat,
                running: w
                    .running
                    .into_iter()
                    .map(|a| wire::WorkerAttempt {
                        run: a.run,
                        task: a.key,
                        attempt: a.attempt,
                    })
                    .collect(),
            })
            .collect(),
        waiting: api
            .hub
            .waiting()
            .into_iter()
            .map(|w| wire::WaitingAttempt {
                reason: w.reason(),
                run: w.attempt.run,
                task: w.attempt.key,
                attempt: w.attempt.attempt,
                labels: w.labels,
                since: w.since,
            })
            .collect(),
    }
}

/// What each task of `run` waiting for a worker is waiting for, by task key.
pub(crate) fn waiting_in(
    state: &AppState,
    run: &baton_core::ids::RunId,
) -> std::collections::HashMap<baton_core::ids::TaskKey, String> {
    let Some(api) = &state.workers else {
        return std::collections::HashMap::new();
    };
    api.hub
        .waiting()
        .into_iter()
        .filter(|w| &w.attempt.run == run)
        .map(|w| (w.attempt.key.clone(), w.reason()))
        .collect()
}

/// Marks the tasks of `run` that wait for a worker.
pub(crate) fn mark_waiting<'a>(
    state: &AppState,
    run: &baton_core::ids::RunId,
    tasks: impl IntoIterator<Item = &'a mut baton_api::Task>,
) {
    let waiting = waiting_in(state, run);
    if waiting.is_empty() {
        return;
    }
    for t in tasks {
        t.waiting_for = waiting.get(&t.key).cloned();
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn assignment(a: hub::Assignment) -> wire::Assignment {
    wire::Assignment {
        epoch: a.epoch.0,
        run: a.attempt.run,
        task: a.attempt.key,
        attempt: a.attempt.attempt,
        pipeline: a.pipeline.map(|p| p.to_string()),
        work: match a.work {
            Work::Process { argv } => wire::WorkerWork::Process { argv },
            Work::Container(ContainerRun {
                image,
                command,
                pull,
                user,
                network,
                resources,
                ..
            }) => wire::WorkerWork::Container {
                image,
                command,
                pull: pull.as_str().to_owned(),
                user,
                network: network.as_str().to_owned(),
                resources,
            },
            Work::Http(_) => unreachable!("the worker executor refuses requests"),
        },
        env: a
            .env
            .into_iter()
            .map(|(name, value)| wire::EnvVar { name, value })
            .collect(),
        timeout_ms: a.timeout.map(millis),
        max_log_bytes: a.max_log_bytes,
        lease_ms: millis(a.lease),
        artifacts: wire::WorkerArtifacts {
            download: a.artifacts.download.into_iter().map(Into::into).collect(),
            upload: a.artifacts.upload,
        },
    }
}
