//! Logs as chunk rows (`log_chunks`), one per flush of the attempt's output, keyed by the byte
//! offset they start at: any replica reads any attempt's log, and an append retried after its
//! answer was lost finds its row there and is not kept twice.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use baton_core::state::AttemptState;
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::lease::Lease;
use crate::logs::{
    AttemptLog, FileLogStore, LayeredLogStore, LogError, LogStore, LogStoreKind, MAX_READ,
};

/// Logs in the database of `SqlStore`.
#[derive(Debug, Clone)]
pub struct DatabaseLogStore {
    store: SqlStore,
}

impl SqlStore {
    /// This database as a [`LogStore`].
    pub fn log_store(&self) -> DatabaseLogStore {
        DatabaseLogStore {
            store: self.clone(),
        }
    }

    /// The log store `kind` names, by default files (under `home`) with SQLite and the
    /// database with PostgreSQL, whose replicas need not share a disk; over the other one, so
    /// that logs written before `[logs] store` changed stay readable.
    pub fn logs(&self, kind: Option<LogStoreKind>, home: &Path) -> Arc<dyn LogStore> {
        let kind = kind.unwrap_or(match self.backend {
            Backend::Sqlite => LogStoreKind::Files,
            Backend::Postgres => LogStoreKind::Database,
        });
        let files: Arc<dyn LogStore> = Arc::new(FileLogStore::new(home));
        let database: Arc<dyn LogStore> = Arc::new(self.log_store());
        let (current, earlier) = match kind {
            LogStoreKind::Files => (files, database),
            LogStoreKind::Database => (database, files),
        };
        Arc::new(LayeredLogStore { current, earlier })
    }
}

/// Keeps the chunk only for the running attempt of a run the lease still holds (any run when
/// `$6` is NULL), in the statement itself so nothing can slip in between a check and it.
const APPEND: &str = "INSERT INTO log_chunks (run_id, task_key, attempt, byte_offset, data) \
     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (\
       SELECT 1 FROM attempts a JOIN runs r ON r.id = a.run_id \
       WHERE a.run_id = $1 AND a.task_key = $2 AND a.attempt = $3 AND a.state = $8 \
       AND ($6 IS NULL OR (r.lease_owner = $6 AND r.lease_epoch = $7))) \
     ON CONFLICT (run_id, task_key, attempt, byte_offset) DO NOTHING";

#[async_trait]
impl LogStore for DatabaseLogStore {
    fn location(&self, log: &AttemptLog) -> String {
        format!("database:{}/{}/{}", log.run, log.key, log.attempt)
    }

    async fn append(
        &self,
        log: &AttemptLog,
        lease: Option<&Lease>,
        at: u64,
        bytes: &[u8],
    ) -> Result<(), LogError> {
        let q = sqlx::query(APPEND)
            .bind(log.run.as_str())
            .bind(log.key.as_str())
            .bind(i64::from(log.attempt))
            .bind(offset(at))
            .bind(bytes.to_vec())
            .bind(lease.map(|l| l.owner.as_str().to_owned()))
            .bind(lease.map(|l| l.epoch.0))
            .bind(AttemptState::Running.as_str());
        // SQLite has one writer: through the store's, so appends queue behind commits
        // instead of failing busy. PostgreSQL takes concurrent writers.
        let done = match self.store.backend {
            Backend::Sqlite => {
                let mut writer = self.store.writer.lock().await;
                q.execute(&mut **writer).await
            }
            Backend::Postgres => q.execute(&self.store.pool).await,
        }
        .map_err(crate::Error::from)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let landed = sqlx::query(
            "SELECT 1 AS n FROM log_chunks \
             WHERE run_id = $1 AND task_key = $2 AND attempt = $3 AND byte_offset = $4",
        )
        .bind(log.run.as_str())
        .bind(log.key.as_str())
        .bind(i64::from(log.attempt))
        .bind(offset(at))
        .fetch_optional(&self.store.pool)
        .await
        .map_err(crate::Error::from)?;
        if landed.is_some() {
            return Ok(());
        }
        Err(LogError::Stale {
            run: log.run.clone(),
            key: log.key.clone(),
            attempt: log.attempt,
        })
    }

    async fn read(&self, log: &AttemptLog, from: u64, max: usize) -> Result<Vec<u8>, LogError> {
        let max = max.min(MAX_READ);
        if max == 0 {
            return Ok(Vec::new());
        }
        let end = from.saturating_add(max as u64);
        // From the chunk holding `from` to the last starting before `end`: a few rows, each
        // at most a flush of output.
        let rows = sqlx::query(
            "SELECT byte_offset, data FROM log_chunks \
             WHERE run_id = $1 AND task_key = $2 AND attempt = $3 AND byte_offset < $5 \
             AND byte_offset >= COALESCE((SELECT MAX(byte_offset) FROM log_chunks \
               WHERE run_id = $1 AND task_key = $2 AND attempt = $3 AND byte_offset <= $4), 0) \
             ORDER BY byte_offset",
        )
        .bind(log.run.as_str())
        .bind(log.key.as_str())
        .bind(i64::from(log.attempt))
        .bind(offset(from))
        .bind(offset(end))
        .fetch_all(&self.store.pool)
        .await
        .map_err(crate::Error::from)?;
        let mut out = Vec::with_capacity(max);
        let mut at = from;
        for row in rows {
            let start = u64::try_from(row.try_get::<i64, _>("byte_offset").map_err(db)?)
                .unwrap_or_default();
            let data: Vec<u8> = row.try_get("data").map_err(db)?;
            // A gap (a chunk refused in between) ends the read; what follows it is never read
            // past, as a file would not have it.
            if start > at {
                break;
            }
            let skip = usize::try_from(at - start).unwrap_or(usize::MAX);
            if skip >= data.len() {
                continue;
            }
            let take = (data.len() - skip).min(max - out.len());
            out.extend_from_slice(&data[skip..skip + take]);
            at += take as u64;
            if out.len() == max {
                break;
            }
        }
        Ok(out)
    }

    async fn len(&self, log: &AttemptLog) -> Result<u64, LogError> {
        let row = sqlx::query(
            "SELECT byte_offset, data FROM log_chunks \
             WHERE run_id = $1 AND task_key = $2 AND attempt = $3 \
             ORDER BY byte_offset DESC LIMIT 1",
        )
        .bind(log.run.as_str())
        .bind(log.key.as_str())
        .bind(i64::from(log.attempt))
        .fetch_optional(&self.store.pool)
        .await
        .map_err(crate::Error::from)?;
        let Some(row) = row else {
            return Ok(0);
        };
        let start = row.try_get::<i64, _>("byte_offset").map_err(db)?;
        let data: Vec<u8> = row.try_get("data").map_err(db)?;
        Ok(u64::try_from(start).unwrap_or_default() + data.len() as u64)
    }
}

fn offset(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

fn db(e: sqlx::Error) -> LogError {
    LogError::Database(crate::Error::from(e))
}
