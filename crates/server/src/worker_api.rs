//! The worker API's gate: a hub to hand work out, and the shared worker secret every agent's
//! request must carry (`Authorization: Bearer …`), on loopback too. Until per-principal tokens
//! arrive, it is what keeps a stranger from taking attempts, and the secrets in their
//! environment, off the queue.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use baton_engine::workers::WorkerHub;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

/// The `code` of a worker request without the right secret (401).
pub const BAD_WORKER_SECRET: &str = "bad_worker_secret";
/// The `code` of a report under a lease that ended (409): the worker stops the attempt.
pub const STALE_LEASE: &str = "stale_lease";
/// The `code` of a request from a worker the server does not know (404): it registers again.
pub const UNKNOWN_WORKER: &str = "unknown_worker";
/// The `code` of a worker request to a server whose worker API is off (403).
pub const WORKERS_DISABLED: &str = "workers_disabled";

#[derive(Clone)]
pub struct WorkerApi {
    pub hub: WorkerHub,
    /// Compared as digests, so the comparison takes as long whatever the length of a guess.
    secret: Arc<[u8; 32]>,
}

impl std::fmt::Debug for WorkerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerApi").finish_non_exhaustive()
    }
}

impl WorkerApi {
    pub fn new(hub: WorkerHub, secret: &str) -> Self {
        Self {
            hub,
            secret: Arc::new(Sha256::digest(secret.as_bytes()).into()),
        }
    }

    fn admits(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        digest.ct_eq(&*self.secret).into()
    }
}

/// The hub, for a request that carried the worker secret.
pub(crate) struct Agent(pub WorkerHub);

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = token else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                BAD_WORKER_SECRET,
                "a worker request needs `Authorization: Bearer <worker secret>`",
            ));
        };
        let Some(api) = &state.workers else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                WORKERS_DISABLED,
                "this server's worker API is off\n(hint: set `[workers] secret_file` in baton.toml, and give workers the same secret)",
            ));
        };
        if api.admits(token.trim()) {
            Ok(Self(api.hub.clone()))
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                BAD_WORKER_SECRET,
                "the worker secret is wrong\n(hint: give the worker the file `[workers] secret_file` names)",
            ))
        }
    }
}
