//! How an attempt's process ended, kept on disk next to its outputs as soon as it is reaped,
//! before the report reaches the dispatcher. If baton dies before committing the attempt's
//! end, whoever resumes the run reads the true outcome here instead of counting an
//! interruption and running a task that had already succeeded once more.
//!
//! One line per exit appended to `exits.jsonl` in the directory of the attempt's exit path,
//! named by that path's file name: one `write(2)` with `O_APPEND`, which a crash cannot tear
//! (a reader skips a line that does not parse all the same) and which appends from several
//! attempts do not interleave. A file per exit, written and renamed, cost a file creation
//! and a rename in the directory for every attempt. Not synced to disk: it covers baton
//! crashing, not the machine losing power. Exits recorded by earlier versions, a file at the
//! exit path itself, are still read.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use baton_store::Rusage;
use serde::{Deserialize, Serialize};

use super::Outcome;

/// The journal of the exits recorded in one directory.
const JOURNAL: &str = "exits.jsonl";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ExitRecord {
    exit_code: Option<i32>,
    signal: Option<i32>,
    rusage: Option<Rusage>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    /// The file name of the exit path the record is for.
    name: String,
    #[serde(flatten)]
    record: ExitRecord,
}

fn journal_and_name(path: &Path) -> Option<(PathBuf, String)> {
    let name = path.file_name()?.to_str()?.to_owned();
    Some((path.with_file_name(JOURNAL), name))
}

/// Records an exit; other outcomes (timeouts, cancellations, errors) are decided by the
/// dispatcher that asked for them and are not kept.
pub(super) fn write(path: &Path, outcome: &Outcome, rusage: Option<Rusage>) {
    let Outcome::Exited { exit_code, signal } = outcome else {
        return;
    };
    let Some((journal, name)) = journal_and_name(path) else {
        tracing::warn!(
            "cannot record the exit in `{}`: no file name",
            path.display()
        );
        return;
    };
    let line = Line {
        name,
        record: ExitRecord {
            exit_code: *exit_code,
            signal: *signal,
            rusage,
        },
    };
    let written = serde_json::to_vec(&line)
        .map_err(std::io::Error::other)
        .and_then(|mut bytes| {
            bytes.push(b'\n');
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&journal)?;
            // One call: a short write would leave a torn line (skipped by readers) and the
            // rest appended later, after another attempt's line.
            let n = file.write(&bytes)?;
            if n == bytes.len() {
                Ok(())
            } else {
                Err(std::io::Error::other("short write"))
            }
        });
    if let Err(e) = written {
        // The report still goes to the dispatcher; only a crash before its commit loses it.
        tracing::warn!("cannot record the exit in `{}`: {e}", journal.display());
    }
}

fn outcome(r: ExitRecord) -> (Outcome, Option<Rusage>) {
    (
        Outcome::Exited {
            exit_code: r.exit_code,
            signal: r.signal,
        },
        r.rusage,
    )
}

/// The exit recorded for `path`, if the process ended and it was recorded.
pub fn read(path: &Path) -> Option<(Outcome, Option<Rusage>)> {
    read_all(&[Some(path.to_path_buf())]).pop().flatten()
}

/// [`read`] for each of `paths`, reading each directory's journal once.
pub fn read_all(paths: &[Option<PathBuf>]) -> Vec<Option<(Outcome, Option<Rusage>)>> {
    let mut journals: HashMap<PathBuf, HashMap<String, ExitRecord>> = HashMap::new();
    paths
        .iter()
        .map(|path| {
            let path = path.as_deref()?;
            if let Some(old) = std::fs::read(path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<ExitRecord>(&bytes).ok())
            {
                return Some(outcome(old));
            }
            let (journal, name) = journal_and_name(path)?;
            let lines = journals.entry(journal).or_insert_with_key(|j| parse(j));
            lines.get(&name).cloned().map(outcome)
        })
        .collect()
}

/// The last record of each name in `journal`; lines that do not parse are skipped.
fn parse(journal: &Path) -> HashMap<String, ExitRecord> {
    let Ok(text) = std::fs::read(journal) else {
        return HashMap::new();
    };
    text.split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Line>(line).ok())
        .map(|l| (l.name, l.record))
        .collect()
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
        assert_eq!(read(&path), Some((exited.clone(), Some(usage))));
        let other = dir.path().join("u.2.exit");
        assert_eq!(read(&other), None);
        let failed = Outcome::Exited {
            exit_code: Some(3),
            signal: None,
        };
        write(&other, &failed, None);
        assert_eq!(read(&other), Some((failed.clone(), None)));
        assert_eq!(read(&path), Some((exited.clone(), Some(usage))));
        assert_eq!(
            read_all(&[Some(other.clone()), None, Some(path.clone())]),
            vec![
                Some((failed, None)),
                None,
                Some((exited.clone(), Some(usage)))
            ]
        );
    }

    #[test]
    fn a_torn_line_is_no_record_and_the_old_files_still_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.1.exit");
        std::fs::write(dir.path().join(JOURNAL), b"{\"name\":\"t.1.exit\",\"exit_c")
            .expect("write");
        assert_eq!(read(&path), None, "a torn line is no record");
        std::fs::write(&path, br#"{"exit_code":0,"signal":null,"rusage":null}"#).expect("write");
        let exited = Outcome::Exited {
            exit_code: Some(0),
            signal: None,
        };
        assert_eq!(
            read(&path),
            Some((exited, None)),
            "a file of an earlier version"
        );
    }
}
