//! [`Store`] over sqlx's `Any` driver: one implementation for SQLite (embedded default) and
//! PostgreSQL, with a migration folder for each.

use async_trait::async_trait;
use baton_core::ids::{BackfillId, LeaseOwner, RunId, TaskKey};
use baton_core::spec::Overlap;
use baton_core::state::{AttemptState, RunState, TaskState};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::changes::{CHANNEL, ChangeFeed, Changes, Kind, ListenerGuard};
use crate::error::{Error, Result};
use crate::lease::{Fence, Lease, TakenRun};
use crate::records::{
    Admitted, ApprovalRecord, ApprovalWait, AttemptProcess, AttemptRecord, BackfillFilter,
    BackfillRecord, CacheEntry, CacheSource, Change, Control, DeadLetterFilter, DeadLetterRecord,
    DefinitionRecord, EventRecord, Millis, NewRun, NewTask, OrphanClaim, ParentRef, PipelineCount,
    PoolRecord, RunBrief, RunFilter, RunRecord, Rusage, SlotClaim, TaskCount, TaskRecord,
    VersionRecord,
};
use crate::store::Store;

mod connect;
mod lease;
mod pools;
mod takeover;

pub(crate) use connect::connection_lost;

/// The embedded database's file in a home.
pub(crate) const HOME_DATABASE: &str = "baton.db";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    /// Writes go through one connection held for the store's life: the engine commits once
    /// per step of every run, and taking a connection from the pool each time costs as much
    /// as a statement. Replaced when it breaks (see [`connect::Writer`]).
    writer: std::sync::Arc<connect::Writer>,
    backend: Backend,
    /// Runs this handle claimed pool slots for.
    claimed: pools::Claimed,
    feed: ChangeFeed,
    /// PostgreSQL: the listener that brings other processes' commits into `feed`.
    _listener: Option<std::sync::Arc<ListenerGuard>>,
    /// See [`SqlStore::lose_commit_acks`].
    lost_acks: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl SqlStore {
    /// Starts a transaction that will write. SQLite needs `BEGIN IMMEDIATE`: a transaction that
    /// reads first and writes later fails at once (busy, without waiting) when another
    /// connection wrote in between.
    async fn begin_write<'c>(
        &self,
        conn: &'c mut sqlx::pool::PoolConnection<sqlx::Any>,
    ) -> Result<sqlx::Transaction<'c, sqlx::Any>> {
        let tx = match self.backend {
            Backend::Sqlite => sqlx::Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE").await?,
            Backend::Postgres => sqlx::Connection::begin(&mut **conn).await?,
        };
        Ok(tx)
    }

    /// Tells other processes (their listeners) that `runs` changed, when `tx` commits:
    /// PostgreSQL delivers a notification only then, and drops it with a rollback. SQLite has
    /// no notifications; other processes on a SQLite home see changes by reading.
    async fn notify(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        kind: Kind,
        runs: &[&RunId],
    ) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        for chunk in runs.chunks(RUN_ROWS_PER_INSERT) {
            // Selected through a subquery: `pg_notify` returns `void`, which sqlx's `Any`
            // driver cannot decode (a volatile call is evaluated all the same).
            let sql = format!(
                "SELECT 1 AS n FROM (SELECT pg_notify('{CHANNEL}', v) FROM (VALUES {}) AS t(v)) AS x",
                placeholders(chunk.len(), 1, 1)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for run in chunk {
                q = q.bind(format!("{run} {} {}", self.feed.origin(), kind.letter()));
            }
            q.fetch_all(&mut **tx).await?;
        }
        Ok(())
    }

    /// For tests: the next `n` commits of [`Store::apply`] land but report a lost connection,
    /// as when the database committed and its answer never came back (the network dropped,
    /// the server was killed right then). Whoever retries such a commit must not apply it twice.
    #[doc(hidden)]
    pub fn lose_commit_acks(&self, n: u32) {
        self.lost_acks.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    fn ack_lost(&self) -> bool {
        self.lost_acks
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
    }

    /// Drops every table (PostgreSQL: recreates the `public` schema), for tests that need an
    /// empty database on a shared server.
    pub async fn reset_for_tests(&self) -> Result<()> {
        match self.backend {
            Backend::Postgres => {
                sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
                    .execute(&self.pool)
                    .await?;
            }
            Backend::Sqlite => {
                for table in [
                    "events",
                    "approvals",
                    "attempts",
                    "tasks",
                    "runs",
                    "definitions",
                    "_sqlx_migrations",
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
                        .execute(&self.pool)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

fn opt_i64(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

fn json_col(row: &AnyRow, col: &'static str) -> Result<Option<serde_json::Value>> {
    match row.try_get::<Option<String>, _>(col)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                column: col,
                detail: e.to_string(),
            }),
    }
}

fn state<T>(row: &AnyRow, col: &'static str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let text: String = row.try_get(col)?;
    parse(&text).ok_or_else(|| Error::Corrupt {
        column: col,
        detail: format!("unknown state `{text}`"),
    })
}

/// A fan-out's own row `t`, which only sums up its instances (they are what ran). A macro, so
/// that `concat!` can build [`DEAD_LETTER`] from it.
macro_rules! fan_out_sum {
    () => {
        "(t.task_key = t.task_id AND EXISTS (SELECT 1 FROM tasks c \
     WHERE c.run_id = t.run_id AND c.task_id = t.task_id AND c.task_key <> t.task_key))"
    };
}
const FAN_OUT_SUM: &str = fan_out_sum!();

/// Task `t` of run `r` is a dead letter: it failed for good in a run that ended. Hooks do not
/// decide a run's outcome and run again whenever it ends.
const DEAD_LETTER: &str = concat!(
    "t.state = 'failed' AND t.finished_at IS NOT NULL \
     AND r.state IN ('failed', 'cancelled') \
     AND t.task_key NOT IN ('on_success', 'on_failure') AND NOT ",
    fan_out_sum!()
);

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn run_record(row: &AnyRow) -> Result<RunRecord> {
    Ok(RunRecord {
        id: RunId::from_string(row.try_get::<String, _>("id")?),
        namespace: row.try_get("namespace")?,
        pipeline: row.try_get("pipeline")?,
        version: row.try_get("version")?,
        state: state(row, "state", RunState::from_name)?,
        params: json_col(row, "params")?.unwrap_or_default(),
        trigger: row.try_get("trigger_kind")?,
        logical_date: row.try_get("logical_date")?,
        base_dir: row.try_get("base_dir")?,
        idempotency_key: row.try_get("idempotency_key")?,
        created_at: row.try_get("created_at")?,
        started_at: opt_i64(row, "started_at")?,
        finished_at: opt_i64(row, "finished_at")?,
        error: row.try_get("error")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: opt_i64(row, "lease_expires_at")?,
        lease_epoch: crate::LeaseEpoch(row.try_get("lease_epoch")?),
        admission_group: row.try_get("admission_group")?,
        admission_limit: opt_i64(row, "admission_limit")?.map(to_u32),
        admitted_at: opt_i64(row, "admitted_at")?,
        backfill_id: row
            .try_get::<Option<String>, _>("backfill_id")?
            .map(BackfillId::from_string),
        no_cache: row.try_get::<i64, _>("no_cache")? != 0,
        parent: match row.try_get::<Option<String>, _>("parent_run_id")? {
            Some(run) => Some(ParentRef {
                run: RunId::from_string(run),
                task: TaskKey::from_string(
                    row.try_get::<Option<String>, _>("parent_task_key")?
                        .unwrap_or_default(),
                ),
                attempt: opt_i64(row, "parent_attempt")?.map_or(0, to_u32),
            }),
            None => None,
        },
    })
}

fn run_brief(row: &AnyRow) -> Result<RunBrief> {
    Ok(RunBrief {
        id: RunId::from_string(row.try_get::<String, _>("id")?),
        namespace: row.try_get("namespace")?,
        pipeline: row.try_get("pipeline")?,
        state: state(row, "state", RunState::from_name)?,
        created_at: row.try_get("created_at")?,
        started_at: opt_i64(row, "started_at")?,
        finished_at: opt_i64(row, "finished_at")?,
    })
}

fn backfill_record(row: &AnyRow) -> Result<BackfillRecord> {
    Ok(BackfillRecord {
        id: BackfillId::from_string(row.try_get::<String, _>("id")?),
        namespace: row.try_get("namespace")?,
        pipeline: row.try_get("pipeline")?,
        version: row.try_get("version")?,
        schedule: to_u32(row.try_get("schedule")?),
        start: row.try_get("range_start")?,
        end: row.try_get("range_end")?,
        parallelism: to_u32(row.try_get("parallelism")?),
        params: json_col(row, "params")?.unwrap_or_default(),
        runs: u64::try_from(row.try_get::<i64, _>("runs")?).unwrap_or(0),
        idempotency_key: row.try_get("idempotency_key")?,
        created_at: row.try_get("created_at")?,
    })
}

fn task_record(row: &AnyRow) -> Result<TaskRecord> {
    let outputs = match json_col(row, "outputs")? {
        Some(serde_json::Value::Object(m)) => Some(m),
        _ => None,
    };
    Ok(TaskRecord {
        key: TaskKey::from_string(row.try_get::<String, _>("task_key")?),
        task_id: row.try_get("task_id")?,
        position: row.try_get("position")?,
        item: json_col(row, "item")?,
        state: state(row, "state", TaskState::from_name)?,
        attempts: to_u32(row.try_get("attempts")?),
        interruptions: to_u32(row.try_get("interruptions")?),
        retry_base: to_u32(row.try_get("retry_base")?),
        next_attempt_at: opt_i64(row, "next_attempt_at")?,
        outputs,
        error: row.try_get("error")?,
        approval_message: row.try_get("approval_message")?,
        cached_from: match (
            row.try_get::<Option<String>, _>("cached_from_run")?,
            row.try_get::<Option<String>, _>("cached_from_task")?,
        ) {
            (Some(run), Some(task)) => Some(CacheSource {
                run: RunId::from_string(run),
                task: TaskKey::from_string(task),
            }),
            _ => None,
        },
        started_at: opt_i64(row, "started_at")?,
        finished_at: opt_i64(row, "finished_at")?,
    })
}

fn attempt_record(row: &AnyRow) -> Result<AttemptRecord> {
    let user = opt_i64(row, "cpu_user_ms")?;
    let rusage = user.map(|cpu_user_ms| -> Result<Rusage> {
        Ok(Rusage {
            cpu_user_ms,
            cpu_sys_ms: opt_i64(row, "cpu_sys_ms")?.unwrap_or(0),
            max_rss_kb: opt_i64(row, "max_rss_kb")?.unwrap_or(0),
        })
    });
    Ok(AttemptRecord {
        key: TaskKey::from_string(row.try_get::<String, _>("task_key")?),
        attempt: to_u32(row.try_get("attempt")?),
        state: state(row, "state", AttemptState::from_name)?,
        started_at: row.try_get("started_at")?,
        finished_at: opt_i64(row, "finished_at")?,
        exit_code: opt_i64(row, "exit_code")?.and_then(|c| i32::try_from(c).ok()),
        signal: opt_i64(row, "signal")?.and_then(|c| i32::try_from(c).ok()),
        rusage: rusage.transpose()?,
        log_path: row.try_get("log_path")?,
        error: row.try_get("error")?,
        pid: opt_i64(row, "pid")?.and_then(|p| u32::try_from(p).ok()),
        owner: row.try_get("owner")?,
        process: attempt_process(row)?,
    })
}

fn attempt_process(row: &AnyRow) -> Result<Option<AttemptProcess>> {
    let (Some(pgid), Some(start_time), Some(boot_id), Some(host)) = (
        opt_i64(row, "pid")?.and_then(|p| i32::try_from(p).ok()),
        opt_i64(row, "proc_start")?.and_then(|t| u64::try_from(t).ok()),
        row.try_get::<Option<String>, _>("boot_id")?,
        row.try_get::<Option<String>, _>("host")?,
    ) else {
        return Ok(None);
    };
    Ok(Some(AttemptProcess {
        pgid,
        start_time,
        boot_id,
        host,
    }))
}

fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// Rows per multi-row INSERT of tasks (6 parameters each).
const TASK_ROWS_PER_INSERT: usize = 200;

async fn insert_tasks(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &RunId,
    tasks: &[NewTask],
) -> Result<()> {
    let rows: Vec<(&RunId, &NewTask)> = tasks.iter().map(|t| (run, t)).collect();
    insert_task_rows(tx, &rows).await
}

/// Inserts the tasks of any number of runs, in multi-row statements.
async fn insert_task_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[(&RunId, &NewTask)],
) -> Result<()> {
    for chunk in rows.chunks(TASK_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO tasks (run_id, task_key, task_id, position, item, state) VALUES {}",
            placeholders(chunk.len(), 6, 1)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (run, t) in chunk {
            q = q
                .bind(run.as_str())
                .bind(t.key.as_str().to_owned())
                .bind(t.task_id.clone())
                .bind(t.position)
                .bind(t.item.as_ref().map(json_text))
                .bind(t.state.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_definition(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    d: &DefinitionRecord,
    at: Millis,
) -> Result<()> {
    let sql = match backend {
        Backend::Sqlite => {
            "INSERT OR IGNORE INTO definitions (hash, namespace, name, source, path, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        }
        Backend::Postgres => {
            "INSERT INTO definitions (hash, namespace, name, source, path, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING"
        }
    };
    sqlx::query(sql)
        .bind(&d.hash)
        .bind(&d.namespace)
        .bind(&d.name)
        .bind(&d.source)
        .bind(d.path.as_deref())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// `($1, $2, $3), ($4, $5, $6)` for `rows` rows of `columns` parameters, numbered from
/// `first`.
fn placeholders(rows: usize, columns: usize, first: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (0..columns)
                .map(|c| format!("${}", first + r * columns + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An event to append at the end of a transaction.
struct PendingEvent {
    at: Millis,
    kind: &'static str,
    key: Option<TaskKey>,
    attempt: Option<u32>,
    data: String,
}

impl PendingEvent {
    fn new(
        at: Millis,
        kind: &'static str,
        key: Option<&TaskKey>,
        attempt: Option<u32>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            at,
            kind,
            key: key.cloned(),
            attempt,
            data: data.to_string(),
        }
    }
}

/// Rows per multi-row INSERT, well below SQLite's and PostgreSQL's parameter limits.
const EVENT_ROWS_PER_INSERT: usize = 200;

async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &RunId,
    events: &[PendingEvent],
) -> Result<()> {
    let rows: Vec<(&RunId, &PendingEvent)> = events.iter().map(|e| (run, e)).collect();
    insert_event_rows(tx, &rows).await
}

/// Appends events of any number of runs, in multi-row statements.
async fn insert_event_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[(&RunId, &PendingEvent)],
) -> Result<()> {
    for chunk in rows.chunks(EVENT_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO events (run_id, at, kind, task_key, attempt, data) VALUES {}",
            placeholders(chunk.len(), 6, 1)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (run, e) in chunk {
            q = q
                .bind(run.as_str())
                .bind(e.at)
                .bind(e.kind)
                .bind(e.key.as_ref().map(|k| k.as_str().to_owned()))
                .bind(e.attempt.map(i64::from))
                .bind(e.data.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Everything a batch changes about one task, written with one UPDATE.
#[derive(Default)]
struct TaskUpdate {
    state: Option<TaskState>,
    next_attempt_at: Option<Millis>,
    outputs: Option<serde_json::Map<String, serde_json::Value>>,
    error: Option<String>,
    started_at: Option<Millis>,
    finished_at: Option<Millis>,
    attempts: Option<u32>,
    interruptions: i64,
}

/// One attempt row to start or finish.
struct AttemptRow {
    key: TaskKey,
    attempt: u32,
    state: AttemptState,
    started_at: Millis,
    log_path: String,
    owner: Option<String>,
    finish: Option<AttemptFinish>,
}

struct AttemptFinish {
    at: Millis,
    exit_code: Option<i32>,
    signal: Option<i32>,
    rusage: Option<Rusage>,
    error: Option<String>,
}

/// Rows per attempt upsert (14 parameters each).
const ATTEMPT_ROWS_PER_STATEMENT: usize = 50;

/// Starts and finishes attempts in one statement: new attempts are inserted; a finished one
/// (always inserted by an earlier commit, when it started) takes the conflict branch, which
/// sets only the fields a finish changes, so its placeholder log path and owner are never
/// stored.
async fn write_attempts(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &RunId,
    rows: &[AttemptRow],
) -> Result<()> {
    for chunk in rows.chunks(ATTEMPT_ROWS_PER_STATEMENT) {
        let mut sql = format!(
            "INSERT INTO attempts (run_id, task_key, attempt, state, started_at, log_path, owner, \
             finished_at, exit_code, signal, cpu_user_ms, cpu_sys_ms, max_rss_kb, error) VALUES {}",
            placeholders(chunk.len(), 14, 1)
        );
        sql.push_str(
            " ON CONFLICT (run_id, task_key, attempt) DO UPDATE SET state = excluded.state, \
             finished_at = excluded.finished_at, exit_code = excluded.exit_code, \
             signal = excluded.signal, cpu_user_ms = excluded.cpu_user_ms, \
             cpu_sys_ms = excluded.cpu_sys_ms, max_rss_kb = excluded.max_rss_kb, \
             error = excluded.error",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            let f = r.finish.as_ref();
            let usage = f.and_then(|f| f.rusage);
            q = q
                .bind(run.as_str())
                .bind(r.key.as_str().to_owned())
                .bind(i64::from(r.attempt))
                .bind(r.state.as_str())
                .bind(r.started_at)
                .bind(r.log_path.clone())
                .bind(r.owner.clone())
                .bind(f.map(|f| f.at))
                .bind(f.and_then(|f| f.exit_code).map(i64::from))
                .bind(f.and_then(|f| f.signal).map(i64::from))
                .bind(usage.map(|u| u.cpu_user_ms))
                .bind(usage.map(|u| u.cpu_sys_ms))
                .bind(usage.map(|u| u.max_rss_kb))
                .bind(f.and_then(|f| f.error.clone()));
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Keys per task UPDATE (10 parameters each).
const TASK_UPDATES_PER_STATEMENT: usize = 50;

/// Applies every task's update in one statement per chunk: each column takes its new value
/// from a `CASE` on the task key.
async fn write_tasks(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &RunId,
    updates: &[(TaskKey, TaskUpdate)],
) -> Result<()> {
    for chunk in updates.chunks(TASK_UPDATES_PER_STATEMENT) {
        // Parameter numbers for key `i`: 2 + 10 * i + (0..10); `$1` is the run id.
        let p = |i: usize, field: usize| format!("${}", 2 + 10 * i + field);
        let column = |name: &str, expr: &dyn Fn(usize) -> String| -> String {
            let mut out = format!("{name} = CASE task_key");
            for i in 0..chunk.len() {
                out.push_str(&format!(" WHEN {} THEN {}", p(i, 0), expr(i)));
            }
            out.push_str(&format!(" ELSE {name} END"));
            out
        };
        // Fields: 0 key, 1 state, 2 touches state, 3 next_attempt_at, 4 outputs, 5 error,
        // 6 started_at, 7 finished_at, 8 attempts, 9 interruptions.
        let sets = [
            column("state", &|i| format!("COALESCE({}, state)", p(i, 1))),
            column("next_attempt_at", &|i| {
                format!(
                    "CASE WHEN {} = 1 THEN {} ELSE next_attempt_at END",
                    p(i, 2),
                    p(i, 3)
                )
            }),
            column("outputs", &|i| format!("COALESCE({}, outputs)", p(i, 4))),
            column("error", &|i| {
                format!("CASE WHEN {} = 1 THEN {} ELSE error END", p(i, 2), p(i, 5))
            }),
            column("started_at", &|i| {
                format!("COALESCE(started_at, {})", p(i, 6))
            }),
            column("finished_at", &|i| {
                format!(
                    "CASE WHEN {} = 1 THEN {} ELSE finished_at END",
                    p(i, 2),
                    p(i, 7)
                )
            }),
            column("attempts", &|i| format!("COALESCE({}, attempts)", p(i, 8))),
            column("interruptions", &|i| format!("interruptions + {}", p(i, 9))),
        ];
        let keys: Vec<String> = (0..chunk.len()).map(|i| p(i, 0)).collect();
        let sql = format!(
            "UPDATE tasks SET {} WHERE run_id = $1 AND task_key IN ({})",
            sets.join(", "),
            keys.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(run.as_str());
        for (key, u) in chunk {
            q = q
                .bind(key.as_str().to_owned())
                .bind(u.state.map(TaskState::as_str))
                .bind(i64::from(u.state.is_some()))
                .bind(u.next_attempt_at)
                .bind(u.outputs.as_ref().map(json_text))
                .bind(u.error.clone())
                .bind(u.started_at)
                .bind(u.finished_at)
                .bind(u.attempts.map(i64::from))
                .bind(u.interruptions);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A cache entry's identity within its task: keys may be longer than an index entry can be.
fn key_hash(cache_key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(cache_key.as_bytes()))
}

/// Rows per multi-row INSERT of runs (19 parameters each).
const RUN_ROWS_PER_INSERT: usize = 100;

/// Inserts runs (not their tasks), each admitted at the given time or, with `None` and a
/// group, waiting for admission.
async fn insert_run_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[(&NewRun, Option<Millis>)],
) -> Result<()> {
    for chunk in rows.chunks(RUN_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO runs (id, namespace, pipeline, version, state, params, trigger_kind, \
             logical_date, base_dir, idempotency_key, created_at, admission_group, \
             admission_limit, admitted_at, backfill_id, no_cache, parent_run_id, \
             parent_task_key, parent_attempt) VALUES {}",
            placeholders(chunk.len(), 19, 1)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (run, admitted_at) in chunk {
            let d = &run.definition;
            q = q
                .bind(run.id.as_str().to_owned())
                .bind(d.namespace.clone())
                .bind(d.name.clone())
                .bind(d.hash.clone())
                .bind(RunState::Queued.as_str())
                .bind(run.params.to_string())
                .bind(run.trigger.clone())
                .bind(run.logical_date.clone())
                .bind(run.base_dir.clone())
                .bind(run.idempotency_key.clone())
                .bind(run.created_at)
                .bind(run.admission.as_ref().map(|a| a.group.clone()))
                .bind(run.admission.as_ref().map(|a| i64::from(a.limit)))
                .bind(*admitted_at)
                .bind(run.backfill_id.as_ref().map(|b| b.as_str().to_owned()))
                .bind(i64::from(run.no_cache))
                .bind(run.parent.as_ref().map(|p| p.run.as_str().to_owned()))
                .bind(run.parent.as_ref().map(|p| p.task.as_str().to_owned()))
                .bind(run.parent.as_ref().map(|p| i64::from(p.attempt)));
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

fn run_created_event(run: &NewRun) -> PendingEvent {
    let d = &run.definition;
    let data = serde_json::json!({
        "pipeline": format!("{}/{}", d.namespace, d.name),
        "version": d.hash,
        "params": run.params,
        "trigger": run.trigger,
    });
    PendingEvent::new(run.created_at, "run_created", None, None, data)
}

/// An unfinished run of an admission group, as admission sees it.
struct Member {
    id: RunId,
    /// Admitted (or already running): it holds one of the group's slots.
    active: bool,
    /// Queued, not admitted, not asked to cancel: in line for a slot.
    waiting: bool,
}

/// Serializes admission decisions on one group across servers sharing a PostgreSQL database
/// (held until the transaction ends). SQLite needs nothing: `BEGIN IMMEDIATE` already makes
/// every writing transaction exclusive.
async fn lock_group(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    group: &str,
) -> Result<()> {
    if backend == Backend::Postgres {
        // Selected through a subquery: the lock function returns `void`, which sqlx's `Any`
        // driver cannot decode.
        sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtext($1))) AS l")
            .bind(group)
            .fetch_one(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn group_members(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    group: &str,
) -> Result<Vec<Member>> {
    let rows = sqlx::query(
        "SELECT id, state, admitted_at, cancel_requested FROM runs \
         WHERE admission_group = $1 AND state IN ('queued', 'running') ORDER BY id",
    )
    .bind(group)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| {
            let running = row.try_get::<String, _>("state")? == RunState::Running.as_str();
            let active = running || opt_i64(row, "admitted_at")?.is_some();
            let cancelling = row.try_get::<i64, _>("cancel_requested")? != 0;
            Ok(Member {
                id: RunId::from_string(row.try_get::<String, _>("id")?),
                active,
                waiting: !active && !cancelling,
            })
        })
        .collect()
}

/// Ends a transaction by its outcome. Returning early (an error, or an answer found before
/// any write) must not leave it open: a dropped transaction is rolled back only when its
/// connection is next used, and the writer connection can sit idle holding locks meanwhile
/// (on PostgreSQL, the group lock other servers wait for).
async fn end_tx<T>(tx: sqlx::Transaction<'_, sqlx::Any>, result: Result<T>) -> Result<T> {
    match result {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Whether `change` ends its run.
fn ends_run(change: &Change) -> bool {
    matches!(change, Change::Run { state, .. } if state.is_final())
}

/// Task states a cancellation leaves alone.
const FINAL_TASK_STATES: &str =
    "('succeeded', 'failed', 'upstream_failed', 'skipped', 'cancelled')";

impl SqlStore {
    /// `create_run` inside its transaction (which the caller commits or rolls back); adds the
    /// runs it asked to cancel to `cancelled`.
    async fn create_run_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run: &NewRun,
        cancelled: &mut Vec<RunId>,
    ) -> Result<RunId> {
        if let Some(key) = &run.idempotency_key {
            let existing =
                sqlx::query("SELECT id, namespace, pipeline FROM runs WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_optional(&mut **tx)
                    .await?;
            if let Some(row) = existing {
                let same = row.try_get::<String, _>("namespace")? == run.definition.namespace
                    && row.try_get::<String, _>("pipeline")? == run.definition.name;
                if !same {
                    return Err(Error::IdempotencyConflict(key.clone()));
                }
                return Ok(RunId::from_string(row.try_get::<String, _>("id")?));
            }
        }
        let admitted_at = match &run.admission {
            None => None,
            Some(a) => {
                lock_group(tx, self.backend, &a.group).await?;
                let members = group_members(tx, &a.group).await?;
                let active: Vec<&RunId> =
                    members.iter().filter(|m| m.active).map(|m| &m.id).collect();
                let waiting: Vec<&RunId> = members
                    .iter()
                    .filter(|m| m.waiting)
                    .map(|m| &m.id)
                    .collect();
                let limit = usize::try_from(a.limit.max(1)).unwrap_or(usize::MAX);
                if active.len() < limit && waiting.is_empty() {
                    Some(run.created_at)
                } else {
                    match a.overlap {
                        Overlap::Skip => {
                            return Err(Error::Skipped {
                                group: a.group.clone(),
                                active: active.into_iter().chain(waiting).cloned().collect(),
                            });
                        }
                        Overlap::Queue => None,
                        Overlap::CancelPrevious => {
                            // Everyone in line, and the oldest active runs until one slot is
                            // free for this run once they have stopped.
                            let excess = (active.len() + 1).saturating_sub(limit);
                            for id in waiting.into_iter().chain(active.into_iter().take(excess)) {
                                sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1")
                                    .bind(id.as_str())
                                    .execute(&mut **tx)
                                    .await?;
                                cancelled.push(id.clone());
                            }
                            None
                        }
                    }
                }
            }
        };
        insert_definition(tx, self.backend, &run.definition, run.created_at).await?;
        insert_run_rows(tx, &[(run, admitted_at)]).await?;
        insert_tasks(tx, &run.id, &run.tasks).await?;
        insert_events(tx, &run.id, &[run_created_event(run)]).await?;
        self.notify(tx, Kind::Request, &cancelled.iter().collect::<Vec<_>>())
            .await?;
        self.notify(tx, Kind::State, &[&run.id]).await?;
        Ok(run.id.clone())
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn create_run(&self, run: &NewRun) -> Result<RunId> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let mut cancelled = Vec::new();
        let result = self.create_run_in(&mut tx, run, &mut cancelled).await;
        let id = end_tx(tx, result).await?;
        self.feed.committed(Kind::Request, &cancelled);
        self.feed.committed(Kind::State, [&id]);
        Ok(id)
    }

    async fn admit(&self, run: &RunId, now: Millis) -> Result<Admitted> {
        let read =
            "SELECT admission_group, admission_limit, admitted_at, state FROM runs WHERE id = $1";
        // Most runs have no group: answered with a read, without taking the writer.
        let row = sqlx::query(read)
            .bind(run.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::RunNotFound(run.to_string()))?;
        let group: Option<String> = row.try_get("admission_group")?;
        let Some(group) = group else {
            return Ok(Admitted::Before);
        };
        if opt_i64(&row, "admitted_at")?.is_some() {
            return Ok(Admitted::Before);
        }
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let result = async {
            lock_group(&mut tx, self.backend, &group).await?;
            let row = sqlx::query(read)
                .bind(run.as_str())
                .fetch_one(&mut *tx)
                .await?;
            if opt_i64(&row, "admitted_at")?.is_some() {
                return Ok(Admitted::Before);
            }
            if state(&row, "state", RunState::from_name)?.is_final() {
                return Ok(Admitted::No);
            }
            let limit = opt_i64(&row, "admission_limit")?.unwrap_or(1).max(1);
            // Aggregates rather than the member list: a backfill's group holds thousands.
            let active: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM runs WHERE admission_group = $1 \
                 AND (state = 'running' OR (state = 'queued' AND admitted_at IS NOT NULL))",
            )
            .bind(&group)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            if active >= limit {
                return Ok(Admitted::No);
            }
            let first_in_line: Option<String> = sqlx::query(
                "SELECT MIN(id) AS id FROM runs WHERE admission_group = $1 AND state = 'queued' \
                 AND admitted_at IS NULL AND cancel_requested = 0",
            )
            .bind(&group)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?;
            if first_in_line.as_deref() != Some(run.as_str()) {
                return Ok(Admitted::No);
            }
            sqlx::query("UPDATE runs SET admitted_at = $1 WHERE id = $2 AND admitted_at IS NULL")
                .bind(now)
                .bind(run.as_str())
                .execute(&mut *tx)
                .await?;
            self.notify(&mut tx, Kind::State, &[run]).await?;
            Ok(Admitted::Now)
        }
        .await;
        let admitted = end_tx(tx, result).await?;
        if admitted == Admitted::Now {
            self.feed.committed(Kind::State, [run]);
        }
        Ok(admitted)
    }

    async fn group_runs(&self, group: &str) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE admission_group = $1 AND state IN ('queued', 'running') \
             ORDER BY id",
        )
        .bind(group)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_record).collect()
    }

    async fn cancel_waiting(&self, group: &str, at: Millis) -> Result<Vec<RunId>> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let result = async {
            lock_group(&mut tx, self.backend, group).await?;
            // Not admitted and not leased: no dispatcher has it, no task of it ever started.
            let rows = sqlx::query(
                "SELECT id FROM runs WHERE admission_group = $1 AND state = 'queued' \
             AND admitted_at IS NULL AND lease_owner IS NULL AND cancel_requested = 0 ORDER BY id",
            )
            .bind(group)
            .fetch_all(&mut *tx)
            .await?;
            let ids = rows
                .iter()
                .map(|r| Ok(RunId::from_string(r.try_get::<String, _>("id")?)))
                .collect::<Result<Vec<_>>>()?;
            for chunk in ids.chunks(RUN_ROWS_PER_INSERT) {
                let list = placeholders(chunk.len(), 1, 2).replace(['(', ')'], "");
                let sql = format!(
                    "UPDATE runs SET state = 'cancelled', finished_at = $1, cancel_requested = 1 \
                 WHERE id IN ({list})"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at);
                for id in chunk {
                    q = q.bind(id.as_str().to_owned());
                }
                q.execute(&mut *tx).await?;
                let sql = format!(
                    "UPDATE tasks SET state = 'cancelled', finished_at = $1 \
                 WHERE run_id IN ({list}) AND state NOT IN {FINAL_TASK_STATES}"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at);
                for id in chunk {
                    q = q.bind(id.as_str().to_owned());
                }
                q.execute(&mut *tx).await?;
            }
            let data = serde_json::json!({ "state": RunState::Cancelled, "error": null });
            let events: Vec<PendingEvent> = ids
                .iter()
                .map(|_| PendingEvent::new(at, "run_state", None, None, data.clone()))
                .collect();
            let rows: Vec<(&RunId, &PendingEvent)> = ids.iter().zip(&events).collect();
            insert_event_rows(&mut tx, &rows).await?;
            // Requests as well: asked to cancel, by whoever reads that.
            self.notify(&mut tx, Kind::Request, &ids.iter().collect::<Vec<_>>())
                .await?;
            Ok(ids)
        }
        .await;
        let ids = end_tx(tx, result).await?;
        self.feed.committed(Kind::Request, &ids);
        Ok(ids)
    }

    async fn create_backfill(
        &self,
        backfill: &BackfillRecord,
        runs: &[NewRun],
    ) -> Result<BackfillId> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let result = async {
            if let Some(key) = &backfill.idempotency_key {
                let existing = sqlx::query("SELECT id FROM backfills WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(row) = existing {
                    return Ok(BackfillId::from_string(row.try_get::<String, _>("id")?));
                }
            }
            let mut definitions: Vec<&DefinitionRecord> = Vec::new();
            for run in runs {
                if !definitions.iter().any(|d| d.hash == run.definition.hash) {
                    definitions.push(&run.definition);
                }
            }
            for d in definitions {
                insert_definition(&mut tx, self.backend, d, backfill.created_at).await?;
            }
            sqlx::query(
                "INSERT INTO backfills (id, namespace, pipeline, version, schedule, range_start, \
             range_end, parallelism, params, runs, idempotency_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(backfill.id.as_str())
            .bind(&backfill.namespace)
            .bind(&backfill.pipeline)
            .bind(&backfill.version)
            .bind(i64::from(backfill.schedule))
            .bind(&backfill.start)
            .bind(&backfill.end)
            .bind(i64::from(backfill.parallelism))
            .bind(backfill.params.to_string())
            .bind(i64::try_from(runs.len()).unwrap_or(i64::MAX))
            .bind(backfill.idempotency_key.as_deref())
            .bind(backfill.created_at)
            .execute(&mut *tx)
            .await?;
            // The group is new: its first runs (up to each one's limit) are admitted at once.
            let rows: Vec<(&NewRun, Option<Millis>)> = runs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let limit = r.admission.as_ref().map_or(usize::MAX, |a| {
                        usize::try_from(a.limit.max(1)).unwrap_or(usize::MAX)
                    });
                    (r, (i < limit).then_some(r.created_at))
                })
                .collect();
            insert_run_rows(&mut tx, &rows).await?;
            let tasks: Vec<(&RunId, &NewTask)> = runs
                .iter()
                .flat_map(|r| r.tasks.iter().map(move |t| (&r.id, t)))
                .collect();
            insert_task_rows(&mut tx, &tasks).await?;
            let events: Vec<PendingEvent> = runs.iter().map(run_created_event).collect();
            let rows: Vec<(&RunId, &PendingEvent)> =
                runs.iter().map(|r| &r.id).zip(&events).collect();
            insert_event_rows(&mut tx, &rows).await?;
            let ids: Vec<&RunId> = runs.iter().map(|r| &r.id).collect();
            self.notify(&mut tx, Kind::State, &ids).await?;
            Ok(backfill.id.clone())
        }
        .await;
        let id = end_tx(tx, result).await?;
        // An existing backfill (same idempotency key) created nothing now: announcing its runs
        // costs a needless read at most.
        self.feed.committed(Kind::State, runs.iter().map(|r| &r.id));
        Ok(id)
    }

    async fn backfill(&self, id: &BackfillId) -> Result<Option<BackfillRecord>> {
        sqlx::query("SELECT * FROM backfills WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(backfill_record)
            .transpose()
    }

    async fn backfills(&self, filter: &BackfillFilter) -> Result<Vec<BackfillRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM backfills WHERE ($1 IS NULL OR namespace = $1) \
             AND ($2 IS NULL OR pipeline = $2) AND ($3 IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(filter.namespace.as_deref())
        .bind(filter.pipeline.as_deref())
        .bind(filter.before.as_deref())
        .bind(i64::from(if filter.limit == 0 { 20 } else { filter.limit }))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(backfill_record).collect()
    }

    async fn backfill_counts(&self, id: &BackfillId) -> Result<Vec<(RunState, u64)>> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM runs WHERE backfill_id = $1 GROUP BY state \
             ORDER BY state",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    state(row, "state", RunState::from_name)?,
                    u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0),
                ))
            })
            .collect()
    }

    async fn apply(&self, run: &RunId, fence: Fence<'_>, changes: &[Change]) -> Result<()> {
        // Fewest statements per commit: one UPDATE per task however many of its changes the
        // batch holds, and all events in multi-row INSERTs. Each statement is a round trip to
        // the database, and the dispatcher commits once per step of the run.
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        // First, so a stale owner's batch is refused before any of it is written (dropping
        // `tx` rolls back).
        if let Fence::Lease { lease, commit } = fence
            && lease::fence_commit(&mut tx, run, lease, commit).await? == lease::Commit::Landed
        {
            let _ = tx.rollback().await;
            // What the lost answer skipped: telling this process's observers.
            self.feed.committed(Kind::State, [run]);
            if changes.iter().any(ends_run) {
                self.claimed.forget(run);
            }
            return Ok(());
        }
        let mut events: Vec<PendingEvent> = Vec::with_capacity(changes.len());
        let mut attempts: Vec<AttemptRow> = Vec::new();
        let mut spawned: Vec<(&TaskKey, u32, &AttemptProcess)> = Vec::new();
        let mut tasks: Vec<(TaskKey, TaskUpdate)> = Vec::new();
        let mut task_slot: std::collections::HashMap<TaskKey, usize> =
            std::collections::HashMap::new();
        // Per task, whether the batch leaves it without a pool slot: its attempt finished or
        // it left `running`, and nothing later in the batch started it again.
        let mut releases: std::collections::HashMap<TaskKey, bool> =
            std::collections::HashMap::new();
        let mut release = |key: &TaskKey, free: bool| {
            releases.insert(key.clone(), free);
        };
        let mut run_ended = false;
        let mut update = |key: &TaskKey, tasks: &mut Vec<(TaskKey, TaskUpdate)>| -> usize {
            *task_slot.entry(key.clone()).or_insert_with(|| {
                tasks.push((key.clone(), TaskUpdate::default()));
                tasks.len() - 1
            })
        };
        for change in changes {
            match change {
                Change::Run { state, at, error } => {
                    run_ended |= ends_run(change);
                    let started = (*state == RunState::Running).then_some(*at);
                    let finished = state.is_final().then_some(*at);
                    sqlx::query(
                        "UPDATE runs SET state = $1, error = $2, \
                         started_at = COALESCE(started_at, $3), finished_at = $4, \
                         cancel_requested = CASE WHEN $1 = 'queued' THEN 0 ELSE cancel_requested END, \
                         admitted_at = CASE WHEN $1 = 'queued' THEN NULL ELSE admitted_at END \
                         WHERE id = $5",
                    )
                    .bind(state.as_str())
                    .bind(error.as_deref())
                    .bind(started)
                    .bind(finished)
                    .bind(run.as_str())
                    .execute(&mut *tx)
                    .await?;
                    let data = serde_json::json!({ "state": state, "error": error });
                    events.push(PendingEvent::new(*at, "run_state", None, None, data));
                }
                Change::AddTasks(new) => insert_tasks(&mut tx, run, new).await?,
                Change::Task {
                    key,
                    state,
                    at,
                    next_attempt_at,
                    outputs,
                    error,
                } => {
                    release(key, *state != TaskState::Running);
                    let slot = update(key, &mut tasks);
                    let u = &mut tasks[slot].1;
                    u.state = Some(*state);
                    u.next_attempt_at = *next_attempt_at;
                    if outputs.is_some() {
                        u.outputs.clone_from(outputs);
                    }
                    u.error.clone_from(error);
                    if *state == TaskState::Running && u.started_at.is_none() {
                        u.started_at = Some(*at);
                    }
                    u.finished_at = state.is_final().then_some(*at);
                    let data =
                        serde_json::json!({ "state": state, "error": error, "outputs": outputs });
                    events.push(PendingEvent::new(*at, "task_state", Some(key), None, data));
                }
                Change::Reopen { key, state, at } => {
                    sqlx::query(
                        "UPDATE tasks SET state = $1, error = NULL, finished_at = NULL, \
                         next_attempt_at = NULL, retry_base = attempts, approval_message = NULL, \
                         cached_from_run = NULL, cached_from_task = NULL \
                         WHERE run_id = $2 AND task_key = $3",
                    )
                    .bind(state.as_str())
                    .bind(run.as_str())
                    .bind(key.as_str())
                    .execute(&mut *tx)
                    .await?;
                    // A gate asks again.
                    sqlx::query("DELETE FROM approvals WHERE run_id = $1 AND task_key = $2")
                        .bind(run.as_str())
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?;
                    let data = serde_json::json!({ "state": state });
                    events.push(PendingEvent::new(
                        *at,
                        "task_reopened",
                        Some(key),
                        None,
                        data,
                    ));
                }
                Change::AttemptStarted {
                    key,
                    attempt,
                    at,
                    log_path,
                    owner,
                    after_interruption,
                } => {
                    release(key, false);
                    attempts.push(AttemptRow {
                        key: key.clone(),
                        attempt: *attempt,
                        state: AttemptState::Running,
                        started_at: *at,
                        log_path: log_path.clone(),
                        owner: Some(owner.clone()),
                        finish: None,
                    });
                    let slot = update(key, &mut tasks);
                    tasks[slot].1.attempts = Some(*attempt);
                    let data = serde_json::json!({
                        "log": log_path, "owner": owner, "after_interruption": after_interruption,
                    });
                    events.push(PendingEvent::new(
                        *at,
                        "attempt_started",
                        Some(key),
                        Some(*attempt),
                        data,
                    ));
                }
                Change::AttemptFinished {
                    key,
                    attempt,
                    state,
                    started_at,
                    at,
                    exit_code,
                    signal,
                    rusage,
                    error,
                } => {
                    release(key, true);
                    // One definition of the count: attempts recorded interrupted.
                    if *state == AttemptState::Interrupted {
                        let slot = update(key, &mut tasks);
                        tasks[slot].1.interruptions += 1;
                    }
                    attempts.push(AttemptRow {
                        key: key.clone(),
                        attempt: *attempt,
                        state: *state,
                        started_at: *started_at,
                        log_path: String::new(),
                        owner: None,
                        finish: Some(AttemptFinish {
                            at: *at,
                            exit_code: *exit_code,
                            signal: *signal,
                            rusage: *rusage,
                            error: error.clone(),
                        }),
                    });
                    let data = serde_json::json!({
                        "state": state, "started_at": started_at, "exit_code": exit_code,
                        "signal": signal, "rusage": rusage, "error": error,
                    });
                    events.push(PendingEvent::new(
                        *at,
                        "attempt_finished",
                        Some(key),
                        Some(*attempt),
                        data,
                    ));
                }
                Change::AttemptSpawned {
                    key,
                    attempt,
                    process,
                    at,
                } => {
                    spawned.push((key, *attempt, process));
                    let data = serde_json::json!({
                        "pgid": process.pgid, "start_time": process.start_time,
                        "boot_id": process.boot_id, "host": process.host,
                    });
                    events.push(PendingEvent::new(
                        *at,
                        "attempt_spawned",
                        Some(key),
                        Some(*attempt),
                        data,
                    ));
                }
                // Gates are few: one statement each, outside the batched task updates.
                Change::Asked { key, message, at } => {
                    sqlx::query(
                        "UPDATE tasks SET approval_message = $1 \
                         WHERE run_id = $2 AND task_key = $3",
                    )
                    .bind(message.as_str())
                    .bind(run.as_str())
                    .bind(key.as_str())
                    .execute(&mut *tx)
                    .await?;
                    let data = serde_json::json!({ "message": message });
                    events.push(PendingEvent::new(
                        *at,
                        "approval_asked",
                        Some(key),
                        None,
                        data,
                    ));
                }
                Change::CacheChecked {
                    key,
                    cache_key,
                    hit,
                    at,
                } => {
                    if let Some(hit) = hit {
                        sqlx::query(
                            "UPDATE tasks SET cached_from_run = $1, cached_from_task = $2 \
                             WHERE run_id = $3 AND task_key = $4",
                        )
                        .bind(hit.run.as_str())
                        .bind(hit.task.as_str())
                        .bind(run.as_str())
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    let (kind, data) = match hit {
                        Some(hit) => (
                            "cache_hit",
                            serde_json::json!({
                                "cache_key": cache_key, "run": hit.run, "task": hit.task,
                            }),
                        ),
                        None => ("cache_miss", serde_json::json!({ "cache_key": cache_key })),
                    };
                    events.push(PendingEvent::new(*at, kind, Some(key), None, data));
                }
                // The task's identity comes from its run and record, already in the database.
                Change::CacheSaved {
                    key,
                    cache_key,
                    outputs,
                    at,
                } => {
                    sqlx::query(
                        "INSERT INTO task_cache (namespace, pipeline, task_id, key_hash, cache_key, \
                         run_id, task_key, outputs, created_at) \
                         SELECT r.namespace, r.pipeline, t.task_id, $1, $2, r.id, t.task_key, $3, $4 \
                         FROM runs r JOIN tasks t ON t.run_id = r.id \
                         WHERE r.id = $5 AND t.task_key = $6 \
                         ON CONFLICT (namespace, pipeline, task_id, key_hash) DO UPDATE SET \
                         cache_key = excluded.cache_key, run_id = excluded.run_id, \
                         task_key = excluded.task_key, outputs = excluded.outputs, \
                         created_at = excluded.created_at",
                    )
                    .bind(key_hash(cache_key))
                    .bind(cache_key.as_str())
                    .bind(json_text(outputs))
                    .bind(*at)
                    .bind(run.as_str())
                    .bind(key.as_str())
                    .execute(&mut *tx)
                    .await?;
                    let data = serde_json::json!({ "cache_key": cache_key });
                    events.push(PendingEvent::new(*at, "cache_saved", Some(key), None, data));
                }
                // The decision's row is `decide`'s; the log says when it took effect.
                Change::Decided {
                    key,
                    approved,
                    by,
                    comment,
                    at,
                } => {
                    let data =
                        serde_json::json!({ "approved": approved, "by": by, "comment": comment });
                    events.push(PendingEvent::new(
                        *at,
                        "approval_decided",
                        Some(key),
                        None,
                        data,
                    ));
                }
            }
        }
        write_attempts(&mut tx, run, &attempts).await?;
        // After the upsert: a start and its spawn could share a commit.
        for (key, attempt, process) in spawned {
            sqlx::query(
                "UPDATE attempts SET pid = $1, proc_start = $2, boot_id = $3, host = $4 \
                 WHERE run_id = $5 AND task_key = $6 AND attempt = $7",
            )
            .bind(i64::from(process.pgid))
            .bind(i64::try_from(process.start_time).unwrap_or(i64::MAX))
            .bind(process.boot_id.clone())
            .bind(process.host.clone())
            .bind(run.as_str())
            .bind(key.as_str())
            .bind(i64::from(attempt))
            .execute(&mut *tx)
            .await?;
        }
        write_tasks(&mut tx, run, &tasks).await?;
        // Only the run's owner's claims count, and it made them through this handle: a run it
        // never claimed for costs no statement here.
        if self.claimed.has(run) {
            if run_ended {
                pools::release_run(&mut tx, run).await?;
            } else {
                let freed: Vec<TaskKey> = releases
                    .into_iter()
                    .filter_map(|(k, free)| free.then_some(k))
                    .collect();
                pools::release(&mut tx, run, &freed).await?;
            }
        }
        insert_events(&mut tx, run, &events).await?;
        self.notify(&mut tx, Kind::State, &[run]).await?;
        tx.commit().await?;
        self.feed.committed(Kind::State, [run]);
        if run_ended {
            self.claimed.forget(run);
        }
        if self.ack_lost() {
            return Err(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()).into());
        }
        Ok(())
    }

    async fn definition(&self, hash: &str) -> Result<Option<DefinitionRecord>> {
        let row = sqlx::query(
            "SELECT hash, namespace, name, source, path FROM definitions WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| -> Result<DefinitionRecord> {
            Ok(DefinitionRecord {
                hash: row.try_get("hash")?,
                namespace: row.try_get("namespace")?,
                name: row.try_get("name")?,
                source: row.try_get("source")?,
                path: row.try_get("path")?,
            })
        })
        .transpose()
    }

    async fn put_definition(&self, definition: &DefinitionRecord, at: Millis) -> Result<()> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        insert_definition(&mut tx, self.backend, definition, at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn versions(&self, namespace: &str, name: &str) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(
            "SELECT hash, path, created_at FROM definitions WHERE namespace = $1 AND name = $2 \
             ORDER BY created_at DESC, hash",
        )
        .bind(namespace)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(VersionRecord {
                    hash: row.try_get("hash")?,
                    path: row.try_get("path")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        sqlx::query("SELECT * FROM runs WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(run_record)
            .transpose()
    }

    async fn resolve_run(&self, prefix: &str) -> Result<RunId> {
        let pattern = format!("{}%", prefix.replace(['%', '_'], ""));
        let rows = sqlx::query("SELECT id FROM runs WHERE id LIKE $1 ORDER BY id LIMIT 2")
            .bind(&pattern)
            .fetch_all(&self.pool)
            .await?;
        match rows.as_slice() {
            [] => Err(Error::RunNotFound(prefix.to_owned())),
            [one] => Ok(RunId::from_string(one.try_get::<String, _>("id")?)),
            _ => {
                let exact = rows
                    .iter()
                    .filter_map(|r| r.try_get::<String, _>("id").ok())
                    .find(|id| id == prefix);
                match exact {
                    Some(id) => Ok(RunId::from_string(id)),
                    None => {
                        let count: i64 =
                            sqlx::query("SELECT COUNT(*) AS n FROM runs WHERE id LIKE $1")
                                .bind(&pattern)
                                .fetch_one(&self.pool)
                                .await?
                                .try_get("n")?;
                        Err(Error::AmbiguousRun {
                            prefix: prefix.to_owned(),
                            count: usize::try_from(count).unwrap_or(usize::MAX),
                        })
                    }
                }
            }
        }
    }

    async fn child_runs(&self, parent: &RunId) -> Result<Vec<RunRecord>> {
        sqlx::query("SELECT * FROM runs WHERE parent_run_id = $1 ORDER BY id")
            .bind(parent.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(run_record)
            .collect()
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        // Following completions reads oldest finish first; every other listing newest first.
        let order = if filter.finished_after.is_some() {
            "finished_at, id"
        } else {
            "id DESC"
        };
        let (finished_at, finished_id) = filter
            .finished_after
            .as_ref()
            .map_or((None, None), |(at, id)| (Some(*at), Some(id.as_str())));
        let sql = format!(
            "SELECT * FROM runs WHERE ($1 IS NULL OR namespace = $1) AND ($2 IS NULL OR pipeline = $2) \
             AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR id < $4) \
             AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) \
             AND ($7 IS NULL OR finished_at > $7 OR (finished_at = $7 AND id > $8)) \
             ORDER BY {order} LIMIT $9"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.namespace.as_deref())
            .bind(filter.pipeline.as_deref())
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.before.as_deref())
            .bind(filter.created_after)
            .bind(filter.created_before)
            .bind(finished_at)
            .bind(finished_id)
            .bind(i64::from(if filter.limit == 0 { 20 } else { filter.limit }))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run_record).collect()
    }

    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetterRecord>> {
        // A fan-out's own row only sums up its instances, which are the dead letters; hooks
        // do not decide a run's outcome and run again whenever it ends.
        let (at, run, key) = filter.before.as_ref().map_or((None, None, None), |c| {
            (
                Some(c.finished_at),
                Some(c.run.as_str()),
                Some(c.key.as_str()),
            )
        });
        let sql = format!(
            "SELECT t.run_id, r.namespace, r.pipeline, r.state AS run_state, t.task_key, t.task_id, \
             t.attempts, t.error, t.finished_at, a.exit_code, a.signal, a.log_path \
             FROM tasks t JOIN runs r ON r.id = t.run_id \
             LEFT JOIN attempts a ON a.run_id = t.run_id AND a.task_key = t.task_key \
             AND a.attempt = t.attempts \
             WHERE {DEAD_LETTER} \
             AND ($1 IS NULL OR r.namespace = $1) AND ($2 IS NULL OR r.pipeline = $2) \
             AND ($3 IS NULL OR t.finished_at < $3 OR (t.finished_at = $3 AND \
             (t.run_id < $4 OR (t.run_id = $4 AND t.task_key < $5)))) \
             ORDER BY t.finished_at DESC, t.run_id DESC, t.task_key DESC LIMIT $6"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.namespace.as_deref())
            .bind(filter.pipeline.as_deref())
            .bind(at)
            .bind(run)
            .bind(key)
            .bind(i64::from(if filter.limit == 0 { 20 } else { filter.limit }))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetterRecord {
                    run: RunId::from_string(row.try_get::<String, _>("run_id")?),
                    namespace: row.try_get("namespace")?,
                    pipeline: row.try_get("pipeline")?,
                    run_state: state(row, "run_state", RunState::from_name)?,
                    key: TaskKey::from_string(row.try_get::<String, _>("task_key")?),
                    task_id: row.try_get("task_id")?,
                    attempts: to_u32(row.try_get("attempts")?),
                    error: row.try_get("error")?,
                    exit_code: opt_i64(row, "exit_code")?.and_then(|c| i32::try_from(c).ok()),
                    signal: opt_i64(row, "signal")?.and_then(|c| i32::try_from(c).ok()),
                    log_path: row.try_get("log_path")?,
                    finished_at: row.try_get("finished_at")?,
                })
            })
            .collect()
    }

    async fn latest_runs(&self, per_pipeline: u32) -> Result<Vec<RunBrief>> {
        // Run ids sort by creation, so the window's order is the newest first.
        let rows = sqlx::query(
            "SELECT id, namespace, pipeline, state, created_at, started_at, finished_at FROM \
             (SELECT id, namespace, pipeline, state, created_at, started_at, finished_at, \
             ROW_NUMBER() OVER (PARTITION BY namespace, pipeline ORDER BY id DESC) AS rn \
             FROM runs) latest WHERE rn <= $1 ORDER BY namespace, pipeline, id DESC",
        )
        .bind(i64::from(per_pipeline))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_brief).collect()
    }

    async fn finished_since(&self, since: Millis) -> Result<Vec<RunBrief>> {
        let rows = sqlx::query(
            "SELECT id, namespace, pipeline, state, created_at, started_at, finished_at \
             FROM runs WHERE finished_at >= $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_brief).collect()
    }

    async fn awaiting_approval(&self, limit: u32) -> Result<Vec<ApprovalWait>> {
        let rows = sqlx::query(
            "SELECT t.run_id, r.namespace, r.pipeline, t.task_key, t.task_id, \
             COALESCE(t.started_at, r.started_at, r.created_at) AS since, t.approval_message \
             FROM tasks t JOIN runs r ON r.id = t.run_id \
             WHERE t.state = 'waiting_approval' ORDER BY t.run_id, t.position LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ApprovalWait {
                    run: RunId::from_string(row.try_get::<String, _>("run_id")?),
                    namespace: row.try_get("namespace")?,
                    pipeline: row.try_get("pipeline")?,
                    key: TaskKey::from_string(row.try_get::<String, _>("task_key")?),
                    task_id: row.try_get("task_id")?,
                    since: opt_i64(row, "since")?,
                    message: row.try_get("approval_message")?,
                })
            })
            .collect()
    }

    async fn dead_letter_counts(&self) -> Result<Vec<PipelineCount>> {
        let sql = format!(
            "SELECT r.namespace, r.pipeline, COUNT(*) AS n \
             FROM tasks t JOIN runs r ON r.id = t.run_id WHERE {DEAD_LETTER} \
             GROUP BY r.namespace, r.pipeline ORDER BY r.namespace, r.pipeline"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PipelineCount {
                    namespace: row.try_get("namespace")?,
                    pipeline: row.try_get("pipeline")?,
                    count: u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn active_task_counts(&self) -> Result<Vec<TaskCount>> {
        // Driven by the runs_by_state index: only unfinished runs are read, however long the
        // history.
        let sql = format!(
            "SELECT r.namespace, r.pipeline, t.state, COUNT(*) AS n \
             FROM runs r JOIN tasks t ON t.run_id = r.id \
             WHERE r.state IN ('queued', 'running') \
             AND t.state IN ('queued', 'running', 'retrying', 'waiting_approval') \
             AND NOT {FAN_OUT_SUM} \
             GROUP BY r.namespace, r.pipeline, t.state ORDER BY r.namespace, r.pipeline, t.state"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TaskCount {
                    namespace: row.try_get("namespace")?,
                    pipeline: row.try_get("pipeline")?,
                    state: state(row, "state", TaskState::from_name)?,
                    count: u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn tasks(&self, run: &RunId) -> Result<Vec<TaskRecord>> {
        let rows = sqlx::query("SELECT * FROM tasks WHERE run_id = $1 ORDER BY position, task_key")
            .bind(run.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(task_record).collect()
    }

    async fn attempts(&self, run: &RunId) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM attempts WHERE run_id = $1 ORDER BY started_at, task_key, attempt",
        )
        .bind(run.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attempt_record).collect()
    }

    async fn events(&self, run: &RunId, after_seq: i64) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query("SELECT * FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq")
            .bind(run.as_str())
            .bind(after_seq)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(EventRecord {
                    seq: row.try_get("seq")?,
                    at: row.try_get("at")?,
                    kind: row.try_get("kind")?,
                    task_key: row
                        .try_get::<Option<String>, _>("task_key")?
                        .map(TaskKey::from_string),
                    attempt: opt_i64(row, "attempt")?.map(to_u32),
                    data: json_col(row, "data")?.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn acquire_lease(
        &self,
        run: &RunId,
        owner: &LeaseOwner,
        now: Millis,
        expires_at: Millis,
        steal_from: Option<&str>,
    ) -> Result<Option<Lease>> {
        self.acquire(run, owner, now, expires_at, steal_from).await
    }

    async fn renew_lease(&self, run: &RunId, lease: &Lease, expires_at: Millis) -> Result<()> {
        self.renew(run, lease, expires_at).await
    }

    async fn lease_holders(&self, now: Millis) -> Result<Vec<String>> {
        self.holders(now).await
    }

    async fn unowned_runs(&self, limit: u32) -> Result<Vec<RunId>> {
        self.unowned(limit).await
    }

    async fn claim_orphans(&self, claim: &OrphanClaim<'_>) -> Result<Vec<TakenRun>> {
        self.claim_orphaned(claim).await
    }

    async fn admissible_waiting(&self, limit: u32) -> Result<Vec<RunRecord>> {
        self.admissible(limit).await
    }

    async fn release_lease(&self, run: &RunId, lease: &Lease) -> Result<()> {
        self.release(run, lease).await
    }

    async fn last_tick(
        &self,
        namespace: &str,
        pipeline: &str,
        schedule: &str,
    ) -> Result<Option<Millis>> {
        let row = sqlx::query(
            "SELECT last_tick FROM schedule_ticks WHERE namespace = $1 AND pipeline = $2 AND schedule = $3",
        )
        .bind(namespace)
        .bind(pipeline)
        .bind(schedule)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("last_tick")).transpose()?)
    }

    async fn advance_tick(
        &self,
        namespace: &str,
        pipeline: &str,
        schedule: &str,
        from: Option<Millis>,
        to: Millis,
    ) -> Result<bool> {
        let done = match from {
            None => {
                let sql = match self.backend {
                    Backend::Sqlite => {
                        "INSERT OR IGNORE INTO schedule_ticks (namespace, pipeline, schedule, last_tick) \
                         VALUES ($1, $2, $3, $4)"
                    }
                    Backend::Postgres => {
                        "INSERT INTO schedule_ticks (namespace, pipeline, schedule, last_tick) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
                    }
                };
                sqlx::query(sql)
                    .bind(namespace)
                    .bind(pipeline)
                    .bind(schedule)
                    .bind(to)
                    .execute(&self.pool)
                    .await?
            }
            Some(from) => sqlx::query(
                "UPDATE schedule_ticks SET last_tick = $1 WHERE namespace = $2 AND pipeline = $3 \
                     AND schedule = $4 AND last_tick = $5",
            )
            .bind(to)
            .bind(namespace)
            .bind(pipeline)
            .bind(schedule)
            .bind(from)
            .execute(&self.pool)
            .await?,
        };
        Ok(done.rows_affected() == 1)
    }

    async fn set_paused(
        &self,
        namespace: &str,
        pipeline: &str,
        paused: bool,
        by: &str,
        at: Millis,
    ) -> Result<bool> {
        let done = if paused {
            let sql = match self.backend {
                Backend::Sqlite => {
                    "INSERT OR IGNORE INTO paused_pipelines (namespace, pipeline, paused_at, paused_by) \
                     VALUES ($1, $2, $3, $4)"
                }
                Backend::Postgres => {
                    "INSERT INTO paused_pipelines (namespace, pipeline, paused_at, paused_by) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
                }
            };
            sqlx::query(sql)
                .bind(namespace)
                .bind(pipeline)
                .bind(at)
                .bind(by)
                .execute(&self.pool)
                .await?
        } else {
            sqlx::query("DELETE FROM paused_pipelines WHERE namespace = $1 AND pipeline = $2")
                .bind(namespace)
                .bind(pipeline)
                .execute(&self.pool)
                .await?
        };
        Ok(done.rows_affected() == 1)
    }

    async fn is_paused(&self, namespace: &str, pipeline: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM paused_pipelines WHERE namespace = $1 AND pipeline = $2",
        )
        .bind(namespace)
        .bind(pipeline)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn paused_pipelines(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT namespace, pipeline FROM paused_pipelines ORDER BY namespace, pipeline",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("namespace")?, row.try_get("pipeline")?)))
            .collect()
    }

    async fn request_cancel(&self, run: &RunId) -> Result<()> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let result = async {
            sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1")
                .bind(run.as_str())
                .execute(&mut *tx)
                .await?;
            self.notify(&mut tx, Kind::Request, &[run]).await
        }
        .await;
        end_tx(tx, result).await?;
        self.feed.committed(Kind::Request, [run]);
        Ok(())
    }

    async fn decide(
        &self,
        run: &RunId,
        key: &TaskKey,
        approved: bool,
        by: &str,
        at: Millis,
        comment: Option<&str>,
    ) -> Result<bool> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "INSERT OR IGNORE INTO approvals (run_id, task_key, decision, decided_by, decided_at, comment) \
                 VALUES ($1, $2, $3, $4, $5, $6)"
            }
            Backend::Postgres => {
                "INSERT INTO approvals (run_id, task_key, decision, decided_by, decided_at, comment) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
            }
        };
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let result = async {
            let done = sqlx::query(sql)
                .bind(run.as_str())
                .bind(key.as_str())
                .bind(if approved { "approved" } else { "rejected" })
                .bind(by)
                .bind(at)
                .bind(comment)
                .execute(&mut *tx)
                .await?;
            let first = done.rows_affected() == 1;
            if first {
                self.notify(&mut tx, Kind::Request, &[run]).await?;
            }
            Ok(first)
        }
        .await;
        let first = end_tx(tx, result).await?;
        if first {
            self.feed.committed(Kind::Request, [run]);
        }
        Ok(first)
    }

    fn changes(&self) -> Changes {
        self.feed.subscribe()
    }

    async fn control(&self, run: &RunId) -> Result<Control> {
        let cancel: Option<i64> = sqlx::query("SELECT cancel_requested FROM runs WHERE id = $1")
            .bind(run.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("cancel_requested"))
            .transpose()?;
        let rows = sqlx::query("SELECT * FROM approvals WHERE run_id = $1")
            .bind(run.as_str())
            .fetch_all(&self.pool)
            .await?;
        let approvals = rows
            .iter()
            .map(|row| {
                Ok(ApprovalRecord {
                    key: TaskKey::from_string(row.try_get::<String, _>("task_key")?),
                    approved: row.try_get::<String, _>("decision")? == "approved",
                    decided_by: row.try_get("decided_by")?,
                    decided_at: row.try_get("decided_at")?,
                    comment: row.try_get("comment")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Control {
            cancel_requested: cancel.unwrap_or(0) != 0,
            approvals,
        })
    }

    async fn record_deadline_miss(
        &self,
        run: &RunId,
        key: Option<&TaskKey>,
        at: Millis,
    ) -> Result<bool> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "INSERT OR IGNORE INTO deadline_misses (run_id, task_key, missed_at) \
                 VALUES ($1, $2, $3)"
            }
            Backend::Postgres => {
                "INSERT INTO deadline_misses (run_id, task_key, missed_at) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            }
        };
        // A primary key column cannot be NULL: the run's own deadline is the empty key, which
        // no task has.
        let done = sqlx::query(sql)
            .bind(run.as_str())
            .bind(key.map_or("", TaskKey::as_str))
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn cached_result(
        &self,
        namespace: &str,
        pipeline: &str,
        task_id: &str,
        cache_key: &str,
        not_before: Option<Millis>,
    ) -> Result<Option<CacheEntry>> {
        let row = sqlx::query(
            "SELECT run_id, task_key, outputs, created_at FROM task_cache \
             WHERE namespace = $1 AND pipeline = $2 AND task_id = $3 AND key_hash = $4 \
             AND created_at >= $5",
        )
        .bind(namespace)
        .bind(pipeline)
        .bind(task_id)
        .bind(key_hash(cache_key))
        .bind(not_before.unwrap_or(i64::MIN))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| -> Result<CacheEntry> {
            let outputs = match json_col(&row, "outputs")? {
                Some(serde_json::Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            Ok(CacheEntry {
                source: CacheSource {
                    run: RunId::from_string(row.try_get::<String, _>("run_id")?),
                    task: TaskKey::from_string(row.try_get::<String, _>("task_key")?),
                },
                outputs,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn pools(&self, now: Millis) -> Result<Vec<PoolRecord>> {
        self.pools_at(now, None).await
    }

    async fn pool(&self, name: &str, now: Millis) -> Result<Option<PoolRecord>> {
        Ok(self.pools_at(now, Some(name)).await?.into_iter().next())
    }

    async fn put_pool(
        &self,
        name: &str,
        slots: u32,
        description: Option<&str>,
        at: Millis,
    ) -> Result<()> {
        self.put_pool_row(name, slots, description, at).await
    }

    async fn delete_pool(&self, name: &str) -> Result<bool> {
        self.delete_pool_row(name).await
    }

    async fn claim_slot(
        &self,
        pool: &str,
        run: &RunId,
        key: &TaskKey,
        priority: i32,
        lease: &Lease,
        now: Millis,
    ) -> Result<SlotClaim> {
        self.claim(pool, run, key, priority, lease, now).await
    }

    async fn drop_claims(&self, owner: &str) -> Result<u64> {
        self.drop_owner_claims(owner).await
    }
}
