//! Logs kept in the database: appended in chunks by the running attempt's owner, read back in
//! bounded pieces from any offset, and refused from a stale writer. Told to SQLite always, and
//! to PostgreSQL when `BATON_TEST_POSTGRES_URL` names a server.

#[path = "support/one_task_run.rs"]
mod one_task_run;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/skip.rs"]
mod skip;

use baton_core::ids::{LeaseOwner, RunId, TaskKey};
use baton_core::state::AttemptState;
use baton_store::{
    AttemptLog, Change, CommitSeq, Fence, Lease, LogError, LogStore, MAX_READ, NewRun, SqlStore,
    Store,
};

fn new_run(id: &str) -> NewRun {
    one_task_run::new_run(id, "logged")
}

/// A run `id` whose task `a` may start, leased to `host:1:a`.
async fn leased_run(store: &SqlStore, id: &str) -> (RunId, TaskKey, Lease) {
    let run = store.create_run(&new_run(id)).await.expect("create");
    let owner = LeaseOwner::from_string("host:1:a");
    let lease = store
        .acquire_lease(&run, &owner, 1_000, 60_000, None)
        .await
        .expect("acquire")
        .expect("free");
    (run, TaskKey::from_string("a"), lease)
}

/// Starts the first attempt of `key`, which then takes output.
async fn start_attempt(store: &SqlStore, run: &RunId, key: &TaskKey, lease: &Lease, log: String) {
    store
        .apply(
            run,
            Fence::Lease {
                lease,
                commit: CommitSeq(1),
            },
            &[Change::AttemptStarted {
                key: key.clone(),
                attempt: 1,
                at: 1_001,
                log_path: log,
                owner: lease.owner.to_string(),
                after_interruption: false,
            }],
        )
        .await
        .expect("start");
}

/// A run whose task `a` has its first attempt running.
async fn one_running_attempt(store: &SqlStore) -> (RunId, TaskKey) {
    let (run, key, lease) = leased_run(store, "01moved").await;
    start_attempt(store, &run, &key, &lease, String::new()).await;
    (run, key)
}

async fn chunks(store: &SqlStore) {
    let logs = store.log_store();
    let (run, key, lease) = leased_run(store, "01logs").await;
    let log = AttemptLog {
        run: run.clone(),
        key: key.clone(),
        attempt: 1,
    };
    assert!(
        matches!(
            logs.append(&log, Some(&lease), 0, b"early").await,
            Err(LogError::Stale { .. })
        ),
        "no output is kept for an attempt that has not started"
    );
    start_attempt(store, &run, &key, &lease, logs.location(&log)).await;
    assert_eq!(logs.len(&log).await.expect("len"), 0);
    assert!(logs.read(&log, 0, 100).await.expect("read").is_empty());

    // A log larger than a read, appended in pieces as the executor flushes them.
    let text: Vec<u8> = (0..MAX_READ * 3 + 123)
        .map(|i| b'a' + u8::try_from(i % 26).expect("small"))
        .collect();
    let mut at = 0;
    for piece in text.chunks(64 * 1024) {
        logs.append(&log, Some(&lease), at, piece)
            .await
            .expect("append");
        at += piece.len() as u64;
    }
    // A retry of a chunk whose answer was lost is not kept twice.
    logs.append(&log, Some(&lease), 0, &text[..64 * 1024])
        .await
        .expect("retry");
    assert_eq!(logs.len(&log).await.expect("len"), text.len() as u64);

    let mut read = Vec::new();
    let mut reads = 0;
    loop {
        let piece = logs
            .read(&log, read.len() as u64, usize::MAX)
            .await
            .expect("read");
        if piece.is_empty() {
            break;
        }
        assert!(piece.len() <= MAX_READ, "a read is bounded");
        read.extend_from_slice(&piece);
        reads += 1;
    }
    assert_eq!(read, text);
    assert_eq!(reads, 4);
    // From inside a chunk, across the next.
    assert_eq!(
        logs.read(&log, 64 * 1024 - 2, 5).await.expect("read"),
        &text[64 * 1024 - 2..64 * 1024 + 3]
    );

    // Another owner's write is refused, and so is any once the attempt ended.
    let stale = baton_store::Lease {
        owner: LeaseOwner::from_string("host:2:b"),
        ..lease.clone()
    };
    assert!(matches!(
        logs.append(&log, Some(&stale), at, b"stale").await,
        Err(LogError::Stale { .. })
    ));
    store
        .apply(
            &run,
            Fence::Lease {
                lease: &lease,
                commit: CommitSeq(2),
            },
            &[Change::AttemptFinished {
                key: key.clone(),
                attempt: 1,
                state: AttemptState::Succeeded,
                started_at: 1_001,
                at: 1_002,
                exit_code: Some(0),
                signal: None,
                rusage: None,
                error: None,
            }],
        )
        .await
        .expect("finish");
    let refused = logs.append(&log, Some(&lease), at, b"late").await;
    assert_eq!(
        refused.expect_err("refused").to_string(),
        "attempt 1 of `a` in run `01logs` no longer takes output\n(hint: it ended, or another process owns the run now)"
    );
    assert_eq!(logs.len(&log).await.expect("len"), text.len() as u64);
}

/// A home that kept its logs in files before they moved to the database: those are still read.
#[tokio::test]
async fn logs_written_as_files_before_are_read_through_the_database_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    let logs = store.logs(Some(baton_store::LogStoreKind::Database), dir.path());
    let log = AttemptLog {
        run: RunId::from_string("01old"),
        key: TaskKey::from_string("a"),
        attempt: 1,
    };
    let files = baton_store::FileLogStore::new(dir.path());
    files
        .append(&log, None, 0, b"from before\n")
        .await
        .expect("file");
    assert_eq!(logs.len(&log).await.expect("len"), 12);
    assert_eq!(logs.read(&log, 5, 100).await.expect("read"), b"before\n");
    assert_eq!(logs.read(&log, 12, 100).await.expect("read"), b"");
}

/// And back: a home that moved its logs to the database and then back to files still reads
/// what the database holds, and writes new output to files.
#[tokio::test]
async fn logs_written_to_the_database_before_are_read_through_the_files_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    let (run, key) = one_running_attempt(&store).await;
    let log = AttemptLog {
        run,
        key,
        attempt: 1,
    };
    store
        .log_store()
        .append(&log, None, 0, b"in the database\n")
        .await
        .expect("chunk");
    let logs = store.logs(Some(baton_store::LogStoreKind::Files), dir.path());
    assert_eq!(logs.len(&log).await.expect("len"), 16);
    assert_eq!(
        logs.read(&log, 3, 100).await.expect("read"),
        b"the database\n"
    );
    let other = AttemptLog {
        attempt: 2,
        ..log.clone()
    };
    logs.append(&other, None, 0, b"new\n").await.expect("file");
    assert!(logs.location(&other).ends_with(".2.log"));
    assert_eq!(logs.read(&other, 0, 100).await.expect("read"), b"new\n");
}

#[tokio::test]
async fn sqlite_logs_are_chunked_read_in_bounded_pieces_and_fenced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqlStore::open_home(dir.path()).await.expect("open");
    chunks(&store).await;
}

#[tokio::test]
async fn postgres_logs_are_chunked_read_in_bounded_pieces_and_fenced() {
    let Some(store) = postgres::fresh_store("database logs against PostgreSQL").await else {
        return;
    };
    chunks(&store).await;
}
