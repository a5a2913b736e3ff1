//! `cache:`: a task whose rendered key matches an earlier success reuses its outputs instead of
//! running; a miss runs and stores its result in the commit of its success.

use std::sync::Arc;
use std::time::Duration;

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::{RunState, TaskState};
use baton_engine::executor::LocalExecutor;
use baton_engine::{Engine, Options, RunRequest};
use baton_store::{CacheSource, SqlStore, Store, TaskRecord};
use serde_json::{Map, Value, json};

/// A home with a store, where runs of one pipeline source are made.
struct Home {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
}

impl Home {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(SqlStore::open_home(dir.path()).await.expect("store"));
        Self { dir, store }
    }

    /// Creates and drives a run of `source` to its end.
    async fn run(&self, source: &str, params: Value, no_cache: bool) -> RunId {
        let pipeline = baton_core::load(source).pipeline.expect("valid pipeline");
        let params: Map<String, Value> = serde_json::from_value(params).expect("params");
        let id = baton_engine::create_run(
            self.store.as_ref(),
            RunRequest {
                params,
                no_cache,
                ..RunRequest::new(&pipeline, source, self.dir.path().display().to_string())
            },
        )
        .await
        .expect("run created")
        .id;
        let (_stop_tx, stop) = tokio::sync::watch::channel(None);
        let state = Engine::new(
            self.store.clone(),
            Arc::new(LocalExecutor::default()),
            Options::new(self.dir.path().to_path_buf()),
        )
        .execute(&id, stop)
        .await
        .expect("run driven");
        assert_ne!(state, RunState::Running);
        id
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
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

    async fn state(&self, run: &RunId) -> RunState {
        self.store
            .run(run)
            .await
            .expect("run")
            .expect("exists")
            .state
    }

    /// The kinds of a task's events.
    async fn event_kinds(&self, run: &RunId, key: &str) -> Vec<String> {
        self.store
            .events(run, 0)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.task_key.as_ref().is_some_and(|k| k.as_str() == key))
            .map(|e| e.kind)
            .collect()
    }
}

fn from(run: &RunId, task: &str) -> Option<CacheSource> {
    Some(CacheSource {
        run: run.clone(),
        task: TaskKey::from_string(task),
    })
}

/// `build` counts its runs in `built.txt` and outputs its run's id; `use` records what it saw.
const PIPELINE: &str = r#"name: p
params:
  version: { type: string, default: "1" }
tasks:
  build:
    run: 'echo built >> built.txt && echo "made_by=$BATON_RUN_ID" >> "$BATON_OUTPUTS"'
    outputs: [made_by]
    cache:
      key: "build-{{ params.version }}"
  use:
    needs: [build]
    run: echo "{{ tasks.build.outputs.made_by }}" >> seen.txt
"#;

#[tokio::test]
async fn a_second_run_reuses_the_cached_result_without_running_the_task() {
    let home = Home::new().await;
    let first = home.run(PIPELINE, json!({}), false).await;
    assert_eq!(home.state(&first).await, RunState::Succeeded);
    let second = home.run(PIPELINE, json!({}), false).await;
    assert_eq!(home.state(&second).await, RunState::Succeeded);

    assert_eq!(home.lines("built.txt"), ["built"], "the command ran once");
    // Downstream saw the first run's outputs both times.
    assert_eq!(
        home.lines("seen.txt"),
        [first.to_string(), first.to_string()]
    );
    let built = home.task(&second, "build").await;
    assert_eq!(built.state, TaskState::Succeeded);
    assert_eq!(built.attempts, 0);
    assert_eq!(built.cached_from, from(&first, "build"));
    assert_eq!(
        built.outputs.and_then(|o| o.get("made_by").cloned()),
        Some(json!(first.to_string()))
    );
    assert_eq!(home.task(&first, "build").await.cached_from, None);
    assert_eq!(home.task(&second, "use").await.cached_from, None);

    let first_events = home.event_kinds(&first, "build").await;
    assert!(
        first_events.contains(&"cache_miss".to_owned()),
        "{first_events:?}"
    );
    assert!(
        first_events.contains(&"cache_saved".to_owned()),
        "{first_events:?}"
    );
    let second_events = home.event_kinds(&second, "build").await;
    assert_eq!(
        second_events,
        ["task_state", "cache_hit", "task_state"],
        "queued, then a hit: nothing started, nothing stored"
    );
}

#[tokio::test]
async fn a_different_key_misses() {
    let home = Home::new().await;
    let first = home.run(PIPELINE, json!({"version": "1"}), false).await;
    let second = home.run(PIPELINE, json!({"version": "2"}), false).await;
    assert_eq!(home.lines("built.txt").len(), 2);
    assert_eq!(home.task(&second, "build").await.cached_from, None);
    // Both keys are stored; the first one still hits.
    let third = home.run(PIPELINE, json!({"version": "1"}), false).await;
    assert_eq!(home.lines("built.txt").len(), 2);
    assert_eq!(
        home.task(&third, "build").await.cached_from,
        from(&first, "build")
    );
}

#[tokio::test]
async fn a_result_older_than_ttl_is_not_reused() {
    let home = Home::new().await;
    let source = PIPELINE.replace(
        "      key: \"build-{{ params.version }}\"\n",
        "      key: \"build-{{ params.version }}\"\n      ttl: 1s\n",
    );
    assert!(source.contains("ttl: 1s"));
    let first = home.run(&source, json!({}), false).await;
    let within = home.run(&source, json!({}), false).await;
    assert_eq!(
        home.task(&within, "build").await.cached_from,
        from(&first, "build"),
        "still fresh"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let expired = home.run(&source, json!({}), false).await;
    assert_eq!(home.task(&expired, "build").await.cached_from, None);
    assert_eq!(home.lines("built.txt").len(), 2);
    // The new result replaced the old one, and counts its age from now.
    let after = home.run(&source, json!({}), false).await;
    assert_eq!(
        home.task(&after, "build").await.cached_from,
        from(&expired, "build")
    );
}

#[tokio::test]
async fn no_cache_runs_again_and_stores_the_fresh_result() {
    let home = Home::new().await;
    home.run(PIPELINE, json!({}), false).await;
    let bypass = home.run(PIPELINE, json!({}), true).await;
    assert!(
        home.store
            .run(&bypass)
            .await
            .expect("run")
            .expect("exists")
            .no_cache
    );
    assert_eq!(home.lines("built.txt").len(), 2);
    assert_eq!(home.task(&bypass, "build").await.cached_from, None);
    let events = home.event_kinds(&bypass, "build").await;
    assert!(
        !events.iter().any(|k| k == "cache_hit" || k == "cache_miss"),
        "nothing looked up: {events:?}"
    );
    let next = home.run(PIPELINE, json!({}), false).await;
    assert_eq!(
        home.task(&next, "build").await.cached_from,
        from(&bypass, "build")
    );
    assert_eq!(
        home.lines("seen.txt").last().map(String::as_str),
        Some(bypass.as_str())
    );
}

#[tokio::test]
async fn fan_out_instances_are_cached_per_item() {
    let home = Home::new().await;
    let source = r#"name: fan
params:
  regions: { type: array, default: [eu, us] }
tasks:
  load:
    for_each: params.regions
    run: 'echo {{ item }} >> loaded.txt && echo "by=$BATON_RUN_ID" >> "$BATON_OUTPUTS"'
    outputs: [by]
    cache:
      key: "load-{{ item }}"
  report:
    needs: [load]
    run: echo "{{ tasks.load.outputs.by | join(',') }}" >> report.txt
"#;
    let first = home.run(source, json!({}), false).await;
    let second = home
        .run(source, json!({"regions": ["us", "ap"]}), false)
        .await;
    assert_eq!(home.state(&second).await, RunState::Succeeded);
    let mut loaded = home.lines("loaded.txt");
    loaded.sort();
    assert_eq!(loaded, ["ap", "eu", "us"], "`us` ran once");
    assert_eq!(
        home.task(&second, "load[us]").await.cached_from,
        from(&first, "load[us]")
    );
    assert_eq!(home.task(&second, "load[ap]").await.cached_from, None);
    assert_eq!(
        home.lines("report.txt").last().cloned(),
        Some(format!("{first},{second}"))
    );
}

#[tokio::test]
async fn a_key_that_cannot_render_fails_the_task_before_it_runs() {
    let home = Home::new().await;
    let source = PIPELINE.replace(
        "key: \"build-{{ params.version }}\"",
        "key: \"build-{{ params.version.missing }}\"",
    );
    assert!(source.contains(".missing"));
    let run = home.run(&source, json!({}), false).await;
    assert_eq!(home.state(&run).await, RunState::Failed);
    let build = home.task(&run, "build").await;
    assert_eq!(build.state, TaskState::Failed);
    assert_eq!(build.attempts, 0);
    let error = build.error.unwrap_or_default();
    assert!(error.starts_with("cannot render `cache.key`: "), "{error}");
    assert!(home.lines("built.txt").is_empty());
}

#[tokio::test]
async fn a_failed_attempt_stores_nothing() {
    let home = Home::new().await;
    let source = PIPELINE.replace(
        "echo built >> built.txt && ",
        "echo built >> built.txt && test -f ok && ",
    );
    assert!(source.contains("test -f ok"));
    let failed = home.run(&source, json!({}), false).await;
    assert_eq!(home.state(&failed).await, RunState::Failed);
    std::fs::write(home.dir.path().join("ok"), "").expect("write");
    let next = home.run(&source, json!({}), false).await;
    assert_eq!(home.state(&next).await, RunState::Succeeded);
    assert_eq!(home.task(&next, "build").await.cached_from, None);
    assert_eq!(home.lines("built.txt").len(), 2);
}

/// Cache entries belong to their pipeline: another pipeline with the same task and key misses.
#[tokio::test]
async fn entries_are_per_pipeline() {
    let home = Home::new().await;
    home.run(PIPELINE, json!({}), false).await;
    let other = home
        .run(
            &PIPELINE.replace("name: p\n", "name: q\n"),
            json!({}),
            false,
        )
        .await;
    assert_eq!(home.task(&other, "build").await.cached_from, None);
    assert_eq!(home.lines("built.txt").len(), 2);
}
