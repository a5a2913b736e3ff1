//! PRE-FIX probe (replaced by the real test): a stale lease holder's commit must change nothing.
#[path = "support/skip.rs"]
mod skip;
use baton_core::ids::{RunId, TaskKey};
use baton_core::state::{RunState, TaskState};
use baton_store::{Change, DefinitionRecord, NewRun, NewTask, SqlStore, Store};
use serde_json::json;

#[tokio::test]
async fn sqlite_stale_owner_is_fenced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    let run = RunId::from_string("01fence");
    store.create_run(&NewRun {
        id: run.clone(),
        definition: DefinitionRecord { hash: "h".into(), namespace: "d".into(), name: "p".into(), source: "name: p\ntasks:\n  a:\n    run: x\n".into(), path: None },
        params: json!({}), trigger: "manual".into(), logical_date: None, base_dir: "/tmp".into(),
        idempotency_key: None, created_at: 1_000,
        tasks: vec![NewTask { key: TaskKey::from_string("a"), task_id: "a".into(), position: 0, item: None, state: TaskState::Pending }],
        admission: None, backfill_id: None, no_cache: false, parent: None,
    }).await.expect("create");
    assert!(store.acquire_lease(&run, "A", 1_000, 2_000, None).await.expect("a"));
    assert!(store.acquire_lease(&run, "B", 5_000, 9_000, None).await.expect("b"));
    let stale = store.apply(&run, &[Change::Run { state: RunState::Succeeded, at: 5_001, error: None }]).await;
    assert!(stale.is_err(), "a stale owner's commit landed");
    assert!(!store.acquire_lease(&run, "A", 5_002, 9_000, None).await.expect("renew"));
}
