//! Sub-pipeline tasks: an attempt starts a child run of another pipeline, recorded with its
//! parent, and ends as the child ends; retries start new children, cancelling or timing out
//! the parent task cancels the child, and a parent handed back and resumed watches the same
//! child again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use baton_core::ids::{PipelineId, RunId};
use baton_core::state::{RunState, TaskState};
use baton_engine::executor::LocalExecutor;
use baton_engine::{Definition, Engine, Options, Pipelines, RunRequest, Stop};
use baton_store::{RunRecord, SqlStore, Store, TaskRecord};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

/// Pipelines known by source, in one directory.
#[derive(Debug)]
struct Known {
    dir: String,
    by_id: HashMap<String, Definition>,
}

#[async_trait::async_trait]
impl Pipelines for Known {
    async fn get(&self, id: &PipelineId) -> Option<Definition> {
        self.by_id.get(&id.to_string()).cloned()
    }

    fn looked_in(&self) -> String {
        format!("`{}`", self.dir)
    }
}

struct Home {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    opts: Options,
}

impl Home {
    /// A home whose sub-pipeline tasks find `sources`.
    async fn new(sources: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(SqlStore::open_home(dir.path()).await.expect("store"));
        let base_dir = dir.path().display().to_string();
        let by_id = sources
            .iter()
            .map(|source| {
                let pipeline = baton_core::load(source).pipeline.expect("valid pipeline");
                (
                    pipeline.id.to_string(),
                    Definition {
                        pipeline: Arc::new(pipeline),
                        source: (*source).into(),
                        path: None,
                        base_dir: base_dir.clone(),
                    },
                )
            })
            .collect();
        let mut opts = Options::new(dir.path().to_path_buf());
        opts.control_interval = Duration::from_millis(50);
        opts.pipelines = Some(Arc::new(Known {
            dir: base_dir,
            by_id,
        }));
        Self { dir, store, opts }
    }

    async fn create(&self, source: &str, params: Value) -> RunId {
        let pipeline = baton_core::load(source).pipeline.expect("valid pipeline");
        let params: Map<String, Value> = serde_json::from_value(params).expect("params");
        baton_engine::create_run(
            self.store.as_ref(),
            RunRequest {
                params,
                ..RunRequest::new(&pipeline, source, self.dir.path().display().to_string())
            },
        )
        .await
        .expect("run created")
        .id
    }

    async fn drive(&self, run: &RunId, stop: watch::Receiver<Option<Stop>>) -> RunState {
        Engine::new(
            self.store.clone(),
            Arc::new(LocalExecutor::default()),
            self.opts.clone(),
        )
        .execute_with_children(run, None, stop)
        .await
        .expect("run driven")
    }

    /// Creates and drives a run of `source` to its end.
    async fn run(&self, source: &str, params: Value) -> RunId {
        let id = self.create(source, params).await;
        let (_stop_tx, stop) = watch::channel(None);
        let state = self.drive(&id, stop).await;
        assert_ne!(state, RunState::Running);
        id
    }

    async fn record(&self, run: &RunId) -> RunRecord {
        self.store.run(run).await.expect("run").expect("exists")
    }

    async fn task(&self, run: &RunId, key: &str) -> TaskRecord {
        self.store
            .tasks(run)
            .await
            .expect("tasks")
            .into_iter()
            .find(|t| t.key.as_str() == key)
            .unwrap_or_else(|| panic!("no task `{key}`"))
    }

    async fn children(&self, run: &RunId) -> Vec<RunRecord> {
        self.store.child_runs(run).await.expect("children")
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default()
    }

    /// Waits until `run` has a running child, and returns it.
    async fn running_child(&self, run: &RunId) -> RunRecord {
        for _ in 0..200 {
            if let Some(child) = self
                .children(run)
                .await
                .into_iter()
                .find(|c| c.state == RunState::Running)
            {
                let tasks = self.store.tasks(&child.id).await.expect("tasks");
                if tasks.iter().any(|t| t.state == TaskState::Running) {
                    return child;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {run} never had a running child");
    }
}

const CHILD: &str = r#"name: child
params:
  date: { type: string }
  n: { type: integer, default: 1 }
tasks:
  write:
    run: 'echo "$BATON_PARAM_DATE $BATON_PARAM_N" >> seen.txt'
"#;

const PARENT: &str = r#"name: parent
params:
  day: { type: string }
tasks:
  produce:
    run: 'echo "x=7" >> "$BATON_OUTPUTS"'
    outputs: [x]
  call:
    needs: [produce]
    pipeline: child
    params:
      date: "{{ params.day }}"
      n: "{{ tasks.produce.outputs.x }}"
  each:
    needs: [call]
    for_each: [a, b]
    pipeline: default/child
    params:
      date: "item-{{ item }}"
  after:
    needs: [each]
    run: 'echo after >> seen.txt'
"#;

#[tokio::test]
async fn a_parent_waits_for_its_children_and_passes_params() {
    let home = Home::new(&[CHILD]).await;
    let parent = home.run(PARENT, json!({"day": "2026-03-01"})).await;
    assert_eq!(home.record(&parent).await.state, RunState::Succeeded);
    let lines: Vec<String> = home.read("seen.txt").lines().map(str::to_owned).collect();
    // The sub-pipeline ran before `after`, and `each` ran once per item.
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], "2026-03-01 7");
    let mut items = lines[1..3].to_vec();
    items.sort();
    assert_eq!(items, ["item-a 1", "item-b 1"]);
    assert_eq!(lines[3], "after");

    let children = home.children(&parent).await;
    assert_eq!(children.len(), 3);
    let first = &children[0];
    assert_eq!(first.pipeline, "child");
    assert_eq!(first.trigger, "parent");
    assert_eq!(first.state, RunState::Succeeded);
    // A template rendered to text, read by the child's declared type.
    assert_eq!(first.params, json!({"date": "2026-03-01", "n": 7}));
    let link = first.parent.as_ref().expect("a parent link");
    assert_eq!(
        (&link.run, link.task.as_str(), link.attempt),
        (&parent, "call", 1)
    );
    let mut keys: Vec<String> = children[1..]
        .iter()
        .map(|c| c.parent.as_ref().expect("parent").task.to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, ["each[a]", "each[b]"]);

    // The attempt's log says which run it started and how that ended.
    let log = home.read(&format!("logs/{parent}/call.1.log"));
    assert!(
        log.contains(&format!("started run {} of default/child", first.id)),
        "{log}"
    );
    assert!(
        log.contains(&format!("run {} succeeded", first.id)),
        "{log}"
    );
}

#[tokio::test]
async fn a_parent_hears_its_child_end_without_waiting_for_a_poll() {
    let mut home = Home::new(&[CHILD]).await;
    // Polls so rare the run could not end in time by them: the child's commits wake the parent.
    home.opts.control_interval = Duration::from_secs(3600);
    let parent = tokio::time::timeout(
        Duration::from_secs(30),
        home.run(PARENT, json!({"day": "2026-03-01"})),
    )
    .await
    .expect("the parent ends without polling");
    assert_eq!(home.record(&parent).await.state, RunState::Succeeded);
    assert_eq!(home.children(&parent).await.len(), 3);
}

const PRODUCER: &str = r#"name: producer
tasks:
  first:
    run: 'printf "model=draft\nscore=1\n" >> "$BATON_OUTPUTS"'
    outputs: [model, score]
  last:
    needs: [first]
    run: |
      echo "model=final" >> "$BATON_OUTPUTS"
      printf 'notes<<END\nline one\nline two\nEND\n' >> "$BATON_OUTPUTS"
    outputs: [model, notes]
"#;

#[tokio::test]
async fn a_sub_pipeline_task_outputs_what_its_child_tasks_output() {
    let home = Home::new(&[PRODUCER]).await;
    let parent = home
        .run(
            r#"name: consumer
tasks:
  call:
    pipeline: producer
    outputs: [model, score, notes, absent]
  use:
    needs: [call]
    run: 'printf "%s|%s|%s" "{{ tasks.call.outputs.model }}" "{{ tasks.call.outputs.score }}" "{{ tasks.call.outputs.notes }}" > used.txt'
"#,
            json!({}),
        )
        .await;
    let children = home.children(&parent).await;
    let why: Vec<String> = task_states(&home, &parent, &children).await;
    assert_eq!(
        home.record(&parent).await.state,
        RunState::Succeeded,
        "{why:?}"
    );
    let call = home.task(&parent, "call").await;
    let outputs = call.outputs.expect("outputs");
    // The last child task that outputs a name wins; a name nobody outputs stays unset.
    assert_eq!(outputs.get("model"), Some(&json!("final")));
    assert_eq!(outputs.get("score"), Some(&json!("1")));
    assert_eq!(outputs.get("notes"), Some(&json!("line one\nline two")));
    assert_eq!(outputs.get("absent"), None);
    assert_eq!(home.read("used.txt"), "final|1|line one\nline two");
}

#[tokio::test]
async fn a_failed_child_fails_the_attempt_and_a_retry_starts_a_new_child() {
    let flaky = r"name: flaky
tasks:
  once:
    run: 'test -f failed-once || { touch failed-once; exit 3; }'
";
    let parent = r"name: parent
tasks:
  call:
    pipeline: flaky
    retries: { limit: 1, delay: 10ms }
";
    let home = Home::new(&[flaky]).await;
    let run = home.run(parent, json!({})).await;
    assert_eq!(home.record(&run).await.state, RunState::Succeeded);
    let task = home.task(&run, "call").await;
    assert_eq!((task.state, task.attempts), (TaskState::Succeeded, 2));
    let children = home.children(&run).await;
    let seen: Vec<(u32, RunState)> = children
        .iter()
        .map(|c| (c.parent.as_ref().expect("parent").attempt, c.state))
        .collect();
    assert_eq!(
        seen,
        [(1, RunState::Failed), (2, RunState::Succeeded)],
        "each attempt starts its own child"
    );
    let attempts = home.store.attempts(&run).await.expect("attempts");
    assert_eq!(
        attempts[0].error.as_deref(),
        Some(
            format!(
                "sub-pipeline run `{}` failed (failed tasks: once)",
                children[0].id
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn a_child_that_keeps_failing_fails_the_parent() {
    let broken = "name: broken\ntasks:\n  a:\n    run: exit 1\n";
    let parent = "name: parent\ntasks:\n  call:\n    pipeline: broken\n";
    let home = Home::new(&[broken]).await;
    let run = home.run(parent, json!({})).await;
    let record = home.record(&run).await;
    assert_eq!(record.state, RunState::Failed);
    let child = &home.children(&run).await[0];
    let task = home.task(&run, "call").await;
    assert_eq!(task.state, TaskState::Failed);
    assert_eq!(
        task.error.as_deref(),
        Some(format!("sub-pipeline run `{}` failed (failed tasks: a)", child.id).as_str())
    );
}

const SLOW: &str = "name: slow\ntasks:\n  wait:\n    run: sleep 30\n";

#[tokio::test]
async fn cancelling_the_parent_cancels_the_child() {
    let home = Arc::new(Home::new(&[SLOW]).await);
    let parent = home
        .create(
            "name: parent\ntasks:\n  call:\n    pipeline: slow\n",
            json!({}),
        )
        .await;
    let (stop_tx, stop) = watch::channel(None);
    let driving = {
        let (home, parent) = (Arc::clone(&home), parent.clone());
        tokio::spawn(async move { home.drive(&parent, stop).await })
    };
    let child = home.running_child(&parent).await;
    let started = std::time::Instant::now();
    // As `baton cancel` asks, through the store: only the parent is asked.
    baton_engine::control::request_cancel(home.store.as_ref(), &parent)
        .await
        .expect("cancel");
    let state = tokio::time::timeout(Duration::from_secs(20), driving)
        .await
        .expect("the parent ends")
        .expect("joined");
    drop(stop_tx);
    assert_eq!(state, RunState::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(home.record(&child.id).await.state, RunState::Cancelled);
    let task = home.task(&parent, "call").await;
    assert_eq!(task.state, TaskState::Cancelled);
}

#[tokio::test]
async fn a_timeout_cancels_the_child_and_fails_the_attempt() {
    let home = Home::new(&[SLOW]).await;
    let run = home
        .run(
            "name: parent\ntasks:\n  call:\n    pipeline: slow\n    timeout: 1s\n",
            json!({}),
        )
        .await;
    assert_eq!(home.record(&run).await.state, RunState::Failed);
    let task = home.task(&run, "call").await;
    assert_eq!(task.error.as_deref(), Some("timed out after 1s"));
    let child = &home.children(&run).await[0];
    assert_eq!(child.state, RunState::Cancelled);
}

#[tokio::test]
async fn an_unknown_pipeline_fails_the_attempt_saying_where_it_looked() {
    let home = Home::new(&[CHILD]).await;
    let run = home
        .run(
            "name: parent\ntasks:\n  call:\n    pipeline: team/nope\n",
            json!({}),
        )
        .await;
    assert_eq!(home.record(&run).await.state, RunState::Failed);
    let task = home.task(&run, "call").await;
    assert_eq!(
        task.error.as_deref(),
        Some(
            format!(
                "sub-pipeline `team/nope` not found\n(hint: looked in `{}`)",
                home.dir.path().display()
            )
            .as_str()
        )
    );
    assert!(home.children(&run).await.is_empty());
}

#[tokio::test]
async fn bad_params_fail_the_attempt_naming_the_param() {
    let home = Home::new(&[CHILD]).await;
    let cases = [
        (
            "params:\n      date: x\n      n: 'not {{ 1 }} number'",
            "sub-pipeline `default/child`: param `n`: cannot read `not 1 number` as an integer",
        ),
        (
            "params:\n      n: 2",
            "sub-pipeline `default/child`: missing required param `date`",
        ),
        (
            "params:\n      date: x\n      dat: y",
            "sub-pipeline `default/child`: unknown param `dat` (did you mean `date`?)",
        ),
    ];
    for (params, expected) in cases {
        let source = format!("name: parent\ntasks:\n  call:\n    pipeline: child\n    {params}\n");
        let run = home.run(&source, json!({})).await;
        let task = home.task(&run, "call").await;
        assert_eq!(task.state, TaskState::Failed, "{params}");
        assert_eq!(task.error.as_deref(), Some(expected), "{params}");
        assert!(home.children(&run).await.is_empty());
    }
}

#[tokio::test]
async fn a_pipeline_cannot_start_itself() {
    let looping = "name: looping\ntasks:\n  again:\n    pipeline: looping\n";
    let home = Home::new(&[looping]).await;
    let run = home.run(looping, json!({})).await;
    let task = home.task(&run, "again").await;
    assert_eq!(
        task.error.as_deref(),
        Some(
            "sub-pipeline `default/looping` would start itself again: default/looping -> default/looping"
        )
    );
}

#[tokio::test]
async fn a_parent_handed_back_and_resumed_watches_the_same_child() {
    let child = "name: child\ntasks:\n  a:\n    run: sleep 1 && echo done >> done.txt\n";
    let mut home = Home::new(&[child]).await;
    home.opts.drain_grace = Duration::from_millis(100);
    let home = Arc::new(home);
    let parent = home
        .create(
            "name: parent\ntasks:\n  call:\n    pipeline: child\n",
            json!({}),
        )
        .await;
    let (stop_tx, stop) = watch::channel(None);
    let driving = {
        let (home, parent) = (Arc::clone(&home), parent.clone());
        tokio::spawn(async move { home.drive(&parent, stop).await })
    };
    let first = home.running_child(&parent).await;
    // A server stopping: the parent lets go of its watch, the child is handed back too.
    stop_tx.send(Some(Stop::Drain)).expect("drain");
    let state = driving.await.expect("joined");
    assert_eq!(state, RunState::Running);
    // The child's own dispatcher lets go once its attempt is stopped.
    for _ in 0..200 {
        if home.record(&first.id).await.lease_owner.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(home.record(&first.id).await.state, RunState::Running);
    let task = home.task(&parent, "call").await;
    assert_eq!((task.state, task.attempts), (TaskState::Running, 1));

    let (_stop_tx, stop) = watch::channel(None);
    assert_eq!(home.drive(&parent, stop).await, RunState::Succeeded);
    let children = home.children(&parent).await;
    assert_eq!(children.len(), 1, "no second child");
    assert_eq!(children[0].id, first.id);
    assert_eq!(children[0].state, RunState::Succeeded);
    let task = home.task(&parent, "call").await;
    assert_eq!(
        (task.state, task.attempts, task.interruptions),
        (TaskState::Succeeded, 1, 0)
    );
    let attempts = home.store.attempts(&parent).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(home.read("done.txt"), "done\n");
}

async fn task_states(home: &Home, parent: &RunId, children: &[RunRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for run in std::iter::once(parent.clone()).chain(children.iter().map(|c| c.id.clone())) {
        for t in home.store.tasks(&run).await.expect("tasks") {
            out.push(format!("{run} {} {} {:?}", t.key, t.state, t.error));
        }
    }
    out
}
