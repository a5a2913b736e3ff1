//! `container:` tasks on a `kubernetes` executor through the real dispatcher and the real
//! `kube` client, against a fake API server on loopback (no cluster can run here) whose
//! kubelet runs each Job's command as a local process: outputs passed downstream, exit
//! codes and retries, timeouts and cancels that delete the Job, out-of-memory kills, pulls
//! that fail and pods no node takes, watches answered 410 Gone and streams cut midway, a
//! fan-out, a crash of baton mid-attempt, the sweep, and the Job as sent.

#[path = "support/kube_fake.rs"]
mod kube_fake;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::ids::{ExecutorName, RunId};
use baton_core::state::{AttemptState, RunState, TaskState};
use baton_engine::executor::{
    ExecutorInstance, Executors, HttpExecutor, KubernetesSettings, LocalExecutor, OnFinish,
};
use baton_engine::{Engine, Options, Stop};
use baton_store::Store;
use kube_fake::FakeCluster;
use serde_json::json;

fn settings(fake: &FakeCluster) -> KubernetesSettings {
    let mut s = KubernetesSettings::new("k8s", Duration::from_secs(1));
    s.kubeconfig = Some(fake.kubeconfig.clone());
    s.service_account = Some("runner".into());
    s.ttl_seconds_after_finished = Some(120);
    s
}

fn executors(settings: KubernetesSettings) -> Executors {
    Executors::new(Arc::new(LocalExecutor::default()), HttpExecutor::default()).with_instances(
        BTreeMap::from([(
            ExecutorName::new("k8s").expect("name"),
            ExecutorInstance::Kubernetes(settings),
        )]),
    )
}

async fn drive(
    store: &Arc<dyn Store>,
    run: &RunId,
    opts: &Options,
    settings: KubernetesSettings,
) -> RunState {
    support::drive_on(store, run, opts, Arc::new(executors(settings))).await
}

/// A task on the cluster running `run` (YAML-quoted by the caller where needed).
fn pipeline(name: &str, image: &str, extra: &str, run: &str) -> String {
    format!(
        "name: {name}\ntasks:\n  t:\n    executor: k8s\n    container: {{ image: \"{image}\" }}\n{extra}    run: {run}\n"
    )
}

/// A run of `source` driven to its end, which must be `end`.
async fn ran(
    source: &str,
    settings: KubernetesSettings,
    end: RunState,
) -> (tempfile::TempDir, Arc<dyn Store>, RunId) {
    let (dir, store, run, opts) = support::created(source).await;
    let state = drive(&store, &run, &opts, settings).await;
    let tasks = store.tasks(&run).await.expect("tasks");
    assert_eq!(state, end, "{tasks:#?}");
    (dir, store, run)
}

/// Drives `source` to its failure: the errors of its attempts, in order.
async fn failure(source: &str, settings: KubernetesSettings) -> Vec<String> {
    let (_dir, store, run) = ran(source, settings, RunState::Failed).await;
    let attempts = store.attempts(&run).await.expect("attempts");
    attempts
        .into_iter()
        .map(|a| a.error.unwrap_or_default())
        .collect()
}

/// The lists of pods the watcher made (paged, unlike the executor's own look at a pod).
fn watcher_pod_lists(fake: &FakeCluster) -> usize {
    fake.requests()
        .iter()
        .filter(|r| {
            r.starts_with("GET /api/v1/namespaces/baton/pods?")
                && r.contains("limit=")
                && !r.contains("watch=true")
        })
        .count()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_runs_as_a_job_built_as_asked_and_passes_outputs_on() {
    let fake = FakeCluster::start().await;
    let source = r#"name: boxed
tasks:
  build:
    executor: k8s
    container: { image: "busybox:1.36" }
    outputs: [rows, where]
    env: { GREETING: hello }
    resources: { cpu: 0.5, memory: 64Mi, gpu: 1 }
    timeout: 90s
    run: |
      echo "$GREETING from attempt $BATON_ATTEMPT of $BATON_TASK_ID"
      echo "stderr too" >&2
      echo rows=3 >> "$BATON_OUTPUTS"
      echo "where=$HOSTNAME" >> "$BATON_OUTPUTS"
      test -z "$CARGO" || { echo "the host's environment leaked in"; exit 9; }
  after:
    needs: [build]
    run: test "{{ tasks.build.outputs.rows }}" = 3
"#;
    let (dir, store, run, opts) = support::created(source).await;
    let state = drive(&store, &run, &opts, settings(&fake)).await;
    let tasks = store.tasks(&run).await.expect("tasks");
    let log = support::first_log(&store, dir.path(), &run).await;
    assert_eq!(state, RunState::Succeeded, "{tasks:#?}\n{log}");
    let build = support::task(&tasks, "build");
    let outputs = build.outputs.clone().unwrap_or_default();
    assert_eq!(outputs.get("rows"), Some(&json!("3")), "{build:#?}");
    let pod = outputs["where"].as_str().unwrap_or_default().to_owned();
    assert!(pod.starts_with("baton-"), "the pod's host name: {pod}");
    assert!(log.contains("hello from attempt 1 of build\n"), "{log}");
    assert!(log.contains("stderr too\n"), "{log}");

    let created = fake.created();
    assert_eq!(created.len(), 1, "{created:#?}");
    let job = &created[0];
    let name = job["metadata"]["name"].as_str().expect("name");
    assert!(
        name.starts_with(&format!(
            "baton-{}-build-1-",
            run.as_str().to_ascii_lowercase()
        )),
        "{name}"
    );
    assert!(name.len() <= 63);
    assert!(pod.starts_with(name), "{pod} is {name}'s");
    let labels = &job["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "baton");
    assert_eq!(labels["baton.dev/executor"], "k8s");
    assert_eq!(labels["baton.dev/run"], run.as_str());
    assert_eq!(labels["baton.dev/task"], "build");
    assert_eq!(labels["baton.dev/attempt"], "1");
    assert!(labels["baton.dev/epoch"].is_string(), "{labels}");
    let spec = &job["spec"];
    assert_eq!(spec["backoffLimit"], 0);
    assert_eq!(spec["activeDeadlineSeconds"], 90);
    assert_eq!(spec["ttlSecondsAfterFinished"], 120);
    let pod_spec = &spec["template"]["spec"];
    assert_eq!(pod_spec["restartPolicy"], "Never");
    assert_eq!(pod_spec["serviceAccountName"], "runner");
    assert_eq!(spec["template"]["metadata"]["labels"], *labels);
    let c = &pod_spec["containers"][0];
    assert_eq!(c["image"], "busybox:1.36");
    assert_eq!(c["command"][0], "sh");
    assert_eq!(c["command"][1], "-c");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    let want = json!({"cpu": "500m", "memory": "67108864", "nvidia.com/gpu": "1"});
    assert_eq!(c["resources"]["limits"], want);
    assert_eq!(c["resources"]["requests"], want);
    let env: BTreeMap<String, String> = c["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or_default().to_owned(),
                v["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(env["GREETING"], "hello");
    assert_eq!(env["BATON_OUTPUTS"], "/dev/termination-log");
    assert_eq!(env["BATON_TASK_ID"], "build");
    for host in ["PATH", "HOME", "USER", "CARGO", "CARGO_MANIFEST_DIR"] {
        assert!(
            !env.contains_key(host),
            "the host's `{host}` was sent: {env:?}"
        );
    }
    assert!(fake.jobs().is_empty(), "jobs left: {:?}", fake.jobs());
    assert!(
        fake.deletes().iter().any(|(n, _)| n == name),
        "{:?}",
        fake.deletes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_is_retried_with_a_job_per_attempt_and_its_exit_code_told() {
    let fake = FakeCluster::start().await;
    let source = pipeline(
        "failing",
        "busybox:1",
        "    retries: { limit: 1, delay: 10ms }\n",
        "echo no; exit 3",
    );
    let (_dir, store, run) = ran(&source, settings(&fake), RunState::Failed).await;
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert!(
        attempts.iter().all(|a| a.exit_code == Some(3)),
        "{attempts:#?}"
    );
    let tasks = store.tasks(&run).await.expect("tasks");
    let error = support::task(&tasks, "t").error.clone().unwrap_or_default();
    assert!(error.contains("exited with code 3"), "{error}");
    let names: Vec<String> = fake
        .created()
        .iter()
        .map(|j| {
            j["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(names.len(), 2);
    assert_ne!(names[0], names[1]);
    assert!(names[1].contains("-t-2-"), "{names:?}");
    assert!(fake.jobs().is_empty(), "{:?}", fake.jobs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_deletes_the_job_and_its_process() {
    let fake = FakeCluster::start().await;
    let source = pipeline("slow", "busybox:1", "    timeout: 1s\n", "sleep 60");
    let (_dir, store, run, opts) = support::created(&source).await;
    let started = Instant::now();
    assert_eq!(
        drive(&store, &run, &opts, settings(&fake)).await,
        RunState::Failed
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the sleep was waited for"
    );
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts[0].state, AttemptState::TimedOut);
    let created = fake.created();
    let name = created[0]["metadata"]["name"].as_str().expect("name");
    assert_eq!(created[0]["spec"]["activeDeadlineSeconds"], 1);
    let deletes = fake.deletes();
    let (_, options) = deletes.iter().find(|(n, _)| n == name).expect("deleted");
    assert_eq!(options["propagationPolicy"], "Foreground", "{options}");
    assert_eq!(options["gracePeriodSeconds"], 1, "{options}");
    assert!(fake.jobs().is_empty() && fake.running_jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_deletes_its_job() {
    let fake = FakeCluster::start().await;
    let source = pipeline("cancelled", "busybox:1", "", "echo started; sleep 60");
    let (dir, store, run, opts) = support::created(&source).await;
    let (stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let engine = Engine::new(
        Arc::clone(&store),
        Arc::new(executors(settings(&fake))),
        opts.clone(),
    );
    let driven = tokio::spawn({
        let run = run.clone();
        async move { engine.execute(&run, stop_rx).await }
    });
    wait_for("a job says it started", || {
        fake.running_jobs()
            .iter()
            .any(|job| fake.logged(job) == ["started"])
    })
    .await;
    let asked = Instant::now();
    stop.send(Some(Stop::Cancel)).expect("send");
    let state = driven.await.expect("join").expect("driven");
    assert_eq!(state, RunState::Cancelled);
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "the sleep was waited for"
    );
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts[0].state, AttemptState::Cancelled);
    let tasks = store.tasks(&run).await.expect("tasks");
    assert_eq!(support::task(&tasks, "t").state, TaskState::Cancelled);
    assert!(fake.jobs().is_empty() && fake.running_jobs().is_empty());
    assert_eq!(fake.deletes()[0].1["propagationPolicy"], "Foreground");
    // The pod went with its log: what was followed is the whole of it, and no complaint.
    let log = support::first_log(&store, dir.path(), &run).await;
    assert_eq!(log, "started\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_kill_is_told_with_the_limit() {
    let fake = FakeCluster::start().await;
    let source = pipeline(
        "hungry",
        "oom-eater:1",
        "    resources: { memory: 16Mi }\n",
        "echo eating",
    );
    let errors = failure(&source, settings(&fake)).await;
    let error = &errors[0];
    assert!(
        error.contains("ran out of memory (limit 16 MiB) and was killed (exit code 137)"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_is_refused_without_retries() {
    let fake = FakeCluster::start().await;
    let mut s = settings(&fake);
    s.image_pull_limit = Duration::from_millis(800);
    let source = pipeline(
        "unpullable",
        "registry.example/pull-fails:1",
        "    retries: { limit: 3, delay: 10ms }\n",
        "\"true\"",
    );
    let errors = failure(&source, s).await;
    assert_eq!(errors.len(), 1, "retrying cannot help: {errors:#?}");
    let error = &errors[0];
    assert!(
        error.contains("image `registry.example/pull-fails:1` cannot be pulled (ImagePullBackOff)")
            && error.contains("Back-off pulling image"),
        "{error}"
    );
    assert!(
        fake.jobs().is_empty(),
        "a stuck job is deleted: {:?}",
        fake.jobs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_no_node_takes_fails_past_its_limit_with_the_schedulers_words() {
    let fake = FakeCluster::start().await;
    let mut s = settings(&fake);
    s.unschedulable_limit = Duration::from_millis(700);
    let source = pipeline(
        "nowhere",
        "unschedulable:1",
        "    retries: { limit: 1, delay: 10ms }\n",
        "\"true\"",
    );
    let started = Instant::now();
    let errors = failure(&source, s).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "each attempt waited its limit"
    );
    assert_eq!(errors.len(), 2, "it may find a node next time: {errors:#?}");
    let error = &errors[1];
    assert!(
        error.contains("found no node for")
            && error.contains("0/3 nodes are available: 3 Insufficient nvidia.com/gpu."),
        "{error}"
    );
    assert!(fake.jobs().is_empty(), "{:?}", fake.jobs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_answered_410_gone_is_relisted_and_the_attempt_finishes() {
    let fake = FakeCluster::start().await;
    fake.switch(|s| s.gone_pod_watches = 1);
    let source = pipeline(
        "relisted",
        "busybox:1",
        "    outputs: [n]\n",
        "'sleep 1.5; echo n=7 >> \"$BATON_OUTPUTS\"'",
    );
    let (_dir, store, run) = ran(&source, settings(&fake), RunState::Succeeded).await;
    assert_eq!(fake.gone_served(), 1);
    let pod_lists = watcher_pod_lists(&fake);
    assert!(
        pod_lists >= 2,
        "the first list and one after the 410: {pod_lists}"
    );
    let tasks = store.tasks(&run).await.expect("tasks");
    let outputs = support::task(&tasks, "t")
        .outputs
        .clone()
        .unwrap_or_default();
    assert_eq!(outputs.get("n"), Some(&json!("7")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_log_and_watch_streams_lose_no_line_and_double_none() {
    let fake = FakeCluster::start().await;
    fake.switch(|s| {
        s.cut_first_log_after = 5;
        s.cut_watches_after = 1;
    });
    let source = pipeline(
        "cut",
        "busybox:1",
        "",
        "'for i in $(seq 1 30); do echo line $i; sleep 0.05; done'",
    );
    let (dir, store, run) = ran(&source, settings(&fake), RunState::Succeeded).await;
    let log = support::first_log(&store, dir.path(), &run).await;
    let want: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    assert_eq!(log, want);
    let name = fake.created()[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    assert!(fake.log_streams(&name) >= 2, "the log was followed again");
    let watches = fake
        .requests()
        .iter()
        .filter(|r| r.contains("watch=true"))
        .count();
    assert!(
        watches >= 4,
        "cut watches were started again: {watches} {:#?}",
        fake.requests()
    );
    let pod_lists = watcher_pod_lists(&fake);
    assert_eq!(
        pod_lists, 1,
        "a cut watch goes on from its bookmark, without a relist"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_runs_one_job_per_item() {
    let fake = FakeCluster::start().await;
    let source = "name: fanned\ntasks:\n  t:\n    for_each: [eu, us, ap]\n    executor: k8s\n    container: { image: \"busybox:1\" }\n    outputs: [key]\n    run: echo \"key=$BATON_TASK_KEY\" >> \"$BATON_OUTPUTS\"\n";
    let (_dir, store, run) = ran(source, settings(&fake), RunState::Succeeded).await;
    let tasks = store.tasks(&run).await.expect("tasks");
    for item in ["eu", "us", "ap"] {
        let key = format!("t[{item}]");
        let task = tasks
            .iter()
            .find(|t| t.key.as_str() == key)
            .unwrap_or_else(|| panic!("no {key}"));
        let outputs = task.outputs.clone().unwrap_or_default();
        assert_eq!(outputs.get("key"), Some(&json!(key)), "{task:#?}");
    }
    let created = fake.created();
    let names: std::collections::BTreeSet<&str> = created
        .iter()
        .filter_map(|j| j["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let keys: std::collections::BTreeSet<&str> = created
        .iter()
        .filter_map(|j| j["metadata"]["annotations"]["baton.dev/task-key"].as_str())
        .collect();
    assert_eq!(keys, ["t[ap]", "t[eu]", "t[us]"].into_iter().collect());
    assert!(fake.jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_task_naming_a_kubernetes_executor_is_refused_with_a_hint() {
    let fake = FakeCluster::start().await;
    let source =
        "name: plain\ntasks:\n  t:\n    executor: k8s\n    run: \"true\"\n    retries: 2\n";
    let errors = failure(source, settings(&fake)).await;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let error = &errors[0];
    assert!(
        error.contains("executor `k8s` runs containers, and the task has no `container`: add `container: { image: … }`"),
        "{error}"
    );
    assert!(fake.created().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_moves_artifacts_is_refused_with_why() {
    let fake = FakeCluster::start().await;
    let source = pipeline(
        "files",
        "busybox:1",
        "    artifacts: { upload: [out.txt] }\n    retries: 2\n",
        "echo hi > out.txt",
    );
    let errors = failure(&source, settings(&fake)).await;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains(
            "executor `k8s` runs Jobs on a cluster, which does not share this host's disk"
        ),
        "{}",
        errors[0]
    );
    assert!(fake.created().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_namespace_is_refused_and_named() {
    let fake = FakeCluster::start().await;
    let mut s = settings(&fake);
    s.namespace = Some("nope".into());
    let source = pipeline("lost", "busybox:1", "    retries: 2\n", "\"true\"");
    let errors = failure(&source, s).await;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let error = &errors[0];
    assert!(
        error.contains(
            "namespace `nope` does not exist (create it, or set `namespace` in [executors.k8s])"
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_failed_keeps_the_failed_job_only() {
    let fake = FakeCluster::start().await;
    let mut s = settings(&fake);
    s.on_finish = OnFinish::KeepFailed;
    let source = "name: kept\ntasks:\n  ok:\n    executor: k8s\n    container: { image: \"busybox:1\" }\n    run: \"true\"\n  bad:\n    executor: k8s\n    container: { image: \"busybox:1\" }\n    run: exit 1\n";
    let (_dir, _store, _run) = ran(source, s, RunState::Failed).await;
    let left = fake.jobs();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains("-bad-1-"), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_permission_is_refused_naming_the_verb_and_resource() {
    let fake = FakeCluster::start().await;
    fake.switch(|s| s.forbid_job_create = true);
    let source = pipeline("denied", "busybox:1", "    retries: 2\n", "\"true\"");
    let errors = failure(&source, settings(&fake)).await;
    assert_eq!(errors.len(), 1, "an administrator must act: {errors:#?}");
    assert!(
        errors[0].starts_with(
            "baton may not `create` `jobs` in namespace `baton`: jobs.batch is forbidden"
        ) && errors[0].contains("bind a Role granting it"),
        "{}",
        errors[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_is_a_retryable_error() {
    let mut s = KubernetesSettings::new("k8s", Duration::from_secs(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    std::fs::write(&kubeconfig, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n")).expect("write");
    s.kubeconfig = Some(kubeconfig);
    let source = pipeline(
        "dark",
        "busybox:1",
        "    retries: { limit: 1, delay: 10ms }\n",
        "\"true\"",
    );
    let errors = failure(&source, s).await;
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let error = &errors[0];
    assert!(
        error.contains(&format!(
            "cannot reach the Kubernetes API server at `http://127.0.0.1:{port}/`"
        )),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_baton_s_jobs_are_recovered_when_done_and_replaced_when_running() {
    let fake = FakeCluster::start().await;
    let marks = std::env::temp_dir().join(format!("baton-k8s-marks-{}", std::process::id()));
    let _ = std::fs::remove_file(&marks);
    let (dir, store, run, mut opts) = support::created(
        &format!(
            "name: crashed\ntasks:\n  quick:\n    executor: k8s\n    container: {{ image: \"busybox:1\" }}\n    outputs: [v]\n    run: |\n      echo quick >> \"$MARKS\"\n      sleep 1\n      echo v=1 >> \"$BATON_OUTPUTS\"\n    env: {{ MARKS: \"{marks}\" }}\n  slow:\n    executor: k8s\n    container: {{ image: \"busybox:1\" }}\n    run: |\n      echo \"slow $BATON_ATTEMPT\" >> \"$MARKS\"\n      test \"$BATON_ATTEMPT\" -gt 1 || sleep 60\n    env: {{ MARKS: \"{marks}\" }}\n",
            marks = marks.display()
        ),
    )
    .await;
    opts.lease_ttl = Duration::from_secs(1);
    opts.lease_renew_interval = Duration::from_millis(300);

    // The first baton, on a runtime of its own: shutting it down is a crash (every task of
    // it, attempts included, stops where it is; nothing is cleaned up).
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    {
        let (home, run, opts, settings) = (
            dir.path().to_path_buf(),
            run.clone(),
            opts.clone(),
            settings(&fake),
        );
        first.spawn(async move {
            let store: Arc<dyn Store> = Arc::new(
                baton_store::SqlStore::open_home(&home)
                    .await
                    .expect("store"),
            );
            let (_stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
            let _ = Engine::new(store, Arc::new(executors(settings)), opts)
                .execute(&run, stop_rx)
                .await;
        });
    }
    wait_for("both jobs run", || fake.running_jobs().len() == 2).await;
    first.shutdown_background();
    let quick_job = fake
        .created()
        .iter()
        .filter_map(|j| j["metadata"]["name"].as_str().map(str::to_owned))
        .find(|n| n.contains("-quick-1-"))
        .expect("quick's job");
    let slow_job = fake
        .created()
        .iter()
        .filter_map(|j| j["metadata"]["name"].as_str().map(str::to_owned))
        .find(|n| n.contains("-slow-1-"))
        .expect("slow's job");
    // While no baton runs, `quick` ends; `slow` runs on.
    wait_for("quick's job ends", || !fake.running(&quick_job)).await;
    assert!(fake.jobs().contains(&quick_job), "nobody deleted it");
    assert!(fake.running(&slow_job));
    // The dead baton's lease runs out.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let state = drive(&store, &run, &opts, settings(&fake)).await;
    let tasks = store.tasks(&run).await.expect("tasks");
    assert_eq!(state, RunState::Succeeded, "{tasks:#?}");
    let ran = std::fs::read_to_string(&marks).unwrap_or_default();
    let _ = std::fs::remove_file(&marks);
    assert_eq!(ran.matches("quick").count(), 1, "quick ran again: {ran}");
    assert!(ran.contains("slow 1") && ran.contains("slow 2"), "{ran}");
    let quick = support::task(&tasks, "quick");
    assert_eq!(
        quick.outputs.clone().unwrap_or_default().get("v"),
        Some(&json!("1")),
        "the recovered outputs: {quick:#?}"
    );
    let attempts = store.attempts(&run).await.expect("attempts");
    let slow: Vec<AttemptState> = attempts
        .iter()
        .filter(|a| a.key.as_str() == "slow")
        .map(|a| a.state)
        .collect();
    assert_eq!(slow, [AttemptState::Interrupted, AttemptState::Succeeded]);
    assert!(
        fake.deletes().iter().any(|(n, _)| *n == slow_job),
        "the interrupted job was deleted: {:?}",
        fake.deletes()
    );
    assert!(fake.jobs().is_empty(), "{:?}", fake.jobs());
    assert!(fake.running_jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_deletes_the_jobs_of_runs_that_are_over_and_keeps_the_others() {
    let fake = FakeCluster::start().await;
    let mut keep = settings(&fake);
    keep.on_finish = OnFinish::Keep;
    let source = pipeline("swept", "busybox:1", "", "\"true\"");
    let (dir, store, over, opts) = support::created(&source).await;
    assert_eq!(
        drive(&store, &over, &opts, keep.clone()).await,
        RunState::Succeeded
    );
    assert_eq!(fake.jobs().len(), 1, "kept as `on_finish = keep` says");
    let unfinished = support::create(store.as_ref(), dir.path(), &source, Default::default()).await;
    // What a dead baton could leave of the unfinished run, labelled as baton labels.
    fake.create_job(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "left-by-a-dead-baton", "labels": {
            "app.kubernetes.io/managed-by": "baton", "baton.dev/executor": "k8s",
            "baton.dev/run": unfinished.as_str()}},
        "spec": {"template": {"spec": {"containers": [{"name": "task", "image": "busybox:1",
            "command": ["sleep", "60"]}]}}},
    }))
    .await;
    // Another tool's Job in the same namespace is none of baton's business.
    fake.create_job(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "someone-elses", "labels": {"baton.dev/run": over.as_str()}},
        "spec": {"template": {"spec": {"containers": [{"name": "task", "image": "busybox:1",
            "command": ["true"]}]}}},
    }))
    .await;
    let removed = executors(keep).sweep(store.as_ref()).await;
    assert_eq!(removed, 1);
    let mut left = fake.jobs();
    left.sort();
    assert_eq!(left, ["left-by-a-dead-baton", "someone-elses"]);
}
