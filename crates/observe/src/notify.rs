//! Notifications (`notify:`) and deadlines (`deadline:`), as an observer of committed changes.
//!
//! Run failure and success, task retries and approvals come straight from the changes. A
//! deadline is a timer armed when the run (or a task's first attempt) starts and disarmed when
//! it ends, so a miss is noticed while the run still goes on. A resumed run is re-armed from its
//! record on the first commit this process sees of it (the run's `started_at`, a task's first
//! attempt in the store), so a restart does not reset the clock. A miss is reported once per
//! run or task, however many processes notice it (the run's next owner after a restart, another
//! replica): it is first recorded in the store, insert-if-absent, and only the process whose
//! record it is counts it, logs it, and sends it to the `deadline` webhooks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use baton_core::ids::{RunId, TaskKey};
use baton_core::model::{Notify, Pipeline, WebhookUrl};
use baton_core::spec::{NotifyEvent, NotifyFormat};
use baton_core::state::{RunState, TaskState};
use baton_engine::{Observer, RunScope};
use baton_store::{Change, Millis, RunRecord, Store};
use serde_json::{Value, json};

use crate::delivery::{Delivery, Kind, Message};
use crate::secrets::Secrets;

pub const DEADLINE_MISSED_TOTAL: &str = "baton_deadline_missed_total";

/// Sends a pipeline's notifications and watches its deadlines.
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    delivery: Delivery,
    secrets: Arc<dyn Secrets>,
    runs: Mutex<HashMap<RunId, Watch>>,
}

/// What this process knows of one unfinished run.
#[derive(Debug)]
struct Watch {
    run: RunRecord,
    pipeline: Arc<Pipeline>,
    /// The run's store: where a resumed task's first attempt is looked up and misses recorded.
    store: Arc<dyn Store>,
    timer: Option<tokio::task::AbortHandle>,
    tasks: HashMap<TaskKey, TaskWatch>,
}

#[derive(Debug, Default)]
struct TaskWatch {
    attempt: u32,
    timer: Option<tokio::task::AbortHandle>,
}

/// What a notification is about, beyond the run.
#[derive(Debug, Clone)]
struct TaskInfo {
    key: TaskKey,
    attempt: u32,
    state: TaskState,
    error: Option<String>,
    /// What a gate asks (approval notifications).
    message: Option<String>,
}

impl Notifier {
    pub fn new(delivery: Delivery, secrets: Arc<dyn Secrets>) -> Self {
        metrics::describe_counter!(
            DEADLINE_MISSED_TOTAL,
            "Runs (`scope=\"run\"`) and tasks (`scope=\"task\"`) still unfinished at their deadline."
        );
        Self {
            inner: Arc::new(Inner {
                delivery,
                secrets,
                runs: Mutex::default(),
            }),
        }
    }
}

impl Observer for Notifier {
    fn committed(&self, scope: RunScope<'_>, changes: &[Change]) {
        let p = scope.pipeline;
        if p.notify.is_empty()
            && p.deadline.is_none()
            && p.tasks.iter().all(|t| t.deadline.is_none())
        {
            return;
        }
        let inner = &self.inner;
        let mut runs = inner.runs.lock().unwrap_or_else(PoisonError::into_inner);
        let id = scope.run.id.clone();
        if !runs.contains_key(&id) {
            if scope.run.state.is_final() {
                return;
            }
            counters_at_zero(p);
            let started = scope.run.started_at.or_else(|| {
                changes.iter().find_map(|c| match c {
                    Change::Run {
                        state: RunState::Running,
                        at,
                        ..
                    } => Some(*at),
                    _ => None,
                })
            });
            let mut watch = Watch {
                run: scope.run.clone(),
                pipeline: Arc::new(p.clone()),
                store: Arc::clone(scope.store),
                timer: None,
                tasks: HashMap::new(),
            };
            if let (Some(deadline), Some(started)) = (p.deadline, started) {
                watch.timer = Some(self.arm(&id, None, started, deadline.as_millis()));
            }
            runs.insert(id.clone(), watch);
        }
        let mut send = Vec::new();
        for change in changes {
            let Some(watch) = runs.get_mut(&id) else {
                break;
            };
            match change {
                Change::Run {
                    state: RunState::Running,
                    at,
                    ..
                } if watch.timer.is_none() => {
                    if let Some(deadline) = watch.pipeline.deadline {
                        watch.timer = Some(self.arm(&id, None, *at, deadline.as_millis()));
                    }
                }
                Change::AttemptStarted {
                    key,
                    attempt,
                    at,
                    after_interruption,
                    ..
                } => {
                    let deadline = watch.pipeline.task(key.task_id()).and_then(|t| t.deadline);
                    let task = watch.tasks.entry(key.clone()).or_default();
                    task.attempt = *attempt;
                    if let (Some(deadline), None) = (deadline, &task.timer) {
                        let first = *attempt == 1 && !after_interruption;
                        task.timer = Some(if first {
                            self.arm(&id, Some(key.clone()), *at, deadline.as_millis())
                        } else {
                            let store = Arc::clone(&watch.store);
                            self.arm_resumed(store, &id, key.clone(), *at, deadline.as_millis())
                        });
                    }
                }
                Change::Task {
                    key, state, error, ..
                } => {
                    let attempt = watch.tasks.get(key).map_or(0, |t| t.attempt);
                    let info = TaskInfo {
                        key: key.clone(),
                        attempt,
                        state: *state,
                        error: error.clone(),
                        message: baton_engine::observer::asked(changes, key).map(str::to_owned),
                    };
                    match state {
                        TaskState::Retrying => send.push((NotifyEvent::Retry, Some(info))),
                        TaskState::WaitingApproval => {
                            send.push((NotifyEvent::Approval, Some(info)))
                        }
                        s if s.is_final() => {
                            if let Some(t) = watch.tasks.get_mut(key).and_then(|t| t.timer.take()) {
                                t.abort();
                            }
                        }
                        _ => {}
                    }
                }
                Change::Run { state, error, .. } if state.is_final() => {
                    watch.run.state = *state;
                    watch.run.error.clone_from(error);
                    match state {
                        RunState::Failed => send.push((NotifyEvent::Failure, None)),
                        RunState::Succeeded => send.push((NotifyEvent::Success, None)),
                        _ => {}
                    }
                    if let Some(t) = watch.timer.take() {
                        t.abort();
                    }
                    for t in watch.tasks.values_mut().filter_map(|t| t.timer.take()) {
                        t.abort();
                    }
                }
                _ => {}
            }
            if let Change::Run { state, .. } = change {
                watch.run.state = *state;
            }
        }
        let Some(watch) = runs.get(&id) else { return };
        for (event, task) in send {
            self.inner
                .notify(&watch.run, &watch.pipeline, event, task.as_ref());
        }
        if watch.run.state.is_final() {
            runs.remove(&id);
        }
    }
}

impl Notifier {
    /// A timer that reports a miss unless disarmed first.
    fn arm(
        &self,
        run: &RunId,
        key: Option<TaskKey>,
        start: Millis,
        deadline_ms: u64,
    ) -> tokio::task::AbortHandle {
        let inner = Arc::clone(&self.inner);
        let run = run.clone();
        let due = start.saturating_add(i64::try_from(deadline_ms).unwrap_or(i64::MAX));
        tokio::spawn(async move {
            sleep_until(due).await;
            inner.missed(&run, key.as_ref()).await;
        })
        .abort_handle()
    }

    /// A task's timer when this process did not see its first attempt start: the clock runs
    /// from that attempt's start in the store.
    fn arm_resumed(
        &self,
        store: Arc<dyn Store>,
        run: &RunId,
        key: TaskKey,
        seen_at: Millis,
        deadline_ms: u64,
    ) -> tokio::task::AbortHandle {
        let inner = Arc::clone(&self.inner);
        let run = run.clone();
        tokio::spawn(async move {
            let mut start = seen_at;
            if let Ok(attempts) = store.attempts(&run).await
                && let Some(first) = attempts
                    .iter()
                    .filter(|a| a.key == key)
                    .map(|a| a.started_at)
                    .min()
            {
                start = first;
            }
            sleep_until(start.saturating_add(i64::try_from(deadline_ms).unwrap_or(i64::MAX))).await;
            inner.missed(&run, Some(&key)).await;
        })
        .abort_handle()
    }
}

async fn sleep_until(due: Millis) {
    let wait = due.saturating_sub(baton_engine::now_ms()).max(0);
    tokio::time::sleep(std::time::Duration::from_millis(
        u64::try_from(wait).unwrap_or(0),
    ))
    .await;
}

/// Creates `p`'s deadline and notification counters at 0 when its first run is watched, long
/// before a deadline passes or a delivery gives up: Prometheus sees no increase in a counter
/// that first appears at 1, so the first miss or failure would not alert (see
/// `metrics/known.rs`). An existing counter keeps its value.
fn counters_at_zero(p: &Pipeline) {
    let (ns, name) = (p.id.namespace.to_string(), p.id.name.to_string());
    let mut scopes = Vec::new();
    if p.deadline.is_some() {
        scopes.push("run");
    }
    if p.tasks.iter().any(|t| t.deadline.is_some()) {
        scopes.push("task");
    }
    for scope in scopes {
        metrics::counter!(
            DEADLINE_MISSED_TOTAL,
            "namespace" => ns.clone(),
            "pipeline" => name.clone(),
            "scope" => scope
        )
        .increment(0);
    }
    if !p.notify.is_empty() {
        for outcome in ["sent", "failed"] {
            metrics::counter!(
                crate::delivery::NOTIFICATIONS_TOTAL,
                "namespace" => ns.clone(),
                "pipeline" => name.clone(),
                "outcome" => outcome
            )
            .increment(0);
        }
    }
}

impl Inner {
    async fn missed(&self, run: &RunId, key: Option<&TaskKey>) {
        // Taken under the lock, which the store call must not hold.
        let (record, p, attempt, store) = {
            let runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(watch) = runs.get(run) else { return };
            if watch.run.state.is_final() {
                return;
            }
            let attempt = key
                .and_then(|k| watch.tasks.get(k))
                .map_or(0, |t| t.attempt);
            let store = Arc::clone(&watch.store);
            (
                watch.run.clone(),
                Arc::clone(&watch.pipeline),
                attempt,
                store,
            )
        };
        let task = key.map(ToString::to_string);
        match store
            .record_deadline_miss(run, key, baton_engine::now_ms())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(run = %run, task, "deadline miss already reported");
                return;
            }
            // Better reported twice than not at all.
            Err(e) => tracing::warn!(
                run = %run, task, error = %e,
                "cannot record a deadline miss; reporting it without"
            ),
        }
        let (scope, deadline) = match key {
            None => ("run", p.deadline),
            Some(k) => ("task", p.task(k.task_id()).and_then(|t| t.deadline)),
        };
        metrics::counter!(
            DEADLINE_MISSED_TOTAL,
            "namespace" => p.id.namespace.to_string(),
            "pipeline" => p.id.name.to_string(),
            "scope" => scope
        )
        .increment(1);
        let deadline = deadline.map(|d| d.to_string()).unwrap_or_default();
        tracing::warn!(
            run = %run, pipeline = %p.id, task, deadline = %deadline,
            "deadline missed"
        );
        let task = key.map(|k| TaskInfo {
            key: k.clone(),
            attempt,
            state: TaskState::Running,
            error: None,
            message: None,
        });
        self.notify(&record, &p, NotifyEvent::Deadline, task.as_ref());
    }

    fn notify(&self, run: &RunRecord, p: &Pipeline, event: NotifyEvent, task: Option<&TaskInfo>) {
        for target in p.notify.iter().filter(|n| n.wants(event)) {
            let kind = Kind::Notification {
                namespace: p.id.namespace.to_string(),
                pipeline: p.id.name.to_string(),
            };
            let Some(url) = self.url(target) else {
                tracing::warn!(
                    run = %run.id, pipeline = %p.id, event = %event,
                    "notification not sent: its webhook's environment variable is not set"
                );
                crate::delivery::count(&kind, false);
                continue;
            };
            let body = payload(target.format, event, p, run, task, baton_engine::now_ms());
            self.delivery.send(Message {
                url,
                body,
                headers: Vec::new(),
                kind,
                run: run.id.to_string(),
            });
        }
    }

    fn url(&self, target: &Notify) -> Option<String> {
        match &target.webhook {
            WebhookUrl::Url(u) => Some(u.clone()),
            WebhookUrl::Env(var) => self.secrets.get(var).filter(|u| !u.is_empty()),
        }
    }
}

pub(crate) fn rfc3339(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// The body of a notification in `format`.
fn payload(
    format: NotifyFormat,
    event: NotifyEvent,
    p: &Pipeline,
    run: &RunRecord,
    task: Option<&TaskInfo>,
    at: Millis,
) -> Value {
    let doc = json!({
        "event": event.as_str(),
        "pipeline": { "namespace": p.id.namespace.as_str(), "name": p.id.name.as_str(), "version": p.version.as_str() },
        "run": { "id": run.id.to_string(), "state": run.state.as_str() },
        "at": rfc3339(at),
    });
    let mut doc = doc;
    if let Some(t) = task {
        doc["task"] = json!({
            "id": t.key.task_id(), "key": t.key.to_string(), "attempt": t.attempt,
            "state": t.state.as_str(), "error": t.error,
        });
        if let Some(m) = &t.message {
            doc["task"]["message"] = json!(m);
        }
    }
    if let Some(err) = run.error.as_ref().filter(|_| task.is_none()) {
        doc["run"]["error"] = json!(err);
    }
    match format {
        NotifyFormat::Json => doc,
        NotifyFormat::Slack => slack(event, p, run, task),
    }
}

/// Text from a pipeline or a task as Slack shows it literally: `&`, `<` and `>` are its
/// control characters (links, mentions).
fn mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A short human summary as a Slack message.
fn slack(event: NotifyEvent, p: &Pipeline, run: &RunRecord, task: Option<&TaskInfo>) -> Value {
    let (emoji, what) = match (event, task) {
        (NotifyEvent::Failure, _) => (":x:", "failed".to_owned()),
        (NotifyEvent::Success, _) => (":white_check_mark:", "succeeded".to_owned()),
        (NotifyEvent::Retry, Some(t)) => (
            ":repeat:",
            format!(
                "task `{}` failed attempt {} and will retry",
                t.key, t.attempt
            ),
        ),
        (NotifyEvent::Approval, Some(t)) => (
            ":raised_hand:",
            format!("task `{}` is waiting for approval", t.key),
        ),
        (NotifyEvent::Deadline, Some(t)) => (
            ":alarm_clock:",
            format!("task `{}` missed its deadline", t.key),
        ),
        (NotifyEvent::Deadline, None) => (":alarm_clock:", "missed its deadline".to_owned()),
        (_, None) => (":information_source:", event.as_str().to_owned()),
    };
    let text = format!("{emoji} baton: `{}` run `{}` {what}", p.id, run.id);
    let mut fields = vec![
        json!({ "type": "mrkdwn", "text": format!("*Pipeline*\n{}", p.id) }),
        json!({ "type": "mrkdwn", "text": format!("*Run*\n{} ({})", run.id, run.state) }),
    ];
    let error = task
        .and_then(|t| t.error.clone())
        .or_else(|| run.error.clone());
    if let Some(e) = error {
        fields.push(json!({ "type": "mrkdwn", "text": format!("*Error*\n{}", mrkdwn(&e)) }));
    }
    if let Some(m) = task.and_then(|t| t.message.as_deref()) {
        fields.push(json!({ "type": "mrkdwn", "text": format!("*Asks*\n{}", mrkdwn(m)) }));
    }
    json!({
        "text": text,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": text } },
            { "type": "section", "fields": fields },
        ],
    })
}
