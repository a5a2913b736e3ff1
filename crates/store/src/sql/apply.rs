//! [`crate::Store::apply`]: one commit of a run's changes, batched into as few statements as
//! the changes allow.

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::{AttemptState, RunState, TaskState};

use super::batch::Batch;
use super::cache::key_hash;
use super::events::{PendingEvent, insert_events};
use super::rows::json_text;
use super::tasks::insert_tasks;
use super::{Backend, SqlStore, connect, lease, placeholders, pools};
use crate::changes::Kind;
use crate::error::Result;
use crate::lease::{CommitSeq, Fence, Lease};
use crate::records::{AttemptProcess, Change, Millis, Rusage};

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
    b: &mut Batch,
    conn: &mut sqlx::AnyConnection,
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
        b.sql(&sql);
        for r in chunk {
            let f = r.finish.as_ref();
            let usage = f.and_then(|f| f.rusage);
            b.bind(run.as_str())
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
        b.end(conn).await?;
    }
    Ok(())
}

/// Keys per task UPDATE (10 parameters each).
const TASK_UPDATES_PER_STATEMENT: usize = 50;

/// Applies every task's update in one statement per chunk: each column takes its new value
/// from a `CASE` on the task key.
async fn write_tasks(
    b: &mut Batch,
    conn: &mut sqlx::AnyConnection,
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
        b.sql(&sql).bind(run.as_str());
        for (key, u) in chunk {
            b.bind(key.as_str().to_owned())
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
        b.end(conn).await?;
    }
    Ok(())
}

/// Changes too many for one script: more rows than one multi-row statement takes.
fn large(changes: &[Change]) -> bool {
    let added: usize = changes
        .iter()
        .map(|c| match c {
            Change::AddTasks(new) => new.len(),
            _ => 0,
        })
        .sum();
    changes.len() + added > super::tasks::TASK_ROWS_PER_INSERT
}

/// Whether `change` ends its run.
fn ends_run(change: &Change) -> bool {
    matches!(change, Change::Run { state, .. } if state.is_final())
}

impl SqlStore {
    pub(super) async fn apply_changes(
        &self,
        run: &RunId,
        fence: Fence<'_>,
        changes: &[Change],
    ) -> Result<()> {
        let lease = match fence {
            Fence::Lease { lease, commit } => Some((lease, commit)),
            Fence::Unfenced => None,
        };
        // A commit as one script is for a run's steps; a large one (a fan-out adding
        // thousands of tasks) goes statement by statement, a bounded batch at a time.
        let as_script = self.backend == Backend::Sqlite && !large(changes);
        let applied = if as_script {
            self.apply_as_script(run, lease, changes).await?
        } else {
            self.apply_by_statements(run, lease, changes).await?
        };
        let Some(run_ended) = applied else {
            return Ok(());
        };
        self.feed.committed(Kind::State, [run]);
        if run_ended {
            self.claimed.forget(run);
        }
        if self.ack_lost() {
            return Err(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()).into());
        }
        Ok(())
    }

    /// The fence first, on its own (on PostgreSQL taking the run's row lock before anything
    /// is written), then the statements in bounded batches. Whether the changes ended the
    /// run; `None` for a commit that had landed already.
    async fn apply_by_statements(
        &self,
        run: &RunId,
        lease: Option<(&Lease, CommitSeq)>,
        changes: &[Change],
    ) -> Result<Option<bool>> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        if let Some((lease, commit)) = lease
            && lease::fence_commit(&mut tx, run, lease, commit).await? == lease::Commit::Landed
        {
            let _ = tx.rollback().await;
            self.landed(run, changes);
            return Ok(None);
        }
        let mut b = Batch::new(self.backend);
        let run_ended = self
            .write_changes(&mut b, &mut tx, run, lease, changes)
            .await?;
        b.finish(&mut tx).await?;
        self.notify(&mut tx, Kind::State, &[run]).await?;
        tx.commit().await?;
        Ok(Some(run_ended))
    }

    /// SQLite: the whole commit as one script, one round trip to the connection's thread:
    /// `BEGIN IMMEDIATE`, the fence, the changes, `COMMIT`. A fence that matched no row
    /// stops the script at once (an insert of NULL into `baton_fence`, which refuses it),
    /// before any change, and the transaction is rolled back. Whether the changes ended the
    /// run; `None` for a commit that had landed already.
    async fn apply_as_script(
        &self,
        run: &RunId,
        lease: Option<(&Lease, CommitSeq)>,
        changes: &[Change],
    ) -> Result<Option<bool>> {
        let mut writer = self.writer.lock().await;
        let mut b = Batch::script();
        b.sql("BEGIN IMMEDIATE");
        if let Some((lease, commit)) = lease {
            lease::fence_commit_first(&mut b, run, lease, commit);
            b.sql("INSERT INTO temp.baton_fence (refused) SELECT NULL WHERE changes() = 0");
        }
        // Nothing runs while the script is built: the connection is not used.
        let run_ended = self
            .write_changes(&mut b, &mut writer, run, lease, changes)
            .await?;
        b.sql("COMMIT");
        let (sql, args) = b.into_script()?;
        let Err(e) = writer.run_script(sql, args).await else {
            return Ok(Some(run_ended));
        };
        // Rolled back. The fence's answer comes first: a stale owner's changes, or the retry
        // of a commit that landed (its new tasks there already), may also have failed on
        // what is in the database.
        if let Some((lease, commit)) = lease {
            match lease::unmatched(&mut **writer, run, lease, commit).await {
                Ok(lease::Commit::Landed) => {
                    self.landed(run, changes);
                    return Ok(None);
                }
                // Why the fence refused: the lease is gone, or commits are missing.
                Err(why) if connect::fence_refused(&e) => return Err(why),
                Err(refusal @ crate::Error::LeaseLost { .. }) => return Err(refusal),
                Ok(lease::Commit::Next) | Err(_) => {}
            }
        }
        Err(e)
    }

    /// What the lost answer of a commit that landed skipped: telling this process's
    /// observers.
    fn landed(&self, run: &RunId, changes: &[Change]) {
        self.feed.committed(Kind::State, [run]);
        if changes.iter().any(ends_run) {
            self.claimed.forget(run);
        }
    }

    /// Adds `changes` to `b`: one UPDATE per task however many of its changes the batch
    /// holds, and all events in multi-row INSERTs. Returns whether they end the run.
    async fn write_changes(
        &self,
        b: &mut Batch,
        conn: &mut sqlx::AnyConnection,
        run: &RunId,
        lease: Option<(&crate::lease::Lease, crate::lease::CommitSeq)>,
        changes: &[Change],
    ) -> Result<bool> {
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
                    b.sql(
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
                    .bind(run.as_str());
                    b.end(conn).await?;
                    let data = serde_json::json!({ "state": state, "error": error });
                    events.push(PendingEvent::new(*at, "run_state", None, None, data));
                }
                Change::AddTasks(new) => insert_tasks(b, conn, run, new).await?,
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
                    b.sql(
                        "UPDATE tasks SET state = $1, error = NULL, finished_at = NULL, \
                         next_attempt_at = NULL, retry_base = attempts, approval_message = NULL, \
                         cached_from_run = NULL, cached_from_task = NULL \
                         WHERE run_id = $2 AND task_key = $3",
                    )
                    .bind(state.as_str())
                    .bind(run.as_str())
                    .bind(key.as_str());
                    b.end(conn).await?;
                    // A gate asks again.
                    b.sql("DELETE FROM approvals WHERE run_id = $1 AND task_key = $2")
                        .bind(run.as_str())
                        .bind(key.as_str());
                    b.end(conn).await?;
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
                    // Who ran it is the attempt row's (host and pid are not for the API); the
                    // event's epoch tells one owner's tenure from the next.
                    let data = serde_json::json!({
                        "log": log_path, "after_interruption": after_interruption,
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
                    b.sql(
                        "UPDATE tasks SET approval_message = $1 \
                         WHERE run_id = $2 AND task_key = $3",
                    )
                    .bind(message.as_str())
                    .bind(run.as_str())
                    .bind(key.as_str());
                    b.end(conn).await?;
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
                        b.sql(
                            "UPDATE tasks SET cached_from_run = $1, cached_from_task = $2 \
                             WHERE run_id = $3 AND task_key = $4",
                        )
                        .bind(hit.run.as_str())
                        .bind(hit.task.as_str())
                        .bind(run.as_str())
                        .bind(key.as_str());
                        b.end(conn).await?;
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
                Change::ArtifactsStored {
                    key,
                    attempt,
                    store,
                    files,
                    at,
                } => {
                    super::artifacts::insert(b, conn, run, key, *attempt, store, files, *at)
                        .await?;
                    let bytes: u64 = files.iter().map(|f| f.size).sum();
                    let data =
                        serde_json::json!({ "files": files.len(), "bytes": bytes, "store": store });
                    events.push(PendingEvent::new(
                        *at,
                        "artifacts_stored",
                        Some(key),
                        Some(*attempt),
                        data,
                    ));
                }
                // The task's identity comes from its run and record, already in the database.
                Change::CacheSaved {
                    key,
                    cache_key,
                    outputs,
                    at,
                } => {
                    b.sql(
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
                    .bind(key.as_str());
                    b.end(conn).await?;
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
        write_attempts(b, conn, run, &attempts).await?;
        // After the upsert: a start and its spawn could share a commit.
        for (key, attempt, process) in spawned {
            b.sql(
                "UPDATE attempts SET pid = $1, proc_start = $2, boot_id = $3, host = $4 \
                 WHERE run_id = $5 AND task_key = $6 AND attempt = $7",
            )
            .bind(i64::from(process.pgid))
            .bind(i64::try_from(process.start_time).unwrap_or(i64::MAX))
            .bind(process.boot_id.clone())
            .bind(process.host.clone())
            .bind(run.as_str())
            .bind(key.as_str())
            .bind(i64::from(attempt));
            b.end(conn).await?;
        }
        write_tasks(b, conn, run, &tasks).await?;
        // Only the run's owner's claims count, and it made them through this handle: a run it
        // never claimed for costs no statement here.
        if self.claimed.has(run) {
            if run_ended {
                pools::release_run(b, conn, run).await?;
            } else {
                let freed: Vec<TaskKey> = releases
                    .into_iter()
                    .filter_map(|(k, free)| free.then_some(k))
                    .collect();
                pools::release(b, conn, run, &freed).await?;
            }
        }
        if let Some((lease, _)) = lease {
            for e in &mut events {
                e.epoch = Some(lease.epoch);
            }
        }
        insert_events(b, conn, run, &events).await?;
        Ok(run_ended)
    }
}
