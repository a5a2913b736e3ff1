//! Runs whose tasks go to workers through the hub, with the test playing the worker through
//! the hub's own calls (the HTTP API over them is the server's, and the agent `baton-worker`'s;
//! both have tests of their own): labels choose the worker, leases end when a worker goes
//! silent and the task runs again elsewhere, stale reports are refused, cancellation and
//! timeouts come back in heartbeat replies and are enforced without the worker's help.

mod support;

use std::sync::Arc;
use std::time::Duration;

use baton_core::ids::WorkerId;
use baton_core::state::{AttemptState, RunState, TaskState};
use baton_engine::executor::{Executors, HttpExecutor, LocalExecutor, Outcome, Outputs, Work};
use baton_engine::workers::{
    Assignment, Capacity, Epoch, HubError, HubSettings, Report, StopReason, WorkerHub, WorkerInfo,
};
use baton_engine::{Engine, Stop};

use support::{created, task};

fn hub(lease_ms: u64, heartbeat_ms: u64, grace_ms: u64) -> WorkerHub {
    WorkerHub::new(HubSettings {
        heartbeat: Duration::from_millis(heartbeat_ms),
        lease: Duration::from_millis(lease_ms),
        stop_grace: Duration::from_millis(grace_ms),
    })
}

fn executors(hub: &WorkerHub) -> Arc<Executors> {
    Arc::new(
        Executors::new(Arc::new(LocalExecutor::default()), HttpExecutor::default())
            .with_workers(hub.clone()),
    )
}

fn register(hub: &WorkerHub, name: &str, labels: &[&str]) -> WorkerId {
    register_with(hub, name, labels, Capacity::default())
}

fn register_with(hub: &WorkerHub, name: &str, labels: &[&str], capacity: Capacity) -> WorkerId {
    hub.register(WorkerInfo {
        name: name.into(),
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        slots: 4,
        capacity,
        version: "test".into(),
        host: "test-host".into(),
    })
    .expect("registered")
    .id
}

async fn claim_one(hub: &WorkerHub, worker: &WorkerId) -> Assignment {
    let mut got = hub
        .claim(worker, 1, Duration::from_secs(10))
        .await
        .expect("claim");
    assert_eq!(got.len(), 1, "one attempt within the wait");
    got.remove(0)
}

fn exited(code: i32, outputs: &str) -> Report {
    Report {
        outcome: Outcome::Exited {
            exit_code: Some(code),
            signal: None,
        },
        outputs: Outputs::Text(outputs.into()),
        rusage: None,
        artifacts: None,
    }
}

fn env<'a>(a: &'a Assignment, name: &str) -> Option<&'a str> {
    a.env
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Starts driving `run` on `hub`'s workers; the handle ends with the run's state.
fn start(
    store: &Arc<dyn baton_store::Store>,
    run: &baton_core::ids::RunId,
    opts: &baton_engine::Options,
    hub: &WorkerHub,
) -> (
    tokio::sync::watch::Sender<Option<Stop>>,
    tokio::task::JoinHandle<RunState>,
) {
    let (stop, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let engine = Engine::new(Arc::clone(store), executors(hub), opts.clone());
    let run = run.clone();
    let handle = tokio::spawn(async move { engine.execute(&run, stop_rx).await.expect("run") });
    (stop, handle)
}

#[tokio::test]
async fn a_task_goes_to_a_worker_its_labels_match_and_its_outputs_come_back() {
    let (_dir, store, run, opts) = created(
        "name: placed\ntasks:\n  \
           on_gpu:\n    runs_on: [gpu]\n    outputs: [model]\n    run: train\n  \
           on_cpu:\n    runs_on: [cpu, eu]\n    run: prep\n  \
           after:\n    needs: [on_gpu, on_cpu]\n    run: echo {{ tasks.on_gpu.outputs.model }}\n",
    )
    .await;
    let hub = hub(10_000, 3_000, 1_000);
    let cpu = register(&hub, "cpu-box", &["cpu", "eu", "big"]);
    let (_stop, driving) = start(&store, &run, &opts, &hub);
    let a = claim_one(&hub, &cpu).await;
    assert_eq!(
        a.attempt.key.as_str(),
        "on_cpu",
        "only the task whose labels it has"
    );
    assert!(matches!(&a.work, Work::Process { argv } if argv.last().is_some_and(|s| s == "prep")));
    assert_eq!(env(&a, "BATON_TASK_ID"), Some("on_cpu"));
    assert_eq!(
        env(&a, "BATON_IDEMPOTENCY_KEY"),
        Some(format!("{run}:on_cpu").as_str())
    );
    // The control plane's own `PATH` and `HOME` stay behind: the worker adds its host's.
    assert_eq!(env(&a, "PATH"), None);
    assert!(
        hub.waiting()
            .iter()
            .any(|w| w.attempt.key.as_str() == "on_gpu")
    );
    hub.finish(&cpu, a.epoch, exited(0, "")).expect("report");
    let gpu = register(&hub, "gpu-box", &["gpu"]);
    let g = claim_one(&hub, &gpu).await;
    assert_eq!(g.attempt.key.as_str(), "on_gpu");
    hub.finish(&gpu, g.epoch, exited(0, "model=resnet\n"))
        .expect("report");
    // `after` has no `runs_on`: it runs here, with the worker's output as its value.
    assert_eq!(driving.await.expect("joined"), RunState::Succeeded);
    let tasks = store.tasks(&run).await.expect("tasks");
    assert_eq!(
        task(&tasks, "on_gpu").outputs.as_ref().expect("outputs")["model"],
        "resnet"
    );
    assert!(hub.waiting().is_empty());
}

#[tokio::test]
async fn a_silent_worker_loses_its_lease_and_the_task_runs_again_elsewhere_once() {
    let (_dir, store, run, opts) =
        created("name: lost\ntasks:\n  work:\n    runs_on: [linux]\n    run: work\n").await;
    let hub = hub(400, 100, 1_000);
    let silent = register(&hub, "silent", &["linux"]);
    let (_stop, driving) = start(&store, &run, &opts, &hub);
    let first = claim_one(&hub, &silent).await;
    assert_eq!(first.attempt.attempt, 1);
    // No heartbeat: the lease ends, and the attempt comes back to be claimed again by a
    // worker that keeps sending them (a held claim alone is no sign of life).
    let other = register(&hub, "other", &["linux"]);
    let beating = tokio::spawn({
        let (hub, other) = (hub.clone(), other.clone());
        async move {
            loop {
                let _ = hub.heartbeat(&other, &[], false);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let second = claim_one(&hub, &other).await;
    beating.abort();
    assert_eq!(second.attempt.attempt, 2, "a new attempt of the same task");
    assert!(second.epoch > first.epoch, "epochs only grow");
    assert_eq!(
        env(&first, "BATON_IDEMPOTENCY_KEY"),
        env(&second, "BATON_IDEMPOTENCY_KEY"),
        "the same idempotency key"
    );
    // The silent worker comes back: everything it says of its lease is refused.
    let stale = hub.finish(&silent, first.epoch, exited(0, ""));
    assert!(matches!(stale, Err(HubError::Stale { .. })), "{stale:?}");
    let log = hub.append_log(&silent, first.epoch, 0, b"late\n").await;
    assert!(matches!(log, Err(HubError::Stale { .. })), "{log:?}");
    let beat = hub
        .heartbeat(&silent, &[first.epoch], false)
        .expect("known worker");
    assert_eq!(beat.lost, vec![first.epoch]);
    hub.append_log(&other, second.epoch, 0, b"done\n")
        .await
        .expect("the holder's log is kept");
    hub.finish(&other, second.epoch, exited(0, ""))
        .expect("report");
    assert_eq!(driving.await.expect("joined"), RunState::Succeeded);
    let attempts = store.attempts(&run).await.expect("attempts");
    let states: Vec<AttemptState> = attempts.iter().map(|a| a.state).collect();
    assert_eq!(
        states,
        vec![AttemptState::Interrupted, AttemptState::Succeeded]
    );
    assert!(
        attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("worker `silent` was not heard from")),
        "{:?}",
        attempts[0].error
    );
    let tasks = store.tasks(&run).await.expect("tasks");
    assert_eq!(task(&tasks, "work").interruptions, 1, "not a retry");
    let c = hub.counts();
    assert_eq!((c.leases_expired, c.stale_reports), (1, 3));
}

#[tokio::test]
async fn heartbeats_keep_a_lease_and_bring_back_a_cancel() {
    let (_dir, store, run, opts) =
        created("name: stop\ntasks:\n  long:\n    runs_on: [linux]\n    run: sleep 100\n").await;
    let hub = hub(400, 100, 5_000);
    let w = register(&hub, "w", &["linux"]);
    let (stop, driving) = start(&store, &run, &opts, &hub);
    let a = claim_one(&hub, &w).await;
    // Held past several leases by heartbeats alone.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let beat = hub.heartbeat(&w, &[a.epoch], false).expect("beat");
        assert!(beat.lost.is_empty() && beat.stop.is_empty(), "{beat:?}");
    }
    stop.send(Some(Stop::Cancel)).expect("stop");
    let asked = loop {
        let beat = hub.heartbeat(&w, &[a.epoch], false).expect("beat");
        if !beat.stop.is_empty() {
            break beat.stop;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(asked, vec![(a.epoch, StopReason::Cancelled)]);
    // It exited 0 as it was stopped: still cancelled, as asked.
    hub.finish(&w, a.epoch, exited(0, "")).expect("report");
    assert_eq!(driving.await.expect("joined"), RunState::Cancelled);
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts[0].state, AttemptState::Cancelled);
}

#[tokio::test]
async fn the_control_plane_times_an_attempt_out_even_if_its_worker_never_stops_it() {
    let (_dir, store, run, opts) = created(
        "name: slow\ntasks:\n  slow:\n    runs_on: [linux]\n    timeout: 300ms\n    run: sleep 100\n",
    )
    .await;
    let hub = hub(2_000, 100, 200);
    let w = register(&hub, "stubborn", &["linux"]);
    let (_stop, driving) = start(&store, &run, &opts, &hub);
    let a = claim_one(&hub, &w).await;
    assert_eq!(a.timeout, Some(Duration::from_millis(300)));
    let mut told = false;
    // It keeps beating and never stops the attempt.
    let state = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let beat = hub.heartbeat(&w, &[a.epoch], false).expect("beat");
        told |= beat.stop.contains(&(a.epoch, StopReason::TimedOut));
        if driving.is_finished() {
            break driving.await.expect("joined");
        }
    };
    assert!(told, "the heartbeat said to stop it");
    assert_eq!(state, RunState::Failed);
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts[0].state, AttemptState::TimedOut);
    assert!(matches!(
        hub.finish(&w, a.epoch, exited(0, "")),
        Err(HubError::Stale { .. })
    ));
}

#[tokio::test]
async fn a_failed_attempt_is_retried_on_a_worker_and_a_refused_one_is_not() {
    let (_dir, store, run, opts) = created(
        "name: flaky\ntasks:\n  flaky:\n    runs_on: [linux]\n    retries: { limit: 1, delay: 10ms }\n    run: x\n  \
           bad:\n    runs_on: [linux]\n    retries: { limit: 3, delay: 10ms }\n    run: y\n",
    )
    .await;
    let hub = hub(10_000, 3_000, 1_000);
    let w = register(&hub, "w", &["linux"]);
    let (_stop, driving) = start(&store, &run, &opts, &hub);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let a = claim_one(&hub, &w).await;
        let key = a.attempt.key.to_string();
        let report = match (key.as_str(), a.attempt.attempt) {
            ("flaky", 1) => exited(1, ""),
            ("flaky", _) => exited(0, ""),
            _ => Report {
                outcome: Outcome::Refused("no such image".into()),
                outputs: Outputs::default(),
                rusage: None,
                artifacts: None,
            },
        };
        seen.push((key, a.attempt.attempt));
        hub.finish(&w, a.epoch, report).expect("report");
    }
    assert_eq!(driving.await.expect("joined"), RunState::Failed);
    seen.sort();
    assert_eq!(
        seen,
        vec![("bad".into(), 1), ("flaky".into(), 1), ("flaky".into(), 2)]
    );
    let tasks = store.tasks(&run).await.expect("tasks");
    assert_eq!(task(&tasks, "flaky").state, TaskState::Succeeded);
    assert_eq!(task(&tasks, "bad").state, TaskState::Failed);
}

#[tokio::test]
async fn a_task_no_live_worker_can_take_fails_after_its_wait_saying_why() {
    let (_dir, store, run, opts) = created(
        "name: nowhere\ntasks:\n  gpu:\n    runs_on: { labels: [gpu], wait: 500ms }\n    run: train\n",
    )
    .await;
    let hub = hub(10_000, 3_000, 1_000);
    // A worker that is connected but cannot take it does not count.
    let _cpu = register(&hub, "cpu", &["cpu"]);
    let (_stop, driving) = start(&store, &run, &opts, &hub);
    let waiting = loop {
        if let Some(w) = hub.waiting().pop() {
            break w;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        waiting.reason(),
        "waiting for a worker (labels gpu): none is connected"
    );
    assert_eq!(driving.await.expect("joined"), RunState::Failed);
    let tasks = store.tasks(&run).await.expect("tasks");
    let error = task(&tasks, "gpu").error.clone().unwrap_or_default();
    assert!(
        error.starts_with("no worker with labels `gpu` was connected for 500ms (`runs_on.wait`)"),
        "{error}"
    );
    assert_eq!(task(&tasks, "gpu").attempts, 1, "not retried");
}

#[tokio::test]
async fn a_held_claim_is_answered_when_work_arrives_and_a_draining_one_at_once() {
    let (_dir, store, run, opts) =
        created("name: soon\ntasks:\n  t:\n    runs_on: [linux]\n    run: x\n").await;
    let hub = hub(10_000, 3_000, 1_000);
    let w = register(&hub, "w", &["linux"]);
    let claim = tokio::spawn({
        let (hub, w) = (hub.clone(), w.clone());
        async move { hub.claim(&w, 2, Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!claim.is_finished(), "held while there is no work");
    let (_stop, driving) = start(&store, &run, &opts, &hub);
    let got = claim.await.expect("joined").expect("claim");
    assert_eq!(got.len(), 1);
    hub.finish(&w, got[0].epoch, exited(0, "")).expect("report");
    assert_eq!(driving.await.expect("joined"), RunState::Succeeded);
    // A worker that says it drains has its held claim answered (empty) at once.
    let held = tokio::spawn({
        let (hub, w) = (hub.clone(), w.clone());
        async move { hub.claim(&w, 2, Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    hub.heartbeat(&w, &[], true).expect("beat");
    let got = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("answered before its wait")
        .expect("joined")
        .expect("claim");
    assert!(got.is_empty());
    // A stopping server ends every held claim, so none holds its shutdown.
    let other = register(&hub, "other", &["linux"]);
    let held = tokio::spawn({
        let (hub, other) = (hub.clone(), other.clone());
        async move { hub.claim(&other, 1, Duration::from_secs(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    hub.close();
    let got = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("answered when the hub closed")
        .expect("joined")
        .expect("claim");
    assert!(got.is_empty());
    let unknown = WorkerId::from_string("nobody-1");
    assert!(matches!(
        hub.claim(&unknown, 1, Duration::from_millis(1)).await,
        Err(HubError::UnknownWorker(_))
    ));
    assert!(matches!(
        hub.heartbeat(&unknown, &[Epoch(1)], false),
        Err(HubError::UnknownWorker(_))
    ));
}

#[tokio::test]
async fn a_held_claim_of_a_worker_gone_silent_or_claiming_again_takes_nothing() {
    let (_dir, store, run, opts) =
        created("name: void\ntasks:\n  t:\n    runs_on: [linux]\n    run: x\n").await;
    let hub = hub(300, 100, 1_000);
    // Cut off after claiming: the claim is still held on this side, its answer would reach
    // nobody.
    let cut = register(&hub, "cut", &["linux"]);
    let held = tokio::spawn({
        let (hub, cut) = (hub.clone(), cut.clone());
        async move { hub.claim(&cut, 1, Duration::from_secs(3)).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hub.workers()[0].state,
        baton_engine::workers::WorkerState::Lost
    );
    // Claims again after its connection died unseen: the older claim is done for.
    let back = register(&hub, "back", &["linux"]);
    let stale = tokio::spawn({
        let (hub, back) = (hub.clone(), back.clone());
        async move { hub.claim(&back, 1, Duration::from_secs(3)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh = tokio::spawn({
        let (hub, back) = (hub.clone(), back.clone());
        async move { hub.claim(&back, 1, Duration::from_secs(3)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    hub.heartbeat(&back, &[], false).expect("beat");
    let (_stop, driving) = start(&store, &run, &opts, &hub);
    let got = fresh.await.expect("joined").expect("claim");
    assert_eq!(got.len(), 1, "the newest claim of a live worker takes it");
    hub.finish(&back, got[0].epoch, exited(0, ""))
        .expect("report");
    assert_eq!(driving.await.expect("joined"), RunState::Succeeded);
    assert!(stale.await.expect("joined").expect("claim").is_empty());
    assert!(held.await.expect("joined").expect("claim").is_empty());
}

#[tokio::test]
async fn a_worker_takes_only_what_its_free_resources_can_hold() {
    let (_dir, store, run, opts) = created(
        "name: gpus\ntasks:\n  \
           a:\n    runs_on: [linux]\n    resources: { gpu: 1, cpu: 2 }\n    run: x\n  \
           b:\n    runs_on: [linux]\n    resources: { gpu: 1 }\n    run: x\n  \
           big:\n    runs_on: { labels: [linux], wait: 500ms }\n    resources: { gpu: 2 }\n    run: x\n",
    )
    .await;
    let hub = hub(10_000, 3_000, 1_000);
    let w = register_with(
        &hub,
        "one-gpu",
        &["linux"],
        Capacity {
            cpu: Some(4.0),
            memory_bytes: None,
            gpu: 1,
        },
    );
    let (_stop, driving) = start(&store, &run, &opts, &hub);
    // Four slots, one GPU: one GPU task at a time.
    let first = claim_one(&hub, &w).await;
    let held = hub
        .claim(&w, 4, Duration::from_millis(300))
        .await
        .expect("claim");
    assert!(held.is_empty(), "no GPU left: {held:?}");
    let waiting = hub.waiting();
    let other = waiting
        .iter()
        .find(|q| q.attempt.key != first.attempt.key && q.attempt.key.as_str() != "big")
        .expect("the other GPU task waits");
    assert_eq!(
        other.reason(),
        format!(
            "waiting for a worker (labels linux; {}): every matching worker is busy",
            if other.attempt.key.as_str() == "a" {
                "cpu 2, gpu 1"
            } else {
                "gpu 1"
            }
        )
    );
    hub.finish(&w, first.epoch, exited(0, "")).expect("report");
    let second = claim_one(&hub, &w).await;
    assert_ne!(second.attempt.key, first.attempt.key);
    hub.finish(&w, second.epoch, exited(0, "")).expect("report");
    // Two GPUs fit on no worker connected: it fails after its wait.
    assert_eq!(driving.await.expect("joined"), RunState::Failed);
    let tasks = store.tasks(&run).await.expect("tasks");
    let error = task(&tasks, "big").error.clone().unwrap_or_default();
    assert!(
        error.starts_with("no worker with labels `linux` and room for gpu 2 was connected"),
        "{error}"
    );
}

#[tokio::test]
async fn cancelling_a_run_ends_an_attempt_no_worker_took_yet() {
    let (_dir, store, run, opts) =
        created("name: unclaimed\ntasks:\n  t:\n    runs_on: [gpu]\n    run: x\n").await;
    let hub = hub(10_000, 3_000, 1_000);
    let (stop, driving) = start(&store, &run, &opts, &hub);
    while hub.waiting().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(Some(Stop::Cancel)).expect("stop");
    assert_eq!(driving.await.expect("joined"), RunState::Cancelled);
    assert!(hub.waiting().is_empty(), "it left the queue");
    // A worker that comes now finds nothing of it.
    let w = register(&hub, "late", &["gpu"]);
    let got = hub
        .claim(&w, 1, Duration::from_millis(200))
        .await
        .expect("claim");
    assert!(got.is_empty());
    let attempts = store.attempts(&run).await.expect("attempts");
    assert_eq!(attempts[0].state, AttemptState::Cancelled);
}
