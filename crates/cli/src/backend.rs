//! Where commands find runs: the local home, or a `baton server` (`--server URL`). Both
//! answer with the store's own records, so every command renders them with the same code and
//! prints the same thing either way.
//!
//! A new remote command is one method here with a `Local` arm (the store or the engine) and a
//! `Remote` arm (a call of the API through `Client`), both returning the same record type.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::RunState;
use baton_engine::Observers;
use baton_engine::log_tail::{LogError, LogTail, Tail};
use baton_server::api_model::{Attempt, DeadLetter, Pool, Run, Task};
use baton_store::{DeadLetterCursor, DeadLetterFilter, RunFilter, SqlStore, Store};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::{Client, bad_answer};
use crate::error::ExpectedError;
use crate::output::Output;

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
}

impl RunView {
    pub(crate) async fn load(store: &dyn Store, id: &RunId) -> Result<Self, ExpectedError> {
        let run = store
            .run(id)
            .await?
            .ok_or_else(|| baton_store::Error::RunNotFound(id.to_string()))?;
        Ok(Self {
            run: run.into(),
            tasks: store.tasks(id).await?.into_iter().map(Task::from).collect(),
            attempts: store
                .attempts(id)
                .await?
                .into_iter()
                .map(Attempt::from)
                .collect(),
            children: store
                .child_runs(id)
                .await?
                .into_iter()
                .map(Run::from)
                .collect(),
        })
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

/// `--database` (or `BATON_DATABASE_URL`, or `[database]`), set once at start.
static DATABASE: std::sync::OnceLock<baton_store::Database> = std::sync::OnceLock::new();

/// Sets the database every command of this process opens.
pub(crate) fn configure_database(database: baton_store::Database) {
    let _ = DATABASE.set(database);
}

/// The database commands open: the configured one, else the home's SQLite file.
pub(crate) fn database() -> baton_store::Database {
    DATABASE.get().cloned().unwrap_or_default()
}

/// The store, created (with the home, for the embedded database) if needed.
pub(crate) async fn open_store(home: &Path) -> Result<Arc<dyn Store>, ExpectedError> {
    Ok(Arc::new(
        SqlStore::open_database(&database(), home, true).await?,
    ))
}

/// Whether a command may create the home it is pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HomeUse {
    /// It records new runs or pools: a fresh home is created.
    Create,
    /// It reads or changes what is recorded: with no home there is nothing to act on, and
    /// creating one would leave an empty `.baton` wherever the command happened to be typed.
    Existing,
}

/// The home's store, created or not as `usage` allows.
pub(crate) async fn open_home(
    home: &Path,
    usage: HomeUse,
) -> Result<Arc<dyn Store>, ExpectedError> {
    match usage {
        HomeUse::Create => open_store(home).await,
        HomeUse::Existing => match SqlStore::open_database(&database(), home, false).await {
            Ok(store) => Ok(Arc::new(store)),
            Err(baton_store::Error::NoHome(home)) => Err(ExpectedError::NoHome {
                home: home.display().to_string(),
            }),
            Err(e) => Err(e.into()),
        },
    }
}

fn log_error(e: LogError) -> ExpectedError {
    match e {
        LogError::Store(e) => e.into(),
        LogError::Read { path, source } => ExpectedError::Read { path, source },
        other => ExpectedError::Refused(other.to_string()),
    }
}

/// The `[engine]` settings (flags, `BATON_*`, `baton.toml`), set once at start.
static ENGINE: std::sync::OnceLock<EngineSettings> = std::sync::OnceLock::new();

/// How every run this process drives is driven, as configured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineSettings {
    pub(crate) interruption_limit: u32,
    pub(crate) leases: baton_server::Leases,
    pub(crate) kill_grace: std::time::Duration,
}

impl EngineSettings {
    /// The settings `cli` ended with, checked against each other.
    pub(crate) fn of(cli: &crate::cli::Cli) -> Result<Self, ExpectedError> {
        let (ttl, renew) = (cli.lease_ttl, cli.lease_renew_interval);
        if renew.as_millis() == 0 || renew >= ttl {
            return Err(ExpectedError::Usage(format!(
                "`lease_renew_interval` ({renew}) must be shorter than `lease_ttl` ({ttl}) and \
                 above zero\n(hint: renew a few times per lease, e.g. lease_ttl = \"30s\" and \
                 lease_renew_interval = \"10s\")"
            )));
        }
        if cli.control_interval.as_millis() == 0 {
            return Err(ExpectedError::Usage(
                "`control_interval` must be above zero".to_owned(),
            ));
        }
        Ok(Self {
            interruption_limit: cli.interruption_limit,
            leases: baton_server::Leases {
                ttl: ttl.as_std(),
                renew_interval: renew.as_std(),
                control_interval: cli.control_interval.as_std(),
            },
            kill_grace: cli.kill_grace.as_std(),
        })
    }
}

/// Sets what every run this process drives takes from the settings.
pub(crate) fn configure_engine(settings: EngineSettings) {
    let _ = ENGINE.set(settings);
}

/// How runs are driven in this process: the engine's defaults and the settings, reporting
/// to `observers`.
pub(crate) fn engine_options(home: &Path, observers: &Observers) -> baton_engine::Options {
    let mut opts = baton_engine::Options::new(home.to_path_buf());
    opts.observers = observers.clone();
    if let Some(s) = ENGINE.get() {
        opts.interruption_limit = s.interruption_limit;
        opts.lease_ttl = s.leases.ttl;
        opts.lease_renew_interval = s.leases.renew_interval;
        opts.control_interval = s.leases.control_interval;
    }
    opts
}

/// The executor of the attempts this process starts, as configured.
pub(crate) fn executor() -> baton_engine::executor::LocalExecutor {
    let mut executor = baton_engine::executor::LocalExecutor::default();
    if let Some(s) = ENGINE.get() {
        executor.kill_grace = s.kill_grace;
    }
    executor
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
            Self::Remote(c) => c.get(&["runs", run], &[]).await,
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
                            let opts = engine_options(home, observers);
                            let executor = Arc::new(executor());
                            let state = baton_engine::execute(
                                Arc::clone(store),
                                executor,
                                &id,
                                &opts,
                                None,
                                rx,
                            )
                            .await?;
                            CancelOutcome::Ended(state)
                        }
                    };
                Ok((id, outcome))
            }
            Self::Remote(c) => {
                let view = self.run_view(run).await?;
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
                        trigger: "manual",
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

    /// An attempt's log as it is now (the latest attempt when `attempt` is `None`).
    pub(crate) async fn log(
        &self,
        run: &RunId,
        key: &TaskKey,
        attempt: Option<u32>,
    ) -> Result<Vec<u8>, ExpectedError> {
        match self {
            Self::Local { store, .. } => {
                let mut tail = LogTail::open(Arc::clone(store), run, key, attempt, 0)
                    .await
                    .map_err(log_error)?;
                tail.read_to_end().await.map_err(log_error)
            }
            Self::Remote(c) => {
                let resp = c
                    .send(
                        Method::GET,
                        &log_path(run, key),
                        &attempt_query(attempt, None),
                        text_accept(),
                        None,
                    )
                    .await?;
                let url = resp.url().clone();
                Ok(resp
                    .bytes()
                    .await
                    .map_err(|e| bad_answer(&url, &e))?
                    .to_vec())
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
            Self::Local { store, .. } => {
                let mut tail = LogTail::open(Arc::clone(store), run, key, attempt, 0)
                    .await
                    .map_err(log_error)?;
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

/// Follows a log over server-sent events: each event's `data:` lines, joined with `\n`, are
/// a piece of the log; `end` closes it. A dropped stream (a server restarting) is reopened
/// from the last event's id, a few times.
async fn follow_remote(
    c: &Client,
    run: &RunId,
    key: &TaskKey,
    attempt: Option<u32>,
    out: &mut Output,
) -> Result<(), ExpectedError> {
    let mut last_id: Option<String> = None;
    let mut reconnects = 0;
    loop {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(id) = last_id
            .as_deref()
            .and_then(|i| HeaderValue::from_str(i).ok())
        {
            headers.insert("last-event-id", id);
        }
        let sent = c
            .send(
                Method::GET,
                &log_path(run, key),
                &attempt_query(attempt, None),
                headers,
                None,
            )
            .await;
        let mut resp = match sent {
            Ok(resp) => resp,
            Err(ExpectedError::Unreachable { .. })
                if reconnects > 0 && reconnects <= RECONNECTS =>
            {
                reconnects += 1;
                tokio::time::sleep(RECONNECT_WAIT).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let url = resp.url().clone();
        let is_stream = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_stream {
            // The attempt has ended: the rest of the log (from `Last-Event-ID` on) comes as
            // plain text.
            let bytes = resp.bytes().await.map_err(|e| bad_answer(&url, &e))?;
            out.print_bytes(&bytes)?;
            return Ok(());
        }
        let mut parser = SseParser::default();
        while let Ok(Some(chunk)) = resp.chunk().await {
            for event in parser.feed(&chunk) {
                if let Some(id) = event.id {
                    last_id = Some(id);
                }
                match event.name.as_str() {
                    "end" => return Ok(()),
                    "message" => out.print(&event.data)?,
                    _ => {}
                }
            }
        }
        reconnects += 1;
        if reconnects > RECONNECTS {
            return Err(bad_answer(
                &url,
                &"the log stream ended before the attempt did",
            ));
        }
        tokio::time::sleep(RECONNECT_WAIT).await;
    }
}

#[derive(Debug, PartialEq)]
struct SseEvent {
    name: String,
    id: Option<String>,
    data: String,
}

/// Server-sent events from a byte stream, by the rules of the HTML standard (lines end with
/// `\r\n`, `\r` or `\n`; `data` lines join with `\n`; comments and unknown fields ignored).
#[derive(Debug, Default)]
struct SseParser {
    buf: Vec<u8>,
    name: Option<String>,
    id: Option<String>,
    data: Option<String>,
    /// A `\r` ended the last line; a `\n` right after it belongs to it.
    after_cr: bool,
}

impl SseParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    let line = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                    if let Some(e) = self.line(&line) {
                        events.push(e);
                    }
                }
                _ => self.buf.push(b),
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let name = self.name.take();
            let data = self.data.take()?;
            return Some(SseEvent {
                name: name.unwrap_or_else(|| "message".into()),
                id: self.id.clone(),
                data,
            });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_across_chunks_and_line_ends() {
        let mut p = SseParser::default();
        assert!(p.feed(b"id: 4\ndata: one\r").is_empty());
        let e = p.feed(b"\ndata: \n\n: keep-alive\n\nevent: end\nid: 9\ndata: {}\n\n");
        assert_eq!(
            e,
            [
                SseEvent {
                    name: "message".into(),
                    id: Some("4".into()),
                    data: "one\n".into()
                },
                SseEvent {
                    name: "end".into(),
                    id: Some("9".into()),
                    data: "{}".into()
                },
            ]
        );
    }
}
