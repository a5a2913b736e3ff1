//! Starting again after a crash: what the store says was running becomes states the loop
//! can continue from.

use std::cmp::Reverse;

use baton_core::model::Action;
use baton_core::state::{AttemptState, TaskState};
use baton_store::Change;

use super::Dispatcher;
use crate::clock::now_ms;
use baton_core::ids::TaskKey;

use crate::executor::{Finished, Leftover, Unseen};

impl Dispatcher {
    /// The attempts the store says are running, which a process now gone started: their
    /// executor may know how they ended.
    pub(super) fn unseen(&self, attempts: &[baton_store::AttemptRecord]) -> Vec<Unseen> {
        attempts
            .iter()
            .filter(|a| a.state == AttemptState::Running)
            .filter_map(|a| {
                let &i = self.by_key.get(&a.key)?;
                Some(Unseen {
                    run: self.run.id.clone(),
                    key: a.key.clone(),
                    attempt: a.attempt,
                    outputs_path: self.outputs_path(i, a.attempt),
                    exit_path: self.exit_path(i, a.attempt),
                    container: self.in_container(i),
                })
            })
            .collect()
    }

    /// Turns what a crash left behind into states the loop can continue from.
    ///
    /// `recovered` holds the executor's reports of attempts that ended before the crash let
    /// them be committed (see [`Dispatcher::unseen`]).
    pub(super) fn reconcile(
        &mut self,
        attempts: &[baton_store::AttemptRecord],
        recovered: Vec<Option<Finished>>,
    ) {
        let now = now_ms();
        let mut recovered: std::collections::HashMap<(TaskKey, u32), Finished> = recovered
            .into_iter()
            .flatten()
            .map(|f| ((f.key.clone(), f.attempt), f))
            .collect();
        for a in attempts.iter().filter(|a| a.state == AttemptState::Running) {
            let Some(&i) = self.by_key.get(&a.key) else {
                continue;
            };
            // Its child run went on without us: watch it again rather than start another.
            if self.insts[i].state == TaskState::Running
                && !self.insts[i].group
                && matches!(self.task(i).action, Action::Pipeline { .. })
            {
                self.reattach.push((i, a.attempt, a.started_at));
                continue;
            }
            // It ended before baton did, and said how: not an interruption.
            if self.insts[i].state == TaskState::Running
                && let Some(finished) = recovered.remove(&(a.key.clone(), a.attempt))
            {
                self.recovered.push((i, finished, a.started_at));
                continue;
            }
            self.pending.push(Change::AttemptFinished {
                key: a.key.clone(),
                attempt: a.attempt,
                state: AttemptState::Interrupted,
                started_at: a.started_at,
                at: now,
                exit_code: None,
                signal: None,
                rusage: None,
                error: Some("baton stopped while this attempt ran".into()),
            });
            // The store counts it from this change: the same number.
            self.insts[i].interruptions += 1;
            if self.insts[i].state == TaskState::Running {
                let n = self.insts[i].interruptions;
                if n >= self.opts.interruption_limit {
                    self.set(
                        i,
                        TaskState::Failed,
                        Some(format!("interrupted {n} times by baton stopping")),
                    );
                } else {
                    self.insts[i].after_interruption = true;
                    self.set(i, TaskState::Queued, None);
                }
            }
        }
        for i in 0..self.insts.len() {
            match self.insts[i].state {
                TaskState::Running
                    if !self.insts[i].group
                        && !self.reattach.iter().any(|r| r.0 == i)
                        && !self.recovered.iter().any(|r| r.0 == i) =>
                {
                    self.insts[i].after_interruption = true;
                    self.set(i, TaskState::Queued, None);
                    self.push_ready(i);
                }
                // Not tried since it became runnable: its key may never have been looked up.
                TaskState::Queued if self.insts[i].attempts == self.insts[i].retry_base => {
                    self.push_runnable(i);
                }
                TaskState::Queued => self.push_ready(i),
                TaskState::Retrying => {
                    let at = self.insts[i].next_at.unwrap_or(now);
                    self.timers.push(Reverse((at, i)));
                }
                _ => {}
            }
        }
    }

    /// Attempts a dead process left running, whose processes must go before anything is
    /// tried again (sub-pipeline attempts have none: their child runs are watched again).
    pub(super) fn leftovers(&self, attempts: &[baton_store::AttemptRecord]) -> Vec<Leftover> {
        attempts
            .iter()
            .filter(|a| a.state == AttemptState::Running)
            .filter(|a| {
                self.by_key.get(&a.key).is_none_or(|&i| {
                    self.insts[i].group || !matches!(self.task(i).action, Action::Pipeline { .. })
                })
            })
            .map(|a| Leftover {
                key: a.key.clone(),
                attempt: a.attempt,
                process: a.process.clone(),
                container: self
                    .by_key
                    .get(&a.key)
                    .is_some_and(|&i| self.in_container(i)),
            })
            .collect()
    }

    /// Whether instance `i`'s attempts run in containers.
    fn in_container(&self, i: usize) -> bool {
        matches!(self.task(i).action, Action::Container(_))
    }
}
