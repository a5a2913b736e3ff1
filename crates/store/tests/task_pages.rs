//! A run's tasks read a page at a time, with their attempts and counts by state, on every
//! backend: SQLite always, PostgreSQL when `BATON_TEST_POSTGRES_URL` names a server.

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/skip.rs"]
mod skip;

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::{AttemptState, TaskState};
use baton_store::{
    Change, DefinitionRecord, Fence, NewRun, NewTask, SqlStore, Store, TaskCursor, TaskPageFilter,
};
use serde_json::json;

/// A run whose fan-out `work` made instances `work.0` .. `work.11` at one position, between
/// tasks `a` and `z`: keys sort apart from positions, and a key holds the cursor's `.`.
fn run() -> NewRun {
    let task = |key: String, task_id: &str, position| NewTask {
        key: TaskKey::from_string(key),
        task_id: task_id.to_owned(),
        position,
        item: None,
        state: TaskState::Pending,
    };
    let mut tasks = vec![task("z".into(), "z", 2), task("a".into(), "a", 0)];
    tasks.extend((0..12).map(|i| task(format!("work.{i}"), "work", 1)));
    NewRun {
        id: RunId::from_string("01page"),
        definition: DefinitionRecord {
            hash: "h1".into(),
            namespace: "data".into(),
            name: "big".into(),
            source: "name: big\ntasks: {}\n".into(),
            path: None,
        },
        params: json!({}),
        trigger: "manual".into(),
        logical_date: None,
        base_dir: "/tmp".into(),
        idempotency_key: None,
        created_at: 1_000,
        tasks,
        admission: None,
        backfill_id: None,
        no_cache: false,
        parent: None,
    }
}

fn keys(tasks: &[baton_store::TaskRecord]) -> Vec<&str> {
    tasks.iter().map(|t| t.key.as_str()).collect()
}

async fn pages(store: &dyn Store) {
    let id = store.create_run(&run()).await.expect("create");
    let all = store.tasks(&id).await.expect("tasks");
    assert_eq!(all.len(), 14);

    // Pages of 5 put together are the whole listing, in its order.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .task_page(
                &id,
                &TaskPageFilter {
                    after: after.clone(),
                    state: None,
                    limit: 5,
                },
            )
            .await
            .expect("page");
        assert!(page.len() <= 5);
        let Some(last) = page.last() else { break };
        after = Some(TaskCursor::after(last));
        // The cursor a client carries finds the same place.
        let text = after.as_ref().expect("cursor").encode();
        assert_eq!(TaskCursor::decode(&text).as_ref(), after.as_ref(), "{text}");
        paged.extend(page);
    }
    assert_eq!(keys(&paged), keys(&all));

    // Some tasks move on; the counts and a filtered page follow.
    let started = |key: &str, attempt| Change::AttemptStarted {
        key: TaskKey::from_string(key),
        attempt,
        at: 2_000 + i64::from(attempt),
        log_path: format!("/l/{key}.{attempt}"),
        owner: "me".into(),
        after_interruption: false,
    };
    let finished = |key: &str, attempt, state| Change::AttemptFinished {
        key: TaskKey::from_string(key),
        attempt,
        state,
        started_at: 2_000 + i64::from(attempt),
        at: 3_000,
        exit_code: Some(0),
        signal: None,
        rusage: None,
        error: None,
    };
    let set = |key: &str, state| Change::Task {
        key: TaskKey::from_string(key),
        state,
        at: 3_000,
        next_attempt_at: None,
        outputs: None,
        error: None,
    };
    let changes = [
        started("a", 1),
        finished("a", 1, AttemptState::Failed),
        started("a", 2),
        finished("a", 2, AttemptState::Succeeded),
        set("a", TaskState::Succeeded),
        started("work.3", 1),
        set("work.3", TaskState::Running),
        started("work.10", 1),
        set("work.10", TaskState::Running),
    ];
    for change in changes {
        store
            .apply(&id, Fence::Unfenced, &[change])
            .await
            .expect("apply");
    }
    let counts = store.task_counts(&id).await.expect("counts");
    let count = |s| counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
    assert_eq!(count(TaskState::Pending), 11);
    assert_eq!(count(TaskState::Running), 2);
    assert_eq!(count(TaskState::Succeeded), 1);
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 14);
    assert!(counts.iter().all(|(_, n)| *n > 0), "{counts:?}");

    let running = TaskPageFilter {
        after: None,
        state: Some(TaskState::Running),
        limit: 1,
    };
    let first = store.task_page(&id, &running).await.expect("running");
    assert_eq!(keys(&first), ["work.10"], "`work.10` sorts before `work.3`");
    let second = store
        .task_page(
            &id,
            &TaskPageFilter {
                after: Some(TaskCursor::after(&first[0])),
                ..running.clone()
            },
        )
        .await
        .expect("running, page 2");
    assert_eq!(keys(&second), ["work.3"]);

    // Only the attempts of the tasks asked for, ordered as all of them are.
    let of = store
        .attempts_of(
            &id,
            &[TaskKey::from_string("a"), TaskKey::from_string("work.3")],
        )
        .await
        .expect("attempts of");
    let all_attempts = store.attempts(&id).await.expect("attempts");
    assert_eq!(all_attempts.len(), 4);
    let expected: Vec<_> = all_attempts
        .into_iter()
        .filter(|a| a.key.as_str() != "work.10")
        .collect();
    assert_eq!(of, expected);
    assert!(
        store
            .attempts_of(&id, &[])
            .await
            .expect("attempts of none")
            .is_empty()
    );
    // More keys than one statement takes.
    let many: Vec<TaskKey> = (0..1_200)
        .map(|i| TaskKey::from_string(format!("k{i}")))
        .chain([TaskKey::from_string("work.10")])
        .collect();
    let of = store.attempts_of(&id, &many).await.expect("many keys");
    assert_eq!(of.len(), 1);
    assert_eq!(of[0].key.as_str(), "work.10");

    // And only their artifacts, ordered as all of them are.
    for (key, attempt, path) in [
        ("work.10", 1, "z.bin"),
        ("a", 2, "b.bin"),
        ("a", 2, "a.bin"),
    ] {
        let stored = Change::ArtifactsStored {
            key: TaskKey::from_string(key),
            attempt,
            store: "dir:/tmp/store".into(),
            files: vec![baton_store::ArtifactFile {
                path: path.into(),
                digest: format!("sha256:{}", "ab".repeat(32)),
                size: 3,
                executable: false,
            }],
            at: 4_000,
        };
        store
            .apply(&id, Fence::Unfenced, &[stored])
            .await
            .expect("apply");
    }
    let all_artifacts = store.artifacts(&id).await.expect("artifacts");
    let of = store
        .artifacts_of(
            &id,
            &[TaskKey::from_string("a"), TaskKey::from_string("work.3")],
        )
        .await
        .expect("artifacts of");
    let paths: Vec<&str> = of.iter().map(|a| a.file.path.as_str()).collect();
    assert_eq!(paths, ["a.bin", "b.bin"]);
    assert_eq!(of, all_artifacts[..2]);
    assert_eq!(all_artifacts.len(), 3);

    let other = RunId::from_string("01nothing");
    assert!(store.task_counts(&other).await.expect("none").is_empty());
}

#[test]
fn a_cursor_is_position_then_key_and_nothing_else_decodes() {
    let cursor = TaskCursor {
        position: 7,
        key: TaskKey::from_string("work.3.x"),
    };
    assert_eq!(cursor.encode(), "7.work.3.x");
    assert_eq!(TaskCursor::decode("7.work.3.x"), Some(cursor));
    for bad in ["", "7", "7.", "x.a", ".a", "01jd0x6z4q7m8n9p0r1s2t3v4w"] {
        assert_eq!(TaskCursor::decode(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn sqlite_task_pages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    pages(&store).await;
}

#[tokio::test]
async fn postgres_task_pages() {
    let Some(store) = postgres::fresh_store("task pages against PostgreSQL").await else {
        return;
    };
    pages(&store).await;
}
