//! Observers hear committed changes, and can add to an attempt's environment.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::{AttemptState, RunState, TaskState};
use baton_engine::{Observer, Options, RunScope};
use baton_store::{Change, Store};

#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<String>>,
    /// Every change heard, one commit per entry.
    commits: Mutex<Vec<Vec<Change>>>,
}

impl Observer for Recorder {
    fn committed(&self, scope: RunScope<'_>, changes: &[Change]) {
        self.commits.lock().expect("lock").push(changes.to_vec());
        let mut seen = self.seen.lock().expect("lock");
        for c in changes {
            let line = match c {
                Change::Run { state, .. } => format!("run {state}"),
                Change::Task { key, state, .. } => format!("task {key} {state}"),
                Change::AttemptStarted { key, attempt, .. } => format!("start {key} {attempt}"),
                Change::AttemptFinished { key, exit_code, .. } => {
                    format!("end {key} {exit_code:?}")
                }
                Change::Decided { key, by, .. } => format!("decided {key} by {by}"),
                Change::Asked { key, message, .. } => format!("asked {key}: {message}"),
                Change::AddTasks(_)
                | Change::AttemptSpawned { .. }
                | Change::Reopen { .. }
                | Change::CacheChecked { .. }
                | Change::CacheSaved { .. }
                | Change::ArtifactsStored { .. } => continue,
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

/// A run of `source` created in a fresh home, and the options to drive it with `recorder`.
async fn created(
    source: &str,
    recorder: &Arc<Recorder>,
) -> (tempfile::TempDir, Arc<dyn Store>, RunId, Options) {
    let (dir, store, run, mut opts) = support::created(source).await;
    opts.observers.push(recorder.clone());
    opts.control_interval = Duration::from_millis(20);
    (dir, store, run, opts)
}

/// Waits until `recorder` has heard `gates` tasks start waiting for approval. Observers hear a
/// commit just after it lands, so the store can show a wait before they do.
async fn heard_waiting(recorder: &Recorder, gates: usize) {
    for _ in 0..500 {
        let waiting = recorder
            .seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.ends_with("waiting_approval"))
            .count();
        if waiting == gates {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{gates} gates never waited");
}

#[tokio::test]
async fn observers_hear_committed_changes_and_set_attempt_env() {
    let source = "name: watched\ntasks:\n  hello:\n    run: test \"$OBSERVED\" = watched/hello/1\n  after:\n    needs: [hello]\n    run: exit 3\n";
    let recorder = Arc::new(Recorder::default());
    let (_dir, store, run, opts) = created(source, &recorder).await;
    let state = support::drive(&store, &run, &opts).await;

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

/// The attempt finishes heard, as `(key, attempt, state, started_at, at)`.
fn finishes(recorder: &Recorder) -> Vec<(String, u32, AttemptState, i64, i64)> {
    recorder
        .commits
        .lock()
        .expect("lock")
        .iter()
        .flatten()
        .filter_map(|c| match c {
            Change::AttemptFinished {
                key,
                attempt,
                state,
                started_at,
                at,
                ..
            } => Some((key.to_string(), *attempt, *state, *started_at, *at)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn an_attempt_cut_short_by_a_crash_is_finished_with_its_stored_start() {
    let recorder = Arc::new(Recorder::default());
    let (_dir, store, run, opts) =
        created("name: crashed\ntasks:\n  a:\n    run: 'true'\n", &recorder).await;
    // What a process killed while `a` ran left behind: its attempt started a minute ago.
    let a = TaskKey::from_string("a");
    let started = baton_engine::now_ms() - 60_000;
    store
        .apply(
            &run,
            baton_store::Fence::Unfenced,
            &[
                Change::Run {
                    state: RunState::Running,
                    at: started,
                    error: None,
                },
                Change::AttemptStarted {
                    key: a.clone(),
                    attempt: 1,
                    at: started,
                    log_path: "/dev/null".into(),
                    owner: "gone:1:x".into(),
                    after_interruption: false,
                },
                Change::Task {
                    key: a.clone(),
                    state: TaskState::Running,
                    at: started,
                    next_attempt_at: None,
                    outputs: None,
                    error: None,
                },
            ],
        )
        .await
        .expect("crashed state");

    assert_eq!(
        support::drive(&store, &run, &opts).await,
        RunState::Succeeded
    );
    let heard = finishes(&recorder);
    assert_eq!(heard.len(), 2, "{heard:?}");
    let (key, attempt, state, started_at, at) = heard[0].clone();
    assert_eq!(
        (key.as_str(), attempt, state, started_at),
        ("a", 1, AttemptState::Interrupted, started)
    );
    assert!(at >= started + 60_000);
    // The attempt this process ran finishes with the start it committed.
    let started_again = recorder
        .commits
        .lock()
        .expect("lock")
        .iter()
        .flatten()
        .find_map(|c| match c {
            Change::AttemptStarted { attempt: 2, at, .. } => Some(*at),
            _ => None,
        })
        .expect("second attempt started");
    let (_, attempt, state, started_at, at) = heard[1].clone();
    assert_eq!(
        (attempt, state, started_at),
        (2, AttemptState::Succeeded, started_again)
    );
    assert!(at >= started_at);
    let stored = store.attempts(&run).await.expect("attempts");
    assert_eq!(stored[0].started_at, started);
    assert_eq!(stored[1].started_at, started_again);
}

#[tokio::test]
async fn a_decision_reaches_observers_with_who_made_it() {
    let recorder = Arc::new(Recorder::default());
    let (_dir, store, run, opts) = created(
        "name: gated\ntasks:\n  gate:\n    approval: {}\n  no:\n    approval: {}\n",
        &recorder,
    )
    .await;
    let driven = support::driving(&store, &run, &opts);
    heard_waiting(&recorder, 2).await;
    let (gate, no) = (TaskKey::from_string("gate"), TaskKey::from_string("no"));
    baton_engine::control::decide(store.as_ref(), &run, &gate, true, "ann", Some("ship it"))
        .await
        .expect("approve");
    baton_engine::control::decide(store.as_ref(), &run, &no, false, "bob", None)
        .await
        .expect("reject");
    assert_eq!(driven.await.expect("join"), RunState::Failed);

    let commits = recorder.commits.lock().expect("lock").clone();
    let decided: Vec<(&Change, Option<&Change>)> = commits
        .iter()
        .flat_map(|commit| {
            commit
                .iter()
                .enumerate()
                .filter(|(_, c)| matches!(c, Change::Decided { .. }))
                .map(|(i, c)| (c, commit.get(i + 1)))
        })
        .collect();
    assert_eq!(decided.len(), 2, "{commits:?}");
    for (change, next) in decided {
        let Change::Decided {
            key,
            approved,
            by,
            comment,
            at,
        } = change
        else {
            unreachable!()
        };
        assert!(*at > 0);
        // It comes with the task change it causes, in the same commit.
        let Some(Change::Task {
            key: task, state, ..
        }) = next
        else {
            panic!("no task change after {change:?}");
        };
        assert_eq!(task, key);
        if key == &gate {
            assert!(approved);
            assert_eq!((by.as_str(), comment.as_deref()), ("ann", Some("ship it")));
            assert_eq!(*state, TaskState::Succeeded);
        } else {
            assert!(!approved);
            assert_eq!((by.as_str(), comment.as_deref()), ("bob", None));
            assert_eq!(*state, TaskState::Failed);
        }
    }
}

#[tokio::test]
async fn a_gate_commits_what_it_asks_with_its_wait() {
    let recorder = Arc::new(Recorder::default());
    let (_dir, store, run, opts) = created(
        "name: asking\nparams:\n  env: { type: string, default: prod }\ntasks:\n  gate:\n    approval: { message: \"deploy {{ run.id }} to {{ params.env }}?\" }\n  broken:\n    approval: { message: \"{{ range(10000000000) }}\" }\n  plain:\n    approval: {}\n",
        &recorder,
    )
    .await;
    let driven = support::driving(&store, &run, &opts);
    heard_waiting(&recorder, 3).await;
    let tasks = store.tasks(&run).await.expect("tasks");
    let asks = |k: &str| {
        tasks
            .iter()
            .find(|t| t.key.as_str() == k)
            .and_then(|t| t.approval_message.clone())
    };
    assert_eq!(asks("gate"), Some(format!("deploy {run} to prod?")));
    // A message that fails to render still asks, and says why.
    let broken = asks("broken").expect("a message");
    assert!(
        broken.starts_with("{{ range(10000000000) }}\n(cannot render this message: "),
        "{broken}"
    );
    assert_eq!(asks("plain"), None);
    // Observers hear the question in the commit that sets the gate waiting.
    let commits = recorder.commits.lock().expect("lock").clone();
    let gate = TaskKey::from_string("gate");
    let commit = commits
        .iter()
        .find(|c| {
            c.iter().any(|c| {
                matches!(c, Change::Task { key, state: TaskState::WaitingApproval, .. } if key == &gate)
            })
        })
        .expect("the commit that sets the gate waiting");
    assert_eq!(
        baton_engine::observer::asked(commit, &gate),
        Some(format!("deploy {run} to prod?").as_str())
    );
    baton_engine::control::request_cancel(store.as_ref(), &run)
        .await
        .expect("cancel");
    assert_eq!(driven.await.expect("join"), RunState::Cancelled);
}
