//! A run's state changes as server-sent events, read from the store's event log (so any
//! replica serves them, whoever drives the run): what the UI's run page follows.
//!
//! A stream reads the store when the store's change feed announces a commit of its run, and
//! otherwise only as a fallback for commits the feed cannot hear (see [`EventsFallback`]).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use baton_core::ids::{RunId, TaskKey};
use baton_core::state::RunState;
use baton_store::{Changes, EventRecord, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::time::Instant;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::body::Query;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::responses::{AmbiguousRun, StoreDown};
use crate::routes::RunPath;
use crate::routes::sse::ServerSentEvent;

/// The shortest time between two reads of one stream, however busy its run: a burst of
/// commits costs one read, and a busy run is read no more often than the old poll did.
const MIN_GAP: Duration = Duration::from_millis(250);
/// A comment on a quiet stream this often keeps proxies from closing it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a stream waits, without an announced commit, before reading the store anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsFallback {
    /// 5 s while the store hears every process's commits (PostgreSQL with its listener
    /// connected), for what a lost notification would hide; 1 s otherwise, since on SQLite
    /// (or while the listener is down) another process's commits are seen only by reading.
    ByStore,
    /// Always this long (tests make it long, to show that announcements alone suffice).
    Every(Duration),
}

impl EventsFallback {
    fn interval(self, changes: &Changes) -> Duration {
        match self {
            Self::Every(d) => d,
            Self::ByStore if changes.hears_others() => Duration::from_secs(5),
            Self::ByStore => Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Start after this event sequence number (default 0: every event); `Last-Event-ID` wins.
    #[param(value_type = Option<i64>)]
    after: Option<String>,
}

/// `GET /runs/{id}/events`: the run's events, then new ones as they are committed.
#[utoipa::path(
    get,
    path = "/runs/{id}/events",
    operation_id = "run_events",
    tag = "runs",
    summary = "A run's state changes as server-sent events.",
    description = "Each event's `id` is its sequence number in the run's event log and its \
        name is the kind (`run_state`, `task_state`, `task_reopened`, `attempt_started`, \
        `attempt_finished`, `approval_asked`, `approval_decided`, `cache_hit`, `cache_miss`, `cache_saved`); its data is a `RunEvent` as JSON. Once the run has ended and every event is sent, \
        one `end` event (data: a `RunEnded` as JSON) closes the stream. Reconnecting with `Last-Event-ID` resumes after it.",
    params(
        RunPath,
        EventsQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this sequence number"),
    ),
    responses(
        (status = 200, description = "The event stream: each event's `data` is a `RunEvent` as JSON, the `end` event's a `RunEnded`", content((ServerSentEvent = "text/event-stream"))),
        (status = 400, description = "A number that does not parse", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        AmbiguousRun,
        StoreDown,
    )
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    Path(RunPath { id }): Path<RunPath>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = state.store.resolve_run(&id).await?;
    if state.store.run(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("run `{id}` not found")));
    }
    let parse = |name: &str, text: &str| {
        text.trim().parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("`{name}` must be an integer, got `{text}`"))
        })
    };
    // Both are checked, whichever is used: a bad `after` is refused even beside a header.
    let from_query = q.after.as_deref().map(|a| parse("after", a)).transpose()?;
    let from_header = headers
        .get("last-event-id")
        .map(|v| parse("Last-Event-ID", v.to_str().unwrap_or_default()))
        .transpose()?;
    let after = from_header.or(from_query).unwrap_or(0);
    let now = Instant::now();
    let follow = Follow {
        changes: state.store.changes(),
        fallback: state.events_fallback,
        store: Arc::clone(&state.store),
        run: id,
        after,
        closing: state.runner.closing(),
        last_read: now,
        last_frame: now,
        first: true,
        done: false,
    };
    Ok(super::sse::response(
        follow,
        |mut f| async move {
            let r = f.step().await;
            (r, f)
        },
        "run event stream",
    ))
}

#[derive(Debug)]
struct Follow {
    /// Subscribed before the first read, so no commit falls between the two.
    changes: Changes,
    fallback: EventsFallback,
    store: Arc<dyn Store>,
    run: RunId,
    after: i64,
    closing: tokio::sync::watch::Receiver<bool>,
    last_read: Instant,
    last_frame: Instant,
    first: bool,
    done: bool,
}

impl Follow {
    /// The next frame: new events, a keep-alive, the `end` event, or `None` when over.
    async fn step(&mut self) -> Result<Option<String>, baton_store::Error> {
        loop {
            if self.done || *self.closing.borrow() {
                return Ok(None);
            }
            if !self.first {
                let fallback = self.last_read + self.fallback.interval(&self.changes);
                let keep_alive = self.last_frame + KEEP_ALIVE;
                let announced = tokio::select! {
                    () = self.changes.changed(&self.run) => true,
                    () = tokio::time::sleep_until(fallback) => false,
                    () = tokio::time::sleep_until(keep_alive) => {
                        self.last_frame = Instant::now();
                        return Ok(Some(": keep-alive\n\n".into()));
                    }
                    _ = self.closing.wait_for(|c| *c) => return Ok(None),
                };
                if announced {
                    tokio::time::sleep_until(self.last_read + MIN_GAP).await;
                }
            }
            self.first = false;
            // What is announced up to here, this read sees.
            self.changes.clear();
            self.last_read = Instant::now();
            // The run's state is read before its events: a final state seen here has its
            // event committed already, so the read below includes it.
            let run = self.store.run(&self.run).await?;
            let events = self.store.events(&self.run, self.after).await?;
            let mut frame = String::new();
            for e in &events {
                frame.push_str(&event_frame(e));
                self.after = e.seq;
            }
            if let Some(r) = run.filter(|r| r.state.is_final()) {
                self.done = true;
                frame.push_str(&format!(
                    "event: end\nid: {}\ndata: {}\n\n",
                    self.after,
                    serde_json::to_string(&RunEnded { state: r.state }).unwrap_or_default()
                ));
            }
            if !frame.is_empty() {
                self.last_frame = self.last_read;
                return Ok(Some(frame));
            }
        }
    }
}

/// The `data` of one event of a run's stream: an entry of its event log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunEvent {
    /// Its sequence number in the run's event log (also the event's `id`).
    seq: i64,
    /// When it was committed, in milliseconds since the Unix epoch.
    at: i64,
    /// What changed (also the event's name).
    kind: String,
    /// The task instance it is about, if any.
    task: Option<TaskKey>,
    attempt: Option<u32>,
    /// By kind: the new state, the attempt's exit, who decided, ...
    #[schema(value_type = Object)]
    data: serde_json::Value,
    /// The lease epoch of the run's owner that wrote it: it grows at each takeover, so it tells
    /// one owner's tenure from the next. Absent for what no owner writes (the run's creation, a
    /// cancel or retry asked through the API).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    epoch: Option<i64>,
}

/// The `data` of the `end` event, sent once the run has ended.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunEnded {
    state: RunState,
}

fn event_frame(e: &EventRecord) -> String {
    let data = RunEvent {
        seq: e.seq,
        at: e.at,
        kind: e.kind.clone(),
        task: e.task_key.clone(),
        attempt: e.attempt,
        data: e.data.clone(),
        epoch: e.epoch.map(|e| e.0),
    };
    let data = serde_json::to_string(&data).unwrap_or_default();
    format!("id: {}\nevent: {}\ndata: {data}\n\n", e.seq, e.kind)
}
