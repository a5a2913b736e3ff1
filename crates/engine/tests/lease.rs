//! Two dispatchers on one run: the one whose lease another process took over (it stalled
//! past its lease) commits nothing more, stops its processes and says so; the new owner
//! finishes the run.

mod support;

use std::sync::Arc;
use std::time::Duration;

use baton_core::ids::{LeaseOwner, RunId};
use baton_core::state::{RunState, TaskState};
use baton_engine::executor::LocalExecutor;
use baton_engine::{Engine, Error, Options, Stop};
use baton_store::{Lease, LeaseEpoch, OrphanClaim, Store};

/// Its first attempt records its process and sleeps; the next one succeeds at once.
const PIPELINE: &str = "name: fenced\ntasks:\n  slow:\n    run: |\n      if [ -f first ]; then echo again; exit 0; fi\n      touch first\n      echo $$ > pid\n      sleep 30\n";

fn execute(
    store: &Arc<dyn Store>,
    run: &RunId,
    opts: &Options,
) -> tokio::task::JoinHandle<baton_engine::Result<RunState>> {
    let (store, run, opts) = (Arc::clone(store), run.clone(), opts.clone());
    tokio::spawn(async move {
        let (_stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
        let executor = LocalExecutor {
            kill_grace: Duration::from_millis(200),
        };
        Engine::new(store, Arc::new(executor), opts)
            .execute(&run, stop_rx)
            .await
    })
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// What the store says of the run: tasks, attempts and the event log.
async fn picture(store: &dyn Store, run: &RunId) -> String {
    let tasks = store.tasks(run).await.expect("tasks");
    let attempts = store.attempts(run).await.expect("attempts");
    let events = store.events(run, 0).await.expect("events");
    format!(
        "{:?}\n{:?}\n{:?}",
        tasks.iter().map(|t| (&t.key, t.state)).collect::<Vec<_>>(),
        attempts
            .iter()
            .map(|a| (&a.key, a.attempt, a.state))
            .collect::<Vec<_>>(),
        events.iter().map(|e| (e.seq, &e.kind)).collect::<Vec<_>>()
    )
}

/// Another process takes the run over, as a replica does once the lease ran out (`now`
/// passed explicitly, past any lease this test's dispatchers hold).
async fn take_over(store: &dyn Store, owner: &LeaseOwner) -> Lease {
    let now = baton_engine::now_ms() + 3_600_000;
    let taken = store
        .claim_orphans(&OrphanClaim {
            owner,
            now,
            expires_at: now + 3_600_000,
            dead: &[],
            unowned: &[],
            limit: 10,
        })
        .await
        .expect("claim");
    assert_eq!(taken.len(), 1, "the run is taken over");
    taken[0].lease.clone()
}

fn alive(pid: i32) -> bool {
    // A zombie is gone for this purpose: it runs nothing.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_that_lost_its_lease_stops_and_writes_nothing() {
    let (dir, store, run, mut opts) = support::created(PIPELINE).await;
    opts.owner = LeaseOwner::from_string("first:1:1");
    opts.lease_ttl = Duration::from_secs(60);
    opts.lease_renew_interval = Duration::from_millis(300);
    let first = execute(&store, &run, &opts);
    let pid_file = dir.path().join("pid");
    wait_for("the first attempt's process", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    })
    .await;
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(alive(pid));

    let second = LeaseOwner::from_string("second:2:2");
    let lease = take_over(store.as_ref(), &second).await;
    assert_eq!(lease.epoch, LeaseEpoch(2));
    let before = picture(store.as_ref(), &run).await;

    // Its next renewal is refused: it stops, and says to whom it lost the run.
    let lost = tokio::time::timeout(Duration::from_secs(20), first)
        .await
        .expect("the first dispatcher stops")
        .expect("join");
    match lost {
        Err(Error::LeaseLost { holder, epoch, .. }) => {
            assert_eq!((holder.as_str(), epoch), ("second:2:2", LeaseEpoch(2)));
        }
        other => panic!("expected the lease lost, got {other:?}"),
    }
    let e = Error::LeaseLost {
        run: run.clone(),
        holder: "second:2:2".into(),
        epoch: LeaseEpoch(2),
    };
    assert_eq!(
        e.to_string(),
        format!("lost ownership of run `{run}` to `second:2:2` (epoch 2)")
    );
    wait_for("its task's process to be stopped", || !alive(pid)).await;
    assert_eq!(
        picture(store.as_ref(), &run).await,
        before,
        "the dispatcher that lost the run wrote after the takeover"
    );
    let record = store.run(&run).await.expect("run").expect("exists");
    assert_eq!(
        (record.lease_owner.as_deref(), record.lease_epoch),
        (Some("second:2:2"), LeaseEpoch(2)),
        "the lease stays the new owner's (not released by the old one)"
    );

    // The new owner finishes the run: the old attempt interrupted, the next one succeeds.
    let mut theirs = opts.clone();
    theirs.owner = second;
    let state = support::driving(&store, &run, &theirs).await.expect("join");
    assert_eq!(state, RunState::Succeeded);
    let tasks = store.tasks(&run).await.expect("tasks");
    assert_eq!(tasks[0].state, TaskState::Succeeded);
    let events = store.events(&run, 0).await.expect("events");
    let succeeded = events
        .iter()
        .filter(|e| e.kind == "run_state" && e.data["state"] == "succeeded")
        .count();
    assert_eq!(succeeded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_heard_after_the_takeover_is_not_committed() {
    // The old owner never renews in time (it "stalls"); it learns of the takeover from the
    // store's refusal of its next commit: its attempt's end.
    let source = "name: fenced\ntasks:\n  quick:\n    run: sleep 1\n  after:\n    needs: [quick]\n    run: 'true'\n";
    let (_dir, store, run, mut opts) = support::created(source).await;
    opts.owner = LeaseOwner::from_string("first:1:1");
    opts.lease_renew_interval = Duration::from_secs(3_600);
    let first = execute(&store, &run, &opts);
    let started = async {
        loop {
            let attempts = store.attempts(&run).await.expect("attempts");
            if !attempts.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), started)
        .await
        .expect("the attempt starts");
    take_over(store.as_ref(), &LeaseOwner::from_string("second:2:2")).await;
    let before = picture(store.as_ref(), &run).await;
    let lost = tokio::time::timeout(Duration::from_secs(20), first)
        .await
        .expect("the first dispatcher stops")
        .expect("join");
    assert!(
        matches!(lost, Err(Error::LeaseLost { .. })),
        "expected the lease lost, got {lost:?}"
    );
    assert_eq!(picture(store.as_ref(), &run).await, before);
    let tasks = store.tasks(&run).await.expect("tasks");
    assert!(
        tasks.iter().all(|t| t.state != TaskState::Succeeded),
        "a success heard after the takeover was recorded: {tasks:?}"
    );
}
