//! Taking over what a dead server left: an admitted run it never started, and the runs it
//! kept waiting for admission, which no live server had listed.

mod support;

use std::time::{Duration, Instant};

use baton_control::takeover::Takeover;
use baton_core::spec::Overlap;
use baton_core::state::RunState;
use baton_store::{Admission, Store};

const SOURCE: &str = "name: limited\ntasks:\n  a:\n    run: \"true\"\n";

/// A run of `limited` created as a server does (admitted at once, or waiting), and then
/// left alone, as by a server killed right after.
async fn abandoned(store: &dyn Store, base_dir: &str) -> baton_core::ids::RunId {
    let pipeline = baton_core::load(SOURCE).pipeline.expect("valid");
    baton_engine::create_run(
        store,
        baton_engine::RunRequest {
            admission: Some(Admission {
                group: "pipeline:default/limited".into(),
                limit: 1,
                overlap: Overlap::Queue,
            }),
            ..baton_engine::RunRequest::new(&pipeline, SOURCE, base_dir)
        },
    )
    .await
    .expect("run")
    .id
}

async fn state_of(store: &dyn Store, run: &baton_core::ids::RunId) -> RunState {
    store.run(run).await.expect("read").expect("run").state
}

#[tokio::test]
async fn runs_a_dead_server_admitted_or_kept_waiting_are_driven() {
    let (dir, state) = support::app(&[], &[]).await;
    let store = state.store.as_ref();
    let base = dir.path().display().to_string();
    let first = abandoned(store, &base).await;
    let second = abandoned(store, &base).await;
    let r = store.run(&second).await.expect("read").expect("run");
    assert!(r.admitted_at.is_none(), "the group is full: it waits");

    let mut takeover = Takeover::new(state.control.clone());
    assert_eq!(
        takeover.pass().await.expect("pass"),
        0,
        "seen once, not yet orphans"
    );
    assert_eq!(
        takeover.pass().await.expect("pass"),
        1,
        "the admitted run, still unowned"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while state_of(store, &second).await != RunState::Succeeded {
        assert!(
            Instant::now() < deadline,
            "the waiting run was never driven"
        );
        // The first run's end frees the group; the waiting run is offered from the second
        // look that finds it admissible.
        takeover.pass().await.expect("pass");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state_of(store, &first).await, RunState::Succeeded);
    assert_eq!(state.runner.waiting(), 0);
}

#[tokio::test]
async fn a_waiting_run_asked_to_cancel_by_a_dead_server_is_ended() {
    let (dir, state) = support::app(&[], &[]).await;
    let store = state.store.as_ref();
    let base = dir.path().display().to_string();
    let first = abandoned(store, &base).await;
    let waiting = abandoned(store, &base).await;
    // The request is recorded, but the server that took it died before driving the run to
    // its end.
    store
        .request_cancel(&waiting)
        .await
        .expect("cancel request");
    let mut takeover = Takeover::new(state.control.clone());
    takeover.pass().await.expect("pass");
    takeover.pass().await.expect("pass");
    let deadline = Instant::now() + Duration::from_secs(20);
    while state_of(store, &waiting).await != RunState::Cancelled {
        assert!(Instant::now() < deadline, "the waiting run was never ended");
        takeover.pass().await.expect("pass");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The admitted run is taken over and finishes as usual.
    while state_of(store, &first).await != RunState::Succeeded {
        assert!(
            Instant::now() < deadline,
            "the admitted run was never driven"
        );
        takeover.pass().await.expect("pass");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
