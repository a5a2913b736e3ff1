//! Where commands find runs: the local home, or a `baton server` (`--server URL`). Both
//! answer with the store's own records, so every command renders them with the same code and
//! prints the same thing either way.
//!
//! A new remote command is one method here with a `Local` arm (the store or the engine) and a
//! `Remote` arm (a call of the API through `Client`), both returning the same record type.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use baton_api::{Attempt, DeadLetter, Pool, Run, Task, TaskEntry};
use baton_core::ids::{RunId, TaskKey};
use baton_core::state::RunState;
use baton_engine::Observers;
use baton_engine::log_tail::Tail;
use baton_store::{DeadLetterCursor, DeadLetterFilter, RunFilter, Store};
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::{Client, bad_answer};
use crate::error::ExpectedError;
use crate::output::Output;

mod follow;
mod settings;

use follow::follow_remote;
pub(crate) use settings::*;

/// How often a remote run is looked at while waiting for its end.
const POLL: Duration = Duration::from_millis(200);
/// Times a dropped log stream is reopened (from where it stopped) before giving up, and the
/// pause before each.
const RECONNECTS: u32 = 5;
const RECONNECT_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) enum Backend {
    Local {
        home: PathBuf,
        store: Arc<dyn Store>,
        /// Told of every run driven in this process (traces).
        observers: Observers,
    },
    Remote(Client),
}

/// The answer of `POST /dead-letters/requeue`.
#[derive(Debug, Deserialize)]
struct Requeued {
    results: Vec<RequeueResult>,
}

#[derive(Debug, Deserialize)]
struct RequeueResult {
    run: RunId,
    #[serde(default)]
    reopened: Vec<TaskKey>,
    error: Option<RequeueError>,
}

#[derive(Debug, Deserialize)]
struct RequeueError {
    message: String,
}

/// A run with its task instances and attempts, as `baton show` prints it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RunView {
    #[serde(flatten)]
    pub(crate) run: Run,
    pub(crate) tasks: Vec<Task>,
    pub(crate) attempts: Vec<Attempt>,
    /// Runs its sub-pipeline tasks started (servers before 0.2 send none).
    #[serde(default)]
    pub(crate) children: Vec<Run>,
    /// Where the tasks a server did not send with the run start (see [`RunView::fetch`]).
    #[serde(default)]
    tasks_next_cursor: Option<String>,
}

impl RunView {
    pub(crate) async fn load(store: &dyn Store, id: &RunId) -> Result<Self, ExpectedError> {
        let run = store
            .run(id)
            .await?
            .ok_or_else(|| baton_store::Error::RunNotFound(id.to_string()))?;
        let mut attempts: Vec<Attempt> = store
            .attempts(id)
            .await?
            .into_iter()
            .map(Attempt::from)
            .collect();
        baton_api::artifact::attach(&mut attempts, store.artifacts(id).await?);
        Ok(Self {
            run: run.into(),
            tasks: store.tasks(id).await?.into_iter().map(Task::from).collect(),
            attempts,
            children: store
                .child_runs(id)
                .await?
                .into_iter()
                .map(Run::from)
                .collect(),
            tasks_next_cursor: None,
        })
    }

    /// A run from a server, whole: the tasks past the first page it comes with are paged
    /// through, so a view of a large run is as complete as one read from a home.
    async fn fetch(c: &Client, run: &str) -> Result<Self, ExpectedError> {
        let mut view: Self = c.get(&["runs", run], &[]).await?;
        let id = view.run.id.to_string();
        while let Some(cursor) = view.tasks_next_cursor.take() {
            let query = [("limit", "500".to_owned()), ("cursor", cursor)];
            let page: Page<TaskEntry> = c.get(&["runs", &id, "tasks"], &query).await?;
            for entry in page.items {
                view.tasks.push(entry.task);
                view.attempts.extend(entry.attempts);
            }
            view.tasks_next_cursor = page.next_cursor;
        }
        // The order a home gives: all attempts by start, not page by page.
        view.attempts.sort_by(|a, b| {
            (a.started_at, a.key.as_str(), a.attempt).cmp(&(
                b.started_at,
                b.key.as_str(),
                b.attempt,
            ))
        });
        Ok(view)
    }
}

/// What a cancel request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelOutcome {
    /// The run had already ended.
    Finished(RunState),
    /// Whoever drives the run will stop it.
    Requested,
    /// Nobody drove it; it was cancelled here and ended in this state.
    Ended(RunState),
}

/// A pipeline version a trigger starts from.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) text: String,
}

#[derive(Debug, Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Retried {
    id: RunId,
    reopened: Vec<TaskKey>,
}

#[derive(Debug, Deserialize)]
struct Decided {
    id: RunId,
}

impl Backend {
    /// The server when one is named, else the home.
    pub(crate) async fn open(
        home: &Path,
        usage: HomeUse,
        server: Option<&str>,
        observers: &Observers,
    ) -> Result<Self, ExpectedError> {
        match server {
            Some(url) => Ok(Self::Remote(Client::new(url)?)),
            None => Ok(Self::Local {
                home: home.to_path_buf(),
                store: open_home(home, usage).await?,
                observers: observers.clone(),
            }),
        }
    }

    /// A run (a full id or a unique prefix) with its tasks and attempts.
    pub(crate) async fn run_view(&self, run: &str) -> Result<RunView, ExpectedError> {
        match self {
            Self::Local { store, .. } => {
                let id = store.resolve_run(run).await?;
                RunView::load(store.as_ref(), &id).await
            }
            Self::Remote(c) => RunView::fetch(c, run).await,
        }
    }

    /// Runs, newest first.
    /// Runs newest first; `filter.limit` of them at most (the server is paged through).
    pub(crate) async fn runs(
        &self,
        pipeline: Option<&str>,
        filter: RunFilter,
    ) -> Result<Vec<Run>, ExpectedError> {
        let (state, limit) = (filter.state, filter.limit);
        match self {
            Self::Local { store, .. } => Ok(store
                .runs(&filter.for_pipeline(pipeline))
                .await?
                .into_iter()
                .map(Run::from)
                .collect()),
            Self::Remote(c) => {
                let mut runs = Vec::new();
                let mut cursor = None;
                while runs.len() < limit as usize {
                    let want = (limit as usize - runs.len()).min(500);
                    let mut query = vec![("limit", want.to_string())];
                    if let Some(p) = pipeline {
                        query.push(("pipeline", p.to_owned()));
                    }
                    if let Some(s) = state {
                        query.push(("state", s.to_string()));
                    }
                    for (name, at) in [
                        ("since", filter.created_after),
                        ("until", filter.created_before),
                    ] {
                        if let Some(t) =
                            at.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                        {
                            query.push((name, t.to_string()));
                        }
                    }
                    if let Some(c) = cursor.take() {
                        query.push(("cursor", c));
                    }
                    let page: Page<Run> = c.get(&["runs"], &query).await?;
                    runs.extend(page.items);
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                runs.truncate(limit as usize);
                Ok(runs)
            }
        }
    }

    pub(crate) async fn cancel(&self, run: &str) -> Result<(RunId, CancelOutcome), ExpectedError> {
        use baton_engine::control::Cancel;
        match self {
            Self::Local {
                home,
                store,
                observers,
            } => {
                let id = store.resolve_run(run).await?;
                let outcome =
                    match baton_engine::control::request_cancel(store.as_ref(), &id).await? {
                        Cancel::Finished(state) => CancelOutcome::Finished(state),
                        Cancel::Requested => CancelOutcome::Requested,
                        Cancel::Orphaned => {
                            // Nobody is running it: cancel it here, recording interrupted attempts
                            // as it goes.
                            let (_tx, rx) =
                                tokio::sync::watch::channel(Some(baton_engine::Stop::Cancel));
                            let state = engine(Arc::clone(store), engine_options(home, observers))
                                .execute(&id, rx)
                                .await?;
                            CancelOutcome::Ended(state)
                        }
                    };
                Ok((id, outcome))
            }
            Self::Remote(c) => {
                // Its state is all that is needed: not the tasks past the first page.
                let view: RunView = c.get(&["runs", run], &[]).await?;
                let id = view.run.id;
                if view.run.state.is_final() {
                    return Ok((id, CancelOutcome::Finished(view.run.state)));
                }
                // A run nobody drives is picked up by the server, which then cancels it.
                let _: Value = c.post(&["runs", id.as_str(), "cancel"], &json!({})).await?;
                Ok((id, CancelOutcome::Requested))
            }
        }
    }

    /// Reopens a failed or cancelled run's failed tasks. Locally the caller then drives the
    /// run; a server drives it itself.
    pub(crate) async fn retry(&self, run: &str) -> Result<(RunId, Vec<TaskKey>), ExpectedError> {
        match self {
            Self::Local { store, .. } => {
                let id = store.resolve_run(run).await?;
                let reopened = baton_engine::control::retry(store.as_ref(), &id).await?;
                Ok((id, reopened))
            }
            Self::Remote(c) => {
                let r: Retried = c.post(&["runs", run, "retry"], &json!({})).await?;
                Ok((r.id, r.reopened))
            }
        }
    }

    /// Current dead letters (of one pipeline), newest failure first, `limit` at most.
    pub(crate) async fn dead_letters(
        &self,
        pipeline: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, ExpectedError> {
        let mut letters: Vec<DeadLetter> = Vec::new();
        let mut cursor: Option<String> = None;
        while letters.len() < limit as usize {
            let want = u32::try_from(limit as usize - letters.len())
                .unwrap_or(u32::MAX)
                .min(500);
            let (page, next) = match self {
                Self::Local { store, .. } => {
                    let page = store
                        .dead_letters(
                            &DeadLetterFilter {
                                limit: want,
                                before: cursor.as_deref().and_then(DeadLetterCursor::decode),
                                ..DeadLetterFilter::default()
                            }
                            .for_pipeline(pipeline),
                        )
                        .await?;
                    let next = (page.len() == want as usize)
                        .then(|| page.last().map(|d| d.cursor().encode()))
                        .flatten();
                    (page.into_iter().map(DeadLetter::from).collect(), next)
                }
                Self::Remote(c) => {
                    let mut query = vec![("limit", want.to_string())];
                    if let Some(p) = pipeline {
                        query.push(("pipeline", p.to_owned()));
                    }
                    if let Some(c) = cursor.take() {
                        query.push(("cursor", c));
                    }
                    let page: Page<DeadLetter> = c.get(&["dead-letters"], &query).await?;
                    (page.items, page.next_cursor)
                }
            };
            letters.extend(page);
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        letters.truncate(limit as usize);
        Ok(letters)
    }

    /// Requeues dead letters of one run; returns the run's full id and the reopened tasks.
    /// Locally the caller then drives the run; a server drives it itself.
    pub(crate) async fn requeue(
        &self,
        run: &str,
        keys: &[TaskKey],
    ) -> Result<(RunId, Vec<TaskKey>), ExpectedError> {
        match self {
            Self::Local { store, .. } => {
                let id = store.resolve_run(run).await?;
                let reopened = baton_engine::control::requeue(store.as_ref(), &id, keys).await?;
                Ok((id, reopened))
            }
            Self::Remote(c) => {
                let items: Vec<Value> = keys
                    .iter()
                    .map(|k| json!({ "run": run, "task": k }))
                    .collect();
                let answer: Requeued = c
                    .post(&["dead-letters", "requeue"], &json!({ "items": items }))
                    .await?;
                // The server requeues what it can; one refusal refuses the lot here, as the
                // engine does locally.
                if let Some(e) = answer.results.iter().find_map(|r| r.error.as_ref()) {
                    return Err(ExpectedError::Refused(e.message.clone()));
                }
                let first = answer.results.into_iter().next().ok_or_else(|| {
                    ExpectedError::Refused(format!("run {run}: nothing requeued"))
                })?;
                Ok((first.run, first.reopened))
            }
        }
    }

    /// Approves or rejects a gate; returns the run's full id.
    pub(crate) async fn decide(
        &self,
        run: &str,
        key: &TaskKey,
        approve: bool,
        by: &str,
        comment: Option<&str>,
    ) -> Result<RunId, ExpectedError> {
        match self {
            Self::Local { store, .. } => {
                let id = store.resolve_run(run).await?;
                baton_engine::control::decide(store.as_ref(), &id, key, approve, by, comment)
                    .await?;
                Ok(id)
            }
            Self::Remote(c) => {
                let verb = if approve { "approve" } else { "reject" };
                let d: Decided = c
                    .post(
                        &["runs", run, "tasks", key.as_str(), verb],
                        &json!({ "by": by, "comment": comment }),
                    )
                    .await?;
                Ok(d.id)
            }
        }
    }

    /// The version of `namespace/name` a trigger starts: the server's active one, or the
    /// newest recorded in the home.
    pub(crate) async fn source(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Source, ExpectedError> {
        match self {
            Self::Local { store, .. } => {
                let not_found = || {
                    // Worded as the server words it, so both read the same.
                    ExpectedError::Refused(format!("pipeline `{namespace}/{name}` not found"))
                };
                let newest = store
                    .versions(namespace, name)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(not_found)?;
                let def = store
                    .definition(&newest.hash)
                    .await?
                    .ok_or_else(not_found)?;
                Ok(Source { text: def.source })
            }
            Self::Remote(c) => {
                let doc: Value = c.get(&["pipelines", namespace, name], &[]).await?;
                let text = doc["source"].as_str().ok_or_else(|| {
                    ExpectedError::Refused(format!(
                        "pipeline `{namespace}/{name}` has no valid version"
                    ))
                })?;
                Ok(Source {
                    text: text.to_owned(),
                })
            }
        }
    }

    /// Creates a manual run of `pipeline` (whose text is `source`); the same idempotency key
    /// returns the earlier run.
    pub(crate) async fn trigger(
        &self,
        pipeline: &baton_core::Pipeline,
        source: &Source,
        params: Map<String, Value>,
        idempotency_key: Option<String>,
        no_cache: bool,
    ) -> Result<RunId, ExpectedError> {
        match self {
            Self::Local { store, .. } => {
                let (namespace, name) = (pipeline.id.namespace.as_str(), pipeline.id.name.as_str());
                let path = store
                    .versions(namespace, name)
                    .await?
                    .into_iter()
                    .find(|v| v.hash == pipeline.version.to_string())
                    .and_then(|v| v.path);
                let base_dir = base_dir(store.as_ref(), namespace, name, path.as_deref()).await?;
                let created = baton_engine::create_run(
                    store.as_ref(),
                    baton_engine::RunRequest {
                        pipeline,
                        source: &source.text,
                        path,
                        base_dir,
                        params,
                        trigger: baton_core::state::RunTrigger::Manual,
                        logical_date: None,
                        idempotency_key,
                        // Driven right here in the foreground, as `baton run` is: a direct
                        // run, not held back by the pipeline's concurrency (a server's is).
                        admission: None,
                        backfill_id: None,
                        no_cache,
                    },
                )
                .await?;
                Ok(created.id)
            }
            Self::Remote(c) => {
                let run: Run = c
                    .post(
                        &[
                            "pipelines",
                            pipeline.id.namespace.as_str(),
                            pipeline.id.name.as_str(),
                            "runs",
                        ],
                        &json!({
                            "params": params,
                            "idempotency_key": idempotency_key,
                            "no_cache": no_cache,
                        }),
                    )
                    .await?;
                Ok(run.id)
            }
        }
    }

    /// Waits until a run ends (a server drives it) and returns it.
    pub(crate) async fn wait(&self, run: &RunId) -> Result<RunView, ExpectedError> {
        loop {
            let view = self.run_view(run.as_str()).await?;
            if view.run.state.is_final() {
                return Ok(view);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every pool, with its slots in use and tasks waiting.
    pub(crate) async fn pools(&self) -> Result<Vec<Pool>, ExpectedError> {
        match self {
            Self::Local { store, .. } => Ok(store
                .pools(baton_engine::now_ms())
                .await?
                .into_iter()
                .map(Pool::from)
                .collect()),
            Self::Remote(c) => c.get(&["pools"], &[]).await,
        }
    }

    /// Creates a pool or changes its slots; returns it as it is now.
    pub(crate) async fn set_pool(
        &self,
        name: &str,
        slots: i64,
        description: Option<&str>,
    ) -> Result<Pool, ExpectedError> {
        match self {
            Self::Local { store, .. } => {
                if let Some(problem) = baton_engine::pool_problem(name, slots) {
                    return Err(ExpectedError::Usage(problem));
                }
                let now = baton_engine::now_ms();
                let slots = u32::try_from(slots).unwrap_or(0);
                store.put_pool(name, slots, description, now).await?;
                store
                    .pool(name, now)
                    .await?
                    .map(Pool::from)
                    .ok_or_else(|| no_pool(name))
            }
            Self::Remote(c) => {
                c.put(
                    &["pools", name],
                    &json!({ "slots": slots, "description": description }),
                )
                .await
            }
        }
    }

    /// Deletes a pool; returns it as it was.
    pub(crate) async fn delete_pool(&self, name: &str) -> Result<Pool, ExpectedError> {
        match self {
            Self::Local { store, .. } => {
                let pool = store
                    .pool(name, baton_engine::now_ms())
                    .await?
                    .ok_or_else(|| no_pool(name))?;
                if !store.delete_pool(name).await? {
                    return Err(no_pool(name));
                }
                Ok(pool.into())
            }
            Self::Remote(c) => c.delete(&["pools", name]).await,
        }
    }

    /// Prints an attempt's log as it is now (the latest attempt when `attempt` is `None`),
    /// piece by piece as it is read: a log of any size takes no more memory than a piece.
    pub(crate) async fn print_log(
        &self,
        run: &RunId,
        key: &TaskKey,
        attempt: Option<u32>,
        out: &mut Output,
    ) -> Result<(), ExpectedError> {
        match self {
            Self::Local { home, store, .. } => {
                let mut tail = local_tail(home, store, run, key, attempt).await?;
                loop {
                    let piece = tail.read_available().await.map_err(log_error)?;
                    if piece.is_empty() {
                        return Ok(());
                    }
                    out.print_bytes(&piece)?;
                }
            }
            Self::Remote(c) => {
                let mut resp = c
                    .send(
                        Method::GET,
                        &log_path(run, key),
                        &attempt_query(attempt, None),
                        text_accept(),
                        None,
                    )
                    .await?;
                let url = resp.url().clone();
                while let Some(piece) = resp.chunk().await.map_err(|e| bad_answer(&url, &e))? {
                    out.print_bytes(&piece)?;
                }
                Ok(())
            }
        }
    }

    /// Prints an attempt's log and what it writes next until the attempt ends.
    pub(crate) async fn follow_log(
        &self,
        run: &RunId,
        key: &TaskKey,
        attempt: Option<u32>,
        out: &mut Output,
    ) -> Result<(), ExpectedError> {
        match self {
            Self::Local { home, store, .. } => {
                let mut tail = local_tail(home, store, run, key, attempt).await?;
                loop {
                    match tail.next().await.map_err(log_error)? {
                        Tail::Data(bytes) => out.print_bytes(&bytes)?,
                        Tail::Idle => {}
                        Tail::End => return Ok(()),
                    }
                }
            }
            Self::Remote(c) => follow_remote(c, run, key, attempt, out).await,
        }
    }
}

/// Where a triggered run's commands run: where the pipeline's newest run ran (a server
/// records the file's directory), else the directory of the file as recorded.
async fn base_dir(
    store: &dyn Store,
    namespace: &str,
    name: &str,
    path: Option<&str>,
) -> Result<String, ExpectedError> {
    let newest = store
        .runs(
            &RunFilter {
                limit: 1,
                ..RunFilter::default()
            }
            .for_pipeline(Some(&format!("{namespace}/{name}"))),
        )
        .await?;
    if let Some(run) = newest.into_iter().next() {
        return Ok(run.base_dir);
    }
    let dir = path
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| ".".into());
    Ok(dir.display().to_string())
}

/// Worded as the server words it, so both read the same.
fn no_pool(name: &str) -> ExpectedError {
    ExpectedError::Refused(format!("pool `{name}` does not exist"))
}

fn log_path<'a>(run: &'a RunId, key: &'a TaskKey) -> [&'a str; 5] {
    ["runs", run.as_str(), "tasks", key.as_str(), "log"]
}

fn attempt_query(attempt: Option<u32>, follow: Option<bool>) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(n) = attempt {
        q.push(("attempt", n.to_string()));
    }
    if follow == Some(true) {
        q.push(("follow", "true".to_owned()));
    }
    q
}

fn text_accept() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static("text/plain"));
    h
}
