//! One engine story told on every executor that runs commands: local processes, containers
//! on the machine's Docker engine (skipped, saying so, where none runs) and Jobs on the fake
//! Kubernetes API server. Retries with their exit codes, a timeout and a cancel that leave no
//! process of the run behind, outputs passed downstream, a fan-out: the same body and the
//! same assertions for each. (Crash and resume of each is told in `kubernetes.rs`,
//! `docker.rs` and `cli/tests/durability.rs`.)

#[path = "support/kube_fake.rs"]
mod kube_fake;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::ids::{ExecutorName, RunId};
use baton_core::state::{AttemptState, RunState};
use baton_engine::executor::{
    DockerHost, DockerSettings, ExecutorInstance, Executors, HttpExecutor, KubernetesSettings,
    LocalExecutor,
};
use baton_engine::{Engine, Stop};
use kube_fake::FakeCluster;
use serde_json::json;

/// Where the story's tasks run.
struct Backend {
    name: &'static str,
    executors: Executors,
    /// The lines that send a task there.
    task: String,
    _cluster: Option<FakeCluster>,
}

async fn backends(story: &str) -> Vec<Backend> {
    let local = Executors::new(Arc::new(LocalExecutor::default()), HttpExecutor::default());
    let mut out = vec![Backend {
        name: "local",
        executors: local.clone(),
        task: String::new(),
        _cluster: None,
    }];
    if support::docker::available(story) {
        out.push(Backend {
            name: "docker",
            executors: local.clone().with_default_docker(DockerSettings {
                name: "docker".into(),
                host: DockerHost::from_env(),
                stop_grace: Duration::from_secs(1),
                pids_limit: Some(256),
            }),
            task: format!(
                "    container: {{ image: \"{}\", pull: never }}\n",
                support::docker::IMAGE
            ),
            _cluster: None,
        });
    }
    let cluster = FakeCluster::start().await;
    let mut settings = KubernetesSettings::new("k8s", Duration::from_secs(1));
    settings.kubeconfig = Some(cluster.kubeconfig.clone());
    out.push(Backend {
        name: "kubernetes",
        executors: local.with_instances(BTreeMap::from([(
            ExecutorName::new("k8s").expect("name"),
            ExecutorInstance::Kubernetes(settings),
        )])),
        task: "    executor: k8s\n    container: { image: \"busybox:1\" }\n".into(),
        _cluster: Some(cluster),
    });
    out
}

impl Backend {
    async fn drive(
        &self,
        source: &str,
    ) -> (
        tempfile::TempDir,
        Arc<dyn baton_store::Store>,
        RunId,
        RunState,
    ) {
        let (dir, store, run, opts) = support::created(source).await;
        let state = support::drive_on(&store, &run, &opts, Arc::new(self.executors.clone())).await;
        (dir, store, run, state)
    }
}

/// The processes of this host running an attempt of `run` (every executor here gives its
/// tasks `BATON_RUN_ID`: a container's processes are this host's too).
fn processes_of(run: &RunId) -> Vec<i32> {
    let needle = format!("BATON_RUN_ID={run}");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
        })
        .collect()
}

async fn none_left(backend: &str, run: &RunId) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_of(run).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{backend}: processes of the run left: {:?}",
            processes_of(run)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_keep_each_attempts_exit_code() {
    for b in backends("the retries story on docker").await {
        let source = format!(
            "name: story\ntasks:\n  t:\n{}    run: echo \"try $BATON_ATTEMPT\"; exit 3\n    retries: {{ limit: 2, delay: 10ms }}\n",
            b.task
        );
        let (dir, store, run, state) = b.drive(&source).await;
        assert_eq!(state, RunState::Failed, "{}", b.name);
        let attempts = store.attempts(&run).await.expect("attempts");
        let codes: Vec<Option<i32>> = attempts.iter().map(|a| a.exit_code).collect();
        assert_eq!(codes, [Some(3); 3], "{}: {attempts:#?}", b.name);
        let log = support::attempt_log(dir.path(), &run, &attempts[2].key, 3).await;
        assert_eq!(log, "try 3\n", "{}", b.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_stops_everything_of_the_attempt() {
    for b in backends("the timeout story on docker").await {
        let source = format!(
            "name: story\ntasks:\n  t:\n{}    run: sleep 60 & sleep 60\n    timeout: 1s\n",
            b.task
        );
        let started = Instant::now();
        let (_dir, store, run, state) = b.drive(&source).await;
        assert_eq!(state, RunState::Failed, "{}", b.name);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}: the sleep was waited for",
            b.name
        );
        let attempts = store.attempts(&run).await.expect("attempts");
        assert_eq!(attempts[0].state, AttemptState::TimedOut, "{}", b.name);
        none_left(b.name, &run).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_everything_of_the_run() {
    for b in backends("the cancel story on docker").await {
        let source = format!(
            "name: story\ntasks:\n  t:\n{}    run: sleep 60 & sleep 60\n",
            b.task
        );
        let (_dir, store, run, opts) = support::created(&source).await;
        let (stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
        let engine = Engine::new(
            Arc::clone(&store),
            Arc::new(b.executors.clone()),
            opts.clone(),
        );
        let driven = tokio::spawn({
            let run = run.clone();
            async move { engine.execute(&run, stop_rx).await }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while processes_of(&run).len() < 2 {
            assert!(Instant::now() < deadline, "{}: nothing started", b.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let asked = Instant::now();
        stop.send(Some(Stop::Cancel)).expect("send");
        let state = driven.await.expect("join").expect("driven");
        assert_eq!(state, RunState::Cancelled, "{}", b.name);
        assert!(
            asked.elapsed() < Duration::from_secs(15),
            "{}: the sleep was waited for",
            b.name
        );
        let attempts = store.attempts(&run).await.expect("attempts");
        assert_eq!(attempts[0].state, AttemptState::Cancelled, "{}", b.name);
        none_left(b.name, &run).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_pass_downstream_and_a_fan_out_runs_each_item() {
    for b in backends("the outputs story on docker").await {
        let source = format!(
            "name: story\ntasks:\n  each:\n    for_each: [eu, us, ap]\n{task}    outputs: [key]\n    run: echo \"key=$BATON_TASK_KEY\" >> \"$BATON_OUTPUTS\"\n  sum:\n    needs: [each]\n{task}    outputs: [total]\n    run: echo \"total=3\" >> \"$BATON_OUTPUTS\"\n  check:\n    needs: [sum]\n    run: test \"{{{{ tasks.sum.outputs.total }}}}\" = 3\n",
            task = b.task
        );
        let (_dir, store, run, state) = b.drive(&source).await;
        let tasks = store.tasks(&run).await.expect("tasks");
        assert_eq!(state, RunState::Succeeded, "{}: {tasks:#?}", b.name);
        for item in ["eu", "us", "ap"] {
            let key = format!("each[{item}]");
            let task = tasks
                .iter()
                .find(|t| t.key.as_str() == key)
                .unwrap_or_else(|| panic!("{}: no {key}", b.name));
            let outputs = task.outputs.clone().unwrap_or_default();
            assert_eq!(outputs.get("key"), Some(&json!(key)), "{}", b.name);
        }
    }
}
