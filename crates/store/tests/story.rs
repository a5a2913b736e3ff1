//! One story of a run's life, told to every backend: SQLite always, PostgreSQL when
//! `BATON_TEST_POSTGRES_URL` names a server (`.ci/run` starts one).

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/skip.rs"]
mod skip;

use std::sync::Arc;

use baton_core::ids::{BackfillId, LeaseOwner, RunId, TaskKey};
use baton_core::spec::Overlap;
use baton_core::state::{AttemptState, RunState, TaskState};
use baton_store::{
    Admission, Admitted, AttemptProcess, BackfillFilter, BackfillRecord, CacheSource, Change,
    Changes, DeadLetterCursor, DeadLetterFilter, DefinitionRecord, Fence, NewRun, NewTask,
    OrphanClaim, ParentRef, PipelineCount, PoolRecord, RunFilter, Rusage, SlotClaim, SqlStore,
    Store, TaskCount,
};
use serde_json::json;

fn new_run(id: &str, key: Option<&str>) -> NewRun {
    let task = |k: &str, pos| NewTask {
        key: TaskKey::from_string(k),
        task_id: k.to_owned(),
        position: pos,
        item: None,
        state: TaskState::Pending,
    };
    NewRun {
        id: RunId::from_string(id),
        definition: DefinitionRecord {
            hash: "h1".into(),
            namespace: "data".into(),
            name: "etl".into(),
            source: "name: etl\ntasks:\n  a:\n    run: x\n".into(),
            path: Some("etl.yaml".into()),
        },
        params: json!({"date": "2026-11-01"}),
        trigger: "manual".into(),
        logical_date: None,
        base_dir: "/tmp".into(),
        idempotency_key: key.map(str::to_owned),
        created_at: 1_000,
        tasks: vec![task("a", 0), task("b", 1)],
        admission: None,
        backfill_id: None,
        no_cache: false,
        parent: None,
    }
}

async fn story(store: &dyn Store) {
    let id = store
        .create_run(&new_run("01aaa", Some("k1")))
        .await
        .expect("create");
    assert_eq!(id.as_str(), "01aaa");
    // The same idempotency key returns the same run.
    let again = store
        .create_run(&new_run("01bbb", Some("k1")))
        .await
        .expect("create again");
    assert_eq!(again.as_str(), "01aaa");
    store
        .create_run(&new_run("01abz", None))
        .await
        .expect("second run");

    let a = TaskKey::from_string("a");
    store
        .apply(
            &id,
            Fence::Unfenced,
            &[
                Change::Run {
                    state: RunState::Running,
                    at: 1_001,
                    error: None,
                },
                Change::Task {
                    key: a.clone(),
                    state: TaskState::Queued,
                    at: 1_002,
                    next_attempt_at: None,
                    outputs: None,
                    error: None,
                },
                Change::AttemptStarted {
                    key: a.clone(),
                    attempt: 1,
                    at: 1_003,
                    log_path: "/l/a.1".into(),
                    owner: "me".into(),
                    after_interruption: false,
                },
                Change::Task {
                    key: a.clone(),
                    state: TaskState::Running,
                    at: 1_003,
                    next_attempt_at: None,
                    outputs: None,
                    error: None,
                },
            ],
        )
        .await
        .expect("start");
    let mut outputs = serde_json::Map::new();
    outputs.insert("rows".into(), json!("42"));
    store
        .apply(
            &id,
            Fence::Unfenced,
            &[
                Change::AttemptFinished {
                    key: a.clone(),
                    attempt: 1,
                    state: AttemptState::Succeeded,
                    started_at: 1_003,
                    at: 1_010,
                    exit_code: Some(0),
                    signal: None,
                    rusage: Some(Rusage {
                        cpu_user_ms: 5,
                        cpu_sys_ms: 2,
                        max_rss_kb: 1024,
                    }),
                    error: None,
                },
                Change::Task {
                    key: a.clone(),
                    state: TaskState::Succeeded,
                    at: 1_010,
                    next_attempt_at: None,
                    outputs: Some(outputs),
                    error: None,
                },
                Change::AddTasks(vec![NewTask {
                    key: TaskKey::from_string("b[eu]"),
                    task_id: "b".into(),
                    position: 2,
                    item: Some(json!("eu")),
                    state: TaskState::Queued,
                }]),
            ],
        )
        .await
        .expect("finish");

    let run = store.run(&id).await.expect("read").expect("exists");
    assert_eq!(run.state, RunState::Running);
    assert_eq!(run.started_at, Some(1_001));
    assert_eq!(run.params, json!({"date": "2026-11-01"}));
    assert_eq!(
        store
            .definition("h1")
            .await
            .expect("def")
            .expect("stored")
            .name,
        "etl"
    );

    let tasks = store.tasks(&id).await.expect("tasks");
    let keys: Vec<&str> = tasks.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, vec!["a", "b", "b[eu]"]);
    let ta = &tasks[0];
    assert_eq!(ta.state, TaskState::Succeeded);
    assert_eq!(ta.attempts, 1);
    assert_eq!((ta.started_at, ta.finished_at), (Some(1_003), Some(1_010)));
    assert_eq!(
        ta.outputs.as_ref().and_then(|o| o.get("rows")),
        Some(&json!("42"))
    );
    assert_eq!(tasks[2].item, Some(json!("eu")));

    let attempts = store.attempts(&id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].state, AttemptState::Succeeded);
    assert_eq!(attempts[0].exit_code, Some(0));
    assert_eq!(attempts[0].rusage.map(|r| r.max_rss_kb), Some(1024));

    // The event log has every change, in order.
    let events = store.events(&id, 0).await.expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "run_created",
            "run_state",
            "task_state",
            "attempt_started",
            "task_state",
            "attempt_finished",
            "task_state"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let later = store.events(&id, events[3].seq).await.expect("tail");
    assert_eq!(later.len(), 3);
    // A finish says when its attempt started, for readers that did not see the start.
    assert_eq!(later[1].data["started_at"], json!(1_003));

    // Leases: one owner at a time; an expired lease or a named stale owner can be taken.
    assert!(acquired(store, &id, "p1", 2_000, 3_000, None).await);
    assert!(!acquired(store, &id, "p2", 2_500, 3_500, None).await);
    assert!(acquired(store, &id, "p2", 2_500, 3_500, Some("p1")).await);
    assert!(acquired(store, &id, "p3", 4_000, 5_000, None).await);
    store
        .release_lease(&id, &lease_of(store, &id, "p3").await)
        .await
        .expect("release");
    assert_eq!(
        store
            .run(&id)
            .await
            .expect("read")
            .expect("run")
            .lease_owner,
        None
    );

    // Requests from other processes.
    store.request_cancel(&id).await.expect("cancel");
    assert!(
        store
            .decide(&id, &a, true, "ann", 5_000, Some("ok"))
            .await
            .expect("decide")
    );
    assert!(
        !store
            .decide(&id, &a, false, "bob", 5_001, None)
            .await
            .expect("second decision")
    );
    let control = store.control(&id).await.expect("control");
    assert!(control.cancel_requested);
    assert_eq!(control.approvals.len(), 1);
    assert!(control.approvals[0].approved);
    assert_eq!(control.approvals[0].decided_by, "ann");
    // The owner acting on it logs who decided.
    let before = store.events(&id, 0).await.expect("events").len();
    store
        .apply(
            &id,
            Fence::Unfenced,
            &[Change::Decided {
                key: a.clone(),
                approved: true,
                by: "ann".into(),
                comment: Some("ok".into()),
                at: 5_000,
            }],
        )
        .await
        .expect("decided");
    let events = store.events(&id, 0).await.expect("events");
    assert_eq!(events.len(), before + 1);
    let decided = events.last().expect("decided event");
    assert_eq!(
        (decided.kind.as_str(), decided.at, decided.task_key.as_ref()),
        ("approval_decided", 5_000, Some(&a))
    );
    assert_eq!(
        decided.data,
        json!({ "approved": true, "by": "ann", "comment": "ok" })
    );

    // A missed deadline is recorded once per run and once per task, whoever notices it.
    let b = TaskKey::from_string("b");
    assert!(
        store
            .record_deadline_miss(&id, None, 6_000)
            .await
            .expect("run miss")
    );
    assert!(
        !store
            .record_deadline_miss(&id, None, 6_001)
            .await
            .expect("run miss again")
    );
    assert!(
        store
            .record_deadline_miss(&id, Some(&a), 6_000)
            .await
            .expect("task miss")
    );
    assert!(
        store
            .record_deadline_miss(&id, Some(&b), 6_000)
            .await
            .expect("other task miss")
    );
    assert!(
        !store
            .record_deadline_miss(&id, Some(&a), 6_002)
            .await
            .expect("task miss again")
    );
    let other = RunId::from_string("01abz");
    assert!(
        store
            .record_deadline_miss(&other, Some(&a), 6_000)
            .await
            .expect("same task of another run")
    );

    // Finding runs.
    assert_eq!(
        store.resolve_run("01aaa").await.expect("exact").as_str(),
        "01aaa"
    );
    assert_eq!(
        store.resolve_run("01abz").await.expect("unique").as_str(),
        "01abz"
    );
    let err = store.resolve_run("01a").await.expect_err("ambiguous");
    assert_eq!(
        err.to_string(),
        "run id `01a` is ambiguous: it matches 2 runs\n(hint: type more of the id)"
    );
    assert_eq!(
        store
            .resolve_run("zz")
            .await
            .expect_err("missing")
            .to_string(),
        "run `zz` not found"
    );
    let running = store
        .runs(&RunFilter {
            state: Some(RunState::Running),
            ..RunFilter::default()
        })
        .await
        .expect("filter");
    assert_eq!(running.len(), 1);
    let all = store
        .runs(&RunFilter {
            namespace: Some("data".into()),
            pipeline: Some("etl".into()),
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("all");
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["01abz", "01aaa"]
    );
    let page2 = store
        .runs(&RunFilter {
            limit: 1,
            before: Some("01abz".into()),
            ..RunFilter::default()
        })
        .await
        .expect("next page");
    assert_eq!(
        page2.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["01aaa"]
    );

    // Versions are recorded once per content hash, newest first.
    let v2 = DefinitionRecord {
        hash: "h2".into(),
        source: "name: etl # v2".into(),
        ..new_run("x", None).definition
    };
    store.put_definition(&v2, 7_000).await.expect("put");
    store.put_definition(&v2, 8_000).await.expect("put again");
    let versions = store.versions("data", "etl").await.expect("versions");
    assert_eq!(
        versions.iter().map(|v| v.hash.as_str()).collect::<Vec<_>>(),
        vec!["h2", "h1"]
    );

    // Pausing is idempotent and reversible.
    assert!(!store.is_paused("data", "etl").await.expect("paused?"));
    assert!(
        store
            .set_paused("data", "etl", true, "ann", 50)
            .await
            .expect("pause")
    );
    assert!(
        !store
            .set_paused("data", "etl", true, "bob", 60)
            .await
            .expect("pause again")
    );
    assert!(store.is_paused("data", "etl").await.expect("paused?"));
    assert_eq!(
        store.paused_pipelines().await.expect("paused"),
        [("data".to_owned(), "etl".to_owned())]
    );
    assert!(
        store
            .set_paused("data", "etl", false, "ann", 70)
            .await
            .expect("unpause")
    );
    assert!(!store.is_paused("data", "etl").await.expect("paused?"));
    assert!(store.paused_pipelines().await.expect("paused").is_empty());

    // Schedule ticks move forward by compare-and-set.
    assert_eq!(
        store.last_tick("data", "etl", "0").await.expect("tick"),
        None
    );
    assert!(
        store
            .advance_tick("data", "etl", "0", None, 100)
            .await
            .expect("first")
    );
    assert!(
        !store
            .advance_tick("data", "etl", "0", None, 200)
            .await
            .expect("again")
    );
    assert!(
        store
            .advance_tick("data", "etl", "0", Some(100), 300)
            .await
            .expect("advance")
    );
    assert!(
        !store
            .advance_tick("data", "etl", "0", Some(100), 400)
            .await
            .expect("stale")
    );
    assert_eq!(
        store.last_tick("data", "etl", "0").await.expect("tick"),
        Some(300)
    );

    store
        .apply(
            &id,
            Fence::Unfenced,
            &[Change::Run {
                state: RunState::Succeeded,
                at: 6_000,
                error: None,
            }],
        )
        .await
        .expect("finish run");
    let run = store.run(&id).await.expect("read").expect("run");
    assert_eq!(
        (run.state, run.finished_at),
        (RunState::Succeeded, Some(6_000))
    );
}

fn grouped(id: &str, key: Option<&str>, limit: u32, overlap: Overlap) -> NewRun {
    let mut run = new_run(id, key);
    run.admission = Some(Admission {
        group: "pipeline:data/etl".into(),
        limit,
        overlap,
    });
    run
}

async fn finish(store: &dyn Store, id: &str, state: RunState) {
    store
        .apply(
            &RunId::from_string(id),
            Fence::Unfenced,
            &[Change::Run {
                state,
                at: 5_000,
                error: None,
            }],
        )
        .await
        .expect("finish");
}

/// Concurrency limits, decided by the store: admission in order, `skip`, `cancel_previous`.
async fn admission(store: &dyn Store) {
    let group = "pipeline:data/etl";
    let rid = RunId::from_string;
    for id in ["02a1", "02a2", "02a3", "02a4"] {
        store
            .create_run(&grouped(id, None, 2, Overlap::Queue))
            .await
            .expect("create");
    }
    let run =
        |id: &'static str| async move { store.run(&rid(id)).await.expect("read").expect("run") };
    // The first two are admitted on creation; the others wait, queued.
    assert_eq!(run("02a1").await.admitted_at, Some(1_000));
    assert_eq!(run("02a2").await.admission_limit, Some(2));
    assert_eq!(run("02a3").await.admitted_at, None);
    assert_eq!(run("02a3").await.state, RunState::Queued);
    assert_eq!(
        store.admit(&rid("02a1"), 2_000).await.expect("admit"),
        Admitted::Before,
        "admitted stays admitted"
    );
    assert!(
        !store
            .admit(&rid("02a3"), 2_000)
            .await
            .expect("admit")
            .is_admitted(),
        "the group is full"
    );
    assert_eq!(
        store.admit(&rid("02a4"), 2_000).await.expect("admit"),
        Admitted::No
    );
    finish(store, "02a1", RunState::Succeeded).await;
    assert!(
        !store
            .admit(&rid("02a4"), 2_000)
            .await
            .expect("admit")
            .is_admitted(),
        "first in, first admitted: 02a3 waits longer"
    );
    assert_eq!(
        store.admit(&rid("02a3"), 2_000).await.expect("admit"),
        Admitted::Now
    );
    assert_eq!(
        store.admit(&rid("02a3"), 2_500).await.expect("again"),
        Admitted::Before,
        "only one caller admits a run, and drives it"
    );
    assert_eq!(run("02a3").await.admitted_at, Some(2_000));

    // `skip` at the limit creates nothing and names who holds the group.
    match store
        .create_run(&grouped("02a5", None, 2, Overlap::Skip))
        .await
    {
        Err(baton_store::Error::Skipped { group: g, active }) => {
            assert_eq!(g, group);
            assert_eq!(active, vec![rid("02a2"), rid("02a3"), rid("02a4")]);
        }
        other => panic!("expected a skip, got {other:?}"),
    }
    assert_eq!(store.run(&rid("02a5")).await.expect("read"), None);
    // An idempotency key still returns its run, whatever the limit says.
    store
        .create_run(&grouped("02a6", Some("adm-key"), 2, Overlap::Queue))
        .await
        .expect("queued");
    let again = store
        .create_run(&grouped("02a7", Some("adm-key"), 2, Overlap::Skip))
        .await
        .expect("same key");
    assert_eq!(again, rid("02a6"));

    // `cancel_previous`: everyone in line, and the oldest active run to make room.
    store
        .create_run(&grouped("02a8", None, 2, Overlap::CancelPrevious))
        .await
        .expect("create");
    let members = store.group_runs(group).await.expect("group");
    let flagged: Vec<(&str, bool)> = members
        .iter()
        .map(|r| (r.id.as_str(), r.cancel_requested))
        .collect();
    assert_eq!(
        flagged,
        vec![
            ("02a2", true),
            ("02a3", false),
            ("02a4", true),
            ("02a6", true),
            ("02a8", false),
        ]
    );
    assert_eq!(run("02a8").await.admitted_at, None);
    // Runs asked to cancel are out of line: 02a8 is first, but the group is still full.
    assert_eq!(
        store.admit(&rid("02a8"), 3_000).await.expect("admit"),
        Admitted::No
    );
    finish(store, "02a2", RunState::Cancelled).await;
    assert_eq!(
        store.admit(&rid("02a8"), 3_000).await.expect("admit"),
        Admitted::Now
    );

    // Waiting runs nobody drives are cancelled at once, tasks and all.
    store
        .create_run(&grouped("02a9", None, 2, Overlap::Queue))
        .await
        .expect("create");
    let cancelled = store.cancel_waiting(group, 4_000).await.expect("cancel");
    assert_eq!(
        cancelled,
        vec![rid("02a9")],
        "runs already asked to cancel are left to their owner"
    );
    let r9 = run("02a9").await;
    assert_eq!(
        (r9.state, r9.finished_at),
        (RunState::Cancelled, Some(4_000))
    );
    assert!(
        store.admit(&rid("02a9"), 4_000).await.expect("admit") == Admitted::No,
        "a run cancelled while waiting is never admitted"
    );
    let tasks = store.tasks(&rid("02a9")).await.expect("tasks");
    assert!(tasks.iter().all(|t| t.state == TaskState::Cancelled));
    assert_eq!(
        store
            .events(&rid("02a9"), 0)
            .await
            .expect("events")
            .last()
            .map(|e| e.kind.clone()),
        Some("run_state".to_owned())
    );

    // A retried run lines up again.
    finish(store, "02a3", RunState::Failed).await;
    finish(store, "02a3", RunState::Queued).await;
    assert_eq!(run("02a3").await.admitted_at, None);

    // Runs without a group are always admitted; unknown runs are an error.
    store
        .create_run(&new_run("02b1", None))
        .await
        .expect("create");
    assert_eq!(
        store.admit(&rid("02b1"), 1).await.expect("admit"),
        Admitted::Before
    );
    assert!(matches!(
        store.admit(&rid("nope"), 1).await,
        Err(baton_store::Error::RunNotFound(_))
    ));
}

/// Two store handles (two processes, or two servers on one PostgreSQL) creating `skip` runs of
/// one group at the same moment: exactly one run is created.
async fn concurrent_creators(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = if i % 2 == 0 {
            Arc::clone(&a)
        } else {
            Arc::clone(&b)
        };
        tasks.push(tokio::spawn(async move {
            let mut run = new_run(&format!("03r{i:02}"), None);
            run.admission = Some(Admission {
                group: "pipeline:data/race".into(),
                limit: 1,
                overlap: Overlap::Skip,
            });
            store.create_run(&run).await
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => created += 1,
            Err(baton_store::Error::Skipped { active, .. }) => assert_eq!(active.len(), 1),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(created, 1);
}

/// A run `id` leased by `owner` until `expires_at`.
async fn leased_run(store: &dyn Store, id: &str, owner: &str, expires_at: i64) -> RunId {
    let run = store.create_run(&new_run(id, None)).await.expect("create");
    assert!(
        store
            .acquire_lease(&run, &LeaseOwner::from_string(owner), 100, expires_at, None)
            .await
            .expect("lease")
            .is_some()
    );
    run
}

/// The lease of `run` as `owner` would name it: its current epoch.
async fn lease_of(store: &dyn Store, run: &RunId, owner: &str) -> baton_store::Lease {
    baton_store::Lease {
        owner: LeaseOwner::from_string(owner),
        epoch: store
            .run(run)
            .await
            .expect("run")
            .expect("exists")
            .lease_epoch,
        commits: baton_store::CommitSeq::default(),
    }
}

/// `acquire_lease` for a test: whether `owner` got it.
async fn acquired(
    store: &dyn Store,
    run: &RunId,
    owner: &str,
    now: i64,
    expires_at: i64,
    steal_from: Option<&str>,
) -> bool {
    store
        .acquire_lease(
            run,
            &LeaseOwner::from_string(owner),
            now,
            expires_at,
            steal_from,
        )
        .await
        .expect("lease")
        .is_some()
}

/// Pools: slots taken and given back with the commits that end attempts, claims that stop
/// counting when their run's lease expires or changes hands, waiting tasks counted.
async fn pools(store: &dyn Store) {
    let a = TaskKey::from_string("a");
    let b = TaskKey::from_string("b");
    let gpu = |now| async move { store.pool("gpu", now).await.expect("pool").expect("gpu") };
    assert_eq!(store.pools(100).await.expect("pools"), []);
    let p1 = leased_run(store, "05p1", "o1", 1_000).await;
    let p2 = leased_run(store, "05p2", "o2", 1_000).await;
    assert_eq!(
        store
            .claim_slot("gpu", &p1, &a, 0, &lease_of(store, &p1, "o1").await, 100)
            .await
            .expect("claim"),
        SlotClaim::NoPool
    );
    store
        .put_pool("gpu", 1, Some("the GPU box"), 100)
        .await
        .expect("put");
    assert_eq!(
        store.pools(100).await.expect("pools"),
        [PoolRecord {
            name: "gpu".into(),
            slots: 1,
            description: Some("the GPU box".into()),
            used: 0,
            waiting: 0,
        }]
    );
    let claim = |run: RunId, key: TaskKey, owner: &'static str, now: i64| async move {
        store
            .claim_slot(
                "gpu",
                &run,
                &key,
                0,
                &lease_of(store, &run, owner).await,
                now,
            )
            .await
            .expect("claim")
    };
    assert_eq!(
        claim(p1.clone(), a.clone(), "o1", 110).await,
        SlotClaim::Held
    );
    // Asking again while holding is not a second slot.
    assert_eq!(
        claim(p1.clone(), a.clone(), "o1", 111).await,
        SlotClaim::Held
    );
    assert_eq!(
        claim(p2.clone(), a.clone(), "o2", 112).await,
        SlotClaim::Full {
            holders: vec!["o1".into()]
        }
    );
    let now = gpu(120).await;
    assert_eq!((now.used, now.waiting), (1, 1));
    // The commit that ends the attempt gives the slot back.
    store
        .apply(
            &p1,
            Fence::Unfenced,
            &[Change::AttemptFinished {
                key: a.clone(),
                attempt: 1,
                state: AttemptState::Succeeded,
                started_at: 110,
                at: 130,
                exit_code: Some(0),
                signal: None,
                rusage: None,
                error: None,
            }],
        )
        .await
        .expect("finish");
    assert_eq!((gpu(130).await.used, gpu(130).await.waiting), (0, 1));
    assert_eq!(
        claim(p2.clone(), a.clone(), "o2", 140).await,
        SlotClaim::Held
    );
    assert_eq!((gpu(140).await.used, gpu(140).await.waiting), (1, 0));
    // p2's lease expires (its owner died, say): its slot no longer counts.
    assert_eq!(gpu(1_001).await.used, 0);
    assert!(acquired(store, &p1, "o1", 1_001, 5_000, None).await);
    assert_eq!(
        claim(p1.clone(), b.clone(), "o1", 1_002).await,
        SlotClaim::Held
    );
    // Another owner takes the run over: the claims of the one before count no more.
    assert!(acquired(store, &p1, "o3", 1_003, 9_000, Some("o1")).await);
    assert_eq!(gpu(1_004).await.used, 0);
    assert_eq!(
        claim(p1.clone(), b.clone(), "o3", 1_005).await,
        SlotClaim::Held
    );
    // A task that leaves `running` without an attempt's end (cancelled) gives its slot back.
    store
        .apply(
            &p1,
            Fence::Unfenced,
            &[set("b", TaskState::Cancelled, 1_006, None)],
        )
        .await
        .expect("cancel");
    assert_eq!(gpu(1_006).await.used, 0);
    // The claims of an owner found dead are dropped.
    assert_eq!(
        claim(p1.clone(), a.clone(), "o3", 1_007).await,
        SlotClaim::Held
    );
    assert_eq!(store.drop_claims("o3").await.expect("drop"), 1);
    assert_eq!(gpu(1_008).await.used, 0);
    // The end of a run gives back all its slots.
    assert_eq!(
        claim(p1.clone(), a.clone(), "o3", 1_009).await,
        SlotClaim::Held
    );
    store
        .apply(&p1, Fence::Unfenced, &[end(RunState::Cancelled, 1_010)])
        .await
        .expect("end");
    assert_eq!(gpu(1_010).await.used, 0);
    // 0 slots pause the pool; resizing keeps the description.
    store.put_pool("gpu", 0, None, 1_011).await.expect("resize");
    let paused = gpu(1_011).await;
    assert_eq!(
        (paused.slots, paused.description.as_deref()),
        (0, Some("the GPU box"))
    );
    let p3 = leased_run(store, "05p3", "o4", 9_000).await;
    assert_eq!(
        claim(p3.clone(), a.clone(), "o4", 1_012).await,
        SlotClaim::Full { holders: vec![] }
    );
    assert_eq!(gpu(1_012).await.waiting, 1);
    // A run handed back stops waiting.
    store
        .release_lease(&p3, &lease_of(store, &p3, "o4").await)
        .await
        .expect("release");
    assert_eq!(gpu(1_013).await.waiting, 0);
    assert!(store.delete_pool("gpu").await.expect("delete"));
    assert!(!store.delete_pool("gpu").await.expect("delete again"));
    assert_eq!(store.pool("gpu", 1_014).await.expect("pool"), None);
    assert!(acquired(store, &p3, "o4", 1_014, 9_000, None).await);
    assert_eq!(claim(p3, a, "o4", 1_014).await, SlotClaim::NoPool);
}

/// Which waiter a freed slot goes to: the highest priority, then the longest waiting; waiters
/// whose lease expired, or that stopped asking, hold nobody up; a run's own waiters do not
/// hold up its other tasks.
async fn pool_priority(store: &dyn Store) {
    store.put_pool("fair", 1, None, 0).await.expect("put");
    let key = TaskKey::from_string("a");
    let ask = |run: &RunId, prio: i32, owner: &'static str, now: i64| {
        let (run, key) = (run.clone(), key.clone());
        async move {
            store
                .claim_slot(
                    "fair",
                    &run,
                    &key,
                    prio,
                    &lease_of(store, &run, owner).await,
                    now,
                )
                .await
                .expect("claim")
        }
    };
    let free = |run: &RunId, at: i64| {
        let run = run.clone();
        async move {
            store
                .apply(
                    &run,
                    Fence::Unfenced,
                    &[set("a", TaskState::Succeeded, at, None)],
                )
                .await
                .expect("release");
        }
    };
    let full = |holder: &str| SlotClaim::Full {
        holders: vec![holder.to_owned()],
    };
    let none = SlotClaim::Full { holders: vec![] };
    let h = leased_run(store, "07h", "oh", 100_000).await;
    let low = leased_run(store, "07low", "olow", 100_000).await;
    let high = leased_run(store, "07high", "ohigh", 100_000).await;
    let late = leased_run(store, "07late", "olate", 100_000).await;
    assert_eq!(ask(&h, 0, "oh", 10_000).await, SlotClaim::Held);
    assert_eq!(ask(&low, 0, "olow", 10_010).await, full("oh"));
    assert_eq!(ask(&high, 5, "ohigh", 10_020).await, full("oh"));
    free(&h, 10_030).await;
    // The slot is free, but a waiter of higher priority, though later, is ahead.
    assert_eq!(ask(&low, 0, "olow", 10_040).await, none);
    assert_eq!(ask(&high, 5, "ohigh", 10_050).await, SlotClaim::Held);
    // Among equal priorities, the one waiting longer goes first.
    assert_eq!(ask(&late, 0, "olate", 10_060).await, full("ohigh"));
    free(&high, 10_070).await;
    assert_eq!(ask(&late, 0, "olate", 10_080).await, none);
    assert_eq!(ask(&low, 0, "olow", 10_090).await, SlotClaim::Held);
    // A waiter whose lease expires (its process died, say) holds nobody up.
    let dead = leased_run(store, "07dead", "odead", 10_200).await;
    assert_eq!(ask(&dead, 9, "odead", 10_100).await, full("olow"));
    free(&low, 10_110).await;
    assert_eq!(ask(&late, 0, "olate", 10_150).await, none);
    assert_eq!(ask(&late, 0, "olate", 10_201).await, SlotClaim::Held);
    // Nor does one that stopped asking (its run drains, say) for more than 3 s.
    let idle = leased_run(store, "07idle", "oidle", 100_000).await;
    assert_eq!(ask(&idle, 9, "oidle", 10_300).await, full("olate"));
    free(&late, 10_310).await;
    let next = leased_run(store, "07next", "onext", 100_000).await;
    assert_eq!(ask(&next, 0, "onext", 13_300).await, none);
    assert_eq!(ask(&next, 0, "onext", 13_301).await, SlotClaim::Held);
    // A run's own waiters do not hold up its other tasks: it asks in its own order.
    free(&next, 13_310).await;
    assert_eq!(ask(&idle, 9, "oidle", 13_320).await, SlotClaim::Held);
    let own = leased_run(store, "07own", "oown", 100_000).await;
    let mine = |key: &'static str, now: i64| {
        let own = own.clone();
        async move {
            store
                .claim_slot(
                    "fair",
                    &own,
                    &TaskKey::from_string(key),
                    0,
                    &lease_of(store, &own, "oown").await,
                    now,
                )
                .await
                .expect("claim")
        }
    };
    assert_eq!(mine("x", 13_330).await, full("oidle"));
    free(&idle, 13_340).await;
    assert_eq!(mine("y", 13_350).await, SlotClaim::Held);
    assert_eq!(mine("x", 13_360).await, full("oown"));
    let fair = store
        .pool("fair", 13_370)
        .await
        .expect("pool")
        .expect("fair");
    assert_eq!((fair.used, fair.waiting), (1, 1));
}

/// Many claimers on several store handles (processes, or replicas on one PostgreSQL), each
/// taking a slot, holding it a moment and giving it back, over and over: never more holders
/// than slots.
async fn concurrent_claimers(stores: Vec<Arc<dyn Store>>) {
    const SLOTS: usize = 3;
    stores[0]
        .put_pool("race", u32::try_from(SLOTS).expect("small"), None, 0)
        .await
        .expect("put");
    let in_use = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&stores[i % stores.len()]);
        let (in_use, most) = (Arc::clone(&in_use), Arc::clone(&most));
        workers.push(tokio::spawn(async move {
            let owner = format!("w{i}");
            let run = leased_run(store.as_ref(), &format!("06c{i:02}"), &owner, i64::MAX).await;
            let key = TaskKey::from_string("a");
            for round in 0..3 {
                while store
                    .claim_slot(
                        "race",
                        &run,
                        &key,
                        0,
                        &lease_of(store.as_ref(), &run, &owner).await,
                        200,
                    )
                    .await
                    .expect("claim")
                    != SlotClaim::Held
                {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                let now = in_use.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                in_use.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                store
                    .apply(
                        &run,
                        Fence::Unfenced,
                        &[set("a", TaskState::Succeeded, 300 + round, None)],
                    )
                    .await
                    .expect("release");
            }
        }));
    }
    for w in workers {
        w.await.expect("join");
    }
    let most = most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(most <= SLOTS, "{most} holders of {SLOTS} slots");
    assert_eq!(
        stores[0]
            .pool("race", 400)
            .await
            .expect("pool")
            .expect("race")
            .used,
        0
    );
}

fn claim<'a>(
    owner: &'a LeaseOwner,
    dead: &'a [String],
    unowned: &'a [RunId],
    limit: u32,
) -> OrphanClaim<'a> {
    OrphanClaim {
        owner,
        now: 2_000,
        expires_at: 32_000,
        dead,
        unowned,
        limit,
    }
}

fn ids(runs: &[baton_store::RunRecord]) -> Vec<&str> {
    runs.iter().map(|r| r.id.as_str()).collect()
}

/// Runs nobody drives are found and taken over: expired leases and dead holders, runs seen
/// without a lease, never live leases or ended runs; waiting runs a group has room for.
async fn orphans(store: &dyn Store) {
    leased_run(store, "07a1", "alive", 10_000).await;
    leased_run(store, "07a2", "gone", 1_500).await;
    leased_run(store, "07a3", "dead", 10_000).await;
    leased_run(store, "07a4", "gone", 1_500).await;
    finish(store, "07a4", RunState::Succeeded).await;
    store
        .create_run(&new_run("07a5", None))
        .await
        .expect("create");
    let mut holders = store.lease_holders(2_000).await.expect("holders");
    holders.sort();
    assert_eq!(holders, ["alive", "dead"], "expired leases hold nothing");
    let unowned = store.unowned_runs(10).await.expect("unowned");
    assert_eq!(unowned, [RunId::from_string("07a5")]);

    let me = LeaseOwner::from_string("me");
    let taken = store
        .claim_orphans(&claim(&me, &[], &[], 10))
        .await
        .expect("claim");
    assert_eq!(taken[0].lease.owner, me);
    assert_eq!(
        taken[0].lease.epoch,
        baton_store::LeaseEpoch(2),
        "a new holder's epoch"
    );
    let taken: Vec<baton_store::RunRecord> = taken.into_iter().map(|t| t.run).collect();
    assert_eq!(
        ids(&taken),
        ["07a2"],
        "only the expired lease of an unfinished run"
    );
    assert_eq!(
        taken[0].lease_owner.as_deref(),
        Some("gone"),
        "as it was before"
    );
    let now = store.run(&taken[0].id).await.expect("read").expect("run");
    assert_eq!(now.lease_owner.as_deref(), Some("me"));
    assert_eq!(now.lease_expires_at, Some(32_000));
    assert!(
        store
            .claim_orphans(&claim(&LeaseOwner::from_string("you"), &[], &[], 10))
            .await
            .expect("claim")
            .is_empty(),
        "a taken run is not taken twice"
    );
    assert!(
        !acquired(store, &taken[0].id, "late", 2_100, 30_000, Some("gone")).await,
        "the old holder's name no longer opens the lease"
    );

    let dead = ["dead".to_owned()];
    let taken = store
        .claim_orphans(&claim(&me, &dead, &unowned, 1))
        .await
        .expect("claim");
    let taken: Vec<baton_store::RunRecord> = taken.into_iter().map(|t| t.run).collect();
    assert_eq!(
        ids(&taken),
        ["07a3"],
        "a dead holder's lease, before it expires; one at most"
    );
    let taken = store
        .claim_orphans(&claim(&me, &dead, &unowned, 5))
        .await
        .expect("claim");
    assert_eq!(
        taken[0].lease.epoch,
        baton_store::LeaseEpoch(1),
        "a first holder's epoch"
    );
    let taken: Vec<baton_store::RunRecord> = taken.into_iter().map(|t| t.run).collect();
    assert_eq!(ids(&taken), ["07a5"], "a run still without a lease");
    assert_eq!(taken[0].lease_owner, None);
    assert!(
        store.unowned_runs(10).await.expect("unowned").is_empty(),
        "every run has an owner now"
    );
    let alive = store
        .run(&RunId::from_string("07a1"))
        .await
        .expect("read")
        .expect("run");
    assert_eq!(
        alive.lease_owner.as_deref(),
        Some("alive"),
        "a live lease is left alone"
    );

    // Waiting runs: a group with room offers its oldest; a full group offers none.
    let group = |id: &str| {
        let mut run = grouped(id, None, 1, Overlap::Queue);
        run.admission.as_mut().expect("admission").group = "pipeline:data/orphans".into();
        run
    };
    for id in ["07b1", "07b2", "07b3"] {
        store.create_run(&group(id)).await.expect("create");
    }
    assert!(
        store
            .admissible_waiting(10)
            .await
            .expect("waiting")
            .is_empty()
    );
    assert_eq!(
        store.unowned_runs(10).await.expect("unowned"),
        [RunId::from_string("07b1")],
        "the admitted run has no owner yet; the waiting ones are not orphans"
    );
    finish(store, "07b1", RunState::Succeeded).await;
    assert_eq!(
        ids(&store.admissible_waiting(10).await.expect("waiting")),
        ["07b2"]
    );
    assert_eq!(
        store
            .admit(&RunId::from_string("07b2"), 3_000)
            .await
            .expect("admit"),
        Admitted::Now
    );
    assert!(
        store
            .admissible_waiting(10)
            .await
            .expect("waiting")
            .is_empty()
    );
}

/// Several handles (replicas) taking over the same orphans at once: each run goes to one.
async fn concurrent_orphan_claimers(stores: Vec<Arc<dyn Store>>) {
    for i in 0..20 {
        leased_run(stores[0].as_ref(), &format!("08o{i:02}"), "gone", 1_500).await;
    }
    let mut workers = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&stores[i % stores.len()]);
        workers.push(tokio::spawn(async move {
            let owner = LeaseOwner::from_string(format!("replica{i}"));
            let mut mine = Vec::new();
            for _ in 0..40 {
                let taken = store
                    .claim_orphans(&claim(&owner, &[], &[], 2))
                    .await
                    .expect("claim");
                mine.extend(taken.into_iter().map(|t| t.run.id));
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("join"));
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(total, all.len(), "a run was taken twice");
    assert_eq!(total, 20, "every orphan was taken");
}

/// A backfill and its runs are created together; its first runs are admitted up to its
/// parallelism.
async fn backfills(store: &dyn Store) {
    let id = BackfillId::from_string("bf_01");
    let runs: Vec<NewRun> = (0..3)
        .map(|i| {
            let mut run = new_run(&format!("04r{i}"), Some(&format!("backfill:bf_01:{i}")));
            run.trigger = "backfill".into();
            run.backfill_id = Some(id.clone());
            run.admission = Some(Admission {
                group: id.admission_group(),
                limit: 2,
                overlap: Overlap::Queue,
            });
            run
        })
        .collect();
    let record = BackfillRecord {
        id: id.clone(),
        namespace: "data".into(),
        pipeline: "etl".into(),
        version: "h1".into(),
        schedule: 0,
        start: "2026-01-01".into(),
        end: "2026-01-03".into(),
        parallelism: 2,
        params: json!({"date": "x"}),
        runs: 3,
        idempotency_key: Some("bf-key".into()),
        created_at: 7_000,
    };
    assert_eq!(
        store.create_backfill(&record, &runs).await.expect("create"),
        id
    );
    let mut again = record.clone();
    again.id = BackfillId::from_string("bf_02");
    assert_eq!(
        store.create_backfill(&again, &[]).await.expect("same key"),
        id,
        "the same idempotency key returns the first backfill"
    );
    assert_eq!(
        store.backfill(&id).await.expect("read"),
        Some(record.clone())
    );
    let admitted: Vec<Option<i64>> = store
        .group_runs(&id.admission_group())
        .await
        .expect("group")
        .iter()
        .map(|r| r.admitted_at)
        .collect();
    assert_eq!(admitted, vec![Some(1_000), Some(1_000), None]);
    let r0 = store
        .run(&RunId::from_string("04r0"))
        .await
        .expect("read")
        .expect("run");
    assert_eq!(r0.backfill_id, Some(id.clone()));
    assert_eq!(store.tasks(&r0.id).await.expect("tasks").len(), 2);
    finish(store, "04r0", RunState::Succeeded).await;
    assert_eq!(
        store.backfill_counts(&id).await.expect("counts"),
        vec![(RunState::Queued, 2), (RunState::Succeeded, 1)]
    );
    let listed = store
        .backfills(&BackfillFilter {
            pipeline: Some("etl".into()),
            limit: 10,
            ..BackfillFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(listed, vec![record]);
    assert!(
        store
            .backfills(&BackfillFilter {
                pipeline: Some("other".into()),
                limit: 10,
                ..BackfillFilter::default()
            })
            .await
            .expect("list")
            .is_empty()
    );
}

/// Long enough for any loaded machine; only a missing announcement waits this long.
const HEARD_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

async fn heard(changes: &mut Changes, run: &RunId, what: &str) {
    tokio::time::timeout(HEARD_WITHIN, changes.changed(run))
        .await
        .unwrap_or_else(|_| panic!("{what} of `{run}` was not announced"));
}

/// Every write of a run made through `writer` is announced to a subscriber of `reader` (the
/// same store on SQLite, another process's stand-in on PostgreSQL).
async fn change_feed(reader: &dyn Store, writer: &dyn Store) {
    let mut changes = reader.changes();
    let mut requests = reader.changes();
    let id = writer
        .create_run(&new_run("05feed", None))
        .await
        .expect("create");
    heard(&mut changes, &id, "creation").await;
    let a = TaskKey::from_string("a");
    writer
        .apply(
            &id,
            Fence::Unfenced,
            &[set("a", TaskState::WaitingApproval, 5_001, None)],
        )
        .await
        .expect("apply");
    heard(&mut changes, &id, "a commit").await;
    // What the run's owner writes itself is no request of it.
    assert!(
        tokio::time::timeout(
            std::time::Duration::from_millis(300),
            requests.requested(&id)
        )
        .await
        .is_err(),
        "a commit of state announced as a request"
    );
    assert!(
        writer
            .decide(&id, &a, true, "ana", 5_002, None)
            .await
            .expect("decide")
    );
    heard(&mut changes, &id, "an approval").await;
    tokio::time::timeout(HEARD_WITHIN, requests.requested(&id))
        .await
        .expect("an approval is a request");
    writer.request_cancel(&id).await.expect("cancel");
    heard(&mut changes, &id, "a cancel request").await;
    tokio::time::timeout(HEARD_WITHIN, requests.requested(&id))
        .await
        .expect("a cancel is a request");

    // Another run's commits do not wake a subscriber of this one.
    let other = writer
        .create_run(&new_run("05other", None))
        .await
        .expect("create other");
    let mut quiet = reader.changes();
    writer
        .apply(
            &other,
            Fence::Unfenced,
            &[set("a", TaskState::Queued, 5_003, None)],
        )
        .await
        .expect("apply other");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), quiet.changed(&id))
            .await
            .is_err(),
        "woken by another run's commit"
    );

    // A subscriber that falls behind (more runs than its buffer in one commit) is told that
    // something changed, whichever run it follows, instead of failing.
    let mut behind = reader.changes();
    let id_bf = BackfillId::from_string("bf_feed");
    let runs: Vec<NewRun> = (0..1_500)
        .map(|i| {
            let mut run = new_run(&format!("05bf{i:04}"), None);
            run.backfill_id = Some(id_bf.clone());
            run.tasks.clear();
            run
        })
        .collect();
    let record = BackfillRecord {
        id: id_bf.clone(),
        namespace: "data".into(),
        pipeline: "etl".into(),
        version: "h1".into(),
        schedule: 0,
        start: "2027-01-01".into(),
        end: "2031-02-08".into(),
        parallelism: 1,
        params: json!({}),
        runs: 1_500,
        idempotency_key: None,
        created_at: 5_100,
    };
    writer
        .create_backfill(&record, &runs)
        .await
        .expect("backfill");
    heard(&mut behind, &RunId::from_string("never-written"), "a lag").await;
}

#[tokio::test]
async fn sqlite_change_feed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    change_feed(&store, &store).await;
    // Another process on the same home is not heard, and the feed says so.
    assert!(!store.changes().hears_others());
}

#[tokio::test]
async fn sqlite_admission_and_backfills() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    admission(&store).await;
    backfills(&store).await;
    let other: Arc<dyn Store> = Arc::new(SqlStore::open_home(dir.path()).await.expect("open"));
    concurrent_creators(Arc::new(store), other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_pools() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    pools(&store).await;
    pool_priority(&store).await;
    let mut stores: Vec<Arc<dyn Store>> = vec![Arc::new(store)];
    for _ in 0..3 {
        stores.push(Arc::new(
            SqlStore::open_home(dir.path()).await.expect("open"),
        ));
    }
    concurrent_claimers(stores).await;
}

fn task(key: &str, task_id: &str, position: i64) -> NewTask {
    NewTask {
        key: TaskKey::from_string(key),
        task_id: task_id.to_owned(),
        position,
        item: None,
        state: TaskState::Pending,
    }
}

fn set(key: &str, state: TaskState, at: i64, error: Option<&str>) -> Change {
    Change::Task {
        key: TaskKey::from_string(key),
        state,
        at,
        next_attempt_at: None,
        outputs: None,
        error: error.map(str::to_owned),
    }
}

/// An attempt of `key` that starts and fails at `at` with `exit` (two commits, as the engine
/// makes them).
async fn fail_attempt(store: &dyn Store, run: &str, key: &str, attempt: u32, at: i64, exit: i32) {
    let [start, finish] = [
        Change::AttemptStarted {
            key: TaskKey::from_string(key),
            attempt,
            at,
            log_path: format!("/l/{run}.{key}.{attempt}"),
            owner: "me".into(),
            after_interruption: false,
        },
        Change::AttemptFinished {
            key: TaskKey::from_string(key),
            attempt,
            state: AttemptState::Failed,
            started_at: at,
            at,
            exit_code: Some(exit),
            signal: None,
            rusage: None,
            error: Some(format!("exited with code {exit}")),
        },
    ];
    let id = RunId::from_string(run);
    store
        .apply(&id, Fence::Unfenced, &[start])
        .await
        .expect("start attempt");
    store
        .apply(&id, Fence::Unfenced, &[finish])
        .await
        .expect("finish attempt");
}

fn end(state: RunState, at: i64) -> Change {
    Change::Run {
        state,
        at,
        error: None,
    }
}

/// Failed runs and what they leave behind: dead letters, and runs found by time.
async fn failures_story(store: &dyn Store) {
    let create = |id: &str, name: &str, created_at: i64, tasks: Vec<NewTask>| {
        let mut run = new_run(id, None);
        run.definition.name = name.into();
        run.definition.hash = format!("h-{name}");
        run.created_at = created_at;
        run.tasks = tasks;
        run
    };
    let plain = || vec![task("a", "a", 0), task("b", "b", 1)];
    for (id, name, at, tasks) in [
        ("02r1", "etl", 1_000, plain()),
        ("02r2", "etl", 2_000, plain()),
        ("02r3", "etl", 3_000, plain()),
        ("02r4", "ml", 4_000, vec![task("fan", "fan", 0)]),
    ] {
        store
            .create_run(&create(id, name, at, tasks))
            .await
            .expect("create");
    }
    let run = |id: &str| RunId::from_string(id);
    // r1 failed: `a` used up its two attempts, `b` never ran.
    fail_attempt(store, "02r1", "a", 1, 1_100, 3).await;
    fail_attempt(store, "02r1", "a", 2, 1_200, 4).await;
    let changes = [
        set("a", TaskState::Failed, 1_500, Some("exited with code 4")),
        set("b", TaskState::UpstreamFailed, 1_500, None),
        end(RunState::Failed, 1_600),
    ];
    store
        .apply(&run("02r1"), Fence::Unfenced, &changes)
        .await
        .expect("r1");
    // r2 was cancelled after `a` failed without an attempt (a template that did not render).
    store
        .apply(
            &run("02r2"),
            Fence::Unfenced,
            &[
                set("a", TaskState::Failed, 2_500, Some("cannot render `run`")),
                set("b", TaskState::Cancelled, 2_500, None),
                end(RunState::Cancelled, 2_600),
            ],
        )
        .await
        .expect("r2");
    // r3 is still going: its failure may yet be retried.
    store
        .apply(
            &run("02r3"),
            Fence::Unfenced,
            &[
                end(RunState::Running, 3_100),
                set("a", TaskState::Failed, 3_500, Some("x")),
            ],
        )
        .await
        .expect("r3");
    // r4: one fan-out instance failed; the fan-out's own row and the failure hook are not
    // dead letters.
    let expand = Change::AddTasks(vec![
        NewTask {
            item: Some(json!("x")),
            ..task("fan[x]", "fan", 1)
        },
        NewTask {
            item: Some(json!("y")),
            ..task("fan[y]", "fan", 2)
        },
        task("on_failure", "on_failure", 3),
    ]);
    store
        .apply(&run("02r4"), Fence::Unfenced, &[expand])
        .await
        .expect("expand");
    fail_attempt(store, "02r4", "fan[x]", 1, 4_400, 1).await;
    let changes = [
        set(
            "fan[x]",
            TaskState::Failed,
            4_500,
            Some("exited with code 1"),
        ),
        set("fan[y]", TaskState::Succeeded, 4_450, None),
        set(
            "fan",
            TaskState::Failed,
            4_500,
            Some("1 of 2 instances failed"),
        ),
        set("on_failure", TaskState::Failed, 4_600, Some("hook")),
        end(RunState::Failed, 4_700),
    ];
    store
        .apply(&run("02r4"), Fence::Unfenced, &changes)
        .await
        .expect("r4");

    let all = store
        .dead_letters(&DeadLetterFilter {
            limit: 10,
            ..DeadLetterFilter::default()
        })
        .await
        .expect("dead letters");
    let keys: Vec<(&str, &str)> = all
        .iter()
        .map(|d| (d.run.as_str(), d.key.as_str()))
        .collect();
    assert_eq!(keys, vec![("02r4", "fan[x]"), ("02r2", "a"), ("02r1", "a")]);
    let r1 = &all[2];
    assert_eq!(
        (r1.attempts, r1.exit_code, r1.log_path.as_deref()),
        (2, Some(4), Some("/l/02r1.a.2"))
    );
    assert_eq!(r1.error.as_deref(), Some("exited with code 4"));
    assert_eq!((r1.finished_at, r1.run_state), (1_500, RunState::Failed));
    assert_eq!(
        (
            all[1].attempts,
            all[1].exit_code,
            all[1].log_path.as_deref()
        ),
        (0, None, None)
    );
    assert_eq!(all[1].run_state, RunState::Cancelled);
    assert_eq!(
        (
            all[0].namespace.as_str(),
            all[0].pipeline.as_str(),
            all[0].task_id.as_str()
        ),
        ("data", "ml", "fan")
    );

    // Pages follow a cursor that survives the round trip through text.
    let first = store
        .dead_letters(&DeadLetterFilter {
            limit: 2,
            ..DeadLetterFilter::default()
        })
        .await
        .expect("page 1");
    let cursor = DeadLetterCursor::decode(&first[1].cursor().encode()).expect("cursor");
    assert_eq!(cursor, first[1].cursor());
    let second = store
        .dead_letters(&DeadLetterFilter {
            limit: 2,
            before: Some(cursor),
            ..DeadLetterFilter::default()
        })
        .await
        .expect("page 2");
    assert_eq!(
        second.iter().map(|d| d.run.as_str()).collect::<Vec<_>>(),
        vec!["02r1"]
    );
    let ml = store
        .dead_letters(
            &DeadLetterFilter {
                limit: 10,
                ..DeadLetterFilter::default()
            }
            .for_pipeline(Some("data/ml")),
        )
        .await
        .expect("one pipeline");
    assert_eq!(ml.len(), 1);
    assert_eq!(ml[0].key.as_str(), "fan[x]");
    let counts = |rows: &[(&str, u64)]| -> Vec<PipelineCount> {
        rows.iter()
            .map(|(name, count)| PipelineCount {
                namespace: "data".into(),
                pipeline: (*name).into(),
                count: *count,
            })
            .collect()
    };
    assert_eq!(
        store.dead_letter_counts().await.expect("counts"),
        counts(&[("etl", 2), ("ml", 1)])
    );

    // Reopening a dead letter's task takes it off the list.
    store
        .apply(
            &run("02r1"),
            Fence::Unfenced,
            &[
                Change::Reopen {
                    key: TaskKey::from_string("a"),
                    state: TaskState::Pending,
                    at: 5_000,
                },
                end(RunState::Queued, 5_000),
            ],
        )
        .await
        .expect("reopen");
    let left = store
        .dead_letters(&DeadLetterFilter::default())
        .await
        .expect("after reopen");
    assert_eq!(left.len(), 2);
    assert_eq!(
        store.dead_letter_counts().await.expect("counts"),
        counts(&[("etl", 1), ("ml", 1)])
    );

    // The live gauges: tasks of unfinished runs (r1 reopened, r3 running) by state; the ended
    // runs' tasks and the failed or pending ones do not count.
    store
        .apply(
            &run("02r1"),
            Fence::Unfenced,
            &[
                set("a", TaskState::Queued, 5_100, None),
                set("b", TaskState::WaitingApproval, 5_100, None),
            ],
        )
        .await
        .expect("r1 queued");
    store
        .apply(
            &run("02r3"),
            Fence::Unfenced,
            &[set("b", TaskState::Running, 5_100, None)],
        )
        .await
        .expect("r3 running");
    let active: Vec<(String, TaskState, u64)> = store
        .active_task_counts()
        .await
        .expect("active")
        .into_iter()
        .map(
            |TaskCount {
                 namespace,
                 pipeline,
                 state,
                 count,
             }| { (format!("{namespace}/{pipeline}"), state, count) },
        )
        .collect();
    assert_eq!(
        active,
        vec![
            ("data/etl".to_owned(), TaskState::Queued, 1),
            ("data/etl".to_owned(), TaskState::Running, 1),
            ("data/etl".to_owned(), TaskState::WaitingApproval, 1),
        ]
    );

    // Runs by creation time: `created_after` inclusive, `created_before` exclusive.
    let ids = |runs: Vec<baton_store::RunRecord>| -> Vec<String> {
        runs.into_iter().map(|r| r.id.to_string()).collect()
    };
    let window = store
        .runs(&RunFilter {
            created_after: Some(2_000),
            created_before: Some(4_000),
            ..RunFilter::default()
        })
        .await
        .expect("window");
    assert_eq!(ids(window), vec!["02r3", "02r2"]);

    // Completions in finish order, from a (finished_at, id) cursor.
    let finished = store
        .runs(&RunFilter {
            finished_after: Some((0, String::new())),
            ..RunFilter::default()
        })
        .await
        .expect("finished");
    assert_eq!(ids(finished), vec!["02r2", "02r4"]);
    let after = store
        .runs(&RunFilter {
            finished_after: Some((2_600, "02r2".into())),
            ..RunFilter::default()
        })
        .await
        .expect("after");
    assert_eq!(ids(after), vec!["02r4"]);
    let same_ms = store
        .runs(&RunFilter {
            finished_after: Some((2_600, String::new())),
            limit: 1,
            ..RunFilter::default()
        })
        .await
        .expect("inclusive");
    assert_eq!(ids(same_ms), vec!["02r2"]);
}

/// What the UI's overviews read: the latest runs per pipeline, runs finished since a time,
/// gates waiting for approval.
async fn overview_story(store: &dyn Store) {
    for id in ["03a1", "03a2", "03a3", "03a4"] {
        store.create_run(&new_run(id, None)).await.expect("create");
    }
    let mut other = new_run("03b1", None);
    other.definition.name = "other".into();
    other.definition.hash = "h2".into();
    store.create_run(&other).await.expect("create other");
    finish(store, "03a1", RunState::Succeeded).await;
    let latest = store.latest_runs(2).await.expect("latest");
    let ids: Vec<(&str, &str)> = latest
        .iter()
        .map(|r| (r.pipeline.as_str(), r.id.as_str()))
        .collect();
    assert_eq!(ids, [("etl", "03a4"), ("etl", "03a3"), ("other", "03b1")]);
    let finished = store.finished_since(5_000).await.expect("finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].id.as_str(), "03a1");
    assert_eq!(finished[0].state, RunState::Succeeded);
    assert!(store.finished_since(5_001).await.expect("later").is_empty());
    assert!(store.awaiting_approval(10).await.expect("none").is_empty());
    store
        .apply(
            &RunId::from_string("03a2"),
            Fence::Unfenced,
            &[
                Change::Task {
                    key: TaskKey::from_string("b"),
                    state: TaskState::WaitingApproval,
                    at: 2_000,
                    next_attempt_at: None,
                    outputs: None,
                    error: None,
                },
                Change::Asked {
                    key: TaskKey::from_string("b"),
                    message: "ship 'it' to prod?".into(),
                    at: 2_000,
                },
            ],
        )
        .await
        .expect("wait");
    let waiting = store.awaiting_approval(10).await.expect("waiting");
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        (waiting[0].run.as_str(), waiting[0].key.as_str()),
        ("03a2", "b")
    );
    assert_eq!(waiting[0].pipeline, "etl");
    assert_eq!(waiting[0].message.as_deref(), Some("ship 'it' to prod?"));
    let run = RunId::from_string("03a2");
    let task = |tasks: Vec<baton_store::TaskRecord>| {
        tasks
            .into_iter()
            .find(|t| t.key.as_str() == "b")
            .expect("task b")
    };
    let b = task(store.tasks(&run).await.expect("tasks"));
    assert_eq!(b.approval_message.as_deref(), Some("ship 'it' to prod?"));
    let events = store.events(&run, 0).await.expect("events");
    let asked = events
        .iter()
        .find(|e| e.kind == "approval_asked")
        .expect("an approval_asked event");
    assert_eq!(asked.data["message"], "ship 'it' to prod?");
    // A reopened gate asks again: the old question goes with its decision.
    store
        .apply(
            &run,
            Fence::Unfenced,
            &[Change::Reopen {
                key: TaskKey::from_string("b"),
                state: TaskState::Pending,
                at: 3_000,
            }],
        )
        .await
        .expect("reopen");
    let b = task(store.tasks(&run).await.expect("tasks"));
    assert_eq!(b.approval_message, None);
}

/// Results stored under cache keys, found again within their age, and where a reused result
/// came from.
async fn cache_story(store: &dyn Store) {
    let made = RunId::from_string("01cache1");
    store
        .create_run(&new_run(made.as_str(), None))
        .await
        .expect("create");
    let key = TaskKey::from_string("a");
    let outputs: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(json!({"rows": "42"})).expect("map");
    // A long key: the entry is found by its hash, whatever an index entry may hold.
    let long = "k".repeat(10_000);
    let succeed = |cache_key: &str, at: i64| {
        vec![
            Change::CacheChecked {
                key: key.clone(),
                cache_key: cache_key.to_owned(),
                hit: None,
                at,
            },
            Change::Task {
                key: key.clone(),
                state: TaskState::Succeeded,
                at,
                next_attempt_at: None,
                outputs: Some(outputs.clone()),
                error: None,
            },
            Change::CacheSaved {
                key: key.clone(),
                cache_key: cache_key.to_owned(),
                outputs: outputs.clone(),
                at,
            },
        ]
    };
    store
        .apply(&made, Fence::Unfenced, &succeed(&long, 5_000))
        .await
        .expect("apply");
    let lookup = |cache_key: String, not_before: Option<i64>| async move {
        store
            .cached_result("data", "etl", "a", &cache_key, not_before)
            .await
            .expect("lookup")
    };
    let hit = lookup(long.clone(), None).await.expect("a hit");
    assert_eq!(
        hit.source,
        CacheSource {
            run: made.clone(),
            task: key.clone(),
        }
    );
    assert_eq!(hit.outputs, outputs);
    assert_eq!(hit.created_at, 5_000);
    assert!(
        lookup(long.clone(), Some(5_000)).await.is_some(),
        "as old as allowed"
    );
    assert!(lookup(long.clone(), Some(5_001)).await.is_none(), "too old");
    assert!(lookup("other".into(), None).await.is_none(), "another key");
    assert!(
        store
            .cached_result("data", "etl", "b", &long, None)
            .await
            .expect("lookup")
            .is_none(),
        "another task"
    );
    assert!(
        store
            .cached_result("other", "etl", "a", &long, None)
            .await
            .expect("lookup")
            .is_none(),
        "another namespace"
    );
    let kinds: Vec<String> = store
        .events(&made, 0)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.ends_with(&[
        "cache_miss".into(),
        "task_state".into(),
        "cache_saved".into()
    ]));

    // A run that reuses it says so on its task record, until the task is reopened.
    let mut reusing = new_run("01cache2", None);
    reusing.no_cache = true;
    let reuser = store.create_run(&reusing).await.expect("create");
    assert!(
        store
            .run(&reuser)
            .await
            .expect("run")
            .expect("exists")
            .no_cache
    );
    assert!(
        !store
            .run(&made)
            .await
            .expect("run")
            .expect("exists")
            .no_cache
    );
    store
        .apply(
            &reuser,
            Fence::Unfenced,
            &[
                Change::CacheChecked {
                    key: key.clone(),
                    cache_key: long.clone(),
                    hit: Some(hit.source.clone()),
                    at: 6_000,
                },
                set("a", TaskState::Succeeded, 6_000, None),
            ],
        )
        .await
        .expect("apply");
    let cached_from = |tasks: Vec<baton_store::TaskRecord>| {
        tasks
            .into_iter()
            .find(|t| t.key == key)
            .expect("task a")
            .cached_from
    };
    assert_eq!(
        cached_from(store.tasks(&reuser).await.expect("tasks")),
        Some(hit.source.clone())
    );
    assert_eq!(cached_from(store.tasks(&made).await.expect("tasks")), None);
    let last = store.events(&reuser, 0).await.expect("events");
    let event = last
        .iter()
        .find(|e| e.kind == "cache_hit")
        .expect("a hit event");
    assert_eq!(event.data["run"], json!("01cache1"));
    assert_eq!(event.data["task"], json!("a"));
    store
        .apply(
            &reuser,
            Fence::Unfenced,
            &[Change::Reopen {
                key: key.clone(),
                state: TaskState::Pending,
                at: 7_000,
            }],
        )
        .await
        .expect("reopen");
    assert_eq!(
        cached_from(store.tasks(&reuser).await.expect("tasks")),
        None
    );

    // A newer success replaces the entry.
    let remade = RunId::from_string("01cache3");
    store
        .create_run(&new_run(remade.as_str(), None))
        .await
        .expect("create");
    store
        .apply(&remade, Fence::Unfenced, &succeed(&long, 8_000))
        .await
        .expect("apply");
    let newer = lookup(long, None).await.expect("a hit");
    assert_eq!(newer.source.run, remade);
    assert_eq!(newer.created_at, 8_000);
}

/// A child run records the sub-pipeline task attempt that started it, and its parent lists it.
async fn parent_story(store: &dyn Store) {
    let parent = store
        .create_run(&new_run("01PARENT", None))
        .await
        .expect("create parent");
    let mut first = new_run("01PARENTCHILD1", Some("sub:01PARENT:b:1"));
    first.parent = Some(ParentRef {
        run: parent.clone(),
        task: TaskKey::from_string("b"),
        attempt: 1,
    });
    let child = store.create_run(&first).await.expect("create child");
    // Created again with the same key (a crash right after creating it): the same run.
    let again = store.create_run(&first).await.expect("create again");
    assert_eq!(again, child);
    let mut second = new_run("01PARENTCHILD2", Some("sub:01PARENT:b:2"));
    second.parent = Some(ParentRef {
        run: parent.clone(),
        task: TaskKey::from_string("b"),
        attempt: 2,
    });
    store.create_run(&second).await.expect("create second");
    let children = store.child_runs(&parent).await.expect("children");
    let seen: Vec<(String, u32)> = children
        .iter()
        .map(|r| {
            let p = r.parent.as_ref().expect("a parent");
            assert_eq!((&p.run, p.task.as_str()), (&parent, "b"));
            (r.id.to_string(), p.attempt)
        })
        .collect();
    assert_eq!(
        seen,
        vec![("01PARENTCHILD1".into(), 1), ("01PARENTCHILD2".into(), 2)]
    );
    let record = store.run(&parent).await.expect("read").expect("parent");
    assert_eq!(record.parent, None);
    assert!(store.child_runs(&child).await.expect("none").is_empty());
}

/// An attempt's process identity arrives after its start (persist, then spawn), and an
/// interruption counts once, in the commit that records it.
async fn process_story(store: &dyn Store) {
    let run = store
        .create_run(&new_run("01PROCESS", None))
        .await
        .expect("create");
    let key = TaskKey::from_string("a");
    let start = |attempt, after_interruption| Change::AttemptStarted {
        key: key.clone(),
        attempt,
        at: 10,
        log_path: format!("/l/a.{attempt}"),
        owner: "me".into(),
        after_interruption,
    };
    store
        .apply(&run, Fence::Unfenced, &[start(1, false)])
        .await
        .expect("start");
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!((attempts[0].pid, &attempts[0].process), (None, &None));
    let process = AttemptProcess {
        pgid: 4242,
        start_time: 9_876_543_210,
        boot_id: "b0".into(),
        host: "h1".into(),
    };
    store
        .apply(
            &run,
            Fence::Unfenced,
            &[Change::AttemptSpawned {
                key: key.clone(),
                attempt: 1,
                process: process.clone(),
                at: 11,
            }],
        )
        .await
        .expect("spawned");
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts[0].process.as_ref(), Some(&process));
    assert_eq!(attempts[0].pid, Some(4242));
    let interrupted = Change::AttemptFinished {
        key: key.clone(),
        attempt: 1,
        state: AttemptState::Interrupted,
        started_at: 10,
        at: 20,
        exit_code: None,
        signal: None,
        rusage: None,
        error: Some("baton stopped while this attempt ran".into()),
    };
    store
        .apply(&run, Fence::Unfenced, &[interrupted])
        .await
        .expect("interrupted");
    let tasks = store.tasks(&run).await.expect("tasks");
    let a = tasks.iter().find(|t| t.key == key).expect("task a");
    assert_eq!(a.interruptions, 1, "counted when recorded");
    // The attempt after it does not count it again.
    store
        .apply(&run, Fence::Unfenced, &[start(2, true)])
        .await
        .expect("start 2");
    let tasks = store.tasks(&run).await.expect("tasks");
    let a = tasks.iter().find(|t| t.key == key).expect("task a");
    assert_eq!((a.attempts, a.interruptions), (2, 1));
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(
        attempts[0].process.as_ref(),
        Some(&process),
        "kept after the finish"
    );
    assert_eq!(attempts[1].process, None);
}

#[tokio::test]
async fn sqlite_process_story() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    process_story(&store).await;
}

#[tokio::test]
async fn sqlite_parent_story() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    parent_story(&store).await;
}

#[tokio::test]
async fn sqlite_cache_story() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    cache_story(&store).await;
}

#[tokio::test]
async fn sqlite_overview_story() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    overview_story(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_orphans() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    orphans(&store).await;
    let other = tempfile::tempdir().expect("temp dir");
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(
            SqlStore::open_home(other.path()).await.expect("open"),
        ));
    }
    concurrent_orphan_claimers(stores).await;
}

#[tokio::test]
async fn sqlite_failures_story() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    failures_story(&store).await;
}

#[tokio::test]
async fn an_existing_home_is_opened_but_never_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    let e = SqlStore::open_existing_home(&home)
        .await
        .expect_err("no home yet");
    assert_eq!(
        e.to_string(),
        format!("no baton home at `{}`", home.display())
    );
    assert!(!home.exists(), "looking created the home");
    // An empty directory is not a home either.
    std::fs::create_dir_all(&home).expect("mkdir");
    assert!(matches!(
        SqlStore::open_existing_home(&home).await,
        Err(baton_store::Error::NoHome(_))
    ));
    assert!(!home.join("baton.db").exists());
    drop(SqlStore::open_home(&home).await.expect("create"));
    SqlStore::open_existing_home(&home)
        .await
        .expect("opens once created");
}

#[tokio::test]
async fn sqlite_story() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    story(&store).await;
    // Opening again finds the migrated database and its data.
    let reopened = SqlStore::open_home(dir.path()).await.expect("reopen");
    assert_eq!(
        reopened
            .runs(&RunFilter::default())
            .await
            .expect("runs")
            .len(),
        2
    );
}

#[tokio::test]
async fn postgres_story() {
    let Some(url) = postgres::url("the story against PostgreSQL") else {
        return;
    };
    // A fresh schema, so the story starts from an empty database.
    let admin = SqlStore::open(&url).await.expect("connect");
    admin.reset_for_tests().await.expect("reset");
    let store = SqlStore::open(&url).await.expect("migrate");
    story(&store).await;
    admission(&store).await;
    backfills(&store).await;
    let other: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.expect("connect"));
    concurrent_creators(Arc::new(store), other).await;
    admin.reset_for_tests().await.expect("reset");
    let store = SqlStore::open(&url).await.expect("migrate");
    failures_story(&store).await;
    admin.reset_for_tests().await.expect("reset");
    let store = SqlStore::open(&url).await.expect("migrate");
    overview_story(&store).await;
    admin.reset_for_tests().await.expect("reset");
    let store = SqlStore::open(&url).await.expect("migrate");
    cache_story(&store).await;
    parent_story(&store).await;
    process_story(&store).await;
    pools(&store).await;
    pool_priority(&store).await;
    let mut stores: Vec<Arc<dyn Store>> = vec![Arc::new(store)];
    for _ in 0..3 {
        stores.push(Arc::new(SqlStore::open(&url).await.expect("connect")));
    }
    concurrent_claimers(stores).await;
    admin.reset_for_tests().await.expect("reset");
    let reader = SqlStore::open(&url).await.expect("migrate");
    let writer = SqlStore::open(&url).await.expect("connect");
    listening(&reader).await;
    change_feed(&reader, &writer).await;
    listener_reconnects(&url, &reader, &writer).await;
    admin.reset_for_tests().await.expect("reset");
    let store = SqlStore::open(&url).await.expect("migrate");
    orphans(&store).await;
    admin.reset_for_tests().await.expect("reset");
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(SqlStore::open(&url).await.expect("migrate")));
    }
    concurrent_orphan_claimers(stores).await;
}

/// Waits until `store`'s listener is connected: commits made before it are not heard.
async fn listening(store: &dyn Store) {
    tokio::time::timeout(HEARD_WITHIN, async {
        while !store.changes().hears_others() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the change listener connects");
}

/// A listener whose connection is killed tells its subscribers (what it misses meanwhile is
/// unknown), connects again, and hears other processes' commits again.
async fn listener_reconnects(url: &str, reader: &dyn Store, writer: &dyn Store) {
    let mut changes = reader.changes();
    let killer = sqlx::postgres::PgPool::connect(url).await.expect("connect");
    let killed = sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query = 'LISTEN \"baton_runs\"'",
    )
    .execute(&killer)
    .await
    .expect("terminate the listeners");
    assert!(killed.rows_affected() >= 1, "no listener connection found");
    heard(
        &mut changes,
        &RunId::from_string("never-written"),
        "the lost listener",
    )
    .await;
    listening(reader).await;
    // A new subscriber: the old one also holds the news of the reconnection.
    let mut changes = reader.changes();
    let id = writer
        .create_run(&new_run("06after", None))
        .await
        .expect("create");
    heard(&mut changes, &id, "a commit after reconnecting").await;
}

/// A home written by baton 0.1 (committed as a fixture) opens in this version: migrations are
/// applied automatically and the data stays readable.
#[tokio::test]
async fn a_home_from_an_older_version_opens() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/home-v0.1");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(fixture.join("baton.db"), dir.path().join("baton.db")).expect("copy fixture");
    let store = SqlStore::open_home(dir.path())
        .await
        .expect("open old home");
    let runs = store.runs(&RunFilter::default()).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].pipeline, "hello");
    assert_eq!(runs[0].state, RunState::Succeeded);
    let tasks = store.tasks(&runs[0].id).await.expect("tasks");
    assert_eq!(
        tasks.iter().map(|t| t.state).collect::<Vec<_>>(),
        vec![TaskState::Succeeded; 2]
    );
}
