//! Run ownership is fenced: once another process took a run's lease over, the writes of the
//! previous holder (a server that stalled past its lease) are refused and change nothing. Told
//! to SQLite always, and to PostgreSQL when `BATON_TEST_POSTGRES_URL` names a server.

#[path = "support/one_task_run.rs"]
mod one_task_run;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/skip.rs"]
mod skip;

use baton_core::ids::{LeaseOwner, RunId, TaskKey};
use baton_core::state::{RunState, TaskState};
use baton_store::{
    Change, CommitSeq, Error, Fence, Lease, LeaseEpoch, NewRun, NewTask, OrphanClaim, SlotClaim,
    SqlStore, Store,
};
use serde_json::json;

fn new_run(id: &str) -> NewRun {
    one_task_run::new_run(id, "fenced")
}

fn task(state: TaskState, at: i64) -> Change {
    Change::Task {
        key: TaskKey::from_string("a"),
        state,
        at,
        next_attempt_at: None,
        outputs: None,
        error: None,
    }
}

/// A commit's change adding the queued task `id` at `position`.
fn added(id: &str, position: i64) -> Change {
    Change::AddTasks(vec![NewTask {
        key: TaskKey::from_string(id),
        task_id: id.into(),
        position,
        item: None,
        state: TaskState::Queued,
    }])
}

/// The owner's commit number `commit` under `lease`.
fn owner(lease: &Lease, commit: i64) -> Fence<'_> {
    Fence::Lease {
        lease,
        commit: CommitSeq(commit),
    }
}

fn assert_lost(result: baton_store::Result<impl std::fmt::Debug>, holder: &str, epoch: i64) {
    match result {
        Err(Error::LeaseLost {
            holder: h,
            epoch: e,
            ..
        }) => {
            assert_eq!((h.as_str(), e), (holder, LeaseEpoch(epoch)));
        }
        other => panic!("expected the lease lost to `{holder}`, got {other:?}"),
    }
}

/// A before-and-after picture of what a refused write must not touch.
async fn snapshot(store: &dyn Store, run: &RunId) -> String {
    let record = store.run(run).await.expect("run").expect("exists");
    let tasks = store.tasks(run).await.expect("tasks");
    let events = store.events(run, 0).await.expect("events");
    format!(
        "{:?} {:?} {:?} {:?}",
        (record.state, &record.lease_owner, record.lease_expires_at),
        tasks
            .iter()
            .map(|t| (t.key.clone(), t.state))
            .collect::<Vec<_>>(),
        events.len(),
        events.last().map(|e| e.seq)
    )
}

async fn fencing(store: &dyn Store) {
    let run = store.create_run(&new_run("01fence")).await.expect("create");
    let a = LeaseOwner::from_string("host:1:a");
    let b = LeaseOwner::from_string("host:2:b");

    // A acquires (epoch 1) and renewing keeps the epoch, even past the lease's end: nobody
    // took it in between.
    let lease_a = store
        .acquire_lease(&run, &a, 1_000, 2_000, None)
        .await
        .expect("acquire")
        .expect("free");
    assert_eq!(lease_a.epoch, LeaseEpoch(1));
    store
        .renew_lease(&run, &lease_a, 3_000)
        .await
        .expect("renew a live lease");
    store
        .renew_lease(&run, &lease_a, 4_000)
        .await
        .expect("renew");
    let again = store
        .acquire_lease(&run, &a, 3_500, 4_000, None)
        .await
        .expect("acquire again")
        .expect("held by A");
    assert_eq!(
        again, lease_a,
        "the holder taking its live lease again keeps the epoch"
    );
    store
        .apply(
            &run,
            owner(&lease_a, 1),
            &[
                Change::Run {
                    state: RunState::Running,
                    at: 1_001,
                    error: None,
                },
                task(TaskState::Queued, 1_002),
            ],
        )
        .await
        .expect("the owner writes");

    // A stalls past its lease; B takes the run over (epoch 2).
    let taken = store
        .claim_orphans(&OrphanClaim {
            owner: &b,
            now: 5_000,
            expires_at: 9_000,
            dead: &[],
            unowned: &[],
            limit: 10,
        })
        .await
        .expect("claim");
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].run.lease_owner.as_deref(), Some("host:1:a"));
    let lease_b = taken[0].lease.clone();
    assert_eq!(
        lease_b,
        Lease {
            owner: b.clone(),
            epoch: LeaseEpoch(2),
            commits: CommitSeq(1),
        }
    );

    // A wakes up: its commit, renewal, pool claim and release are all refused, and change
    // nothing.
    let before = snapshot(store, &run).await;
    let stale = store
        .apply(
            &run,
            owner(&lease_a, 2),
            &[
                task(TaskState::Succeeded, 5_001),
                Change::Run {
                    state: RunState::Succeeded,
                    at: 5_002,
                    error: None,
                },
            ],
        )
        .await;
    assert_lost(stale, "host:2:b", 2);
    let e = store
        .apply(&run, owner(&lease_a, 2), &[task(TaskState::Failed, 5_003)])
        .await
        .expect_err("stale");
    assert_eq!(
        e.to_string(),
        "lost ownership of run `01fence` to `host:2:b` (epoch 2)"
    );
    assert_lost(
        store.renew_lease(&run, &lease_a, 20_000).await,
        "host:2:b",
        2,
    );
    store.put_pool("gpu", 1, None, 5_000).await.expect("pool");
    assert_lost(
        store
            .claim_slot("gpu", &run, &TaskKey::from_string("a"), 0, &lease_a, 5_004)
            .await,
        "host:2:b",
        2,
    );
    assert_lost(store.release_lease(&run, &lease_a).await, "host:2:b", 2);
    assert_eq!(snapshot(store, &run).await, before, "a stale write landed");
    assert_eq!(
        store
            .pool("gpu", 5_005)
            .await
            .expect("pool")
            .expect("gpu")
            .used,
        0
    );
    // Not even A's old epoch under B's name, nor B's epoch under A's name.
    let forged = Lease {
        owner: b.clone(),
        epoch: LeaseEpoch(1),
        commits: CommitSeq(1),
    };
    assert_lost(
        store.renew_lease(&run, &forged, 20_000).await,
        "host:2:b",
        2,
    );
    let forged = Lease {
        owner: a.clone(),
        epoch: LeaseEpoch(2),
        commits: CommitSeq(1),
    };
    assert_lost(
        store.renew_lease(&run, &forged, 20_000).await,
        "host:2:b",
        2,
    );
    // A cannot take the live lease back by acquiring it either.
    assert_eq!(
        store
            .acquire_lease(&run, &a, 5_006, 20_000, None)
            .await
            .expect("acquire"),
        None
    );

    // B's writes land.
    store
        .renew_lease(&run, &lease_b, 10_000)
        .await
        .expect("renew b");
    assert_eq!(
        store
            .claim_slot("gpu", &run, &TaskKey::from_string("a"), 0, &lease_b, 5_007)
            .await
            .expect("claim b"),
        SlotClaim::Held
    );
    store
        .apply(
            &run,
            owner(&lease_b, 2),
            &[
                task(TaskState::Succeeded, 5_008),
                Change::Run {
                    state: RunState::Succeeded,
                    at: 5_009,
                    error: None,
                },
            ],
        )
        .await
        .expect("the new owner writes");
    let record = store.run(&run).await.expect("run").expect("exists");
    assert_eq!(record.state, RunState::Succeeded);
    let succeeded = store
        .events(&run, 0)
        .await
        .expect("events")
        .iter()
        .filter(|e| e.kind == "run_state" && e.data["state"] == json!("succeeded"))
        .count();
    assert_eq!(succeeded, 1);
    store
        .release_lease(&run, &lease_b)
        .await
        .expect("release b");
    // Released, the stale holder still cannot write: the next acquisition is a new epoch.
    assert_lost(
        store
            .apply(&run, owner(&lease_b, 3), &[task(TaskState::Failed, 6_000)])
            .await,
        "nobody",
        2,
    );
    let next = store
        .acquire_lease(&run, &b, 6_001, 9_000, None)
        .await
        .expect("acquire")
        .expect("free");
    assert_eq!(
        next.epoch,
        LeaseEpoch(3),
        "taking a released lease is a new epoch"
    );
    assert_lost(
        store.renew_lease(&run, &lease_b, 9_500).await,
        "host:2:b",
        3,
    );
}

/// A commit tried again after its answer was lost is written once; a commit whose number does
/// not follow the run's last one is refused; a new holder counts on from the run's last.
async fn commit_numbers(store: &dyn Store) {
    let run = store.create_run(&new_run("01count")).await.expect("create");
    let a = LeaseOwner::from_string("host:1:a");
    let lease = store
        .acquire_lease(&run, &a, 1_000, 2_000, None)
        .await
        .expect("acquire")
        .expect("free");
    assert_eq!(lease.commits, CommitSeq(0));
    let first = [
        Change::Run {
            state: RunState::Running,
            at: 1_001,
            error: None,
        },
        task(TaskState::Queued, 1_002),
    ];
    store
        .apply(&run, owner(&lease, 1), &first)
        .await
        .expect("the first commit");
    let landed = snapshot(store, &run).await;
    store
        .apply(&run, owner(&lease, 1), &first)
        .await
        .expect("the same commit again succeeds");
    assert_eq!(
        snapshot(store, &run).await,
        landed,
        "a retried commit was written twice"
    );

    let gap = store
        .apply(&run, owner(&lease, 3), &[task(TaskState::Running, 1_003)])
        .await
        .expect_err("a skipped number");
    assert!(
        matches!(
            gap,
            Error::CommitGap {
                last: CommitSeq(1),
                commit: CommitSeq(3),
                ..
            }
        ),
        "{gap:?}"
    );
    assert_eq!(
        gap.to_string(),
        "commit 3 of run `01count` does not follow its last one (1)\n(hint: this is a bug in baton; the commit was not written)"
    );
    assert_eq!(
        snapshot(store, &run).await,
        landed,
        "a refused commit was written"
    );
    store
        .apply(&run, owner(&lease, 2), &[task(TaskState::Running, 1_004)])
        .await
        .expect("the next commit");
    let again = store
        .acquire_lease(&run, &a, 1_500, 3_000, None)
        .await
        .expect("acquire")
        .expect("held by A");
    assert_eq!((again.epoch, again.commits), (lease.epoch, CommitSeq(2)));

    // B takes the run over and counts on; A's commit 2 again (its answer lost before the
    // takeover) is refused as A's, not taken for one that landed.
    let taken = store
        .claim_orphans(&OrphanClaim {
            owner: &LeaseOwner::from_string("host:2:b"),
            now: 5_000,
            expires_at: 9_000,
            dead: &[],
            unowned: &[],
            limit: 10,
        })
        .await
        .expect("claim");
    assert_eq!(taken[0].lease.commits, CommitSeq(2));
    assert_lost(
        store
            .apply(&run, owner(&lease, 2), &[task(TaskState::Running, 1_004)])
            .await,
        "host:2:b",
        2,
    );
    store
        .apply(
            &run,
            owner(&taken[0].lease, 3),
            &[task(TaskState::Succeeded, 5_001)],
        )
        .await
        .expect("the new owner's first commit");

    // A retried commit that adds tasks. On SQLite its script runs before the fence's answer
    // is known, and fails on the rows the first try wrote: it is still the commit that
    // landed, not an error, and nothing is written twice.
    let add = [added("later", 9)];
    store
        .apply(&run, owner(&taken[0].lease, 4), &add)
        .await
        .expect("commit 4");
    let landed = snapshot(store, &run).await;
    store
        .apply(&run, owner(&taken[0].lease, 4), &add)
        .await
        .expect("commit 4 again succeeds");
    assert_eq!(
        snapshot(store, &run).await,
        landed,
        "a retried commit was written twice"
    );
}

#[tokio::test]
async fn sqlite_commits_are_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    commit_numbers(&store).await;
}

#[tokio::test]
async fn sqlite_stale_owner_is_fenced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    fencing(&store).await;
}

/// One test for both, one after the other: each starts from an empty database on the shared
/// server, which another test resetting it at the same time would empty under it.
#[tokio::test]
async fn postgres_stale_owner_is_fenced_and_commits_are_counted() {
    let Some(store) = postgres::fresh_store("lease fencing against PostgreSQL").await else {
        return;
    };
    fencing(&store).await;
    let Some(store) = postgres::fresh_store("commit numbers against PostgreSQL").await else {
        return;
    };
    commit_numbers(&store).await;
    let Some(store) = postgres::fresh_store("failed commits on PostgreSQL").await else {
        return;
    };
    failed_commits_leave_nothing(&store).await;
    let Some(store) = postgres::fresh_store("an owner frozen mid-commit on PostgreSQL").await
    else {
        return;
    };
    drop(store);
    frozen_mid_commit(&postgres::url("an owner frozen mid-commit").expect("url")).await;
}

/// An owner that freezes (or loses the network) in the middle of a commit holds its run's row
/// lock in an open transaction. The server ends that transaction once it has sat idle for
/// `idle_transaction_timeout`, so a survivor can take the run over; without it, the lock, and
/// the run, would stay the frozen process's until it woke.
async fn frozen_mid_commit(url: &str) {
    let settings = baton_store::DatabaseSettings {
        idle_transaction_timeout: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let a = SqlStore::open_with(url, &settings).await.expect("open");
    let b = SqlStore::open_with(url, &settings).await.expect("open");
    let run = a.create_run(&new_run("01frozen")).await.expect("create");
    let owner_a = LeaseOwner::from_string("host:1:a");
    a.acquire_lease(&run, &owner_a, 1_000, 2_000, None)
        .await
        .expect("acquire")
        .expect("free");
    let frozen = {
        let run = run.clone();
        tokio::spawn(async move {
            a.stall_in_commit(&run, std::time::Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let owner_b = LeaseOwner::from_string("host:2:b");
    loop {
        let taken = b
            .claim_orphans(&OrphanClaim {
                owner: &owner_b,
                now: 5_000,
                expires_at: 9_000,
                dead: &[],
                unowned: &[],
                limit: 10,
            })
            .await
            .expect("claim");
        if !taken.is_empty() {
            assert_eq!(taken[0].lease.epoch, LeaseEpoch(2));
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the frozen owner's open transaction kept the run from the survivor"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ended = frozen.await.expect("join");
    assert!(ended.is_err(), "the frozen commit landed: {ended:?}");
}

/// A commit that fails part-way leaves nothing behind: not its first statements, and not
/// an open transaction that would refuse the next commit.
async fn failed_commits_leave_nothing(store: &dyn Store) {
    let run = store
        .create_run(&new_run("01failing"))
        .await
        .expect("create");
    let a = LeaseOwner::from_string("host:1:a");
    let lease = store
        .acquire_lease(&run, &a, 1_000, 2_000, None)
        .await
        .expect("acquire")
        .expect("free");
    let before = snapshot(store, &run).await;
    // A task the run has already: its row is refused after the first change was written.
    let failing = [task(TaskState::Running, 1_001), added("a", 0)];
    let e = store
        .apply(&run, owner(&lease, 1), &failing)
        .await
        .expect_err("a duplicate task");
    assert!(matches!(e, Error::Database(_)), "{e:?}");
    assert_eq!(snapshot(store, &run).await, before, "a failed commit wrote");
    store
        .apply(&run, owner(&lease, 1), &[task(TaskState::Running, 1_002)])
        .await
        .expect("the same commit number, now valid");
}

#[tokio::test]
async fn sqlite_failed_commits_leave_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    failed_commits_leave_nothing(&store).await;
}
