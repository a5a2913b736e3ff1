//! An attempt as the API shows it: not where its log is on the server's disk, nor which
//! process of which host ran it. The log is at `GET /runs/{id}/tasks/{key}/log?attempt=N`.

use baton_core::ids::TaskKey;
use baton_core::state::AttemptState;
use baton_store::AttemptRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One try of a task instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    pub key: TaskKey,
    /// Counted from 1.
    pub attempt: u32,
    pub state: AttemptState,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    /// The signal that ended its process, if one did.
    pub signal: Option<i32>,
    pub rusage: Option<Rusage>,
    pub error: Option<String>,
    /// The files it uploaded (`artifacts.upload`), by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<crate::Artifact>,
}

/// CPU and memory used by one attempt, from the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rusage {
    pub cpu_user_ms: i64,
    pub cpu_sys_ms: i64,
    pub max_rss_kb: i64,
}

impl From<AttemptRecord> for Attempt {
    fn from(a: AttemptRecord) -> Self {
        Self {
            key: a.key,
            attempt: a.attempt,
            state: a.state,
            started_at: a.started_at,
            finished_at: a.finished_at,
            exit_code: a.exit_code,
            signal: a.signal,
            rusage: a.rusage.map(|r| Rusage {
                cpu_user_ms: r.cpu_user_ms,
                cpu_sys_ms: r.cpu_sys_ms,
                max_rss_kb: r.max_rss_kb,
            }),
            error: a.error,
            artifacts: Vec::new(),
        }
    }
}
