//! Grouped counts and lists across runs, for dashboards and the gauges read at scrape.

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::TaskState;
use sqlx::Row;

use super::SqlStore;
use super::dead_letters::{DEAD_LETTER, FAN_OUT_SUM};
use super::rows::{opt_i64, state};
use crate::error::Result;
use crate::records::{ApprovalWait, PipelineCount, TaskCount};

impl SqlStore {
    pub(super) async fn approval_waits(&self, limit: u32) -> Result<Vec<ApprovalWait>> {
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

    pub(super) async fn dead_letter_counts_by_pipeline(&self) -> Result<Vec<PipelineCount>> {
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

    pub(super) async fn active_task_counts_by_state(&self) -> Result<Vec<TaskCount>> {
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
}
