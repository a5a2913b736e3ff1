//! The baton control plane without HTTP: the pipeline catalog loaded from a directory,
//! launching runs (with a typed [`LaunchError`]), the one [`Runner`] that admits and drives
//! them for the server, `baton backfill` and sub-pipeline tasks alike, cron schedules,
//! upstream triggers, takeover of orphaned runs, and the directory watch.
//!
//! `baton-server` puts HTTP in front of a [`Control`]; `baton run` uses the runner and the
//! catalog without linking it.

mod admission;
pub mod catalog;
mod control;
pub mod hosts;
mod launch;
mod runner;
pub mod scheduler;
pub mod shutdown;
pub mod takeover;
pub mod upstream;
pub mod watch;

pub use catalog::Catalog;
pub use control::Control;
pub use launch::{Launch, LaunchError};
pub use runner::{Leases, Runner};
