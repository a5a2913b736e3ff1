//! What the engine's tests share: a run of a pipeline in a fresh home, and driving it.
// Each test binary uses some of it.
#![allow(dead_code)]

#[path = "../../../store/tests/support/docker.rs"]
pub(crate) mod docker;
#[path = "../../../store/tests/support/skip.rs"]
pub(crate) mod skip;

use std::sync::Arc;

use baton_core::ids::RunId;
use baton_core::state::RunState;
use baton_engine::executor::LocalExecutor;
use baton_engine::{Engine, Options, RunRequest, Stop};
use baton_store::{SqlStore, Store};

/// A manual run of `source` created in a fresh home, and default options for that home.
pub(crate) async fn created(source: &str) -> (tempfile::TempDir, Arc<dyn Store>, RunId, Options) {
    created_with(source, serde_json::Map::new()).await
}

/// [`created`], with params.
pub(crate) async fn created_with(
    source: &str,
    params: serde_json::Map<String, serde_json::Value>,
) -> (tempfile::TempDir, Arc<dyn Store>, RunId, Options) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(SqlStore::open_home(dir.path()).await.expect("store"));
    let run = create(store.as_ref(), dir.path(), source, params).await;
    let opts = Options::new(dir.path().to_path_buf());
    (dir, store, run, opts)
}

/// A manual run of `source` in `store`, its tasks working in `dir`.
pub(crate) async fn create(
    store: &dyn Store,
    dir: &std::path::Path,
    source: &str,
    params: serde_json::Map<String, serde_json::Value>,
) -> RunId {
    let pipeline = baton_core::load(source).pipeline.expect("valid pipeline");
    baton_engine::create_run(
        store,
        RunRequest {
            params,
            ..RunRequest::new(&pipeline, source, dir.display().to_string())
        },
    )
    .await
    .expect("run created")
    .id
}

/// The task `id` among a run's `tasks`.
pub(crate) fn task<'a>(
    tasks: &'a [baton_store::TaskRecord],
    id: &str,
) -> &'a baton_store::TaskRecord {
    tasks
        .iter()
        .find(|t| t.task_id == id)
        .unwrap_or_else(|| panic!("no task `{id}`"))
}

/// Drives the run to its end (nobody asks it to stop).
pub(crate) async fn drive(store: &Arc<dyn Store>, run: &RunId, opts: &Options) -> RunState {
    drive_on(store, run, opts, Arc::new(LocalExecutor::default())).await
}

/// [`drive`], with `executor`.
pub(crate) async fn drive_on(
    store: &Arc<dyn Store>,
    run: &RunId,
    opts: &Options,
    executor: Arc<dyn baton_engine::executor::Executor>,
) -> RunState {
    let (_stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    Engine::new(Arc::clone(store), executor, opts.clone())
        .execute(run, stop_rx)
        .await
        .expect("run driven")
}

/// Drives the run in a task of its own, for tests that act on it while it goes.
pub(crate) fn driving(
    store: &Arc<dyn Store>,
    run: &RunId,
    opts: &Options,
) -> tokio::task::JoinHandle<RunState> {
    let (store, run, opts) = (Arc::clone(store), run.clone(), opts.clone());
    tokio::spawn(async move { drive(&store, &run, &opts).await })
}

/// The log of the run's first attempt.
pub(crate) async fn first_log(
    store: &Arc<dyn Store>,
    home: &std::path::Path,
    run: &RunId,
) -> String {
    let attempts = store.attempts(run).await.expect("attempts");
    attempt_log(home, run, &attempts[0].key, attempts[0].attempt).await
}

/// The log of attempt `attempt` of `key`, in the files under `home`.
pub(crate) async fn attempt_log(
    home: &std::path::Path,
    run: &RunId,
    key: &baton_core::ids::TaskKey,
    attempt: u32,
) -> String {
    let logs = baton_engine::executor::Logs::files(home);
    let bytes = logs
        .store
        .read(
            &baton_store::AttemptLog {
                run: run.clone(),
                key: key.clone(),
                attempt,
            },
            0,
            1 << 20,
        )
        .await
        .expect("log");
    String::from_utf8_lossy(&bytes).into_owned()
}
