//! How this process opens its store and drives runs, as the command line and `baton.toml`
//! set it once at start: the database, where logs go, the engine's settings.

use std::path::Path;
use std::sync::Arc;

use baton_core::ids::{RunId, TaskKey};
use baton_engine::Observers;
use baton_engine::log_tail::{LogError, LogTail};
use baton_store::{LogStore, SqlStore, Store};

use crate::error::ExpectedError;

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

/// The log store of the store this process opened (`[logs] store`), set when it opens it.
static LOGS: std::sync::OnceLock<Arc<dyn LogStore>> = std::sync::OnceLock::new();

/// Where this process writes and reads attempts' logs: as `[logs]` says for the store it
/// opened, else files under `home`.
pub(crate) fn logs(home: &Path) -> baton_engine::executor::Logs {
    let mut logs = baton_engine::executor::Logs::files(home);
    if let Some(store) = LOGS.get() {
        logs.store = Arc::clone(store);
    }
    if let Some(s) = ENGINE.get() {
        logs.max_bytes_per_attempt = s.logs.max_bytes_per_attempt;
    }
    logs
}

fn opened(store: SqlStore, home: &Path) -> Arc<dyn Store> {
    let kind = ENGINE.get().and_then(|s| s.logs.store);
    let _ = LOGS.set(store.logs(kind, home));
    Arc::new(store)
}

/// The store, created (with the home, for the embedded database) if needed.
pub(crate) async fn open_store(home: &Path) -> Result<Arc<dyn Store>, ExpectedError> {
    Ok(opened(
        SqlStore::open_database(&database(), home, true).await?,
        home,
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
            Ok(store) => Ok(opened(store, home)),
            Err(baton_store::Error::NoHome(home)) => Err(ExpectedError::NoHome {
                home: home.display().to_string(),
            }),
            Err(e) => Err(e.into()),
        },
    }
}

/// An attempt's log in the home's store, read from its start.
pub(crate) async fn local_tail(
    home: &Path,
    store: &Arc<dyn Store>,
    run: &RunId,
    key: &TaskKey,
    attempt: Option<u32>,
) -> Result<LogTail, ExpectedError> {
    LogTail::open(Arc::clone(store), logs(home).store, run, key, attempt, 0)
        .await
        .map_err(log_error)
}

pub(crate) fn log_error(e: LogError) -> ExpectedError {
    match e {
        LogError::Store(e) | LogError::Log(baton_store::LogError::Database(e)) => e.into(),
        LogError::Log(baton_store::LogError::Read { path, source }) => ExpectedError::Read {
            path: path.display().to_string(),
            source,
        },
        other => ExpectedError::Refused(other.to_string()),
    }
}

/// The `[engine]` settings (flags, `BATON_*`, `baton.toml`), set once at start.
static ENGINE: std::sync::OnceLock<EngineSettings> = std::sync::OnceLock::new();

/// How every run this process drives is driven, as configured.
#[derive(Debug, Clone)]
pub(crate) struct EngineSettings {
    pub(crate) interruption_limit: u32,
    pub(crate) logs: baton_store::LogSettings,
    pub(crate) leases: baton_control::Leases,
    pub(crate) kill_grace: std::time::Duration,
    /// Signs the requests of `http:` steps (`[http] signing_secret_file`).
    pub(crate) http_signing_secret: Option<Vec<u8>>,
    /// `[executors.NAME]`.
    pub(crate) executors: crate::executors_config::Instances,
    /// `[artifacts]`.
    pub(crate) artifacts: baton_engine::artifacts::StoreConfig,
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
            logs: cli.logs,
            leases: baton_control::Leases {
                ttl: ttl.as_std(),
                renew_interval: renew.as_std(),
                control_interval: cli.control_interval.as_std(),
            },
            kill_grace: cli.kill_grace.as_std(),
            http_signing_secret: cli
                .http_signing_secret_file
                .as_deref()
                .map(|p| read_secret(p, "HTTP signing secret"))
                .transpose()?,
            executors: cli.executors.clone(),
            artifacts: cli.artifacts.clone(),
        })
    }
}

/// Secrets shorter than this are guessable; 32 bytes is what SHA-256 gives back.
const MIN_SECRET: usize = 32;

/// The secret in `path` (`what` names it in errors), without the line end an editor adds.
pub(crate) fn read_secret(path: &Path, what: &str) -> Result<Vec<u8>, ExpectedError> {
    let mut bytes = std::fs::read(path).map_err(|e| {
        ExpectedError::Usage(format!("cannot read the {what} `{}`: {e}", path.display()))
    })?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.len() < MIN_SECRET {
        return Err(ExpectedError::Usage(format!(
            "the {what} `{}` has {} bytes, fewer than {MIN_SECRET}\n\
             (hint: make one with `head -c 32 /dev/urandom | base64 > {}`)",
            path.display(),
            bytes.len(),
            path.display()
        )));
    }
    Ok(bytes)
}

/// A secret sent as text (a bearer token): [`read_secret`], and printable.
pub(crate) fn read_text_secret(path: &Path, what: &str) -> Result<String, ExpectedError> {
    let bytes = read_secret(path, what)?;
    String::from_utf8(bytes)
        .ok()
        .filter(|s| s.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ExpectedError::Usage(format!(
                "the {what} `{}` must be printable text without spaces\n(hint: make one with `head -c 32 /dev/urandom | base64 > {}`)",
                path.display(),
                path.display()
            ))
        })
}

/// Sends `http:` steps' requests, as configured.
pub(crate) fn http_executor() -> baton_engine::executor::HttpExecutor {
    baton_engine::executor::HttpExecutor::new(
        ENGINE.get().and_then(|s| s.http_signing_secret.clone()),
    )
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
    opts.logs = logs(home);
    if let Some(s) = ENGINE.get() {
        opts.interruption_limit = s.interruption_limit;
        opts.lease_ttl = s.leases.ttl;
        opts.lease_renew_interval = s.leases.renew_interval;
        opts.control_interval = s.leases.control_interval;
    }
    opts
}

/// What drives the runs this process drives: the configured executors, over `store`.
pub(crate) fn engine(store: Arc<dyn Store>, opts: baton_engine::Options) -> baton_engine::Engine {
    let config = ENGINE
        .get()
        .map(|s| s.artifacts.clone())
        .unwrap_or_default();
    let executors = executors().with_artifact_store(config, opts.home.clone());
    baton_engine::Engine::new(store, Arc::new(executors), opts)
}

/// The executors of the attempts this process starts (its `baton run`s, or as a worker).
pub(crate) fn executors() -> baton_engine::executor::Executors {
    let local = executor();
    let grace = local.kill_grace;
    baton_engine::executor::Executors::new(Arc::new(local), http_executor())
        .with_stop_grace(grace)
        .with_instances(
            ENGINE
                .get()
                .map(|s| s.executors.clone())
                .unwrap_or_default(),
        )
}

/// The executor of the attempts this process starts, as configured.
fn executor() -> baton_engine::executor::LocalExecutor {
    let mut executor = baton_engine::executor::LocalExecutor::default();
    if let Some(s) = ENGINE.get() {
        executor.kill_grace = s.kill_grace;
    }
    executor
}

/// The names of the `[executors.NAME]` of `baton.toml`, which pipelines are checked against.
pub(crate) fn executor_names() -> Vec<baton_core::ids::ExecutorName> {
    ENGINE
        .get()
        .map(|s| s.executors.keys().cloned().collect())
        .unwrap_or_default()
}

/// Refuses, before a run is created, a pipeline with tasks for workers, which only a server
/// has (`executor:` names were checked when the file was loaded, with their position).
pub(crate) fn check_placement(
    pipeline: &baton_core::model::Pipeline,
    path: &str,
) -> Result<(), ExpectedError> {
    let tasks = pipeline
        .tasks
        .iter()
        .chain(pipeline.on_success.as_ref())
        .chain(pipeline.on_failure.as_ref());
    let instances = ENGINE.get().map(|s| &s.executors);
    for task in tasks {
        let named = task
            .executor
            .as_ref()
            .and_then(|n| instances.and_then(|i| i.get(n)));
        let labels = match (&task.runs_on, named) {
            (Some(r), _) => r.clone(),
            (None, Some(baton_engine::executor::ExecutorInstance::Workers { labels })) => {
                baton_core::model::RunsOn {
                    labels: labels.clone(),
                    wait: baton_core::model::RunsOn::DEFAULT_WAIT,
                }
            }
            _ => continue,
        };
        return Err(ExpectedError::Usage(format!(
            "{path}: task `{}`: {}",
            task.id,
            baton_engine::executor::no_workers(&labels)
        )));
    }
    Ok(())
}
