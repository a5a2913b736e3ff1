//! Observers hear committed changes, and can add to an attempt's environment.

use std::sync::{Arc, Mutex};

use baton_core::ids::TaskKey;
use baton_core::state::RunState;
use baton_engine::executor::LocalExecutor;
use baton_engine::{Observer, Options, RunRequest, RunScope, Stop};
use baton_store::{Change, SqlStore, Store};

#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<String>>,
}

impl Observer for Recorder {
    fn committed(&self, scope: RunScope<'_>, changes: &[Change]) {
        let mut seen = self.seen.lock().expect("lock");
        for c in changes {
            let line = match c {
                Change::Run { state, .. } => format!("run {state}"),
                Change::Task { key, state, .. } => format!("task {key} {state}"),
                Change::AttemptStarted { key, attempt, .. } => format!("start {key} {attempt}"),
                Change::AttemptFinished { key, exit_code, .. } => {
                    format!("end {key} {exit_code:?}")
                }
                Change::AddTasks(_) | Change::Reopen { .. } => continue,
            };
            seen.push(format!("{}: {line}", scope.pipeline.id));
        }
    }

    fn attempt_env(
        &self,
        scope: RunScope<'_>,
        key: &TaskKey,
        attempt: u32,
    ) -> Vec<(String, String)> {
        vec![(
            "OBSERVED".into(),
            format!("{}/{key}/{attempt}", scope.run.pipeline),
        )]
    }
}

#[tokio::test]
async fn observers_hear_committed_changes_and_set_attempt_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = "name: watched\ntasks:\n  hello:\n    run: test \"$OBSERVED\" = watched/hello/1\n  after:\n    needs: [hello]\n    run: exit 3\n";
    let loaded = baton_core::load(source);
    let pipeline = loaded.pipeline.expect("valid pipeline");
    let store: Arc<dyn Store> = Arc::new(SqlStore::open_home(dir.path()).await.expect("store"));
    let run = baton_engine::create_run(
        store.as_ref(),
        RunRequest {
            pipeline: &pipeline,
            source,
            path: None,
            base_dir: dir.path().display().to_string(),
            params: serde_json::Map::new(),
            trigger: "manual",
            logical_date: None,
            idempotency_key: None,
            admission: None,
            backfill_id: None,
        },
    )
    .await
    .expect("run created");

    let recorder = Arc::new(Recorder::default());
    let mut opts = Options::new(dir.path().to_path_buf());
    opts.observers.push(recorder.clone());
    let (_stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let state = baton_engine::execute(
        store,
        Arc::new(LocalExecutor::default()),
        &run.id,
        &opts,
        None,
        stop_rx,
    )
    .await
    .expect("run driven");

    assert_eq!(state, RunState::Failed);
    let seen = recorder.seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        [
            "default/watched: run running",
            "default/watched: task hello queued",
            "default/watched: start hello 1",
            "default/watched: task hello running",
            "default/watched: end hello Some(0)",
            "default/watched: task hello succeeded",
            "default/watched: task after queued",
            "default/watched: start after 1",
            "default/watched: task after running",
            "default/watched: end after Some(3)",
            "default/watched: task after failed",
            "default/watched: run failed",
        ]
    );
}
