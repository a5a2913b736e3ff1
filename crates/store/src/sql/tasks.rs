//! A run's task and attempt rows: inserting tasks, reading them all.

use baton_core::ids::RunId;

use super::batch::Batch;
use super::rows::{attempt_record, json_text, task_record};
use super::{SqlStore, placeholders};
use crate::error::Result;
use crate::records::{AttemptRecord, NewTask, TaskRecord};

/// Rows per multi-row INSERT of tasks (6 parameters each).
pub(super) const TASK_ROWS_PER_INSERT: usize = 200;

pub(super) async fn insert_tasks(
    b: &mut Batch,
    conn: &mut sqlx::AnyConnection,
    run: &RunId,
    tasks: &[NewTask],
) -> Result<()> {
    let rows: Vec<(&RunId, &NewTask)> = tasks.iter().map(|t| (run, t)).collect();
    insert_task_rows(b, conn, &rows).await
}

/// Inserts the tasks of any number of runs, in multi-row statements.
pub(super) async fn insert_task_rows(
    b: &mut Batch,
    conn: &mut sqlx::AnyConnection,
    rows: &[(&RunId, &NewTask)],
) -> Result<()> {
    for chunk in rows.chunks(TASK_ROWS_PER_INSERT) {
        b.sql(&format!(
            "INSERT INTO tasks (run_id, task_key, task_id, position, item, state) VALUES {}",
            placeholders(chunk.len(), 6, 1)
        ));
        for (run, t) in chunk {
            b.bind(run.as_str())
                .bind(t.key.as_str().to_owned())
                .bind(t.task_id.clone())
                .bind(t.position)
                .bind(t.item.as_ref().map(json_text))
                .bind(t.state.as_str());
        }
        b.end(conn).await?;
    }
    Ok(())
}

impl SqlStore {
    pub(super) async fn task_rows(&self, run: &RunId) -> Result<Vec<TaskRecord>> {
        self.read_lost()?;
        let rows = sqlx::query("SELECT * FROM tasks WHERE run_id = $1 ORDER BY position, task_key")
            .bind(run.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(task_record).collect()
    }

    pub(super) async fn attempt_rows(&self, run: &RunId) -> Result<Vec<AttemptRecord>> {
        self.read_lost()?;
        let rows = sqlx::query(
            "SELECT * FROM attempts WHERE run_id = $1 ORDER BY started_at, task_key, attempt",
        )
        .bind(run.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(attempt_record).collect()
    }
}
