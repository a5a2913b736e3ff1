//! What a finished attempt means for its task (success, retry, failure), and the end of
//! the run.

use std::cmp::Reverse;
use std::sync::Arc;

use baton_core::ids::TaskKey;
use baton_core::state::{AttemptState, RunState, TaskState};
use baton_store::{Change, NewTask};
use serde_json::json;

use super::state::{Inst, TaskRef, task_of};
use super::{Dispatcher, Progress};
use crate::clock::now_ms;
use crate::error::Result;
use crate::executor::{Finished, Outcome};

impl Dispatcher {
    pub(super) fn on_finished(&mut self, f: Finished) {
        let Some(&i) = self.by_key.get(&f.key) else {
            return;
        };
        // Every report is of an attempt started here, and so in `running`.
        let started_at = self
            .running
            .remove(&i)
            .map_or_else(now_ms, |r| r.started_at);
        if self.drain_deadline.is_some() && f.outcome == Outcome::Cancelled {
            // Stopped by the drain, not by a person: the next owner finds the task running
            // without a live attempt and runs it again, as after a crash.
            self.insts[i].interruptions += 1;
            self.pending.push(Change::AttemptFinished {
                key: f.key,
                attempt: f.attempt,
                state: AttemptState::Interrupted,
                started_at,
                at: now_ms(),
                exit_code: None,
                signal: None,
                rusage: f.rusage,
                error: Some("baton was shut down while this attempt ran".into()),
            });
            return;
        }
        if let Outcome::Interrupted(why) = &f.outcome {
            self.on_interrupted(i, f.attempt, started_at, f.rusage, why);
            return;
        }
        let now = now_ms();
        // Through its own `Arc`, so the task is not copied (a fan-out's item list can be big).
        let pipeline = Arc::clone(&self.pipeline);
        let task = task_of(&pipeline, self.insts[i].task);
        let (attempt_state, failure, exit_code, signal) = match &f.outcome {
            Outcome::Exited {
                exit_code: Some(0),
                signal: None,
            } if !task.artifacts.upload.is_empty() && f.artifacts.is_none() => {
                // Its files were not stored (baton stopped between the exit and the upload;
                // recovery saw only the exit): it must run again to make them.
                self.on_interrupted(
                    i,
                    f.attempt,
                    started_at,
                    f.rusage,
                    "the attempt ended before its artifacts were stored",
                );
                return;
            }
            Outcome::Exited {
                exit_code: Some(0),
                signal: None,
            } => match crate::outputs::from_report(&f.outputs, &task.outputs) {
                Ok(outputs) => {
                    self.insts[i].outputs = outputs;
                    if let Some(stored) = f.artifacts.clone() {
                        self.stored_artifacts(i, f.attempt, stored);
                    }
                    (AttemptState::Succeeded, None, Some(0), None)
                }
                Err(e) => (
                    AttemptState::Failed,
                    Some(format!("invalid outputs: {e}")),
                    Some(0),
                    None,
                ),
            },
            Outcome::Exited { exit_code, signal } => {
                let why = match (exit_code, signal) {
                    (Some(127), _) => "exited with code 127 (command not found)".to_owned(),
                    (Some(126), _) => "exited with code 126 (command not executable)".to_owned(),
                    (Some(c), _) => format!("exited with code {c}"),
                    (None, Some(s)) => format!("killed by signal {s}"),
                    (None, None) => "ended for an unknown reason".to_owned(),
                };
                (AttemptState::Failed, Some(why), *exit_code, *signal)
            }
            Outcome::TimedOut => {
                let after = task
                    .timeout
                    .map(|d| format!(" after {d}"))
                    .unwrap_or_default();
                (
                    AttemptState::TimedOut,
                    Some(format!("timed out{after}")),
                    None,
                    None,
                )
            }
            Outcome::Cancelled => (AttemptState::Cancelled, None, None, None),
            Outcome::Error(e) | Outcome::Refused(e) | Outcome::Interrupted(e) => {
                (AttemptState::Failed, Some(e.clone()), None, None)
            }
        };
        self.pending.push(Change::AttemptFinished {
            key: f.key.clone(),
            attempt: f.attempt,
            state: attempt_state,
            started_at,
            at: now,
            exit_code,
            signal,
            rusage: f.rusage,
            error: failure.clone(),
        });
        match attempt_state {
            AttemptState::Succeeded => {
                self.set(i, TaskState::Succeeded, None);
                self.save_to_cache(i, now);
            }
            AttemptState::Cancelled => self.set(i, TaskState::Cancelled, None),
            _ => {
                let inst = &self.insts[i];
                let real_attempts = inst
                    .attempts
                    .saturating_sub(inst.interruptions)
                    .saturating_sub(inst.retry_base);
                let retryable = !matches!(
                    f.outcome,
                    Outcome::Exited {
                        exit_code: Some(0),
                        ..
                    } | Outcome::Refused(_)
                );
                if !self.cancelling
                    && retryable
                    && task.retry.should_retry(real_attempts, exit_code)
                {
                    let delay = task
                        .retry
                        .delay_before(real_attempts, rand::random::<f64>());
                    let at =
                        now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                    self.insts[i].next_at = Some(at);
                    self.timers.push(Reverse((at, i)));
                    self.set(i, TaskState::Retrying, failure);
                } else {
                    let attempts = self.insts[i].attempts;
                    let error = failure.map(|f| {
                        if attempts > 1 {
                            format!("{f} (attempt {attempts})")
                        } else {
                            f
                        }
                    });
                    self.set(
                        i,
                        if self.cancelling {
                            TaskState::Cancelled
                        } else {
                            TaskState::Failed
                        },
                        error,
                    );
                }
            }
        }
        if self.insts[i].state.is_final() {
            self.settle(vec![i]);
        }
    }

    /// An attempt lost with its worker: the task runs again (not a retry), unless it was lost
    /// too often or the run is being cancelled.
    fn on_interrupted(
        &mut self,
        i: usize,
        attempt: u32,
        started_at: baton_store::Millis,
        rusage: Option<baton_store::Rusage>,
        why: &str,
    ) {
        self.insts[i].interruptions += 1;
        self.pending.push(Change::AttemptFinished {
            key: self.insts[i].key.clone(),
            attempt,
            state: AttemptState::Interrupted,
            started_at,
            at: now_ms(),
            exit_code: None,
            signal: None,
            rusage,
            error: Some(why.to_owned()),
        });
        let n = self.insts[i].interruptions;
        if self.cancelling {
            self.set(i, TaskState::Cancelled, None);
        } else if n >= self.opts.interruption_limit {
            self.set(
                i,
                TaskState::Failed,
                Some(format!("interrupted {n} times; the last time: {why}")),
            );
        } else {
            self.insts[i].after_interruption = true;
            self.set(i, TaskState::Queued, None);
            self.push_ready(i);
            return;
        }
        self.settle(vec![i]);
    }

    /// Ends the run once nothing is left to do, after running its hook.
    pub(super) async fn finish_if_done(&mut self) -> Result<Option<RunState>> {
        if !self.running.is_empty()
            || !self.ready.is_empty()
            || !self.lookups.is_empty()
            || !self.timers.is_empty()
        {
            return Ok(None);
        }
        let dag_done = self
            .insts
            .iter()
            .filter(|i| matches!(i.task, TaskRef::Dag(_)))
            .all(|i| i.state.is_final());
        if !dag_done {
            return Ok(None);
        }
        let failed = self.insts.iter().any(|i| {
            matches!(i.task, TaskRef::Dag(_)) && i.parent.is_none() && i.state.is_failure()
        });
        let state = if self.cancelling
            || self.insts.iter().any(|i| {
                i.parent.is_none()
                    && i.state == TaskState::Cancelled
                    && matches!(i.task, TaskRef::Dag(_))
            }) {
            RunState::Cancelled
        } else if failed {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        if state != RunState::Cancelled {
            let success = state == RunState::Succeeded;
            let hook = if success {
                &self.pipeline.on_success
            } else {
                &self.pipeline.on_failure
            };
            let key = TaskKey::from_string(if success { "on_success" } else { "on_failure" });
            if hook.is_some() {
                match self.by_key.get(&key) {
                    None => {
                        let i = self.insts.len();
                        let position = self.next_position;
                        self.next_position += 1;
                        self.pending.push(Change::AddTasks(vec![NewTask {
                            key: key.clone(),
                            task_id: key.to_string(),
                            position,
                            item: None,
                            state: TaskState::Queued,
                        }]));
                        self.by_key.insert(key.clone(), i);
                        self.ctx.run["state"] = json!(state);
                        self.insts.push(Inst::new(
                            key,
                            TaskRef::Hook { success },
                            TaskState::Queued,
                            position,
                        ));
                        self.push_runnable(i);
                        self.flush().await?;
                        return Ok(None);
                    }
                    Some(&i) if !self.insts[i].state.is_final() => return Ok(None),
                    Some(_) => {}
                }
            }
        }
        let now = now_ms();
        let error = match state {
            RunState::Failed => {
                let failed: Vec<&str> = self
                    .insts
                    .iter()
                    .filter(|i| {
                        i.parent.is_none()
                            && i.state == TaskState::Failed
                            && matches!(i.task, TaskRef::Dag(_))
                    })
                    .map(|i| i.key.as_str())
                    .collect();
                Some(format!("failed tasks: {}", failed.join(", ")))
            }
            _ => None,
        };
        self.pending.push(Change::Run {
            state,
            at: now,
            error,
        });
        self.notes.push(Progress::Run { state, at: now });
        self.flush().await?;
        Ok(Some(state))
    }
}
