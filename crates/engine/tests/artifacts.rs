//! Artifacts through the real dispatcher: files a task uploads reach the tasks downstream
//! that download them, in working directories that share nothing, verified and with their
//! execute bit; digests recorded per attempt; a missing file fails the downstream task with a
//! retryable error; a pattern that matches nothing fails the uploader; a fan-out's files come
//! together, and two different files for one path are refused; a resumed run still finds
//! what was uploaded before it stopped.

mod support;

use std::sync::Arc;
use std::time::Duration;

use baton_core::state::{AttemptState, RunState, TaskState};
use baton_engine::artifacts::ArtifactStore;
use baton_engine::executor::{Executors, HttpExecutor, LocalExecutor};
use baton_engine::{Engine, Options, Stop};
use baton_store::Store;

fn executors(store_dir: &std::path::Path) -> Arc<Executors> {
    Arc::new(
        Executors::new(Arc::new(LocalExecutor::default()), HttpExecutor::default())
            .with_artifacts(ArtifactStore::dir(store_dir).expect("artifact store")),
    )
}

async fn drive(
    store: &Arc<dyn Store>,
    run: &baton_core::ids::RunId,
    opts: &Options,
    store_dir: &std::path::Path,
) -> RunState {
    support::drive_on(store, run, opts, executors(store_dir)).await
}

/// `build` and `test` each in a directory of their own: nothing passes between them but the
/// artifacts.
const BUILD_AND_TEST: &str = r#"name: shipped
tasks:
  build:
    working_dir: build-host
    artifacts: { upload: ["dist/*.tar.gz", bin] }
    run: |
      mkdir -p dist bin
      echo "release 1" > dist/app.tar.gz
      echo "not kept" > dist/app.log
      printf '#!/bin/sh\necho tool says hi\n' > bin/tool && chmod +x bin/tool
  test:
    needs: [build]
    working_dir: test-host
    artifacts: { download: [build] }
    run: |
      test "$(cat dist/app.tar.gz)" = "release 1"
      test ! -e dist/app.log
      ./bin/tool
"#;

/// `build` uploads a file; `wait` holds the run until the test makes `go`; `test` (with
/// `extra` keys) downloads the file and runs `check`.
fn gated(extra: &str, check: &str) -> String {
    format!(
        r#"name: gated
tasks:
  build:
    working_dir: build-host
    artifacts: {{ upload: [app.bin] }}
    run: echo built > app.bin
  wait:
    needs: [build]
    run: while [ ! -e go ]; do sleep 0.05; done
  test:
    needs: [wait]
    working_dir: test-host
{extra}    artifacts: {{ download: [build] }}
    run: {check}
"#
    )
}

fn dirs(home: &std::path::Path) {
    for d in ["build-host", "test-host"] {
        std::fs::create_dir_all(home.join(d)).expect("mkdir");
    }
}

#[tokio::test]
async fn uploads_reach_the_task_downstream_in_a_directory_of_its_own() {
    let (dir, store, run, opts) = support::created(BUILD_AND_TEST).await;
    dirs(dir.path());
    let artifacts = tempfile::tempdir().expect("temp dir");
    assert_eq!(
        drive(&store, &run, &opts, artifacts.path()).await,
        RunState::Succeeded,
        "{}",
        support::first_log(&store, dir.path(), &run).await
    );
    let stored = store.artifacts(&run).await.expect("artifacts");
    let paths: Vec<(&str, &str, u32)> = stored
        .iter()
        .map(|a| (a.key.as_str(), a.file.path.as_str(), a.attempt))
        .collect();
    assert_eq!(
        paths,
        [("build", "bin/tool", 1), ("build", "dist/app.tar.gz", 1)]
    );
    let tool = &stored[0].file;
    assert!(tool.executable);
    assert!(!stored[1].file.executable);
    assert_eq!(stored[1].file.size, "release 1\n".len() as u64);
    assert!(stored[0].store.starts_with("dir:"), "{}", stored[0].store);
    // The bytes are where the digest says, and nowhere else.
    let hex = stored[1]
        .file
        .digest
        .strip_prefix("sha256:")
        .expect("digest");
    let object = artifacts.path().join("sha256").join(&hex[..2]).join(hex);
    assert_eq!(
        std::fs::read_to_string(object).expect("object"),
        "release 1\n"
    );
    assert!(dir.path().join("test-host/dist/app.tar.gz").exists());
    let events = store.events(&run, 0).await.expect("events");
    assert!(
        events.iter().any(|e| e.kind == "artifacts_stored"
            && e.data["files"] == 2
            && e.task_key.as_ref().is_some_and(|k| k.as_str() == "build")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_missing_artifact_fails_the_downstream_task_with_a_retryable_error() {
    let source = gated("    retries: { limit: 1, delay: 10ms }\n", "cat app.bin");
    let (dir, store, run, opts) = support::created(&source).await;
    dirs(dir.path());
    let artifacts = tempfile::tempdir().expect("temp dir");
    let driving = tokio::spawn({
        let (store, run, opts) = (Arc::clone(&store), run.clone(), opts.clone());
        let dir = artifacts.path().to_owned();
        async move { drive(&store, &run, &opts, &dir).await }
    });
    wait_for_running(&store, &run, "wait").await;
    // The store loses the bytes (an operator's clean-up, a bucket's lifecycle rule).
    std::fs::remove_dir_all(artifacts.path().join("sha256")).expect("remove objects");
    std::fs::write(dir.path().join("go"), "").expect("go");
    assert_eq!(driving.await.expect("joined"), RunState::Failed);
    let tasks = store.tasks(&run).await.expect("tasks");
    let test = support::task(&tasks, "test");
    assert_eq!(test.state, TaskState::Failed);
    assert_eq!(test.attempts, 2, "retried, as a transient error is");
    let error = test.error.clone().unwrap_or_default();
    assert!(
        error.contains("artifact `app.bin`") && error.contains("is not in the artifact store"),
        "{error}"
    );
}

/// Until task `id` of `run` runs.
async fn wait_for_running(store: &Arc<dyn Store>, run: &baton_core::ids::RunId, id: &str) {
    for _ in 0..1000 {
        let tasks = store.tasks(run).await.expect("tasks");
        if support::task(&tasks, id).state == TaskState::Running {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("task `{id}` never ran");
}

#[tokio::test]
async fn a_pattern_that_matches_nothing_fails_the_uploader_and_says_which() {
    let source = r#"name: forgetful
tasks:
  build:
    artifacts: { upload: ["dist/*.whl"] }
    run: "true"
"#;
    let (_dir, store, run, opts) = support::created(source).await;
    let artifacts = tempfile::tempdir().expect("temp dir");
    assert_eq!(
        drive(&store, &run, &opts, artifacts.path()).await,
        RunState::Failed
    );
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts[0].state, AttemptState::Failed);
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(
        error.starts_with("artifact pattern `dist/*.whl` matched no file in"),
        "{error}"
    );
    assert!(store.artifacts(&run).await.expect("artifacts").is_empty());
}

#[tokio::test]
async fn a_fan_out_s_files_come_together_and_two_contents_for_one_path_are_refused() {
    let source = r#"name: shards
tasks:
  shard:
    for_each: [a, b]
    working_dir: "{{ item }}"
    artifacts: { upload: [out] }
    run: mkdir -p out && echo "{{ item }}" > out/{{ item }}.txt && echo same > out/common.txt
  merge:
    needs: [shard]
    working_dir: merged
    artifacts: { download: [shard] }
    run: test "$(cat out/a.txt out/b.txt)" = "$(printf 'a\nb')" && test "$(cat out/common.txt)" = same
"#;
    let (dir, store, run, opts) = support::created(source).await;
    for d in ["a", "b", "merged"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
    }
    let artifacts = tempfile::tempdir().expect("temp dir");
    assert_eq!(
        drive(&store, &run, &opts, artifacts.path()).await,
        RunState::Succeeded
    );

    let clash = source.replace(
        "echo same > out/common.txt",
        "echo {{ item }} > out/common.txt",
    );
    let (dir, store, run, opts) = support::created(&clash).await;
    for d in ["a", "b", "merged"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
    }
    assert_eq!(
        drive(&store, &run, &opts, artifacts.path()).await,
        RunState::Failed
    );
    let tasks = store.tasks(&run).await.expect("tasks");
    let error = support::task(&tasks, "merge")
        .error
        .clone()
        .unwrap_or_default();
    assert!(
        error.contains("would both be placed at `out/common.txt`"),
        "{error}"
    );
}

#[tokio::test]
async fn a_resumed_run_downloads_what_was_uploaded_before_it_stopped() {
    let source = gated("", "test \"$(cat app.bin)\" = built");
    let (dir, store, run, mut opts) = support::created(&source).await;
    dirs(dir.path());
    let artifacts = tempfile::tempdir().expect("temp dir");
    opts.drain_grace = Duration::from_millis(10);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let engine = Engine::new(
        Arc::clone(&store),
        executors(artifacts.path()),
        opts.clone(),
    );
    let first = tokio::spawn({
        let run = run.clone();
        async move { engine.execute(&run, stop_rx).await }
    });
    // Until `wait` runs: `build` and its files are committed by then.
    wait_for_running(&store, &run, "wait").await;
    stop_tx.send(Some(Stop::Drain)).expect("stop");
    assert_eq!(
        first.await.expect("joined").expect("driven"),
        RunState::Running
    );
    std::fs::write(dir.path().join("go"), "").expect("go");
    let tasks = store.tasks(&run).await.expect("tasks");
    assert_eq!(support::task(&tasks, "build").state, TaskState::Succeeded);
    let resumed = tokio::spawn({
        let (store, run, opts) = (Arc::clone(&store), run.clone(), opts.clone());
        let dir = artifacts.path().to_owned();
        async move { drive(&store, &run, &opts, &dir).await }
    });
    let state = tokio::time::timeout(Duration::from_secs(60), resumed)
        .await
        .expect("resumed in time")
        .expect("joined");
    assert_eq!(state, RunState::Succeeded);
    assert_eq!(
        support::task(&store.tasks(&run).await.expect("tasks"), "build").attempts,
        1,
        "build ran once"
    );
}

#[tokio::test]
async fn cancelling_a_run_stops_an_attempt_that_moves_artifacts() {
    let source = r#"name: cancelled
tasks:
  build:
    artifacts: { upload: [app.bin] }
    run: sleep 30 && echo built > app.bin
"#;
    let (_dir, store, run, opts) = support::created(source).await;
    let artifacts = tempfile::tempdir().expect("temp dir");
    let driving = tokio::spawn({
        let (store, run, opts) = (Arc::clone(&store), run.clone(), opts.clone());
        let dir = artifacts.path().to_owned();
        async move { drive(&store, &run, &opts, &dir).await }
    });
    wait_for_running(&store, &run, "build").await;
    // The process runs: its attempt has a record of who it is.
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.request_cancel(&run).await.expect("cancel");
    let state = tokio::time::timeout(Duration::from_secs(20), driving)
        .await
        .expect("the cancel ends the run, the attempt's report included")
        .expect("joined");
    assert_eq!(state, RunState::Cancelled);
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts[0].state, AttemptState::Cancelled);
}
