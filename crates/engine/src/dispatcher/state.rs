//! What the dispatcher knows of each task instance, and the one way its state changes
//! (`set`, which also queues the change to commit).

use baton_core::ids::TaskKey;
use baton_core::model::{Pipeline, Task};
use baton_core::state::{RunState, TaskState};
use baton_store::{Change, Millis, TaskRecord};
use serde_json::{Map, Value as Json, json};

use super::{Dispatcher, Progress};
use crate::clock::now_ms;
use crate::render::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskRef {
    Dag(usize),
    Hook { success: bool },
}

#[derive(Debug)]
pub(super) struct Inst {
    pub(super) key: TaskKey,
    pub(super) task: TaskRef,
    /// The record of a fan-out task as a whole; its instances are its children.
    pub(super) group: bool,
    pub(super) parent: Option<usize>,
    pub(super) item: Option<Json>,
    pub(super) state: TaskState,
    pub(super) attempts: u32,
    pub(super) interruptions: u32,
    /// Attempts made before the run was retried.
    pub(super) retry_base: u32,
    /// The next attempt follows one lost to a crash.
    pub(super) after_interruption: bool,
    pub(super) outputs: Map<String, Json>,
    /// What its successful attempt uploaded, for tasks downstream to download.
    pub(super) artifacts: Vec<baton_store::ArtifactFile>,
    /// Retry time, or approval deadline while waiting for one.
    pub(super) next_at: Option<Millis>,
    pub(super) position: i64,
    /// The rendered `cache.key`, once looked up: a success is stored under it.
    pub(super) cache_key: Option<String>,
    /// Since when it waits for a slot of its pool, as the store records it.
    pub(super) waiting_since: Option<Millis>,
}

impl Inst {
    /// A record created during the run, before any attempt.
    pub(super) fn new(key: TaskKey, task: TaskRef, state: TaskState, position: i64) -> Self {
        Self {
            key,
            task,
            group: false,
            parent: None,
            item: None,
            state,
            attempts: 0,
            interruptions: 0,
            retry_base: 0,
            after_interruption: false,
            outputs: Map::new(),
            artifacts: Vec::new(),
            next_at: None,
            position,
            cache_key: None,
            waiting_since: None,
        }
    }
}

impl Dispatcher {
    pub(super) fn task(&self, i: usize) -> &Task {
        task_of(&self.pipeline, self.insts[i].task)
    }

    /// What the succeeded tasks of a run resumed here uploaded, for those downstream.
    pub(super) fn load_artifacts(&mut self, stored: Vec<baton_store::ArtifactRecord>) {
        for a in stored {
            if let Some(&i) = self.by_key.get(&a.key) {
                let inst = &mut self.insts[i];
                if inst.state == TaskState::Succeeded && inst.attempts == a.attempt {
                    inst.artifacts.push(a.file);
                }
            }
        }
    }

    pub(super) fn load(&mut self, records: Vec<TaskRecord>) {
        for r in records {
            let task = match r.task_id.as_str() {
                "on_success" if self.pipeline.task_index("on_success").is_none() => {
                    TaskRef::Hook { success: true }
                }
                "on_failure" if self.pipeline.task_index("on_failure").is_none() => {
                    TaskRef::Hook { success: false }
                }
                id => match self.pipeline.task_index(id) {
                    Some(t) => TaskRef::Dag(t),
                    None => continue,
                },
            };
            let is_child = r.key.as_str() != r.task_id;
            let i = self.insts.len();
            let group = !is_child
                && matches!(task, TaskRef::Dag(t) if self.pipeline.tasks[t].for_each.is_some());
            let parent = if is_child {
                if let TaskRef::Dag(t) = task {
                    let p = self.primary[t];
                    self.children.entry(p).or_default().push(i);
                    Some(p)
                } else {
                    None
                }
            } else {
                if let TaskRef::Dag(t) = task {
                    self.primary[t] = i;
                }
                None
            };
            self.next_position = self.next_position.max(r.position + 1);
            self.by_key.insert(r.key.clone(), i);
            self.insts.push(Inst {
                key: r.key,
                task,
                group,
                parent,
                item: r.item,
                state: r.state,
                attempts: r.attempts,
                interruptions: r.interruptions,
                retry_base: r.retry_base,
                after_interruption: false,
                outputs: r.outputs.unwrap_or_default(),
                artifacts: Vec::new(),
                next_at: r.next_attempt_at,
                position: r.position,
                cache_key: None,
                waiting_since: None,
            });
        }
        // A hook record means the outcome was decided before a crash; hooks read it as `run.state`.
        if let Some(success) = self.insts.iter().find_map(|i| match i.task {
            TaskRef::Hook { success } => Some(success),
            TaskRef::Dag(_) => None,
        }) {
            let state = if success {
                RunState::Succeeded
            } else {
                RunState::Failed
            };
            self.ctx.run["state"] = json!(state);
        }
        for (&group, children) in &self.children {
            let open = children
                .iter()
                .filter(|&&c| !self.insts[c].state.is_final())
                .count();
            self.unfinished.insert(group, open);
        }
    }

    pub(super) fn set(&mut self, i: usize, state: TaskState, error: Option<String>) {
        let now = now_ms();
        let inst = &mut self.insts[i];
        if let Some(p) = inst.parent
            && !inst.state.is_final()
            && state.is_final()
            && let Some(n) = self.unfinished.get_mut(&p)
        {
            *n = n.saturating_sub(1);
        }
        inst.state = state;
        let outputs = (state == TaskState::Succeeded && !inst.outputs.is_empty())
            .then(|| inst.outputs.clone());
        self.pending.push(Change::Task {
            key: inst.key.clone(),
            state,
            at: now,
            next_attempt_at: inst
                .next_at
                .filter(|_| matches!(state, TaskState::Retrying | TaskState::WaitingApproval)),
            outputs,
            error: error.clone(),
        });
        self.notes.push(Progress::Task {
            key: inst.key.clone(),
            state,
            attempt: inst.attempts,
            at: now,
            error,
        });
    }

    pub(super) fn record_finished(&mut self, i: usize, t: usize) {
        let id = self.pipeline.tasks[t].id.to_string();
        if !self.finished.contains_key(&id) {
            let inst = &self.insts[i];
            self.finished
                .insert(id, json!({ "outputs": inst.outputs, "state": inst.state }));
        }
    }

    pub(super) fn scope_item<'a>(&'a self, item: Option<&'a Json>) -> Scope<'a> {
        Scope::new(&self.ctx, &self.finished, item)
    }
}

pub(super) fn task_of(pipeline: &Pipeline, task: TaskRef) -> &Task {
    match task {
        TaskRef::Dag(t) => &pipeline.tasks[t],
        // Hook records exist only when the pipeline has the hook.
        TaskRef::Hook { success: true } => {
            pipeline.on_success.as_ref().unwrap_or(&pipeline.tasks[0])
        }
        TaskRef::Hook { success: false } => {
            pipeline.on_failure.as_ref().unwrap_or(&pipeline.tasks[0])
        }
    }
}
