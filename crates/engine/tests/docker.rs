//! `container:` tasks through the real dispatcher, on the machine's Docker engine: the
//! command in the image with the workspace mounted and outputs passed downstream, exit codes
//! and retries, timeouts and cancellation that stop the container, an image that may not be
//! pulled, an out-of-memory kill, a crash's leftovers, and nothing left behind.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::state::{AttemptState, RunState, TaskState};
use baton_engine::executor::{DockerHost, DockerSettings, Executors, HttpExecutor, LocalExecutor};
use baton_engine::{Engine, Options, Stop};
use baton_store::Store;
use support::docker::{IMAGE, available, containers_of};

fn executors() -> Executors {
    Executors::new(Arc::new(LocalExecutor::default()), HttpExecutor::default()).with_default_docker(
        DockerSettings {
            name: "docker".into(),
            host: DockerHost::from_env(),
            stop_grace: Duration::from_secs(1),
            pids_limit: Some(256),
        },
    )
}

fn engine(store: &Arc<dyn Store>, opts: &Options) -> Engine {
    Engine::new(Arc::clone(store), Arc::new(executors()), opts.clone())
}

async fn drive(store: &Arc<dyn Store>, run: &baton_core::ids::RunId, opts: &Options) -> RunState {
    support::drive_on(store, run, opts, Arc::new(executors())).await
}

#[tokio::test]
async fn a_command_runs_in_its_image_with_the_workspace_and_passes_outputs_on() {
    if !available("a container task runs") {
        return;
    }
    let source = format!(
        r#"name: boxed
tasks:
  build:
    container: {{ image: "{IMAGE}", pull: never }}
    outputs: [rows, where]
    env: {{ GREETING: hello }}
    run: |
      echo "$GREETING from $(cat /workspace/input.txt)"
      echo "attempt $BATON_ATTEMPT of $BATON_TASK_ID in $PWD"
      echo rows=3 >> "$BATON_OUTPUTS"
      echo "where=$(hostname)" >> "$BATON_OUTPUTS"
      echo made > /workspace/out.txt
      test -z "$CARGO" || {{ echo "the host's environment leaked in"; exit 9; }}
  after:
    needs: [build]
    run: test "$(cat out.txt)" = made && test "{{{{ tasks.build.outputs.rows }}}}" = 3
"#
    );
    let (dir, store, run, opts) = support::created(&source).await;
    std::fs::write(dir.path().join("input.txt"), "the workspace").expect("write");
    let state = drive(&store, &run, &opts).await;
    let tasks = store.tasks(&run).await.expect("tasks");
    assert_eq!(
        state,
        RunState::Succeeded,
        "{tasks:#?}\n{}",
        support::first_log(&store, dir.path(), &run).await
    );
    let build = support::task(&tasks, "build");
    let rows = build.outputs.as_ref().and_then(|o| o.get("rows")).cloned();
    assert_eq!(rows, Some(serde_json::json!("3")), "{build:#?}");
    let log = support::first_log(&store, dir.path(), &run).await;
    assert!(log.contains("hello from the workspace"), "{log}");
    assert!(log.contains("attempt 1 of build in /workspace"), "{log}");
    assert!(
        containers_of(run.as_str()).is_empty(),
        "containers left: {:?}",
        containers_of(run.as_str())
    );
}

#[tokio::test]
async fn a_failing_container_is_retried_and_its_exit_code_told() {
    if !available("a failing container is retried") {
        return;
    }
    let source = format!(
        "name: failing\ntasks:\n  t:\n    container: {{ image: \"{IMAGE}\", pull: never }}\n    run: echo no; exit 3\n    retries: {{ limit: 1, delay: 10ms }}\n"
    );
    let (_dir, store, run, opts) = support::created(&source).await;
    assert_eq!(drive(&store, &run, &opts).await, RunState::Failed);
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert!(
        attempts.iter().all(|a| a.exit_code == Some(3)),
        "{attempts:#?}"
    );
    let tasks = store.tasks(&run).await.expect("tasks");
    let error = support::task(&tasks, "t").error.clone().unwrap_or_default();
    assert!(error.contains("exited with code 3"), "{error}");
    assert!(containers_of(run.as_str()).is_empty());
}

#[tokio::test]
async fn a_missing_image_that_may_not_be_pulled_fails_at_once() {
    if !available("a missing image fails") {
        return;
    }
    let source = "name: missing\ntasks:\n  t:\n    container: { image: \"baton/not-here:0\", pull: never }\n    run: \"true\"\n    retries: { limit: 3, delay: 10ms }\n";
    let (_dir, store, run, opts) = support::created(source).await;
    assert_eq!(drive(&store, &run, &opts).await, RunState::Failed);
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts.len(), 1, "retrying cannot help: {attempts:#?}");
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("image `baton/not-here:0` is not on the Docker engine")
            && error.contains("`pull: never`"),
        "{error}"
    );
}

#[tokio::test]
async fn a_timeout_stops_the_container() {
    if !available("a timeout stops the container") {
        return;
    }
    // `sh` as process 1 ignores SIGTERM: the engine's SIGKILL after the grace ends it.
    let source = format!(
        "name: slow\ntasks:\n  t:\n    container: {{ image: \"{IMAGE}\", pull: never }}\n    run: sleep 60\n    timeout: 1s\n"
    );
    let (_dir, store, run, opts) = support::created(&source).await;
    let started = Instant::now();
    assert_eq!(drive(&store, &run, &opts).await, RunState::Failed);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the 60 s sleep was waited for"
    );
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts[0].state, AttemptState::TimedOut);
    assert!(containers_of(run.as_str()).is_empty());
}

#[tokio::test]
async fn cancelling_a_run_stops_its_container() {
    if !available("cancelling stops the container") {
        return;
    }
    let source = format!(
        "name: cancelled\ntasks:\n  t:\n    container: {{ image: \"{IMAGE}\", pull: never }}\n    run: echo started; sleep 60\n"
    );
    let (_dir, store, run, opts) = support::created(&source).await;
    let (stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let engine = engine(&store, &opts);
    let driven = tokio::spawn({
        let run = run.clone();
        async move { engine.execute(&run, stop_rx).await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers_of(run.as_str()).is_empty() {
        assert!(Instant::now() < deadline, "no container started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    assert!(containers_of(run.as_str()).is_empty());
}

#[tokio::test]
async fn a_container_past_its_memory_limit_is_told_out_of_memory() {
    if !available("an out-of-memory kill is told") {
        return;
    }
    // The shell keeps 60 MB in a variable, or would.
    let source = format!(
        "name: hungry\ntasks:\n  t:\n    container: {{ image: \"{IMAGE}\", pull: never }}\n    run: x=$(head -c 60000000 /dev/zero | tr -c a a); echo ${{#x}}\n    resources: {{ memory: 16Mi }}\n"
    );
    let (_dir, store, run, opts) = support::created(&source).await;
    assert_eq!(drive(&store, &run, &opts).await, RunState::Failed);
    let attempts = store.attempts(&run).await.expect("attempts");
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("ran out of memory (limit 16 MiB)"),
        "{error}"
    );
}

#[tokio::test]
async fn a_task_naming_an_unknown_executor_fails_and_says_which() {
    let source =
        "name: named\ntasks:\n  t:\n    run: \"true\"\n    executor: gpu-pool\n    retries: 2\n";
    let (_dir, store, run, opts) = support::created(source).await;
    assert_eq!(drive(&store, &run, &opts).await, RunState::Failed);
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("no executor `gpu-pool` is configured: add `[executors.gpu-pool]`"),
        "{error}"
    );
}

#[tokio::test]
async fn a_fan_out_runs_one_container_per_item() {
    if !available("a fan-out of containers") {
        return;
    }
    let source = format!(
        "name: fanned\ntasks:\n  t:\n    for_each: [eu, us, ap]\n    container: {{ image: \"{IMAGE}\", pull: never }}\n    run: echo \"$BATON_TASK_KEY\" > /workspace/out-{{{{ item }}}}.txt\n"
    );
    let (dir, store, run, opts) = support::created(&source).await;
    assert_eq!(drive(&store, &run, &opts).await, RunState::Succeeded);
    for item in ["eu", "us", "ap"] {
        let written =
            std::fs::read_to_string(dir.path().join(format!("out-{item}.txt"))).unwrap_or_default();
        assert_eq!(written.trim(), format!("t[{item}]"));
    }
    assert!(containers_of(run.as_str()).is_empty());
}

#[tokio::test]
async fn a_task_for_workers_fails_at_once_without_any() {
    let source =
        "name: remote\ntasks:\n  t:\n    runs_on: [gpu]\n    run: \"true\"\n    retries: 2\n";
    let (_dir, store, run, opts) = support::created(source).await;
    assert_eq!(drive(&store, &run, &opts).await, RunState::Failed);
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(error.contains("runs on workers labelled `gpu`"), "{error}");
}

#[tokio::test]
async fn a_sweep_removes_the_containers_of_runs_that_are_over_and_keeps_the_others() {
    if !available("a sweep of leftover containers") {
        return;
    }
    let source = format!(
        "name: swept\ntasks:\n  t:\n    container: {{ image: \"{IMAGE}\", pull: never }}\n    run: \"true\"\n"
    );
    let (dir, store, over, opts) = support::created(&source).await;
    assert_eq!(drive(&store, &over, &opts).await, RunState::Succeeded);
    let unfinished = support::create(store.as_ref(), dir.path(), &source, Default::default()).await;
    // What a dead baton could leave: a container of each, made as the executor makes them.
    for run in [&over, &unfinished] {
        let made = std::process::Command::new("docker")
            .args([
                "create",
                "--label",
                "dev.baton.executor=docker",
                "--label",
                &format!("dev.baton.run={run}"),
                IMAGE,
                "true",
            ])
            .output()
            .expect("docker create");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let removed = executors().sweep(store.as_ref()).await;
    assert!(removed >= 1, "{removed}");
    assert!(containers_of(over.as_str()).is_empty());
    let kept = containers_of(unfinished.as_str());
    assert_eq!(
        kept.len(),
        1,
        "the unfinished run's container is its resumer's"
    );
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &kept[0]])
        .output();
}

#[tokio::test]
async fn a_missing_working_directory_is_told_not_made() {
    if !available("a missing working directory") {
        return;
    }
    let source = format!(
        "name: nowhere\ntasks:\n  t:\n    container: {{ image: \"{IMAGE}\", pull: never }}\n    working_dir: not-here\n    run: \"true\"\n"
    );
    let (dir, store, run, opts) = support::created(&source).await;
    assert_eq!(drive(&store, &run, &opts).await, RunState::Failed);
    let attempts = store.attempts(&run).await.expect("attempts");
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(error.contains("cannot use working directory"), "{error}");
    assert!(!dir.path().join("not-here").exists(), "the engine made it");
}

#[tokio::test]
async fn a_container_task_finds_its_upstream_s_artifacts_in_its_workspace_and_uploads_its_own() {
    if !available("a container task moves artifacts") {
        return;
    }
    let source = format!(
        r#"name: boxed-artifacts
tasks:
  build:
    working_dir: build-host
    artifacts: {{ upload: [app.txt] }}
    run: echo from-the-host > app.txt
  package:
    needs: [build]
    working_dir: box
    container: {{ image: "{IMAGE}", pull: never }}
    artifacts: {{ download: [build], upload: ["pkg/*"] }}
    run: mkdir -p pkg && cp app.txt pkg/app.txt && echo packaged >> pkg/app.txt
  check:
    needs: [package]
    working_dir: check-host
    artifacts: {{ download: [package] }}
    run: test "$(cat pkg/app.txt)" = "$(printf 'from-the-host\npackaged')"
"#
    );
    let (dir, store, run, opts) = support::created(&source).await;
    for d in ["build-host", "box", "check-host"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
    }
    let artifacts = tempfile::tempdir().expect("temp dir");
    let executors = executors().with_artifacts(
        baton_engine::artifacts::ArtifactStore::dir(artifacts.path()).expect("store"),
    );
    let state = support::drive_on(&store, &run, &opts, Arc::new(executors)).await;
    assert_eq!(state, RunState::Succeeded, "{:?}", store.tasks(&run).await);
    let stored = store.artifacts(&run).await.expect("artifacts");
    assert!(
        stored
            .iter()
            .any(|a| a.key.as_str() == "package" && a.file.path == "pkg/app.txt"),
        "{stored:?}"
    );
}
