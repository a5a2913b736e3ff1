//! One story, told on every executor: retries, a timeout that kills everything the attempt
//! started, a cancel, outputs passed downstream, a fan-out, and a crash of baton mid-attempt
//! followed by a resume. Each executor runs the same pipelines, only told where to run them:
//! this host's processes, Docker containers, `baton worker` agents (played here by an agent
//! on the hub's own calls that runs what it is handed with the local executor), and
//! Kubernetes Jobs (on the fake API server of `support/kube_fake.rs`).

#[path = "support/kube_fake.rs"]
mod kube_fake;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::ids::{ExecutorName, RunId, WorkerId};
use baton_core::state::{AttemptState, RunState, TaskState};
use baton_engine::executor::{
    AttemptSpec, CancelHandle, Executor, ExecutorInstance, Executors, HttpExecutor,
    KubernetesSettings, LocalExecutor, Logs, Outcome,
};
use baton_engine::workers::{
    Assignment, Capacity, Epoch, HubSettings, Report, WorkerHub, WorkerInfo,
};
use baton_engine::{Engine, Options, Stop};
use baton_store::Store;
use kube_fake::FakeCluster;
use tokio::sync::mpsc;

/// Where the story's tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Local,
    Docker,
    Workers,
    Kubernetes,
}

/// An executor set for one kind, and what keeps it working (a worker agent).
struct Place {
    kind: Kind,
    executors: Arc<Executors>,
    _agent: Option<Agent>,
}

impl Place {
    /// A place of `kind`; Kubernetes Jobs go to `cluster`, which outlives the places (a
    /// crashed baton's Job is still there for the next one).
    fn new(kind: Kind, cluster: Option<&FakeCluster>) -> Option<Self> {
        let base = Executors::new(Arc::new(LocalExecutor::default()), HttpExecutor::default())
            .with_stop_grace(Duration::from_millis(500));
        match kind {
            Kind::Local => Some(Self {
                kind,
                executors: Arc::new(base),
                _agent: None,
            }),
            Kind::Docker => support::docker::available("the story on Docker").then(|| Self {
                kind,
                executors: Arc::new(base),
                _agent: None,
            }),
            Kind::Workers => {
                let hub = WorkerHub::new(HubSettings {
                    heartbeat: Duration::from_millis(100),
                    lease: Duration::from_millis(1500),
                    stop_grace: Duration::from_millis(500),
                });
                let agent = Agent::start(&hub);
                Some(Self {
                    kind,
                    executors: Arc::new(base.with_workers(hub)),
                    _agent: Some(agent),
                })
            }
            Kind::Kubernetes => {
                let mut settings = KubernetesSettings::new("k8s", Duration::from_millis(500));
                settings.kubeconfig = Some(cluster.expect("a cluster").kubeconfig.clone());
                Some(Self {
                    kind,
                    executors: Arc::new(
                        base.with_instances(named("k8s", ExecutorInstance::Kubernetes(settings))),
                    ),
                    _agent: None,
                })
            }
        }
    }

    /// `task` (its `run:` line and what follows at its indentation) made to run here.
    fn placed(&self, source: &str) -> String {
        let line = match self.kind {
            Kind::Local => return source.to_owned(),
            Kind::Docker => format!(
                "    container: {{ image: \"{}\", pull: never }}\n",
                support::docker::IMAGE
            ),
            Kind::Workers => "    runs_on: [story]\n".to_owned(),
            Kind::Kubernetes => {
                "    executor: k8s\n    container: { image: \"busybox:1\" }\n".to_owned()
            }
        };
        source
            .lines()
            .map(|l| {
                if l.starts_with("    run: ") {
                    format!("{line}{l}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    }

    fn engine(&self, store: &Arc<dyn Store>, opts: &Options) -> Engine {
        Engine::new(
            Arc::clone(store),
            Arc::clone(&self.executors) as Arc<dyn Executor>,
            opts.clone(),
        )
    }
}

/// A worker agent on the hub's own calls: claims, runs each assignment with the local
/// executor in a directory of its own, heartbeats (stopping what the reply says), reports.
struct Agent {
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Running = Arc<std::sync::Mutex<BTreeMap<u64, CancelHandle>>>;

impl Agent {
    fn start(hub: &WorkerHub) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = hub
            .register(WorkerInfo {
                name: "story".into(),
                labels: vec!["story".into()],
                slots: 8,
                capacity: Capacity::default(),
                version: "test".into(),
                host: "story-host".into(),
            })
            .expect("registered")
            .id;
        let (hub, home) = (hub.clone(), dir.path().to_owned());
        let task = tokio::spawn(async move {
            let running: Running = Arc::default();
            let beat = tokio::spawn(heartbeats(hub.clone(), id.clone(), Arc::clone(&running)));
            loop {
                let Ok(got) = hub.claim(&id, 8, Duration::from_secs(1)).await else {
                    break;
                };
                for a in got {
                    run_one(&hub, &id, &home, a, &running);
                }
            }
            beat.abort();
        });
        Self { task, _dir: dir }
    }
}

async fn heartbeats(hub: WorkerHub, id: WorkerId, running: Running) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let held: Vec<Epoch> = running
            .lock()
            .expect("lock")
            .keys()
            .map(|e| Epoch(*e))
            .collect();
        let Ok(reply) = hub.heartbeat(&id, &held, false) else {
            continue;
        };
        let mut running = running.lock().expect("lock");
        for (epoch, _) in reply.stop {
            if let Some(h) = running.get_mut(&epoch.0) {
                h.cancel();
            }
        }
        for epoch in reply.lost {
            if let Some(mut h) = running.remove(&epoch.0) {
                h.cancel();
            }
        }
    }
}

fn run_one(
    hub: &WorkerHub,
    id: &WorkerId,
    home: &std::path::Path,
    a: Assignment,
    running: &Running,
) {
    let cwd = home.join(format!("attempt-{}", a.epoch.0));
    std::fs::create_dir_all(&cwd).expect("mkdir");
    let logs = Logs::files(home);
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k == "PATH" || k == "HOME")
        .collect();
    env.extend(a.env.clone());
    let spec = AttemptSpec {
        key: a.attempt.key.clone(),
        attempt: a.attempt.attempt,
        work: a.work.clone(),
        executor: None,
        runs_on: None,
        resources: baton_core::model::Resources::default(),
        env,
        host_env: 0,
        cwd: cwd.clone(),
        log: logs.sink(
            baton_store::AttemptLog {
                run: a.attempt.run.clone(),
                key: a.attempt.key.clone(),
                attempt: a.attempt.attempt,
            },
            None,
        ),
        outputs_path: cwd.join("outputs"),
        timeout: None,
        spawned: None,
        exit_path: None,
        artifacts: Default::default(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = LocalExecutor::default().start(spec, tx);
    running.lock().expect("lock").insert(a.epoch.0, handle);
    let (hub, id, running) = (hub.clone(), id.clone(), Arc::clone(running));
    tokio::spawn(async move {
        let Some(f) = rx.recv().await else { return };
        // A lease the hub said is lost was removed: nothing to report.
        if running.lock().expect("lock").remove(&a.epoch.0).is_none() {
            return;
        }
        let outcome = match f.outcome {
            Outcome::Cancelled | Outcome::TimedOut => {
                Outcome::Interrupted("the worker stopped the attempt".into())
            }
            o => o,
        };
        let _ = hub.finish(
            &id,
            a.epoch,
            Report {
                outcome,
                outputs: f.outputs,
                rusage: f.rusage,
                artifacts: None,
            },
        );
    });
}

/// The story's options: short leases, so that a resume after a crash comes quickly.
fn options(opts: &Options) -> Options {
    let mut o = opts.clone();
    o.lease_ttl = Duration::from_millis(1500);
    o.lease_renew_interval = Duration::from_millis(300);
    o.drain_grace = Duration::from_millis(100);
    o
}

async fn drive(place: &Place, store: &Arc<dyn Store>, run: &RunId, opts: &Options) -> RunState {
    let (_stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    tokio::time::timeout(
        Duration::from_secs(90),
        place.engine(store, opts).execute(run, stop_rx),
    )
    .await
    .expect("the run ends in time")
    .expect("driven")
}

async fn attempt_states(store: &Arc<dyn Store>, run: &RunId, key: &str) -> Vec<AttemptState> {
    store
        .attempts(run)
        .await
        .expect("attempts")
        .into_iter()
        .filter(|a| a.key.as_str() == key)
        .map(|a| a.state)
        .collect()
}

async fn retries_then_succeeds(place: &Place) {
    let source = place.placed(
        "name: flaky\ntasks:\n  t:\n    retries: { limit: 2, delay: 10ms }\n    run: test \"$BATON_ATTEMPT\" -ge 2\n",
    );
    let (_dir, store, run, opts) = support::created(&source).await;
    let opts = options(&opts);
    assert_eq!(
        drive(place, &store, &run, &opts).await,
        RunState::Succeeded,
        "{:?}",
        place.kind
    );
    assert_eq!(
        attempt_states(&store, &run, "t").await,
        [AttemptState::Failed, AttemptState::Succeeded],
        "{:?}",
        place.kind
    );
}

async fn a_timeout_stops_everything(place: &Place) {
    let source =
        place.placed("name: slow\ntasks:\n  t:\n    timeout: 1s\n    run: sleep 60 & sleep 60\n");
    let (_dir, store, run, opts) = support::created(&source).await;
    let opts = options(&opts);
    let started = Instant::now();
    assert_eq!(
        drive(place, &store, &run, &opts).await,
        RunState::Failed,
        "{:?}",
        place.kind
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}: {:?}",
        place.kind,
        started.elapsed()
    );
    assert_eq!(
        attempt_states(&store, &run, "t").await,
        [AttemptState::TimedOut],
        "{:?}",
        place.kind
    );
}

async fn a_cancel_stops_the_attempt(place: &Place) {
    let source = place.placed("name: cancelled\ntasks:\n  t:\n    run: sleep 60\n");
    let (_dir, store, run, opts) = support::created(&source).await;
    let opts = options(&opts);
    let (_stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let engine = place.engine(&store, &opts);
    let driving = tokio::spawn({
        let run = run.clone();
        async move { engine.execute(&run, stop_rx).await }
    });
    wait_until_running(&store, &run, "t").await;
    store.request_cancel(&run).await.expect("cancel");
    let started = Instant::now();
    let state = tokio::time::timeout(Duration::from_secs(30), driving)
        .await
        .expect("cancelled in time")
        .expect("joined")
        .expect("driven");
    assert_eq!(state, RunState::Cancelled, "{:?}", place.kind);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        place.kind
    );
}

async fn outputs_and_a_fan_out_pass_downstream(place: &Place) {
    let source = place.placed(
        "name: fanned\ntasks:\n  plan:\n    outputs: [shards]\n    run: echo shards=a,b,c >> \"$BATON_OUTPUTS\"\n  \
         shard:\n    needs: [plan]\n    for_each: \"{{ tasks.plan.outputs.shards | split(',') }}\"\n    outputs: [done]\n    run: echo \"done={{ item }}\" >> \"$BATON_OUTPUTS\"\n  \
         after:\n    needs: [shard]\n    run: test \"{{ tasks.plan.outputs.shards }}\" = a,b,c\n",
    );
    let (_dir, store, run, opts) = support::created(&source).await;
    let opts = options(&opts);
    assert_eq!(
        drive(place, &store, &run, &opts).await,
        RunState::Succeeded,
        "{:?}",
        place.kind
    );
    let tasks = store.tasks(&run).await.expect("tasks");
    let instances: Vec<&str> = tasks
        .iter()
        .filter(|t| t.task_id == "shard" && t.key.as_str() != "shard")
        .map(|t| t.key.as_str())
        .collect();
    assert_eq!(instances.len(), 3, "{:?}: {instances:?}", place.kind);
    assert!(
        tasks
            .iter()
            .filter(|t| t.task_id == "shard" && t.key.as_str() != "shard")
            .all(|t| t.state == TaskState::Succeeded
                && t.outputs.as_ref().is_some_and(|o| o.contains_key("done"))),
        "{:?}",
        place.kind
    );
}

async fn a_crash_mid_attempt_is_resumed(place_kind: Kind, cluster: Option<&FakeCluster>) {
    let Some(place) = Place::new(place_kind, cluster) else {
        return;
    };
    let source = place.placed(
        "name: crashed\ntasks:\n  t:\n    run: test \"$BATON_ATTEMPT\" -ge 2 || sleep 60\n  after:\n    needs: [t]\n    run: \"true\"\n",
    );
    let (_dir, store, run, opts) = support::created(&source).await;
    let opts = options(&opts);
    // The first baton on a runtime of its own, so that its crash ends everything it ran in
    // it (the dispatcher, the executors' waits) and nothing of it writes another line.
    let crashing = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let engine = place.engine(&store, &opts);
    crashing.spawn({
        let run = run.clone();
        async move { engine.execute(&run, stop_rx).await }
    });
    wait_until_running(&store, &run, "t").await;
    // The attempt's process is up: baton dies mid-step.
    tokio::time::sleep(Duration::from_millis(300)).await;
    crashing.shutdown_background();
    drop(stop);
    // A new baton (for workers: a new control plane, whose agent connects afresh).
    drop(place);
    let place = Place::new(place_kind, cluster).expect("the same place");
    assert_eq!(
        drive(&place, &store, &run, &opts).await,
        RunState::Succeeded,
        "{place_kind:?}"
    );
    let states = attempt_states(&store, &run, "t").await;
    assert_eq!(
        states.last(),
        Some(&AttemptState::Succeeded),
        "{place_kind:?}: {states:?}"
    );
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == AttemptState::Succeeded)
            .count(),
        1,
        "{place_kind:?}: {states:?}"
    );
    assert_ne!(
        states[0],
        AttemptState::Succeeded,
        "{place_kind:?}: {states:?}"
    );
}

async fn wait_until_running(store: &Arc<dyn Store>, run: &RunId, key: &str) {
    for _ in 0..1500 {
        let attempts = store.attempts(run).await.expect("attempts");
        if attempts
            .iter()
            .any(|a| a.key.as_str() == key && a.state == AttemptState::Running)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("`{key}` never ran");
}

async fn story(kind: Kind) {
    let cluster = match kind {
        Kind::Kubernetes => Some(FakeCluster::start().await),
        _ => None,
    };
    let Some(place) = Place::new(kind, cluster.as_ref()) else {
        return;
    };
    retries_then_succeeds(&place).await;
    a_timeout_stops_everything(&place).await;
    a_cancel_stops_the_attempt(&place).await;
    outputs_and_a_fan_out_pass_downstream(&place).await;
    drop(place);
    a_crash_mid_attempt_is_resumed(kind, cluster.as_ref()).await;
    if let Some(cluster) = &cluster {
        assert!(
            cluster.running_jobs().is_empty(),
            "{:?}",
            cluster.running_jobs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_on_local_processes() {
    story(Kind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_on_docker() {
    story(Kind::Docker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_on_workers() {
    story(Kind::Workers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_on_kubernetes() {
    story(Kind::Kubernetes).await;
}

fn named(name: &str, instance: ExecutorInstance) -> BTreeMap<ExecutorName, ExecutorInstance> {
    BTreeMap::from([(ExecutorName::new(name).expect("name"), instance)])
}
