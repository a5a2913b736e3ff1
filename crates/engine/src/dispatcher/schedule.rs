//! What runs next: trigger rules, fan-outs, retries coming due, and which ready tasks start
//! now (parallelism and pool slots).

use std::cmp::Reverse;

use baton_core::ids::TaskKey;
use baton_core::model::{Action, ForEach};
use baton_core::rules::{Decision, decide};
use baton_core::state::TaskState;
use baton_store::{Change, Millis, NewTask};
use serde_json::{Map, Value as Json};

use super::attempt::Running;
use super::state::{Inst, TaskRef};
use super::{Dispatcher, lease};
use crate::clock::now_ms;
use crate::error::Result;
use crate::render;

/// A ready task's place: priority, then since when it waits for a slot, then position, so a
/// run asks for slots in the order the store hands them out (see `Store::claim_slot`).
pub(super) type Ready = (i32, Reverse<Millis>, Reverse<i64>, Reverse<usize>);

impl Dispatcher {
    /// A queued task goes to the cache first when it has `cache:`, else straight to `ready`.
    pub(super) fn push_runnable(&mut self, i: usize) {
        if self.task(i).cache.is_some() {
            self.lookups.push(i);
        } else {
            self.push_ready(i);
        }
    }

    pub(super) fn push_ready(&mut self, i: usize) {
        let priority = self.task(i).priority;
        let inst = &self.insts[i];
        self.ready.push((
            priority,
            Reverse(inst.waiting_since.unwrap_or(Millis::MAX)),
            Reverse(inst.position),
            Reverse(i),
        ));
    }

    fn upstream_states(&self, t: usize) -> Vec<TaskState> {
        self.pipeline.dag.upstream[t]
            .iter()
            .map(|&u| {
                self.insts
                    .get(self.primary[u])
                    .map_or(TaskState::Pending, |i| i.state)
            })
            .collect()
    }

    /// Advances tasks whose situation changed: decides pending tasks, completes fan-out groups,
    /// and follows the consequences downstream. A work list, not recursion: a skip can cascade
    /// through thousands of tasks.
    pub(super) fn settle(&mut self, mut work: Vec<usize>) {
        while let Some(i) = work.pop() {
            let inst = &self.insts[i];
            if let Some(p) = inst.parent {
                if inst.state.is_final() {
                    work.push(p);
                }
                continue;
            }
            let TaskRef::Dag(t) = inst.task else { continue };
            match inst.state {
                TaskState::Pending if !self.cancelling => self.decide_pending(i, t),
                TaskState::Running if inst.group => self.complete_group(i),
                _ => {}
            }
            if self.insts[i].state.is_final() {
                self.record_finished(i, t);
                for &down in &self.pipeline.dag.downstream[t] {
                    let di = self.primary[down];
                    if di != usize::MAX && self.insts[di].state == TaskState::Pending {
                        work.push(di);
                    }
                }
            }
        }
    }

    fn decide_pending(&mut self, i: usize, t: usize) {
        let task = &self.pipeline.tasks[t];
        match decide(task.trigger_rule, &self.upstream_states(t)) {
            Decision::Wait => {}
            Decision::Skip => self.set(i, TaskState::Skipped, None),
            Decision::UpstreamFailed => self.set(i, TaskState::UpstreamFailed, None),
            Decision::Run => {
                if task.for_each.is_none()
                    && let Some(cond) = &task.condition
                {
                    match render::condition(&cond.0, &self.scope_item(None)) {
                        Ok(true) => {}
                        Ok(false) => return self.set(i, TaskState::Skipped, None),
                        Err(e) => {
                            return self.set(
                                i,
                                TaskState::Failed,
                                Some(format!("cannot evaluate `if`: {e}")),
                            );
                        }
                    }
                }
                if let Some(approval) = &task.approval {
                    let timeout = approval
                        .timeout
                        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                    let message = approval.message.as_ref().map(|m| {
                        // A message that cannot be rendered still asks: the person sees why.
                        render::render(&m.0, &self.scope_item(None)).unwrap_or_else(|e| {
                            format!("{}\n(cannot render this message: {e})", m.0)
                        })
                    });
                    self.insts[i].next_at = timeout.map(|t| now_ms().saturating_add(t));
                    self.set(i, TaskState::WaitingApproval, None);
                    if let Some(message) = message {
                        self.pending.push(Change::Asked {
                            key: self.insts[i].key.clone(),
                            message,
                            at: now_ms(),
                        });
                    }
                    return;
                }
                self.activate(i, t);
            }
        }
    }

    /// Makes a task runnable: expands a fan-out, passes a gate, or queues it.
    pub(super) fn activate(&mut self, i: usize, t: usize) {
        let task = &self.pipeline.tasks[t];
        if let Some(for_each) = &task.for_each {
            return self.expand(i, t, for_each.clone());
        }
        if matches!(task.action, Action::Gate) {
            return self.set(i, TaskState::Succeeded, None);
        }
        self.set(i, TaskState::Queued, None);
        self.push_runnable(i);
    }

    fn expand(&mut self, i: usize, t: usize, for_each: ForEach) {
        let items = match &for_each {
            ForEach::Items(items) => Ok(items.clone()),
            ForEach::Expression(e) => match render::evaluate(&e.0, &self.scope_item(None)) {
                Ok(Json::Array(items)) => Ok(items),
                Ok(other) => Err(format!(
                    "`for_each` must yield a list, got {}",
                    baton_core::model::json_kind(&other)
                )),
                Err(e) => Err(format!("cannot evaluate `for_each`: {e}")),
            },
        };
        let items = match items {
            Ok(items) => items,
            Err(e) => return self.set(i, TaskState::Failed, Some(e)),
        };
        if items.is_empty() {
            return self.set(i, TaskState::Skipped, None);
        }
        let task = self.pipeline.tasks[t].clone();
        let labels = labels(&items);
        let mut new = Vec::with_capacity(items.len());
        let mut queued = Vec::new();
        for (item, label) in items.into_iter().zip(labels) {
            let key = TaskKey::instance(&task.id, &label);
            let state = match &task.condition {
                Some(cond) => match render::condition(&cond.0, &self.scope_item(Some(&item))) {
                    Ok(true) => TaskState::Queued,
                    Ok(false) => TaskState::Skipped,
                    Err(_) => TaskState::Queued,
                },
                None => TaskState::Queued,
            };
            let c = self.insts.len();
            let position = self.next_position;
            self.next_position += 1;
            new.push(NewTask {
                key: key.clone(),
                task_id: task.id.to_string(),
                position,
                item: Some(item.clone()),
                state,
            });
            self.by_key.insert(key.clone(), c);
            self.children.entry(i).or_default().push(c);
            self.insts.push(Inst {
                parent: Some(i),
                item: Some(item),
                ..Inst::new(key, TaskRef::Dag(t), state, position)
            });
            if state == TaskState::Queued {
                queued.push(c);
            }
        }
        self.unfinished.insert(i, queued.len());
        self.pending.push(Change::AddTasks(new));
        self.set(i, TaskState::Running, None);
        for c in queued {
            self.push_runnable(c);
        }
        // Every instance may have been skipped by `if`.
        self.complete_group(i);
    }

    pub(super) fn complete_group(&mut self, i: usize) {
        if self.unfinished.get(&i).is_some_and(|&n| n > 0) {
            return;
        }
        let Some(children) = self.children.get(&i) else {
            return;
        };
        let states: Vec<TaskState> = children.iter().map(|&c| self.insts[c].state).collect();
        let failed = states.iter().filter(|s| s.is_failure()).count();
        let (state, error) = if failed > 0 {
            (
                TaskState::Failed,
                Some(format!("{failed} of {} instances failed", states.len())),
            )
        } else if states.contains(&TaskState::Cancelled) {
            (TaskState::Cancelled, None)
        } else if states.iter().all(|s| *s == TaskState::Skipped) {
            (TaskState::Skipped, None)
        } else {
            (TaskState::Succeeded, None)
        };
        // Downstream templates read a fan-out's outputs as lists, one value per instance.
        let mut outputs = Map::new();
        let TaskRef::Dag(t) = self.insts[i].task else {
            return;
        };
        for name in &self.pipeline.tasks[t].outputs {
            let values: Vec<Json> = children
                .iter()
                .map(|&c| {
                    self.insts[c]
                        .outputs
                        .get(name.as_str())
                        .cloned()
                        .unwrap_or(Json::Null)
                })
                .collect();
            outputs.insert(name.to_string(), Json::Array(values));
        }
        self.insts[i].outputs = outputs;
        self.set(i, state, error);
    }

    pub(super) fn fire_timers(&mut self) {
        let now = now_ms();
        while let Some(Reverse((at, i))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.insts[i].state == TaskState::Retrying && !self.cancelling {
                self.insts[i].next_at = None;
                self.set(i, TaskState::Queued, None);
                self.push_ready(i);
            }
        }
    }

    pub(super) async fn start_ready(&mut self) -> Result<()> {
        if self.drain_deadline.is_some() {
            self.ready.clear();
            self.lookups.clear();
            return self.flush().await;
        }
        self.check_cache().await?;
        let mut specs = Vec::new();
        let mut calls = Vec::new();
        // Tasks whose pool has no slot for them now, and the pools found full in this pass
        // (a lower-priority task of the same pool does not ask).
        let mut deferred: Vec<usize> = Vec::new();
        let mut full: Vec<baton_core::ids::PoolName> = Vec::new();
        let ask_pools = self
            .pool_retry_at
            .is_none_or(|at| at <= tokio::time::Instant::now());
        while self.running.len() + specs.len() + calls.len() < self.opts.parallelism.max(1) {
            let Some((_, _, _, Reverse(i))) = self.ready.pop() else {
                break;
            };
            if self.insts[i].state != TaskState::Queued {
                continue;
            }
            if let Some(pool) = self.task(i).pool.clone() {
                if !ask_pools || full.contains(&pool) {
                    deferred.push(i);
                    continue;
                }
                // Slots this run frees in its pending commit are given back first.
                if self.pending.iter().any(frees_slot) {
                    self.flush().await?;
                }
                let key = self.insts[i].key.clone();
                let now = now_ms();
                let (store, run, lease) = (self.store.as_ref(), &self.run.id, &self.lease);
                let priority = self.task(i).priority;
                // Asking again for a slot this task holds is answered `Held`: a retry after a
                // lost answer takes no second slot.
                let slot =
                    lease::patiently(self.store_deadline(), run, "asking for a pool slot", || {
                        crate::pools::claim(store, pool.as_str(), run, &key, priority, lease, now)
                    })
                    .await?;
                match slot {
                    crate::pools::Slot::Held => self.insts[i].waiting_since = None,
                    crate::pools::Slot::Full => {
                        self.insts[i].waiting_since.get_or_insert(now);
                        full.push(pool);
                        deferred.push(i);
                        continue;
                    }
                    crate::pools::Slot::Missing(why) => {
                        self.set(i, TaskState::Failed, Some(why));
                        self.settle(vec![i]);
                        continue;
                    }
                }
            }
            if matches!(self.task(i).action, Action::Pipeline { .. }) {
                let now = now_ms();
                let attempt = self.insts[i].attempts + 1;
                match self.prepare_call(i, attempt, now) {
                    Ok(call) => {
                        let inst = &mut self.insts[i];
                        inst.attempts = attempt;
                        self.pending.push(Change::AttemptStarted {
                            key: inst.key.clone(),
                            attempt,
                            at: now,
                            log_path: call.log.location(),
                            owner: self.opts.owner.to_string(),
                            after_interruption: std::mem::take(&mut inst.after_interruption),
                        });
                        self.set(i, TaskState::Running, None);
                        calls.push((i, call));
                    }
                    Err(e) => {
                        self.set(i, TaskState::Failed, Some(e));
                        self.settle(vec![i]);
                    }
                }
                continue;
            }
            match self.prepare(i) {
                Ok(spec) => {
                    let now = now_ms();
                    let inst = &mut self.insts[i];
                    inst.attempts += 1;
                    let after_interruption = std::mem::take(&mut inst.after_interruption);
                    self.pending.push(Change::AttemptStarted {
                        key: inst.key.clone(),
                        attempt: inst.attempts,
                        at: now,
                        log_path: spec.log.location(),
                        owner: self.opts.owner.to_string(),
                        after_interruption,
                    });
                    self.set(i, TaskState::Running, None);
                    specs.push((i, spec, now, after_interruption));
                }
                Err(e) => {
                    self.set(i, TaskState::Failed, Some(e));
                    self.settle(vec![i]);
                }
            }
        }
        for i in deferred {
            self.push_ready(i);
        }
        if !full.is_empty() {
            self.pool_retry_at = Some(tokio::time::Instant::now() + crate::pools::RETRY);
        } else if ask_pools {
            self.pool_retry_at = None;
        }
        self.flush().await?;
        for (i, spec, started_at, after_interruption) in specs {
            // A file left by an interrupted attempt must not count for this one.
            if after_interruption {
                let _ = tokio::fs::remove_file(self.outputs_path(i, spec.attempt)).await;
            }
            let handle = self.executor.start(spec, self.done_tx.clone());
            self.running.insert(
                i,
                Running {
                    handle,
                    started_at,
                    detach: None,
                },
            );
        }
        for (i, call) in calls {
            self.watch_child(i, call);
        }
        Ok(())
    }
}

/// Whether a change may give a pool slot back (the store releases it in the commit that
/// ends the attempt, or the run).
pub(super) fn frees_slot(change: &Change) -> bool {
    match change {
        Change::AttemptFinished { .. } => true,
        Change::Run { state, .. } => state.is_final(),
        _ => false,
    }
}

/// Instance labels: the item itself when short and plain (`load[eu]`), else its index, so
/// keys stay readable and unique.
fn labels(items: &[Json]) -> Vec<String> {
    let plain = |j: &Json| -> Option<String> {
        let s = match j {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            _ => return None,
        };
        (!s.is_empty()
            && s.len() <= 40
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
        .then_some(s)
    };
    let mut labels: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(n, j)| plain(j).unwrap_or_else(|| n.to_string()))
        .collect();
    let mut seen = std::collections::HashSet::new();
    if !labels.iter().all(|l| seen.insert(l.clone())) {
        labels = (0..items.len()).map(|n| n.to_string()).collect();
    }
    labels
}
