//! Turning committed changes into counters and histograms.
//!
//! The observer is told each commit of every run this server drives, right after the store made
//! it durable. An attempt's finish carries its start, so every attempt is timed, one cut short
//! by a crash and finished by the process that resumes the run included. Other durations need
//! the change that began them (a task's queueing, a run's first attempt), so it keeps those
//! times per run, in memory, until the run ends; a dispatcher that resumes a run reports them
//! only for what follows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::{RunState, TaskState};
use baton_engine::{Observer, RunScope};
use baton_store::{Change, Millis};

use super::registry::{Metrics, seconds_between};

/// Runs tracked at once at most. A run leaves when it ends; one that a drain hands back never
/// ends here, so the oldest (ids sort by creation) are forgotten beyond this.
const MAX_TRACKED_RUNS: usize = 10_000;

/// Reports every run this server drives into [`Metrics`].
#[derive(Debug)]
pub struct RunObserver {
    metrics: Metrics,
    runs: Mutex<BTreeMap<RunId, Tracked>>,
}

/// What one run's later changes are measured against.
#[derive(Debug, Default)]
struct Tracked {
    started_at: Option<Millis>,
    /// Trigger latency is measured once, for a run that never started before.
    awaiting_first_attempt: bool,
    queued_at: HashMap<TaskKey, Millis>,
}

impl RunObserver {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            runs: Mutex::default(),
        }
    }
}

impl Observer for RunObserver {
    fn committed(&self, scope: RunScope<'_>, changes: &[Change]) {
        let m = &self.metrics;
        let ns = scope.pipeline.id.namespace.to_string();
        let name = scope.pipeline.id.name.to_string();
        let pipeline = || [("namespace", ns.clone()), ("pipeline", name.clone())];
        let with = |k: &'static str, v: String| {
            let [a, b] = pipeline();
            [a, b, (k, v)]
        };
        let mut runs = self
            .runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let t = runs.entry(scope.run.id.clone()).or_insert_with(|| Tracked {
            started_at: scope.run.started_at,
            awaiting_first_attempt: scope.run.started_at.is_none(),
            ..Tracked::default()
        });
        let mut ended = false;
        for change in changes {
            match change {
                Change::Run {
                    state: RunState::Running,
                    at,
                    ..
                } => {
                    t.started_at = Some(*at);
                    m.counter(
                        "baton_runs_started_total",
                        &with("trigger", scope.run.trigger.clone()),
                        1,
                    );
                }
                Change::Run { state, at, .. } if state.is_final() => {
                    ended = true;
                    let labels = with("state", state.to_string());
                    m.counter("baton_runs_finished_total", &labels, 1);
                    let from = t.started_at.unwrap_or(scope.run.created_at);
                    m.observe(
                        "baton_run_duration_seconds",
                        &labels,
                        seconds_between(from, *at),
                    );
                }
                Change::Task {
                    key,
                    state: TaskState::Queued,
                    at,
                    ..
                } => {
                    t.queued_at.insert(key.clone(), *at);
                }
                Change::Task {
                    key,
                    state: TaskState::Retrying,
                    ..
                } => m.counter(
                    "baton_task_retries_total",
                    &with("task", key.task_id().to_owned()),
                    1,
                ),
                Change::AttemptStarted { key, at, .. } => {
                    if let Some(queued) = t.queued_at.remove(key) {
                        m.observe(
                            "baton_task_queue_wait_seconds",
                            &pipeline(),
                            seconds_between(queued, *at),
                        );
                    }
                    if std::mem::take(&mut t.awaiting_first_attempt) {
                        m.observe(
                            "baton_trigger_latency_seconds",
                            &with("trigger", scope.run.trigger.clone()),
                            seconds_between(scope.run.created_at, *at),
                        );
                    }
                }
                Change::AttemptFinished {
                    key,
                    state,
                    started_at,
                    at,
                    ..
                } => {
                    let [a, b, c] = with("task", key.task_id().to_owned());
                    m.observe(
                        "baton_task_attempt_duration_seconds",
                        &[a, b, c, ("state", state.to_string())],
                        seconds_between(*started_at, *at),
                    );
                }
                Change::CacheChecked { key, hit, .. } => {
                    let result = if hit.is_some() {
                        // It will never start: nothing to time its queueing by.
                        t.queued_at.remove(key);
                        "hit"
                    } else {
                        "miss"
                    };
                    let [a, b, c] = with("task", key.task_id().to_owned());
                    m.counter(
                        "baton_task_cache_total",
                        &[a, b, c, ("result", result.to_owned())],
                        1,
                    );
                }
                Change::Run { .. }
                | Change::Task { .. }
                | Change::AttemptSpawned { .. }
                | Change::CacheSaved { .. }
                | Change::ArtifactsStored { .. }
                | Change::AddTasks(_)
                | Change::Reopen { .. }
                | Change::Asked { .. }
                | Change::Decided { .. } => {}
            }
        }
        if ended {
            runs.remove(&scope.run.id);
        }
        while runs.len() > MAX_TRACKED_RUNS {
            runs.pop_first();
        }
    }

    fn lease_lost(&self, scope: RunScope<'_>, _holder: &str) {
        // Its new owner reports what follows; what was measured here so far is dropped.
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&scope.run.id);
        self.metrics.counter(
            "baton_lease_lost_total",
            &[
                ("namespace", scope.pipeline.id.namespace.to_string()),
                ("pipeline", scope.pipeline.id.name.to_string()),
            ],
            1,
        );
    }
}
