//! Reading an attempt's log from a byte offset while it is still being written: the one
//! tailing loop behind `baton logs -f` and the API's log stream.
//!
//! A log holds nothing until the attempt's first output, so a missing one reads as empty.
//! The attempt's record in the store says when the log is complete: the executor finishes
//! writing output before the attempt's end is committed, so once the store says the attempt
//! ended, whatever the log holds then is all there will be.

use std::sync::Arc;
use std::time::Duration;

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::AttemptState;
use baton_store::{AttemptLog, AttemptRecord, LogStore, MAX_READ, Store};

/// How often a quiet log and the attempt's state are looked at again.
const POLL: Duration = Duration::from_millis(200);

/// Why a log cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("run {run} has no task `{key}`\n(hint: its tasks are {known})")]
    NoTask {
        run: RunId,
        key: TaskKey,
        known: String,
    },
    #[error("no log for `{key}` in run {run}\n(hint: {hint})")]
    NoAttempt {
        run: RunId,
        key: TaskKey,
        hint: String,
    },
    #[error(transparent)]
    Log(#[from] baton_store::LogError),
    #[error("{0}")]
    Store(#[from] baton_store::Error),
}

/// What one step of a tail found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// New bytes; the offset has moved past them.
    Data(Vec<u8>),
    /// Nothing new within a poll interval; the attempt is still running.
    Idle,
    /// The attempt has ended and its whole log was handed out.
    End,
}

/// A reader of one attempt's log, from a byte offset on.
#[derive(Debug)]
pub struct LogTail {
    store: Arc<dyn Store>,
    logs: Arc<dyn LogStore>,
    run: RunId,
    attempt: AttemptRecord,
    offset: u64,
    ended: bool,
}

impl LogTail {
    /// Opens the log of `attempt` (the latest when `None`) of task `key`, to be read from
    /// byte `offset`.
    pub async fn open(
        store: Arc<dyn Store>,
        logs: Arc<dyn LogStore>,
        run: &RunId,
        key: &TaskKey,
        attempt: Option<u32>,
        offset: u64,
    ) -> Result<Self, LogError> {
        let attempts = store.attempts(run).await?;
        let mine: Vec<&AttemptRecord> = attempts.iter().filter(|a| &a.key == key).collect();
        let chosen = match attempt {
            Some(n) => mine.iter().find(|a| a.attempt == n).copied(),
            None => mine.iter().max_by_key(|a| a.attempt).copied(),
        };
        let Some(chosen) = chosen else {
            if mine.is_empty() {
                let tasks = store.tasks(run).await?;
                if !tasks.iter().any(|t| &t.key == key) {
                    let known: Vec<String> = tasks.iter().map(|t| format!("`{}`", t.key)).collect();
                    return Err(LogError::NoTask {
                        run: run.clone(),
                        key: key.clone(),
                        known: known.join(", "),
                    });
                }
            }
            let hint = if mine.is_empty() {
                "it has not started an attempt".to_owned()
            } else {
                format!("it has attempts 1 to {}", mine.len())
            };
            return Err(LogError::NoAttempt {
                run: run.clone(),
                key: key.clone(),
                hint,
            });
        };
        Ok(Self {
            run: run.clone(),
            attempt: chosen.clone(),
            ended: chosen.state != AttemptState::Running,
            store,
            logs,
            offset,
        })
    }

    /// The attempt's record as of the last look at the store.
    pub fn attempt(&self) -> &AttemptRecord {
        &self.attempt
    }

    /// The byte offset the next read starts at.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether the attempt had ended at the last look at the store.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Reads up to one chunk ([`MAX_READ`] bytes) of what the log holds past the offset now,
    /// without waiting; empty when there is nothing new. A log of any size is read through in
    /// bounded pieces, never whole.
    pub async fn read_available(&mut self) -> Result<Vec<u8>, LogError> {
        let log = AttemptLog {
            run: self.run.clone(),
            key: self.attempt.key.clone(),
            attempt: self.attempt.attempt,
        };
        let chunk = self.logs.read(&log, self.offset, MAX_READ).await?;
        self.offset += chunk.len() as u64;
        Ok(chunk)
    }

    /// The next step of following the log: new bytes as soon as they are there, `Idle` after
    /// a quiet poll interval, `End` once the attempt has ended and everything was read.
    pub async fn next(&mut self) -> Result<Tail, LogError> {
        let data = self.read_available().await?;
        if !data.is_empty() {
            return Ok(Tail::Data(data));
        }
        if self.ended {
            return Ok(Tail::End);
        }
        self.refresh().await?;
        if self.ended {
            // Output written between the read above and the end.
            let data = self.read_available().await?;
            return Ok(if data.is_empty() {
                Tail::End
            } else {
                Tail::Data(data)
            });
        }
        tokio::time::sleep(POLL).await;
        Ok(Tail::Idle)
    }

    async fn refresh(&mut self) -> Result<(), LogError> {
        if let Some(a) = self
            .store
            .attempts(&self.run)
            .await?
            .into_iter()
            .find(|a| a.key == self.attempt.key && a.attempt == self.attempt.attempt)
        {
            self.ended = a.state != AttemptState::Running;
            self.attempt = a;
        }
        Ok(())
    }
}
