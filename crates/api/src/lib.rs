//! What the API sends: types of its own, made from the store's records with `From`, so the
//! database schema can change without changing the wire, and bookkeeping that is nobody's
//! business but the server's (lease owners and their host names and pids, directories and log
//! paths on the server's disk, admission internals) never leaves it. The CLI reads these same
//! types back from a server, and prints them for a local home too, so both show the same.

pub mod artifact;
mod attempt;
mod backfill;
mod dead_letter;
mod pool;
mod run;
mod task;
mod version;
pub mod worker;

pub use artifact::Artifact;
pub use attempt::{Attempt, Rusage};
pub use backfill::Backfill;
pub use dead_letter::DeadLetter;
pub use pool::Pool;
pub use run::{ParentRef, Run};
pub use task::{CacheSource, Task, TaskEntry};
pub use version::Version;
