//! Running the server: load pipelines, resume unfinished runs, serve HTTP until a signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use baton_core::state::RunState;
use baton_engine::Observers;
use baton_engine::executor::LocalExecutor;
use baton_store::{RunFilter, SqlStore, Store};

use baton_control::Runner;

use crate::{AppState, router};

/// How the server is started.
#[derive(Debug, Clone)]
pub struct Config {
    pub pipelines: PathBuf,
    pub home: PathBuf,
    pub listen: SocketAddr,
    /// Listening beyond loopback exposes an API without authentication (which comes later).
    pub allow_remote: bool,
    /// On SIGTERM, how long running attempts may take to finish before they are stopped.
    pub shutdown_grace: std::time::Duration,
    /// Most runs one catch-up creates per schedule (`catchup: all` after a long outage).
    pub catchup_cap: usize,
    /// Reload when files under `pipelines` change (SIGHUP and `POST /api/v1/reload` always do).
    pub watch: bool,
    /// Told of every run the server drives, besides the standard observers (traces).
    pub observers: Observers,
    /// Where OpenLineage events go (nowhere by default).
    pub lineage: baton_observe::lineage::LineageConfig,
    /// How often to look for runs nobody drives (see [`baton_control::takeover`]).
    pub takeover_interval: std::time::Duration,
    /// Host names answered besides the loopback ones and the listening IP (see
    /// [`crate::guard`]).
    pub allowed_hosts: Vec<crate::guard::AllowedHost>,
    /// Variables of the server's environment that tasks get besides the basics
    /// (`[engine] inherit_env`); never a secret.
    pub inherit_env: Vec<baton_engine::environment::EnvPattern>,
    /// Times a task's attempts may be lost to baton stopping before the task fails.
    pub interruption_limit: u32,
    /// How the runs it drives hold their leases (`[engine] lease_ttl`, ...).
    pub leases: baton_control::Leases,
    /// Time between SIGTERM and SIGKILL when a task is stopped (`[engine] kill_grace`).
    pub kill_grace: std::time::Duration,
    /// Where runs are recorded (default: the home's SQLite file).
    pub database: baton_store::Database,
    /// Where attempts' logs go, and how much of each is kept (`[logs]`).
    pub logs: baton_store::LogSettings,
    /// Sends the requests of `http:` steps (signed with `[http] signing_secret_file`).
    pub http: baton_engine::executor::HttpExecutor,
    /// The `[executors.NAME]` instances tasks may name.
    pub executors: std::collections::BTreeMap<
        baton_core::ids::ExecutorName,
        baton_engine::executor::ExecutorInstance,
    >,
    /// The worker API (`[workers]`): off without a secret.
    pub workers: Option<WorkersConfig>,
    /// Serve HTTPS with this identity (`[server] tls_cert_file`, `tls_key_file`).
    pub tls: Option<crate::tls::TlsFiles>,
    /// Where attempts' artifacts are kept (`[artifacts]`; default: under the home).
    pub artifacts: baton_engine::artifacts::StoreConfig,
    /// The server's URL as callees of `http:` steps reach it (`[server] public_url`);
    /// `SCHEME://ADDRESS` of the listener by default.
    pub public_url: Option<String>,
}

/// `[workers]`: the secret every `baton worker` sends, and how often they must be heard.
#[derive(Clone)]
pub struct WorkersConfig {
    pub secret: String,
    pub hub: baton_engine::workers::HubSettings,
}

impl std::fmt::Debug for WorkersConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkersConfig")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The defaults of `baton server`, for `pipelines` and `home`.
    pub fn new(pipelines: PathBuf, home: PathBuf) -> Self {
        Self {
            pipelines,
            home,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allow_remote: false,
            shutdown_grace: std::time::Duration::from_secs(30),
            catchup_cap: baton_control::scheduler::DEFAULT_CATCHUP_CAP,
            watch: true,
            observers: Observers::default(),
            lineage: baton_observe::lineage::LineageConfig::default(),
            takeover_interval: baton_control::takeover::DEFAULT_INTERVAL,
            allowed_hosts: Vec::new(),
            inherit_env: Vec::new(),
            interruption_limit: baton_engine::DEFAULT_INTERRUPTION_LIMIT,
            leases: baton_control::Leases::default(),
            kill_grace: LocalExecutor::default().kill_grace,
            database: baton_store::Database::default(),
            logs: baton_store::LogSettings::default(),
            http: baton_engine::executor::HttpExecutor::default(),
            executors: std::collections::BTreeMap::new(),
            workers: None,
            tls: None,
            artifacts: baton_engine::artifacts::StoreConfig::default(),
            public_url: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "refusing to listen on `{0}`: the API has no authentication yet\n(hint: listen on 127.0.0.1, or pass --allow-remote-unauthenticated if a proxy in front of baton authenticates)"
    )]
    NotLoopback(SocketAddr),
    #[error("pipelines directory `{0}` does not exist\n(hint: pass --pipelines DIR)")]
    NoPipelines(String),
    #[error("cannot listen on `{addr}`: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Watch(#[from] baton_control::watch::WatchError),
    #[error("cannot handle SIGHUP: {0}")]
    Signal(std::io::Error),
    #[error("{0}")]
    Store(#[from] baton_store::Error),
    #[error(transparent)]
    Delivery(#[from] baton_observe::delivery::SetupError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}\n(hint: check `[artifacts]` in baton.toml)")]
    Artifacts(String),
}

/// Runs until SIGINT or SIGTERM, then stops accepting requests and drains: running attempts
/// get a grace period to finish, the rest are recorded interrupted, and the next start resumes
/// every unfinished run (as it does after a crash).
pub async fn serve(
    config: Config,
    on_ready: impl FnOnce(SocketAddr, &'static str),
) -> Result<(), Error> {
    if !config.listen.ip().is_loopback() && !config.allow_remote {
        return Err(Error::NotLoopback(config.listen));
    }
    // Read before anything starts: a bad certificate stops the server at once.
    let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
    // Absolute, so that runs resolve their files the same way after a restart from elsewhere.
    let pipelines = match tokio::fs::canonicalize(&config.pipelines).await {
        Ok(p) if tokio::fs::metadata(&p).await.is_ok_and(|m| m.is_dir()) => p,
        _ => return Err(Error::NoPipelines(config.pipelines.display().to_string())),
    };
    let sql = SqlStore::open_database(&config.database, &config.home, true).await?;
    let logs = baton_engine::executor::Logs {
        store: sql.logs(config.logs.store, &config.home),
        max_bytes_per_attempt: config.logs.max_bytes_per_attempt,
    };
    let store: Arc<dyn Store> = Arc::new(sql);
    let callbacks = baton_engine::executor::Callbacks::default();
    let executors = baton_engine::executor::Executors::new(
        Arc::new(LocalExecutor {
            kill_grace: config.kill_grace,
        }),
        config.http.clone().with_callbacks(callbacks.clone()),
    )
    .with_stop_grace(config.kill_grace)
    .with_instances(config.executors.clone());
    let artifacts = config
        .artifacts
        .open(&config.home)
        .map_err(Error::Artifacts)?;
    let executors = executors.with_artifacts(artifacts.clone());
    let hub = config.workers.as_ref().map(|w| {
        let hub = baton_engine::workers::WorkerHub::new(baton_engine::workers::HubSettings {
            stop_grace: config.kill_grace,
            ..w.hub
        });
        hub.set_artifacts(artifacts.clone());
        hub
    });
    let executors = match &hub {
        Some(hub) => executors.with_workers(hub.clone()),
        None => executors,
    };
    // In the background: an engine that does not answer must not hold the server's start.
    tokio::spawn({
        let (executors, store) = (executors.clone(), Arc::clone(&store));
        async move {
            let removed = executors.sweep(store.as_ref()).await;
            if removed > 0 {
                tracing::info!(removed, "removed the containers of runs that are over");
            }
        }
    });
    let runner = Runner::new(Arc::clone(&store), Arc::new(executors), config.home.clone())
        .with_drain_grace(config.shutdown_grace)
        .with_environment(baton_engine::TaskEnvironment::Clean {
            allow: config.inherit_env.clone(),
            except: baton_engine::environment::Withheld::default(),
        })
        .with_interruption_limit(config.interruption_limit)
        .with_leases(config.leases)
        .with_logs(logs)
        .with_observer(Arc::new(config.observers.clone()));
    let secrets: Arc<dyn baton_observe::secrets::Secrets> =
        Arc::new(baton_observe::secrets::EnvSecrets);
    let (observers, outbox) =
        baton_observe::observers::standard(&config.lineage, Arc::clone(&secrets))?;
    let runner = runner.with_observer(Arc::new(observers));
    let mut state = AppState::new(Arc::clone(&store), runner, pipelines, secrets)
        .with_callbacks(callbacks.clone());
    if let (Some(hub), Some(w)) = (hub, &config.workers) {
        state = state.with_workers(crate::worker_api::WorkerApi::new(hub, &w.secret));
        tracing::info!("the worker API is on");
    }
    state.metrics.install_global();
    state.metrics.spawn_upkeep();
    // The state's runner reports to its metrics; the one built above does not.
    let runner = state.runner.clone();
    let report = state.reload().await;
    tracing::info!(
        loaded = report.loaded,
        invalid = report.invalid,
        "pipelines loaded"
    );
    // Kept alive until the server stops.
    let _watch = if config.watch {
        Some(baton_control::watch::watch(state.control.clone()).await?)
    } else {
        None
    };
    baton_control::watch::reload_on_sighup(state.control.clone()).map_err(Error::Signal)?;
    baton_control::upstream::watch(state.control.clone());
    // Bound before runs resume: a resumed step with `callback` hands out the address.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: config.listen,
        source,
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    callbacks.set_base(
        config
            .public_url
            .as_deref()
            .unwrap_or(&format!("{scheme}://{addr}")),
    );
    resume_unfinished(store.as_ref(), &runner).await?;
    baton_control::takeover::Takeover::new(state.control.clone()).spawn(config.takeover_interval);
    tokio::spawn(
        baton_control::scheduler::Scheduler::new(state.control.clone(), config.catchup_cap).run(),
    );
    let hosts = crate::guard::AllowedHosts::for_listen(addr, &config.allowed_hosts);
    if addr.ip().is_unspecified() && config.allowed_hosts.is_empty() {
        tracing::warn!(
            listen = %addr,
            allowed_hosts = ?hosts.names(),
            "listening on every interface, but answering only requests addressed to these hosts: list the names clients use in `[server] allowed_hosts` (or --allowed-host)"
        );
    } else {
        tracing::info!(allowed_hosts = ?hosts.names(), "answering requests for these hosts");
    }
    let state = state.with_allowed_hosts(hosts);
    on_ready(addr, if tls.is_some() { "https" } else { "http" });
    // Open log streams end at the signal; graceful shutdown would wait for them otherwise.
    let streams = runner.clone();
    // Workers report over HTTP: with a worker API, runs drain while it still answers, so an
    // attempt on a worker that ends within the grace is recorded rather than cut off.
    let drain_first = state
        .workers
        .as_ref()
        .map(|api| (runner.clone(), api.hub.clone()));
    let stop = async move {
        baton_control::shutdown::shutdown_signal().await;
        streams.close_streams();
        if let Some((runner, hub)) = drain_first {
            tracing::info!("draining runs; the worker API answers until they are handed back");
            runner.drain().await;
            hub.close();
        }
    };
    match tls {
        Some(acceptor) => crate::tls::serve(listener, router(state), acceptor, stop).await,
        None => axum::serve(listener, router(state))
            .with_graceful_shutdown(stop)
            .await
            .map_err(|source| Error::Listen { addr, source })?,
    }
    // Stop accepting work first (above), then hand runs back for the next start to resume
    // (already done with a worker API).
    tracing::info!("draining runs");
    runner.drain().await;
    if !outbox.settle(OUTBOX_GRACE).await {
        tracing::warn!(
            pending = outbox.pending(),
            "notifications and lineage events still unsent at shutdown"
        );
    }
    Ok(())
}

/// How long a stopping server waits for notifications and lineage events in flight.
const OUTBOX_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Picks up every run that was queued or running when the server last stopped.
async fn resume_unfinished(store: &dyn Store, runner: &Runner) -> Result<(), Error> {
    for state in [RunState::Running, RunState::Queued] {
        let mut before = None;
        loop {
            let page = store
                .runs(&RunFilter {
                    state: Some(state),
                    limit: 200,
                    before: before.clone(),
                    ..RunFilter::default()
                })
                .await?;
            for run in &page {
                tracing::info!(run = %run.id, "resuming");
                runner.resume(run);
            }
            match page.last() {
                Some(last) if page.len() == 200 => before = Some(last.id.to_string()),
                _ => break,
            }
        }
    }
    Ok(())
}
