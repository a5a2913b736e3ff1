//! A run's tasks a page at a time, with only those tasks' attempts, and its counts by state:
//! what a listing of a run of 100,000 tasks reads instead of all of them at once.

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::TaskState;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::SqlStore;
use super::rows::{attempt_record, state, task_record};
use crate::error::Result;
use crate::records::{AttemptRecord, TaskPageFilter, TaskRecord};

/// Task keys per `IN (...)` list: well under either backend's parameter limit.
const KEYS_PER_STATEMENT: usize = 500;

impl SqlStore {
    pub(super) async fn task_page_rows(
        &self,
        run: &RunId,
        filter: &TaskPageFilter,
    ) -> Result<Vec<TaskRecord>> {
        // Row-value comparison `(position, task_key) > ($2, $3)` would say it shorter, but
        // spelled out both backends walk the tasks_by_position index from the cursor on.
        let (position, key) = filter
            .after
            .as_ref()
            .map(|c| (Some(c.position), Some(c.key.as_str().to_owned())))
            .unwrap_or_default();
        let rows = sqlx::query(
            "SELECT * FROM tasks WHERE run_id = $1 \
             AND ($2 IS NULL OR position > $2 OR (position = $2 AND task_key > $3)) \
             AND ($4 IS NULL OR state = $4) \
             ORDER BY position, task_key LIMIT $5",
        )
        .bind(run.as_str())
        .bind(position)
        .bind(key)
        .bind(filter.state.map(TaskState::as_str))
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_record).collect()
    }

    pub(super) async fn attempt_rows_of(
        &self,
        run: &RunId,
        tasks: &[TaskKey],
    ) -> Result<Vec<AttemptRecord>> {
        let mut out = self
            .rows_of_tasks("attempts", run, tasks)
            .await?
            .iter()
            .map(attempt_record)
            .collect::<Result<Vec<_>>>()?;
        // The order of `Store::attempts`, across chunks too.
        out.sort_by(|a, b| {
            (a.started_at, a.key.as_str(), a.attempt).cmp(&(
                b.started_at,
                b.key.as_str(),
                b.attempt,
            ))
        });
        Ok(out)
    }

    /// The rows of `table` (`attempts`, `artifacts`) of `tasks` in `run`, a few hundred keys
    /// per statement, in no particular order.
    pub(super) async fn rows_of_tasks(
        &self,
        table: &'static str,
        run: &RunId,
        tasks: &[TaskKey],
    ) -> Result<Vec<AnyRow>> {
        let mut out = Vec::new();
        for chunk in tasks.chunks(KEYS_PER_STATEMENT) {
            let keys: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT * FROM {table} WHERE run_id = $1 AND task_key IN ({})",
                keys.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(run.as_str());
            for key in chunk {
                q = q.bind(key.as_str().to_owned());
            }
            out.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }

    pub(super) async fn task_state_counts(&self, run: &RunId) -> Result<Vec<(TaskState, u64)>> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM tasks WHERE run_id = $1 GROUP BY state ORDER BY state",
        )
        .bind(run.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    state(row, "state", TaskState::from_name)?,
                    u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0),
                ))
            })
            .collect()
    }
}
