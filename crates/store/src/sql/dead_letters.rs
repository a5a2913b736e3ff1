//! Dead letters: a query over failed tasks of ended runs, not a queue.

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::RunState;
use sqlx::Row;

use super::SqlStore;
use super::rows::{opt_i64, state, to_u32};
use crate::error::Result;
use crate::records::{DeadLetterFilter, DeadLetterRecord};

/// A fan-out's own row `t`, which only sums up its instances (they are what ran). A macro, so
/// that `concat!` can build [`DEAD_LETTER`] from it.
macro_rules! fan_out_sum {
    () => {
        "(t.task_key = t.task_id AND EXISTS (SELECT 1 FROM tasks c \
     WHERE c.run_id = t.run_id AND c.task_id = t.task_id AND c.task_key <> t.task_key))"
    };
}
pub(super) const FAN_OUT_SUM: &str = fan_out_sum!();

/// Task `t` of run `r` is a dead letter: it failed for good in a run that ended. Hooks do not
/// decide a run's outcome and run again whenever it ends.
pub(super) const DEAD_LETTER: &str = concat!(
    "t.state = 'failed' AND t.finished_at IS NOT NULL \
     AND r.state IN ('failed', 'cancelled') \
     AND t.task_key NOT IN ('on_success', 'on_failure') AND NOT ",
    fan_out_sum!()
);

impl SqlStore {
    pub(super) async fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<DeadLetterRecord>> {
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
}
