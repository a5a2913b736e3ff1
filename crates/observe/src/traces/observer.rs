//! Spans built after the fact from a run's committed changes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::{AttemptState, RunState, TaskState};
use baton_engine::{Observer, RunScope};
use baton_store::{Change, Millis};
use opentelemetry::trace::{Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use tokio::sync::mpsc;

use super::ids::{attempt_span_id, run_span_id, trace_id, traceparent};
use super::pipeline::Msg;

/// Turns committed changes into spans and queues them for export; sets `TRACEPARENT`.
///
/// A run's span is sent when the run ends, an attempt's when the attempt ends, each with its
/// stored start and end times, so what reaches the collector is what the store says happened.
#[derive(Debug)]
pub struct TraceObserver {
    tx: mpsc::Sender<Msg>,
    runs: Mutex<HashMap<RunId, RunTrace>>,
    scope: InstrumentationScope,
    /// Set while spans are being dropped because the exporter is behind; warned once per burst.
    dropping: AtomicBool,
}

/// What a run's spans need from earlier commits.
#[derive(Debug, Default)]
struct RunTrace {
    started: Option<Millis>,
    waiting_approval: HashSet<TaskKey>,
    /// Events of the run span, which is sent when the run ends.
    events: Vec<Event>,
}

/// A span to send: everything but what every span of the run shares.
struct Span {
    id: SpanId,
    parent: SpanId,
    name: String,
    start: Millis,
    end: Millis,
    attributes: Vec<KeyValue>,
    events: Vec<Event>,
    status: Status,
}

fn time(ms: Millis) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn iso(ms: Millis) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

fn event(name: &'static str, at: Millis, attributes: Vec<KeyValue>) -> Event {
    Event::new(name, time(at), attributes, 0)
}

impl TraceObserver {
    pub(crate) fn new(tx: mpsc::Sender<Msg>) -> Self {
        Self {
            tx,
            runs: Mutex::new(HashMap::new()),
            scope: InstrumentationScope::builder("baton")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            dropping: AtomicBool::new(false),
        }
    }

    fn send(&self, span: SpanData) {
        match self.tx.try_send(Msg::Span(Box::new(span))) {
            Ok(()) => {
                if self.dropping.swap(false, Ordering::Relaxed) {
                    tracing::info!("trace export caught up");
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    tracing::warn!("dropping spans: the trace exporter is behind");
                }
            }
            // Shut down: the process is ending and nothing more is exported.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn span(&self, run: &RunId, s: Span) -> SpanData {
        let Span {
            id,
            parent,
            name,
            start,
            end,
            attributes,
            events,
            status,
        } = s;
        let mut span_events = SpanEvents::default();
        span_events.events = events;
        SpanData {
            span_context: SpanContext::new(
                trace_id(run),
                id,
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: parent,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: name.into(),
            start_time: time(start),
            end_time: time(end.max(start)),
            attributes,
            dropped_attributes_count: 0,
            events: span_events,
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        }
    }
}

fn run_attributes(scope: RunScope<'_>) -> Vec<KeyValue> {
    let run = scope.run;
    vec![
        KeyValue::new("baton.run_id", run.id.to_string()),
        KeyValue::new("baton.pipeline", run.pipeline.clone()),
        KeyValue::new("baton.namespace", run.namespace.clone()),
    ]
}

fn failed(message: Option<&String>) -> Status {
    Status::error(message.cloned().unwrap_or_default())
}

impl Observer for TraceObserver {
    fn committed(&self, scope: RunScope<'_>, changes: &[Change]) {
        let run = scope.run;
        let Ok(mut runs) = self.runs.lock() else {
            return;
        };
        let trace = runs.entry(run.id.clone()).or_insert_with(|| RunTrace {
            // A resumed run: the record knows when it started.
            started: run.started_at,
            ..RunTrace::default()
        });
        // Attempt spans of this commit stay open until its end: the retry that follows a
        // failed attempt is recorded in the same commit and becomes an event of its span.
        let mut ended: Vec<(TaskKey, SpanData)> = Vec::new();
        let mut run_end = None;
        for change in changes {
            match change {
                Change::Run { state, at, error } => {
                    if *state == RunState::Running {
                        trace.started.get_or_insert(*at);
                    } else if state.is_final() {
                        run_end = Some((*state, *at, error.clone()));
                    }
                }
                Change::AttemptFinished {
                    key,
                    attempt,
                    state,
                    started_at,
                    at,
                    exit_code,
                    signal,
                    error,
                    ..
                } => {
                    let mut attributes = run_attributes(scope);
                    attributes.extend([
                        KeyValue::new("baton.task", key.task_id().to_owned()),
                        KeyValue::new("baton.task_key", key.to_string()),
                        KeyValue::new("baton.attempt", i64::from(*attempt)),
                        KeyValue::new("baton.state", state.to_string()),
                    ]);
                    if let Some(code) = exit_code {
                        attributes.push(KeyValue::new("baton.exit_code", i64::from(*code)));
                    }
                    if let Some(signal) = signal {
                        attributes.push(KeyValue::new("baton.signal", i64::from(*signal)));
                    }
                    let status = match state {
                        AttemptState::Succeeded => Status::Ok,
                        AttemptState::Failed | AttemptState::TimedOut => failed(error.as_ref()),
                        _ => Status::Unset,
                    };
                    let span = self.span(
                        &run.id,
                        Span {
                            id: attempt_span_id(&run.id, key, *attempt),
                            parent: run_span_id(&run.id),
                            name: format!("task {}", key.task_id()),
                            start: *started_at,
                            end: *at,
                            attributes,
                            events: Vec::new(),
                            status,
                        },
                    );
                    ended.push((key.clone(), span));
                }
                Change::Task {
                    key,
                    state,
                    at,
                    next_attempt_at,
                    error,
                    ..
                } => {
                    let mut attributes = vec![KeyValue::new("baton.task_key", key.to_string())];
                    if let Some(e) = error {
                        attributes.push(KeyValue::new("baton.error", e.clone()));
                    }
                    match state {
                        TaskState::Retrying => {
                            if let Some(next) = next_attempt_at {
                                attributes.push(KeyValue::new("baton.next_attempt_at", iso(*next)));
                            }
                            let retry = event("retry", *at, attributes);
                            match ended.iter_mut().rev().find(|(k, _)| k == key) {
                                Some((_, span)) => span.events.events.push(retry),
                                None => trace.events.push(retry),
                            }
                        }
                        TaskState::WaitingApproval => {
                            if let Some(deadline) = next_attempt_at {
                                attributes
                                    .push(KeyValue::new("baton.approval_deadline", iso(*deadline)));
                            }
                            if let Some(message) = baton_engine::observer::asked(changes, key) {
                                attributes.push(KeyValue::new(
                                    "baton.approval.message",
                                    message.to_owned(),
                                ));
                            }
                            trace.waiting_approval.insert(key.clone());
                            trace
                                .events
                                .push(event("waiting for approval", *at, attributes));
                        }
                        // A decision came first (`Decided`) and ended the wait already.
                        TaskState::Failed | TaskState::Cancelled
                            if trace.waiting_approval.remove(key) =>
                        {
                            let name = if *state == TaskState::Failed {
                                "approval timed out"
                            } else {
                                "approval cancelled"
                            };
                            trace.events.push(event(name, *at, attributes));
                        }
                        _ => {}
                    }
                }
                Change::Decided {
                    key,
                    approved,
                    by,
                    comment,
                    at,
                } => {
                    trace.waiting_approval.remove(key);
                    let mut attributes = vec![
                        KeyValue::new("baton.task_key", key.to_string()),
                        KeyValue::new("baton.approval.by", by.clone()),
                    ];
                    if let Some(comment) = comment {
                        attributes.push(KeyValue::new("baton.approval.comment", comment.clone()));
                    }
                    let name = if *approved { "approved" } else { "rejected" };
                    trace.events.push(event(name, *at, attributes));
                }
                // A reused result has no attempt, so no span: the run's span says where it
                // came from.
                Change::CacheChecked {
                    key,
                    cache_key,
                    hit: Some(hit),
                    at,
                } => trace.events.push(event(
                    "cache_hit",
                    *at,
                    vec![
                        KeyValue::new("baton.task_key", key.to_string()),
                        KeyValue::new("baton.cache.key", cache_key.clone()),
                        KeyValue::new("baton.cache.run_id", hit.run.to_string()),
                        KeyValue::new("baton.cache.task_key", hit.task.to_string()),
                    ],
                )),
                Change::AttemptStarted { .. }
                | Change::AttemptSpawned { .. }
                | Change::AddTasks(_)
                | Change::Reopen { .. }
                | Change::Asked { .. }
                | Change::CacheChecked { .. }
                | Change::CacheSaved { .. }
                | Change::ArtifactsStored { .. } => {}
            }
        }
        for (_, span) in ended {
            self.send(span);
        }
        if let Some((state, at, error)) = run_end {
            let Some(trace) = runs.remove(&run.id) else {
                return;
            };
            let mut attributes = run_attributes(scope);
            attributes.extend([
                KeyValue::new("baton.state", state.to_string()),
                KeyValue::new("baton.trigger", run.trigger.clone()),
            ]);
            if let Some(date) = &run.logical_date {
                attributes.push(KeyValue::new("baton.logical_date", date.clone()));
            }
            let status = match state {
                RunState::Succeeded => Status::Ok,
                RunState::Failed => failed(error.as_ref()),
                _ => Status::Unset,
            };
            let span = self.span(
                &run.id,
                Span {
                    id: run_span_id(&run.id),
                    parent: SpanId::INVALID,
                    name: format!("run {}/{}", run.namespace, run.pipeline),
                    start: trace.started.unwrap_or(run.created_at),
                    end: at,
                    attributes,
                    events: trace.events,
                    status,
                },
            );
            self.send(span);
        }
    }

    fn attempt_env(
        &self,
        scope: RunScope<'_>,
        key: &TaskKey,
        attempt: u32,
    ) -> Vec<(String, String)> {
        vec![(
            "TRACEPARENT".to_owned(),
            traceparent(&scope.run.id, key, attempt),
        )]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use baton_core::model::Pipeline;
    use baton_store::{RunRecord, SqlStore, Store};
    use opentelemetry::Value;

    use super::*;

    const SOURCE: &str = "name: gated\ntasks:\n  a:\n    run: 'true'\n  gate:\n    approval: {}\n  check:\n    approval: {}\n  late:\n    approval: { timeout: 1h }\n";

    /// A run as a dispatcher resuming it after a crash finds it: running since `t`.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        pipeline: Pipeline,
        run: RunRecord,
        t: Millis,
    }

    impl Fixture {
        async fn new() -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            let store: Arc<dyn Store> =
                Arc::new(SqlStore::open_home(dir.path()).await.expect("store"));
            let pipeline = baton_core::load(SOURCE).pipeline.expect("valid");
            let created = baton_engine::create_run(
                store.as_ref(),
                baton_engine::RunRequest::new(&pipeline, SOURCE, "/tmp"),
            )
            .await
            .expect("run");
            let mut run = store.run(&created.id).await.expect("read").expect("run");
            let t = run.created_at + 10_000;
            run.state = RunState::Running;
            run.started_at = Some(t);
            Self {
                _dir: dir,
                store,
                pipeline,
                run,
                t,
            }
        }

        /// What `commits` make a fresh observer (a process that saw nothing before) send.
        fn spans(&self, commits: &[Vec<Change>]) -> Vec<SpanData> {
            let (tx, mut rx) = mpsc::channel(64);
            let observer = TraceObserver::new(tx);
            let scope = RunScope {
                run: &self.run,
                pipeline: &self.pipeline,
                store: &self.store,
            };
            for commit in commits {
                observer.committed(scope, commit);
            }
            let mut spans = Vec::new();
            while let Ok(Msg::Span(span)) = rx.try_recv() {
                spans.push(*span);
            }
            spans
        }
    }

    fn key(k: &str) -> TaskKey {
        TaskKey::from_string(k)
    }

    fn task(k: &str, state: TaskState, at: Millis, error: Option<&str>) -> Change {
        Change::Task {
            key: key(k),
            state,
            at,
            next_attempt_at: None,
            outputs: None,
            error: error.map(str::to_owned),
        }
    }

    fn run_end(state: RunState, at: Millis) -> Change {
        Change::Run {
            state,
            at,
            error: None,
        }
    }

    fn decided(k: &str, approved: bool, by: &str, comment: Option<&str>, at: Millis) -> Change {
        Change::Decided {
            key: key(k),
            approved,
            by: by.to_owned(),
            comment: comment.map(str::to_owned),
            at,
        }
    }

    fn attr(attributes: &[KeyValue], name: &str) -> Option<Value> {
        attributes
            .iter()
            .find(|kv| kv.key.as_str() == name)
            .map(|kv| kv.value.clone())
    }

    fn text(attributes: &[KeyValue], name: &str) -> Option<String> {
        attr(attributes, name).map(|v| v.as_str().into_owned())
    }

    #[tokio::test]
    async fn an_attempt_started_before_a_crash_spans_from_its_stored_start() {
        let f = Fixture::new().await;
        let t = f.t;
        // The dispatcher's `reconcile`: the attempt's start was committed by the process that
        // crashed; this observer hears only its end.
        let spans = f.spans(&[vec![
            Change::AttemptFinished {
                key: key("a"),
                attempt: 1,
                state: AttemptState::Interrupted,
                started_at: t + 5_000,
                at: t + 20_000,
                exit_code: None,
                signal: None,
                rusage: None,
                error: Some("baton stopped while this attempt ran".into()),
            },
            task("a", TaskState::Queued, t + 20_000, None),
        ]]);
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(
            span.span_context.span_id(),
            attempt_span_id(&f.run.id, &key("a"), 1)
        );
        assert_eq!(span.parent_span_id, run_span_id(&f.run.id));
        assert_eq!(span.start_time, time(t + 5_000));
        assert_eq!(span.end_time, time(t + 20_000));
        assert_eq!(
            text(&span.attributes, "baton.state").as_deref(),
            Some("interrupted")
        );
        assert_eq!(span.status, Status::Unset);
    }

    #[tokio::test]
    async fn approval_events_name_who_decided() {
        let f = Fixture::new().await;
        let t = f.t;
        let waiting = |k: &str, at| task(k, TaskState::WaitingApproval, at, None);
        let spans = f.spans(&[
            vec![
                waiting("gate", t + 1),
                Change::Asked {
                    key: key("gate"),
                    message: "ship 1.2?".into(),
                    at: t + 1,
                },
                waiting("check", t + 1),
            ],
            vec![waiting("late", t + 2)],
            vec![
                decided("gate", true, "ann", Some("ship it"), t + 3),
                task("gate", TaskState::Succeeded, t + 4, None),
            ],
            vec![
                decided("check", false, "bob", None, t + 5),
                task("check", TaskState::Failed, t + 6, Some("rejected by bob")),
            ],
            vec![task(
                "late",
                TaskState::Failed,
                t + 7,
                Some("approval timed out after 1h"),
            )],
            vec![run_end(RunState::Failed, t + 8)],
        ]);
        assert_eq!(spans.len(), 1, "the run span");
        let events = &spans[0].events.events;
        let names: Vec<&str> = events.iter().map(|e| e.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "waiting for approval",
                "waiting for approval",
                "waiting for approval",
                "approved",
                "rejected",
                "approval timed out",
            ]
        );
        // Each wait carries what its own gate asks, if anything.
        assert_eq!(
            text(&events[0].attributes, "baton.approval.message").as_deref(),
            Some("ship 1.2?")
        );
        assert_eq!(attr(&events[1].attributes, "baton.approval.message"), None);
        let approved = &events[3];
        assert_eq!(approved.timestamp, time(t + 3));
        assert_eq!(
            text(&approved.attributes, "baton.task_key").as_deref(),
            Some("gate")
        );
        assert_eq!(
            text(&approved.attributes, "baton.approval.by").as_deref(),
            Some("ann")
        );
        assert_eq!(
            text(&approved.attributes, "baton.approval.comment").as_deref(),
            Some("ship it")
        );
        let rejected = &events[4];
        assert_eq!(
            text(&rejected.attributes, "baton.task_key").as_deref(),
            Some("check")
        );
        assert_eq!(
            text(&rejected.attributes, "baton.approval.by").as_deref(),
            Some("bob")
        );
        assert_eq!(attr(&rejected.attributes, "baton.approval.comment"), None);
        let timed_out = &events[5];
        assert_eq!(attr(&timed_out.attributes, "baton.approval.by"), None);
    }

    #[tokio::test]
    async fn a_decision_on_a_wait_seen_by_another_process_is_still_an_event() {
        let f = Fixture::new().await;
        let t = f.t;
        let spans = f.spans(&[
            vec![
                decided("gate", true, "ann", None, t + 3),
                task("gate", TaskState::Succeeded, t + 4, None),
            ],
            vec![run_end(RunState::Succeeded, t + 8)],
        ]);
        let events = &spans[0].events.events;
        let names: Vec<&str> = events.iter().map(|e| e.name.as_ref()).collect();
        assert_eq!(names, ["approved"]);
        assert_eq!(
            text(&events[0].attributes, "baton.approval.by").as_deref(),
            Some("ann")
        );
    }
}
