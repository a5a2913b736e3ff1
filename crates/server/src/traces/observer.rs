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
    attempts: HashMap<(TaskKey, u32), Millis>,
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
                Change::AttemptStarted {
                    key, attempt, at, ..
                } => {
                    trace.attempts.insert((key.clone(), *attempt), *at);
                }
                Change::AttemptFinished {
                    key,
                    attempt,
                    state,
                    at,
                    exit_code,
                    signal,
                    error,
                    ..
                } => {
                    // Started by a process that crashed: its start is not known here.
                    let start = trace
                        .attempts
                        .remove(&(key.clone(), *attempt))
                        .unwrap_or(*at);
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
                            start,
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
                            trace.waiting_approval.insert(key.clone());
                            trace
                                .events
                                .push(event("waiting for approval", *at, attributes));
                        }
                        _ if trace.waiting_approval.remove(key) => {
                            // The dispatcher words a refusal `rejected by <who>: <comment>`.
                            let name = match (state, error) {
                                (TaskState::Failed, Some(e)) if e.starts_with("rejected") => {
                                    "rejected"
                                }
                                (TaskState::Failed, _) => "approval timed out",
                                (TaskState::Cancelled, _) => "approval cancelled",
                                _ => "approved",
                            };
                            trace.events.push(event(name, *at, attributes));
                        }
                        _ => {}
                    }
                }
                Change::AddTasks(_) | Change::Reopen { .. } => {}
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
