//! baton's engine: starting runs, the dispatcher that drives them, and the executors that run
//! their attempts.

pub mod artifacts;
mod backfill;
mod clock;
pub mod control;
mod direct;
mod dispatcher;
mod engine;
pub mod environment;
mod error;
pub mod executor;
mod fault;
mod launch;
pub mod log_tail;
pub mod memory;
pub mod observer;
pub mod outputs;
mod patient;
mod pools;
mod programs;
pub mod render;
mod run_log;
mod subpipeline;
mod transient;
mod value_env;
pub mod workers;

pub use backfill::{
    BackfillError, BackfillRequest, CreatedBackfill, MAX_BACKFILL_RUNS, create_backfill,
};
pub use clock::now_ms;
pub use dispatcher::{
    DEFAULT_CONTROL_INTERVAL, DEFAULT_INTERRUPTION_LIMIT, DEFAULT_LEASE_RENEW_INTERVAL,
    DEFAULT_LEASE_TTL, Options, Progress, Stop,
};
pub use engine::Engine;
pub use environment::TaskEnvironment;
pub use error::{Error, Result};
pub use launch::{Created, RunRequest, create_run, pipeline_admission};
pub use observer::{Observer, Observers, RunScope};
pub use pools::{MAX_SLOTS, pool_problem};
pub use subpipeline::{ChildRunner, Definition, Pipelines};

/// This process's identity as a lease owner: `host:pid:nonce`.
pub fn owner_id() -> baton_core::ids::LeaseOwner {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    baton_core::ids::LeaseOwner::from_string(format!("{host}:{}:{}", std::process::id(), now_ms()))
}

/// Whether a lease owner is a process on this host that no longer exists, so its runs can be
/// taken over at once instead of waiting for the lease to expire.
pub fn owner_is_dead(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let ours = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    host == ours
        && pid != i32::try_from(std::process::id()).unwrap_or(0)
        && matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
}
