//! Requests from outside the run (cancel, approve, reject), read from the store, and what
//! they change here.

use baton_core::state::TaskState;
use baton_store::Change;

use super::state::TaskRef;
use super::{Dispatcher, lease};
use crate::clock::now_ms;
use crate::error::Result;

impl Dispatcher {
    pub(super) async fn poll_control(&mut self) -> Result<()> {
        let (store, run) = (&self.store, &self.run.id);
        let control = lease::patiently(self.store_deadline(), run, "reading requests", || {
            store.control(run)
        })
        .await?;
        if control.cancel_requested && !self.cancelling {
            self.cancel_all();
        }
        let now = now_ms();
        let mut work = Vec::new();
        for i in 0..self.insts.len() {
            if self.insts[i].state != TaskState::WaitingApproval {
                continue;
            }
            let TaskRef::Dag(t) = self.insts[i].task else {
                continue;
            };
            match control
                .approvals
                .iter()
                .find(|a| a.key == self.insts[i].key)
            {
                Some(a) => {
                    // Who decided travels with the commit that acts on it.
                    self.pending.push(Change::Decided {
                        key: a.key.clone(),
                        approved: a.approved,
                        by: a.decided_by.clone(),
                        comment: a.comment.clone(),
                        at: a.decided_at,
                    });
                    if a.approved {
                        self.insts[i].next_at = None;
                        self.activate(i, t);
                    } else {
                        let comment = a
                            .comment
                            .as_deref()
                            .map(|c| format!(": {c}"))
                            .unwrap_or_default();
                        self.set(
                            i,
                            TaskState::Failed,
                            Some(format!("rejected by {}{comment}", a.decided_by)),
                        );
                    }
                }
                None if self.insts[i].next_at.is_some_and(|d| d <= now) => {
                    let timeout = self.pipeline.tasks[t]
                        .approval
                        .as_ref()
                        .and_then(|a| a.timeout);
                    let after = timeout.map(|d| format!(" after {d}")).unwrap_or_default();
                    self.set(
                        i,
                        TaskState::Failed,
                        Some(format!("approval timed out{after}")),
                    );
                }
                None => continue,
            }
            work.push(i);
        }
        self.settle(work);
        Ok(())
    }

    /// Drops the watches of sub-pipeline attempts, leaving them running in the store with
    /// their child runs, for the next owner of this run to watch again.
    pub(super) fn detach_children(&mut self) {
        self.running.retain(|_, r| match &r.detach {
            Some(watch) => {
                watch.abort();
                false
            }
            None => true,
        });
    }

    /// Stops starting tasks, terminates running ones and marks everything else cancelled.
    pub(super) fn cancel_all(&mut self) {
        self.cancelling = true;
        self.ready.clear();
        self.lookups.clear();
        self.timers.clear();
        for i in 0..self.insts.len() {
            let inst = &self.insts[i];
            // Running work stops through its executor; fan-out groups end with their instances.
            let running_group = inst.group && inst.state == TaskState::Running;
            let stops_itself = self.running.contains_key(&i) || running_group;
            if !inst.state.is_final() && !stops_itself {
                self.set(i, TaskState::Cancelled, None);
            }
        }
        for running in self.running.values_mut() {
            running.handle.cancel();
        }
        let groups: Vec<usize> = (0..self.insts.len())
            .filter(|&i| self.insts[i].group)
            .collect();
        for g in groups {
            if self.insts[g].state == TaskState::Running {
                self.complete_group(g);
            }
        }
    }
}
