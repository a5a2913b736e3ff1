//! `/runs/{id}`: the DAG coloured by task state, the Gantt timeline of attempts, the tasks,
//! and with `?task=KEY` a task's panel (attempts, outputs, log). While the run goes, the
//! script follows `/api/v1/runs/{id}/events` and re-fetches the fragments it names
//! (`?fragment=dag|gantt|tasks|summary`). A run of more than [`DRAW_OVER`] tasks is shown
//! by its counts and a page of its task table at a time (`?tasks=CURSOR`), without the graph
//! and timeline, which would draw them all.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use baton_core::Pipeline;
use baton_core::state::{AttemptState, RunState, TaskState};
use baton_store::{
    ApprovalRecord, AttemptRecord, RunRecord, TaskCursor, TaskPageFilter, TaskRecord,
};
use maud::{Markup, html};
use serde::Deserialize;

use super::actions::{approve_action, cancel_action, reject_action, requeue_action, retry_action};
use super::confirm;
use super::dag_svg::{self, Node};
use super::error::{UiError, UiResult};
use super::gantt;
use super::shell;
use super::widgets::{duration, encode, icon, kib, state as state_badge, task_href, time};
use crate::AppState;
use crate::routes::run_tasks::TaskSlice;

/// Fan-outs with more instances than this are drawn as one group node with counts.
pub(crate) const GROUP_OVER: usize = 20;
/// The page shows at most the last this many bytes of a log; the download has it all.
const LOG_BYTES: u64 = 1024 * 1024;
/// Fan-out instances listed in their task's panel.
const MAX_INSTANCES: usize = 500;
/// Runs with more task instances than this are shown a page of tasks at a time, without the
/// graph and the timeline.
pub(crate) const DRAW_OVER: u64 = 2_000;
/// Rows of a page of a large run's task table.
const TABLE_PAGE: u32 = 500;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunQuery {
    task: Option<String>,
    attempt: Option<u32>,
    fragment: Option<String>,
    /// Of a large run, the page of the task table after this task (a `TaskCursor`).
    tasks: Option<String>,
}

/// Everything the page is made of.
struct Loaded {
    run: RunRecord,
    tasks: Vec<TaskRecord>,
    attempts: Vec<AttemptRecord>,
    /// What the attempts uploaded.
    artifacts: Vec<baton_store::ArtifactRecord>,
    pipeline: Option<Pipeline>,
    bars: Vec<gantt::Bar>,
    /// Runs its sub-pipeline tasks started.
    children: Vec<RunRecord>,
    /// Task instances by state, all of them counted.
    counts: Vec<(TaskState, u64)>,
    /// Of a large run, which page of its tasks `tasks` is; `None` for a run shown whole.
    paged: Option<TablePage>,
    /// What tasks waiting for a worker wait for, by key.
    waiting: std::collections::HashMap<baton_core::ids::TaskKey, String>,
}

/// Where a page of a large run's task table is.
struct TablePage {
    /// The cursor it starts after (none on the first page).
    after: Option<String>,
    next: Option<String>,
}

impl Loaded {
    fn total(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

async fn load(state: &AppState, id: &str, tasks_after: Option<&str>) -> UiResult<Loaded> {
    let id = state.store.resolve_run(id).await?;
    let run = state
        .store
        .run(&id)
        .await?
        .ok_or_else(|| UiError::not_found(format!("run `{id}` not found")))?;
    let counts = state.store.task_counts(&id).await?;
    let children = state.store.child_runs(&id).await?;
    let waiting = crate::routes::workers::waiting_in(state, &id);
    if counts.iter().map(|(_, n)| n).sum::<u64>() > DRAW_OVER {
        let after = crate::routes::run_tasks::cursor(tasks_after)?;
        let slice = TaskSlice::read(
            state.store.as_ref(),
            &id,
            TaskPageFilter {
                after,
                state: None,
                limit: TABLE_PAGE,
            },
        )
        .await?;
        return Ok(Loaded {
            run,
            tasks: slice.tasks,
            attempts: slice.attempts,
            artifacts: slice.artifacts,
            pipeline: None,
            bars: Vec::new(),
            children,
            counts,
            paged: Some(TablePage {
                after: crate::page::cursor(tasks_after).map(str::to_owned),
                next: slice.next.as_ref().map(TaskCursor::encode),
            }),
            waiting,
        });
    }
    let tasks = state.store.tasks(&id).await?;
    let attempts = state.store.attempts(&id).await?;
    let artifacts = state.store.artifacts(&id).await?;
    let events = state.store.events(&id, 0).await?;
    let pipeline = state
        .store
        .definition(&run.version)
        .await?
        .and_then(|d| baton_core::load(&d.source).pipeline);
    let bars = gantt::bars(&attempts, &events);
    Ok(Loaded {
        run,
        tasks,
        attempts,
        artifacts,
        pipeline,
        bars,
        children,
        counts,
        paged: None,
        waiting,
    })
}

pub(crate) async fn page(
    State(state): State<AppState>,
    Path(crate::routes::RunPath { id }): Path<crate::routes::RunPath>,
    Query(q): Query<RunQuery>,
) -> UiResult<Response> {
    let l = load(&state, &id, q.tasks.as_deref()).await?;
    let id = l.run.id.to_string();
    let now = baton_engine::now_ms();
    match q.fragment.as_deref() {
        Some("dag") => return Ok(fragment(dag(&l))),
        Some("gantt") => return Ok(fragment(timeline(&l, &id, now))),
        Some("tasks") => return Ok(fragment(task_table(&l, now))),
        Some("summary") => return Ok(fragment(summary(&l, &id, now))),
        Some(other) => {
            return Err(UiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown fragment `{other}`\n(hint: dag, gantt, tasks or summary)"),
            ));
        }
        None => {}
    }
    let panel = match &q.task {
        Some(key) => {
            let decisions = state.store.control(&l.run.id).await?.approvals;
            let logs = state.runner.logs().store.as_ref();
            Some(task_panel(&l, logs, key, q.attempt, &decisions, now).await?)
        }
        None => None,
    };
    let r = &l.run;
    let final_ = r.state.is_final();
    let heading = html! {
        "Run " code { (id) } " "
        span #run-state class={ "state state-" (r.state) } data-state=(r.state) title=(r.state) {
            (icon(r.state.as_str())) " " (r.state)
        }
    };
    let body = html! {
        @if !final_ {
            div #live hidden data-events={ "/api/v1/runs/" (id) "/events" } data-run=(id) {}
        }
        section.summary #summary-wrap { (summary(&l, &id, now)) }
        @if let Some(p) = panel { (p) }
        section {
            h2 { "Graph" }
            div.dag-wrap #dag-wrap { (dag(&l)) }
        }
        section {
            h2 { "Timeline" }
            p.legend { span.legend-wait { "queue wait" } " " span.legend-run { "running" } }
            div #gantt-wrap { (timeline(&l, &id, now)) }
        }
        section {
            h2 { "Tasks" }
            div #tasks-wrap { (task_table(&l, now)) }
        }
    };
    Ok(shell::ok(&format!("Run {id}"), heading, body))
}

/// The run's facts and actions; re-fetched when its state changes, so a run that ends while
/// its page is open loses its cancel button and gains its finish time and duration.
fn summary(l: &Loaded, id: &str, now: i64) -> Markup {
    let r = &l.run;
    let final_ = r.state.is_final();
    html! {
    dl {
        dt { "Pipeline" } dd { a href={ "/pipelines/" (encode(&r.namespace)) "/" (encode(&r.pipeline)) } { (r.namespace) "/" (r.pipeline) } }
        dt { "Version" } dd { code title=(r.version) { (r.version.get(..12).unwrap_or(&r.version)) } }
        dt { "Trigger" } dd { (r.trigger) @if let Some(d) = &r.logical_date { " for " (d) } }
        @if let Some(p) = &r.parent {
            dt { "Started by" } dd.parent-run {
                "run " a href={ "/runs/" (p.run) } { code { (p.run) } }
                " task " a href=(task_href(p.run.as_str(), p.task.as_str())) { code { (p.task) } }
                @if p.attempt > 1 { " (attempt " (p.attempt) ")" }
            }
        }
        dt { "Created" } dd { (time(r.created_at, now)) }
        @if let Some(s) = r.started_at { dt { "Started" } dd { (time(s, now)) } }
        @if let Some(f) = r.finished_at { dt { "Finished" } dd { (time(f, now)) } }
        @if let Some(s) = r.started_at { dt { "Duration" } dd { (duration(r.finished_at.unwrap_or(now) - s)) } }
        @if r.state == RunState::Queued && r.admission_group.is_some() && r.admitted_at.is_none() {
            dt { "Waiting" } dd { "for admission to " code { (r.admission_group.as_deref().unwrap_or_default()) } }
        }
        @if r.cancel_requested && !final_ { dt { "Cancel" } dd { "requested" } }
    }
    @if let Some(e) = &r.error { p.error-message { (e) } }
    @if let Some(params) = r.params.as_object().filter(|p| !p.is_empty()) {
        table.params {
            thead { tr { th { "Param" } th { "Value" } } }
            tbody { @for (k, v) in params { tr { td { code { (k) } } td { code { (v) } } } } }
        }
    }
    div.actions {
        @if !final_ { (confirm::button(&cancel_action(id, None))) }
        @if matches!(r.state, RunState::Failed | RunState::Cancelled) { (confirm::button(&retry_action(id, None))) }
    }
    }
}

fn fragment(m: Markup) -> Response {
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Html(m.into_string()),
    )
        .into_response()
}

/// What stands for the graph or timeline of a run too large to draw.
fn too_large(l: &Loaded, what: &str) -> Markup {
    html! {
        p.note.too-large {
            "This run has " (l.total()) " task instances: the " (what) " is drawn for runs of up to "
            (DRAW_OVER) ". The counts and the task table below cover them all."
        }
    }
}

fn timeline(l: &Loaded, id: &str, now: i64) -> Markup {
    if l.paged.is_some() {
        return too_large(l, "timeline");
    }
    gantt::render(id, &l.bars, now)
}

/// The run's DAG: one node per task instance, a fan-out with many instances as one group.
fn dag(l: &Loaded) -> Markup {
    if l.paged.is_some() {
        return too_large(l, "graph");
    }
    let id = l.run.id.as_str();
    let mut nodes: Vec<Node> = Vec::new();
    let mut edges = Vec::new();
    let Some(p) = &l.pipeline else {
        // The definition cannot be read: the instances, without edges.
        let nodes: Vec<Node> = l
            .tasks
            .iter()
            .map(|t| Node {
                key: t.key.to_string(),
                label: t.key.to_string(),
                state: Some(t.state.to_string()),
                href: Some(task_href(id, t.key.as_str())),
                group: None,
            })
            .collect();
        return dag_svg::render(&nodes, &[]);
    };
    let mut of_task: Vec<Vec<usize>> = Vec::with_capacity(p.tasks.len());
    for t in &p.tasks {
        let tid = t.id.as_str();
        let instances: Vec<&TaskRecord> = l
            .tasks
            .iter()
            .filter(|r| r.task_id == tid && r.key.as_str() != tid)
            .collect();
        let mut mine = Vec::new();
        if instances.len() > GROUP_OVER {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for i in &instances {
                *counts.entry(i.state.as_str()).or_default() += 1;
            }
            let state = super::pipeline::task_state_of(&l.tasks, tid).unwrap_or(TaskState::Pending);
            mine.push(nodes.len());
            nodes.push(Node {
                key: tid.to_owned(),
                label: format!("{tid} ×{}", instances.len()),
                state: Some(state.to_string()),
                href: Some(task_href(id, tid)),
                group: Some(counts.into_iter().map(|(s, n)| (s.to_owned(), n)).collect()),
            });
        } else if instances.is_empty() {
            let state = l
                .tasks
                .iter()
                .find(|r| r.key.as_str() == tid)
                .map_or(TaskState::Pending, |r| r.state);
            mine.push(nodes.len());
            nodes.push(Node {
                key: tid.to_owned(),
                label: tid.to_owned(),
                state: Some(state.to_string()),
                href: Some(task_href(id, tid)),
                group: None,
            });
        } else {
            for i in instances {
                mine.push(nodes.len());
                nodes.push(Node {
                    key: i.key.to_string(),
                    label: i.key.to_string(),
                    state: Some(i.state.to_string()),
                    href: Some(task_href(id, i.key.as_str())),
                    group: None,
                });
            }
        }
        of_task.push(mine);
    }
    for (i, ups) in p.dag.upstream.iter().enumerate() {
        for &u in ups {
            for &a in &of_task[u] {
                for &b in &of_task[i] {
                    edges.push((a, b));
                }
            }
        }
    }
    // Hooks run after the rest; they are drawn without edges.
    for hook in ["on_success", "on_failure"] {
        if let Some(t) = l.tasks.iter().find(|t| t.key.as_str() == hook) {
            nodes.push(Node {
                key: hook.to_owned(),
                label: hook.to_owned(),
                state: Some(t.state.to_string()),
                href: Some(task_href(id, hook)),
                group: None,
            });
        }
    }
    dag_svg::render(&nodes, &edges)
}

fn task_table(l: &Loaded, now: i64) -> Markup {
    let id = l.run.id.as_str();
    // A task's link keeps the page it is on, whose tasks are the ones a panel can show.
    let href = |key: &str| match l.paged.as_ref().and_then(|p| p.after.as_deref()) {
        Some(after) => format!("{}&tasks={}", task_href(id, key), encode(after)),
        None => task_href(id, key),
    };
    html! {
        p.task-counts {
            (l.total()) " task instances"
            @for (s, n) in &l.counts { " · " span data-state=(s) { (s.as_str().replace('_', " ")) " " (n) } }
        }
        @if let Some(p) = &l.paged {
            nav.task-pages.pager {
                "Showing " (l.tasks.len()) " of " (l.total()) " in pipeline order. "
                @if p.after.is_some() { a.first-page href={ "/runs/" (id) } { "First page" } " " }
                @if let Some(next) = &p.next { a.next-page href={ "/runs/" (id) "?tasks=" (encode(next)) } { "Next page" } }
            }
        }
        table #tasks {
            thead { tr { th { "Task" } th { "State" } th { "Attempts" } th { "Duration" } th { "Error" } } }
            tbody {
                @for t in &l.tasks {
                    tr data-task=(t.key) data-state=(t.state) {
                        td { a.task-link href=(href(t.key.as_str())) { (t.key) } }
                        td { (state_badge(t.state.as_str())) @if t.cached_from.is_some() { " " span.cached { "cached" } } }
                        td { (t.attempts) }
                        td { @if let Some(s) = t.started_at { (duration(t.finished_at.unwrap_or(now) - s)) } }
                        td.error {
                            @if let Some(e) = &t.error { (e) }
                            @if let Some(w) = l.waiting.get(&t.key) { span.waiting { (w) } }
                        }
                    }
                }
            }
        }
    }
}

/// `#task-panel`: one task's attempts, outputs and log.
async fn task_panel(
    l: &Loaded,
    logs: &dyn baton_store::LogStore,
    key: &str,
    attempt: Option<u32>,
    decisions: &[ApprovalRecord],
    now: i64,
) -> UiResult<Markup> {
    let id = l.run.id.as_str();
    let Some(t) = l.tasks.iter().find(|t| t.key.as_str() == key) else {
        let hint = if l.paged.is_some() {
            "\n(hint: the run is shown a page at a time: open the task from its page of the table)"
        } else {
            ""
        };
        return Err(UiError::not_found(format!(
            "run `{id}` has no task `{key}`{hint}"
        )));
    };
    let mut attempts: Vec<&AttemptRecord> = l
        .attempts
        .iter()
        .filter(|a| a.key.as_str() == key)
        .collect();
    attempts.sort_by_key(|a| a.attempt);
    let shown = match attempt {
        Some(n) => attempts.iter().find(|a| a.attempt == n).copied(),
        None => attempts.last().copied(),
    };
    let log = match shown {
        Some(a) => {
            let log = baton_store::AttemptLog {
                run: l.run.id.clone(),
                key: a.key.clone(),
                attempt: a.attempt,
            };
            Some((a, read_log(logs, &log).await))
        }
        None => None,
    };
    let instances: Vec<&TaskRecord> = l
        .tasks
        .iter()
        .filter(|i| t.key.as_str() == t.task_id && i.task_id == t.task_id && i.key != t.key)
        .collect();
    let decision = decisions.iter().find(|d| d.key == t.key);
    let dead = t.state == TaskState::Failed
        && matches!(l.run.state, RunState::Failed | RunState::Cancelled);
    Ok(html! {
        section #task-panel data-task=(t.key) data-state=(t.state) {
            h2 { "Task " code { (t.key) } " " (state_badge(t.state.as_str())) " " a.close href={ "/runs/" (id) } { "close" } }
            @if let Some(item) = &t.item { p { "Item: " code { (item) } } }
            @if let Some(e) = &t.error { p.error-message { (e) } }
            @if let Some(w) = l.waiting.get(&t.key) { p.waiting { (w) } }
            @if let Some(m) = &t.approval_message { p.approval-message { (m) } }
            @if let Some(c) = &t.cached_from {
                p.cached-from {
                    "Reused the cached result of "
                    a href=(task_href(c.run.as_str(), c.task.as_str())) { code { (c.task) } }
                    " in run " a href={ "/runs/" (c.run) } { code { (c.run) } }
                    " (same " code { "cache.key" } "); it did not run."
                }
            }
            @if let Some(d) = decision {
                p.decision data-approved=(d.approved) {
                    (if d.approved { "Approved" } else { "Rejected" }) " by " strong { (d.decided_by) } " "
                    (time(d.decided_at, now))
                    @if let Some(c) = &d.comment { ": " q { (c) } }
                }
            }
            @let children: Vec<&RunRecord> = l.children.iter().filter(|c| c.parent.as_ref().is_some_and(|p| p.task == t.key)).collect();
            @if !children.is_empty() {
                h3 { "Sub-pipeline runs" }
                ul.child-runs {
                    @for c in &children {
                        li data-run=(c.id) {
                            "Attempt " (c.parent.as_ref().map_or(0, |p| p.attempt)) ": run "
                            a href={ "/runs/" (c.id) } { code { (c.id) } }
                            " of " (c.namespace) "/" (c.pipeline) " " (state_badge(c.state.as_str()))
                        }
                    }
                }
            }
            div.actions {
                @if t.state == TaskState::WaitingApproval {
                    (confirm::button(&approve_action(id, key, None)))
                    (confirm::button(&reject_action(id, key, None)))
                }
                @if dead { (confirm::button(&requeue_action(id, key, None))) }
            }
            @if !instances.is_empty() {
                h3 { "Instances (" (instances.len()) ")" }
                ul.instances {
                    @for i in instances.iter().take(MAX_INSTANCES) {
                        li { a href=(task_href(id, i.key.as_str())) { (i.key) } " " (state_badge(i.state.as_str())) }
                    }
                }
                @if instances.len() > MAX_INSTANCES { p.note { "Showing the first " (MAX_INSTANCES) "." } }
            }
            @if let Some(outputs) = &t.outputs {
                h3 { "Outputs" }
                table.outputs {
                    tbody { @for (k, v) in outputs { tr { td { code { (k) } } td { pre { (serde_json::to_string_pretty(v).unwrap_or_default()) } } } } }
                }
            }
            h3 { "Attempts" }
            @if attempts.is_empty() && t.cached_from.is_some() {
                p.empty { "None: the result came from the cache." }
            } @else if attempts.is_empty() {
                p.empty { "No attempts yet." }
            } @else {
                table #attempts {
                    thead { tr { th { "#" } th { "State" } th { "Started" } th { "Duration" } th { "Exit" } th { "CPU user / sys" } th { "Max memory" } th { "Error" } } }
                    tbody {
                        @for a in &attempts {
                            tr data-attempt=(a.attempt) data-state=(a.state) .selected[shown.is_some_and(|s| s.attempt == a.attempt)] {
                                td { a href={ (task_href(id, key)) "&attempt=" (a.attempt) } { (a.attempt) } }
                                td { (state_badge(a.state.as_str())) }
                                td { (time(a.started_at, now)) }
                                td { (duration(a.finished_at.unwrap_or(now) - a.started_at)) }
                                td.exit-code { @if let Some(c) = a.exit_code { (c) } @if let Some(s) = a.signal { "signal " (s) } }
                                td { @if let Some(u) = &a.rusage { (duration(u.cpu_user_ms)) " / " (duration(u.cpu_sys_ms)) } }
                                td { @if let Some(u) = &a.rusage { (kib(u.max_rss_kb)) } }
                                td.error { @if let Some(e) = &a.error { (e) } }
                            }
                        }
                    }
                }
            }
            @if let Some(a) = shown {
                @let files: Vec<&baton_store::ArtifactRecord> = l.artifacts.iter().filter(|r| r.key == a.key && r.attempt == a.attempt).collect();
                @if !files.is_empty() {
                    h3 { "Artifacts of attempt " (a.attempt) }
                    table #artifacts {
                        thead { tr { th { "Path" } th { "Size" } th { "Digest" } } }
                        tbody {
                            @for f in &files {
                                tr data-path=(f.file.path) {
                                    td { code { (f.file.path) } }
                                    td { (kib(i64::try_from(f.file.size.div_ceil(1024)).unwrap_or(i64::MAX))) }
                                    td.digest title=(f.store) { code { (f.file.digest) } }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some((a, (text, skipped, size))) = &log {
                @let api = format!("/api/v1/runs/{}/tasks/{}/log?attempt={}", id, encode(key), a.attempt);
                h3 { "Log of attempt " (a.attempt) }
                div.log-tools {
                    input #log-search type="search" placeholder="Search the log";
                    span #log-matches {}
                    a #log-download href=(api) download={ (id) "-" (key) "-" (a.attempt) ".log" } { "Download" }
                }
                @if *skipped > 0 { p.note { "Showing the last " (kib(i64::try_from((size - skipped) / 1024).unwrap_or(0))) "; download the whole log." } }
                @let live = a.state == AttemptState::Running;
                pre #log data-stream=[live.then(|| format!("{api}&offset={size}"))] data-partial=(if text.ends_with('\n') || text.is_empty() { "false" } else { "true" }) {
                    @for line in text.split_inclusive('\n') {
                        span.line { (line.trim_end_matches('\n')) }
                    }
                }
            }
        }
    })
}

/// The end of a log (at most [`LOG_BYTES`], from a line start): text, bytes skipped, size.
async fn read_log(
    logs: &dyn baton_store::LogStore,
    log: &baton_store::AttemptLog,
) -> (String, u64, u64) {
    let Ok(size) = logs.len(log).await else {
        return (String::new(), 0, 0);
    };
    let mut skipped = size.saturating_sub(LOG_BYTES);
    let mut bytes = Vec::new();
    while (bytes.len() as u64) < size - skipped {
        let left = usize::try_from(size - skipped).unwrap_or(usize::MAX) - bytes.len();
        match logs.read(log, skipped + bytes.len() as u64, left).await {
            Ok(piece) if !piece.is_empty() => bytes.extend_from_slice(&piece),
            Ok(_) => break,
            Err(_) => return (String::new(), 0, size),
        }
    }
    if skipped > 0
        && let Some(nl) = bytes.iter().position(|&b| b == b'\n')
    {
        bytes.drain(..=nl);
        skipped += nl as u64 + 1;
    }
    (String::from_utf8_lossy(&bytes).into_owned(), skipped, size)
}
