//! `baton worker`: an agent on any host that runs attempts for a control plane. It registers
//! with its labels and slots, holds a claim open (a long poll) so a ready attempt starts within
//! milliseconds, runs what it is handed with the engine's own executors (processes, or
//! containers on its Docker engine), streams the output into the control plane's log store,
//! sends heartbeats that extend its leases and bring back cancellations, and reports each
//! attempt's end with its outputs. Every report carries the lease's epoch: one the control
//! plane gave up on is refused, so a worker cut off and back cannot record anything twice.

mod agent;
mod attempt;
mod client;
mod remote_artifacts;
mod remote_log;

pub use agent::{AgentError, AgentSettings, run};
pub use client::{Client, ClientError};
