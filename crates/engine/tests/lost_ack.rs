//! A commit can land while its answer is lost: the connection drops right after the database
//! committed. The dispatcher cannot tell that from a commit that never landed, and retries it;
//! the retry must not write the same changes again.

mod support;

use std::sync::Arc;

use baton_core::state::RunState;
use baton_engine::Options;
use baton_store::{SqlStore, Store};

const PIPELINE: &str =
    "name: acks\ntasks:\n  a:\n    run: echo a\n  b:\n    needs: [a]\n    run: echo b\n";

/// The run's history as a list that does not depend on timing: each event's kind, task,
/// attempt and state, then each attempt.
async fn history(store: &dyn Store, run: &baton_core::ids::RunId) -> Vec<String> {
    let mut lines: Vec<String> = store
        .events(run, 0)
        .await
        .expect("events")
        .iter()
        .map(|e| {
            format!(
                "{} {:?} {:?} {}",
                e.kind, e.task_key, e.attempt, e.data["state"]
            )
        })
        .collect();
    lines.extend(
        store
            .attempts(run)
            .await
            .expect("attempts")
            .iter()
            .map(|a| format!("attempt {} {} {:?}", a.key, a.attempt, a.state)),
    );
    lines
}

/// Drives `PIPELINE` in a fresh home, with the answers of its first `lose` commits lost.
async fn driven(lose: u32) -> (RunState, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sql = Arc::new(SqlStore::open_home(dir.path()).await.expect("store"));
    let store: Arc<dyn Store> = sql.clone();
    let run = support::create(store.as_ref(), dir.path(), PIPELINE, Default::default()).await;
    sql.lose_commit_acks(lose);
    let opts = Options::new(dir.path().to_path_buf());
    let state = support::drive(&store, &run, &opts).await;
    sql.lose_commit_acks(0);
    (state, history(store.as_ref(), &run).await)
}

/// A run with a cached task, driven in a fresh home with each of the dispatcher's first
/// `lose` reads of it failing once, as in a PostgreSQL restart.
async fn driven_through_lost_reads(lose: u32) -> (RunState, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sql = Arc::new(SqlStore::open_home(dir.path()).await.expect("store"));
    let store: Arc<dyn Store> = sql.clone();
    let cached = format!("{PIPELINE}    cache:\n      key: b\n");
    let run = support::create(store.as_ref(), dir.path(), &cached, Default::default()).await;
    sql.lose_reads(lose);
    let opts = Options::new(dir.path().to_path_buf());
    let state = support::drive(&store, &run, &opts).await;
    sql.lose_reads(0);
    (state, history(store.as_ref(), &run).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_that_lose_their_connection_are_tried_again() {
    // The run, its definition, tasks and attempts, and the cache lookup: each fails once.
    let (state, lost) = driven_through_lost_reads(5).await;
    let (_, clean) = driven_through_lost_reads(0).await;
    assert_eq!(state, RunState::Succeeded, "{lost:#?}");
    assert_eq!(lost, clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_was_lost_is_written_once() {
    let (state, lost) = driven(1).await;
    let (_, clean) = driven(0).await;
    assert_eq!(state, RunState::Succeeded, "{lost:#?}");
    assert_eq!(lost, clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_commit_whose_answer_was_lost_is_written_once() {
    // Each commit lands and reports a lost connection; its retry finds it landed. A retry
    // that wrote again would land a second time and report a loss once more, forever.
    let (state, lost) = driven(u32::MAX).await;
    let (_, clean) = driven(0).await;
    assert_eq!(state, RunState::Succeeded, "{lost:#?}");
    assert_eq!(lost, clean);
}
