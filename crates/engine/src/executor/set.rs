//! The executors of one engine, each attempt handed to the one for its kind of work and the
//! `executor:` it names: a process to the local executor, a request to the HTTP one, a
//! container to a Docker engine or a Kubernetes cluster, a `runs_on` task to the workers.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use baton_core::ids::{ExecutorName, RunId};
use tokio::sync::mpsc;

use baton_core::model::RunsOn;

use super::docker::{DockerExecutor, DockerSettings};
use super::kubernetes::{KubernetesExecutor, KubernetesSettings};
use super::{
    AttemptSpec, CancelHandle, Executor, Finished, HttpExecutor, Leftover, Outcome, Outputs,
    Unseen, Work,
};
use crate::artifacts::{ArtifactStore, LazyStore, StoreConfig};
use crate::workers::{WorkerExecutor, WorkerHub};

/// One `[executors.NAME]` of `baton.toml`.
#[derive(Debug, Clone)]
pub enum ExecutorInstance {
    /// Processes on this host.
    Local,
    /// Containers on a Docker engine.
    Docker(DockerSettings),
    /// Jobs on a Kubernetes cluster.
    Kubernetes(KubernetesSettings),
    /// `baton worker` agents carrying every one of `labels` (besides the task's `runs_on`).
    Workers { labels: Vec<String> },
}

impl ExecutorInstance {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Docker(_) => "docker",
            Self::Kubernetes(_) => "kubernetes",
            Self::Workers { .. } => "workers",
        }
    }
}

#[derive(Debug, Clone)]
enum Instance {
    Local,
    Docker(DockerExecutor),
    Kubernetes(KubernetesExecutor),
    /// Labels of the instance, until a hub is given.
    Workers(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Executors {
    processes: Arc<dyn Executor>,
    http: HttpExecutor,
    /// Containers of tasks that name no executor.
    docker: DockerExecutor,
    named: Arc<BTreeMap<ExecutorName, Instance>>,
    /// Where `runs_on` tasks go: none where no worker can connect (`baton run`).
    workers: Option<WorkerHub>,
    /// Where attempts' artifacts are kept: none where nothing configured one (tests).
    artifacts: Option<LazyStore>,
}

impl Executors {
    /// `processes` runs processes (the local executor); requests go to `http`; containers to
    /// the local Docker engine (`DOCKER_HOST`).
    pub fn new(processes: Arc<dyn Executor>, http: HttpExecutor) -> Self {
        Self {
            processes,
            http,
            docker: DockerExecutor::new(DockerSettings::default_instance(
                super::DEFAULT_STOP_GRACE,
            )),
            named: Arc::default(),
            workers: None,
            artifacts: None,
        }
    }

    /// Artifacts go to and come from `store`.
    #[must_use]
    pub fn with_artifacts(mut self, store: ArtifactStore) -> Self {
        self.artifacts = Some(LazyStore::opened(store));
        self
    }

    /// Artifacts go to and come from `config`'s store (under `home` for the default one),
    /// opened by the first attempt that moves any.
    #[must_use]
    pub fn with_artifact_store(mut self, config: StoreConfig, home: std::path::PathBuf) -> Self {
        self.artifacts = Some(LazyStore::new(config, home));
        self
    }

    /// Starts `spec` on the executor of this host that runs it, with its artifacts moved by
    /// `mover` (a worker's, through the control plane).
    pub fn start_moving(
        &self,
        mover: Arc<dyn crate::artifacts::Mover>,
        spec: AttemptSpec,
        done: mpsc::UnboundedSender<Finished>,
    ) -> CancelHandle {
        if spec.artifacts.is_empty() {
            return self.start_here(spec, done);
        }
        super::staged::start(self.clone(), mover, spec, done)
    }

    /// Starts `spec` on the executor of this host that runs it, moving no file.
    pub(super) fn start_here(
        &self,
        spec: AttemptSpec,
        done: mpsc::UnboundedSender<Finished>,
    ) -> CancelHandle {
        match self.route(&spec) {
            Ok(Route::Here(executor)) => executor.start(spec, done),
            Ok(Route::Workers(workers)) => workers.start(spec, done),
            Err(e) => refuse(spec, &done, e),
        }
    }

    /// `runs_on` tasks, and those naming a `workers` executor, go to `hub`'s workers.
    #[must_use]
    pub fn with_workers(mut self, hub: WorkerHub) -> Self {
        self.workers = Some(hub);
        self
    }

    /// Containers are given `grace` between SIGTERM and SIGKILL, as processes are.
    #[must_use]
    pub fn with_stop_grace(mut self, grace: std::time::Duration) -> Self {
        let mut settings = self.docker.settings().clone();
        settings.stop_grace = grace;
        self.docker = DockerExecutor::new(settings);
        self
    }

    /// Containers of tasks that name no executor run on `settings`' engine.
    #[must_use]
    pub fn with_default_docker(mut self, settings: DockerSettings) -> Self {
        self.docker = DockerExecutor::new(settings);
        self
    }

    /// The `[executors.NAME]` instances a task's `executor:` may name. A `docker` instance
    /// named `docker` is also the default for containers.
    #[must_use]
    pub fn with_instances(mut self, instances: BTreeMap<ExecutorName, ExecutorInstance>) -> Self {
        let mut named = BTreeMap::new();
        for (name, instance) in instances {
            let instance = match instance {
                ExecutorInstance::Local => Instance::Local,
                ExecutorInstance::Workers { labels } => Instance::Workers(labels),
                ExecutorInstance::Docker(settings) => {
                    let docker = DockerExecutor::new(settings);
                    if name.as_str() == "docker" {
                        self.docker = docker.clone();
                    }
                    Instance::Docker(docker)
                }
                ExecutorInstance::Kubernetes(settings) => {
                    Instance::Kubernetes(KubernetesExecutor::new(settings))
                }
            };
            named.insert(name, instance);
        }
        self.named = Arc::new(named);
        self
    }

    /// Removes what runs that are over left on every Docker engine and cluster (see
    /// [`DockerExecutor::sweep`], [`KubernetesExecutor::sweep`]); the number of containers
    /// and Jobs removed.
    pub async fn sweep(&self, store: &dyn baton_store::Store) -> usize {
        let mut removed = 0;
        for engine in self.engines() {
            removed += engine.sweep(store).await;
        }
        for cluster in self.clusters() {
            removed += cluster.sweep(store).await;
        }
        removed
    }

    /// Every Kubernetes instance.
    fn clusters(&self) -> Vec<KubernetesExecutor> {
        self.named
            .values()
            .filter_map(|instance| match instance {
                Instance::Kubernetes(k) => Some(k.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every Docker engine attempts may have run on, each once.
    fn engines(&self) -> Vec<DockerExecutor> {
        let mut out = vec![self.docker.clone()];
        for instance in self.named.values() {
            if let Instance::Docker(d) = instance
                && d.settings().name != self.docker.settings().name
            {
                out.push(d.clone());
            }
        }
        out
    }

    /// Who runs `spec`, or why nobody can.
    fn route(&self, spec: &AttemptSpec) -> Result<Route<'_>, String> {
        let named = match &spec.executor {
            None => None,
            Some(name) => Some((
                name,
                self.named.get(name).ok_or_else(|| {
                    let known: Vec<String> = self.named.keys().map(|k| format!("`{k}`")).collect();
                    format!(
                        "no executor `{name}` is configured: add `[executors.{name}]` to \
                         baton.toml{}",
                        if known.is_empty() {
                            String::new()
                        } else {
                            format!(" (configured: {})", known.join(", "))
                        }
                    )
                })?,
            )),
        };
        let to_workers = |labels: &[String]| match &self.workers {
            Some(hub) => Ok(Route::Workers(WorkerExecutor::new(
                hub.clone(),
                labels.to_vec(),
            ))),
            None => Err(no_workers(&spec.runs_on.clone().unwrap_or(RunsOn {
                labels: labels.to_vec(),
                wait: RunsOn::DEFAULT_WAIT,
            }))),
        };
        match (&spec.work, named, &spec.runs_on) {
            (Work::Http(_), Some((name, Instance::Workers(_))), _) => Err(format!(
                "executor `{name}` runs tasks on workers, and an `http` step is a request this \
                 baton makes: remove `executor`"
            )),
            (Work::Http(_), _, _) => Ok(Route::Here(&self.http)),
            (_, Some((_, Instance::Workers(labels))), _) => to_workers(labels),
            (_, None, Some(_)) => to_workers(&[]),
            (_, Some((name, _)), Some(_)) => Err(format!(
                "the task runs on workers (`runs_on`), and executor `{name}` runs on this \
                 host: remove one of them"
            )),
            // The files are staged in this host's working directory, which a pod never sees.
            (Work::Container(_), Some((name, Instance::Kubernetes(_))), None)
                if !spec.artifacts.is_empty() =>
            {
                Err(format!(
                    "executor `{name}` runs Jobs on a cluster, which does not share this \
                     host's disk: `artifacts` cannot reach its pods yet (run the task on a \
                     `docker` executor or a worker)"
                ))
            }
            (_, named, None) => self.route_here(&spec.work, named),
        }
    }

    fn route_here<'a>(
        &'a self,
        work: &Work,
        named: Option<(&ExecutorName, &'a Instance)>,
    ) -> Result<Route<'a>, String> {
        fn here(e: &dyn Executor) -> Result<Route<'_>, String> {
            Ok(Route::Here(e))
        }
        match (work, named) {
            (Work::Http(_), _) => here(&self.http),
            (_, Some((_, Instance::Workers(_)))) => unreachable!("routed to workers"),
            (Work::Process { .. }, None | Some((_, Instance::Local))) => here(&*self.processes),
            (Work::Process { .. }, Some((name, Instance::Docker(_) | Instance::Kubernetes(_)))) => {
                Err(format!(
                    "executor `{name}` runs containers, and the task has no `container`: add \
                     `container: {{ image: … }}`"
                ))
            }
            (Work::Container(_), None) => here(&self.docker),
            (Work::Container(_), Some((_, Instance::Docker(d)))) => here(d),
            (Work::Container(_), Some((_, Instance::Kubernetes(k)))) => here(k),
            (Work::Container(_), Some((name, Instance::Local))) => Err(format!(
                "executor `{name}` runs local processes, not containers: name a `docker` or \
                 `kubernetes` executor, or remove `container`"
            )),
        }
    }
}

/// Who runs an attempt: an executor of this host, or the workers.
enum Route<'a> {
    Here(&'a dyn Executor),
    Workers(WorkerExecutor),
}

/// Reports at once that `spec` cannot run, and why.
fn refuse(spec: AttemptSpec, done: &mpsc::UnboundedSender<Finished>, why: String) -> CancelHandle {
    let _ = done.send(Finished::of(
        &spec,
        Outcome::Refused(why),
        Outputs::default(),
    ));
    CancelHandle::new().0
}

/// Why a task for workers cannot run here.
pub fn no_workers(r: &RunsOn) -> String {
    format!(
        "the task runs on workers labelled `{}`, and this baton has none to send it to: run the \
         pipeline on a `baton server` with `[workers] secret_file` set (`baton --server URL run \
         FILE`), where `baton worker --server URL --labels {}` agents connect (or remove \
         `runs_on` to run it on this host)",
        r.labels.join(", "),
        r.labels.join(",")
    )
}

impl Executor for Executors {
    fn start(&self, spec: AttemptSpec, done: mpsc::UnboundedSender<Finished>) -> CancelHandle {
        let moves_files = !spec.artifacts.is_empty();
        if !(moves_files && matches!(self.route(&spec), Ok(Route::Here(_)))) {
            // Workers move their own files; a task routed nowhere is refused as it is.
            return self.start_here(spec, done);
        }
        match self.artifacts.as_ref().map(LazyStore::get) {
            Some(Ok(store)) => {
                super::staged::start(self.clone(), Arc::new(store.clone()), spec, done)
            }
            Some(Err(e)) => refuse(spec, &done, format!("the task moves artifacts: {e}")),
            None => refuse(
                spec,
                &done,
                "the task moves artifacts, and this baton has no artifact store: set \
                 `[artifacts]` in baton.toml"
                    .into(),
            ),
        }
    }

    // A request leaves nothing behind to stop, and no record of how it ended: an HTTP
    // attempt a crash interrupted is tried again, with the same idempotency key. Containers
    // go first: what is left of one is stopped by its engine, not by a signal from here.
    fn stop_leftovers(
        &self,
        run: &RunId,
        attempts: Vec<Leftover>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let engines = self.engines();
        let clusters = self.clusters();
        let processes = Arc::clone(&self.processes);
        let run = run.clone();
        Box::pin(async move {
            for engine in engines {
                engine.stop_leftovers(&run, attempts.clone()).await;
            }
            for cluster in clusters {
                cluster.stop_leftovers(&run, attempts.clone()).await;
            }
            processes.stop_leftovers(&run, attempts).await;
        })
    }

    fn recover(
        &self,
        attempts: Vec<Unseen>,
    ) -> Pin<Box<dyn Future<Output = Vec<Option<Finished>>> + Send + 'static>> {
        let engines = self.engines();
        let clusters = self.clusters();
        let local = self.processes.recover(attempts.clone());
        Box::pin(async move {
            let mut found = local.await;
            for engine in engines {
                found = engine.settle(attempts.clone(), found).await;
            }
            for cluster in clusters {
                found = cluster.settle(attempts.clone(), found).await;
            }
            found
        })
    }
}
