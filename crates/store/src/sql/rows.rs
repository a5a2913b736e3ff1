//! Row to record decoding: the columns' types and names in one place.

use baton_core::ids::{BackfillId, RunId, TaskKey};
use baton_core::state::{AttemptState, RunState, TaskState};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Error, Result};
use crate::records::{
    AttemptProcess, AttemptRecord, BackfillRecord, CacheSource, ParentRef, RunBrief, RunRecord,
    Rusage, TaskRecord,
};

pub(super) fn opt_i64(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

pub(super) fn json_col(row: &AnyRow, col: &'static str) -> Result<Option<serde_json::Value>> {
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

pub(super) fn state<T>(row: &AnyRow, col: &'static str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let text: String = row.try_get(col)?;
    parse(&text).ok_or_else(|| Error::Corrupt {
        column: col,
        detail: format!("unknown state `{text}`"),
    })
}

pub(super) fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(super) fn run_record(row: &AnyRow) -> Result<RunRecord> {
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

pub(super) fn run_brief(row: &AnyRow) -> Result<RunBrief> {
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

pub(super) fn backfill_record(row: &AnyRow) -> Result<BackfillRecord> {
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

pub(super) fn task_record(row: &AnyRow) -> Result<TaskRecord> {
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

pub(super) fn attempt_record(row: &AnyRow) -> Result<AttemptRecord> {
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

pub(super) fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}
