//! Requests made of a running run (an approval, a cancel) reach its dispatcher when the
//! store announces them, not at its next poll: these tests make the poll an hour apart.

mod support;

use std::sync::Arc;
use std::time::Duration;

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::{RunState, TaskState};
use baton_engine::Options;
use baton_store::Store;

/// Far longer than any test waits: a request acted on came through the change feed.
const NEVER: Duration = Duration::from_secs(3600);
/// Generous, for a loaded machine; only a request that is never acted on waits this long.
const PROMPTLY: Duration = Duration::from_secs(30);

/// A run of `source` whose dispatcher polls its control rows an hour apart.
async fn started(source: &str) -> (tempfile::TempDir, Arc<dyn Store>, RunId, Options) {
    let (dir, store, run, mut opts) = support::created(source).await;
    opts.control_interval = NEVER;
    (dir, store, run, opts)
}

/// Waits until task `key` of `run` is in `state`, then a while longer: the dispatcher reads
/// its control rows once after its own commits, and the request must come after that read.
async fn settled_in(store: &dyn Store, run: &RunId, key: &str, state: TaskState) {
    tokio::time::timeout(PROMPTLY, async {
        loop {
            let tasks = store.tasks(run).await.expect("tasks");
            if tasks
                .iter()
                .any(|t| t.key.as_str() == key && t.state == state)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("task `{key}` never became {state}"));
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn ended(run: tokio::task::JoinHandle<RunState>, what: &str) -> RunState {
    tokio::time::timeout(PROMPTLY, run)
        .await
        .unwrap_or_else(|_| panic!("{what} was not acted on before the next poll"))
        .expect("driver")
}

#[tokio::test]
async fn an_approval_is_acted_on_without_waiting_for_the_poll() {
    let source = "name: gated\ntasks:\n  release:\n    approval: {}\n    run: \"true\"\n";
    let (_dir, store, run, opts) = started(source).await;
    let driver = support::driving(&store, &run, &opts);
    settled_in(store.as_ref(), &run, "release", TaskState::WaitingApproval).await;
    baton_engine::control::decide(
        store.as_ref(),
        &run,
        &TaskKey::from_string("release"),
        true,
        "ana",
        None,
    )
    .await
    .expect("decide");
    assert_eq!(ended(driver, "the approval").await, RunState::Succeeded);
}

#[tokio::test]
async fn a_cancel_request_is_acted_on_without_waiting_for_the_poll() {
    let source = "name: slow\ntasks:\n  wait:\n    run: sleep 300\n";
    let (_dir, store, run, opts) = started(source).await;
    let driver = support::driving(&store, &run, &opts);
    settled_in(store.as_ref(), &run, "wait", TaskState::Running).await;
    let asked = baton_engine::control::request_cancel(store.as_ref(), &run)
        .await
        .expect("cancel");
    assert_eq!(asked, baton_engine::control::Cancel::Requested);
    assert_eq!(
        ended(driver, "the cancel request").await,
        RunState::Cancelled
    );
}
