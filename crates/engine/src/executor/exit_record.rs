//! How an attempt's process ended, kept in a small file next to its outputs as soon as it is
//! reaped, before the report reaches the dispatcher. If baton dies before committing the
//! attempt's end, whoever resumes the run reads the true outcome here instead of counting an
//! interruption and running a task that had already succeeded once more.
//!
//! Written to a temporary name and renamed, so a reader sees all of it or nothing. Not synced
//! to disk: it covers baton crashing, not the machine losing power.

use std::path::Path;

use baton_store::Rusage;
use serde::{Deserialize, Serialize};

use super::Outcome;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ExitRecord {
    exit_code: Option<i32>,
    signal: Option<i32>,
    rusage: Option<Rusage>,
}

/// Records an exit; other outcomes (timeouts, cancellations, errors) are decided by the
/// dispatcher that asked for them and are not kept.
pub(super) fn write(path: &Path, outcome: &Outcome, rusage: Option<Rusage>) {
    let Outcome::Exited { exit_code, signal } = outcome else {
        return;
    };
    let record = ExitRecord {
        exit_code: *exit_code,
        signal: *signal,
        rusage,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let written = serde_json::to_vec(&record)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        // The report still goes to the dispatcher; only a crash before its commit loses it.
        tracing::warn!("cannot record the exit in `{}`: {e}", path.display());
    }
}

/// The exit recorded at `path`, if the process ended and it was recorded.
pub fn read(path: &Path) -> Option<(Outcome, Option<Rusage>)> {
    let bytes = std::fs::read(path).ok()?;
    let r: ExitRecord = serde_json::from_slice(&bytes).ok()?;
    Some((
        Outcome::Exited {
            exit_code: r.exit_code,
            signal: r.signal,
        },
        r.rusage,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_reads_back_and_other_outcomes_are_not_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.1.exit");
        assert_eq!(read(&path), None);
        write(&path, &Outcome::TimedOut, None);
        assert_eq!(read(&path), None);
        let exited = Outcome::Exited {
            exit_code: Some(0),
            signal: None,
        };
        let usage = Rusage {
            cpu_user_ms: 1,
            cpu_sys_ms: 2,
            max_rss_kb: 3,
        };
        write(&path, &exited, Some(usage));
        assert_eq!(read(&path), Some((exited, Some(usage))));
        std::fs::write(&path, b"{\"exit_c").expect("write");
        assert_eq!(read(&path), None, "a torn file is no record");
    }
}
