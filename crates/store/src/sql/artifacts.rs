//! The files attempts uploaded: written in the commit of their success, read by run.

use baton_core::ids::{RunId, TaskKey};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::batch::Batch;
use super::rows::to_u32;
use super::{SqlStore, placeholders};
use crate::error::Result;
use crate::records::{ArtifactFile, ArtifactRecord, Millis};

/// Rows per multi-row INSERT (9 parameters each).
const ROWS_PER_INSERT: usize = 100;

#[allow(clippy::too_many_arguments)]
pub(super) async fn insert(
    b: &mut Batch,
    conn: &mut sqlx::AnyConnection,
    run: &RunId,
    key: &TaskKey,
    attempt: u32,
    store: &str,
    files: &[ArtifactFile],
    at: Millis,
) -> Result<()> {
    for chunk in files.chunks(ROWS_PER_INSERT) {
        b.sql(&format!(
            "INSERT INTO artifacts (run_id, task_key, attempt, path, digest, size, executable, \
             store, stored_at) VALUES {}",
            placeholders(chunk.len(), 9, 1)
        ));
        for f in chunk {
            b.bind(run.as_str())
                .bind(key.as_str().to_owned())
                .bind(i64::from(attempt))
                .bind(f.path.clone())
                .bind(f.digest.clone())
                .bind(i64::try_from(f.size).unwrap_or(i64::MAX))
                .bind(i64::from(f.executable))
                .bind(store.to_owned())
                .bind(at);
        }
        b.end(conn).await?;
    }
    Ok(())
}

impl SqlStore {
    pub(super) async fn artifact_rows(&self, run: &RunId) -> Result<Vec<ArtifactRecord>> {
        self.read_lost()?;
        let rows = sqlx::query(
            "SELECT * FROM artifacts WHERE run_id = $1 ORDER BY task_key, attempt, path",
        )
        .bind(run.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(artifact_record).collect()
    }

    pub(super) async fn artifact_rows_of(
        &self,
        run: &RunId,
        tasks: &[TaskKey],
    ) -> Result<Vec<ArtifactRecord>> {
        let mut out = self
            .rows_of_tasks("artifacts", run, tasks)
            .await?
            .iter()
            .map(artifact_record)
            .collect::<Result<Vec<_>>>()?;
        // The order of `Store::artifacts`, across chunks too.
        out.sort_by(|a, b| {
            (a.key.as_str(), a.attempt, &a.file.path).cmp(&(
                b.key.as_str(),
                b.attempt,
                &b.file.path,
            ))
        });
        Ok(out)
    }
}

fn artifact_record(row: &AnyRow) -> Result<ArtifactRecord> {
    Ok(ArtifactRecord {
        key: TaskKey::from_string(row.try_get::<String, _>("task_key")?),
        attempt: to_u32(row.try_get("attempt")?),
        store: row.try_get("store")?,
        file: ArtifactFile {
            path: row.try_get("path")?,
            digest: row.try_get("digest")?,
            size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
            executable: row.try_get::<i64, _>("executable")? != 0,
        },
        stored_at: row.try_get("stored_at")?,
    })
}
