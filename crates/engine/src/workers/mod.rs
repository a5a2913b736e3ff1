//! Remote workers (`baton worker`): the [`WorkerHub`] that hands them attempts under leases and
//! hears back from them, and the [`WorkerExecutor`] through which dispatchers queue attempts
//! there. The HTTP API over the hub is the server's; the agent is `baton-worker`'s.

mod executor;
mod hub;
mod types;

pub use executor::WorkerExecutor;
pub use hub::{DEFAULT_HEARTBEAT, DEFAULT_LEASE, HubSettings, MAX_CLAIM_WAIT, WorkerHub};
pub use types::{
    Assignment, AttemptRef, Capacity, Epoch, HeartbeatReply, HubCounts, HubError, Registration,
    Report, StopReason, Waiting, WorkerInfo, WorkerState, WorkerView,
};
