//! The append-only `events` log: writing a commit's events, reading a run's.

use baton_core::ids::{RunId, TaskKey};
use sqlx::Row;

use super::batch::Batch;
use super::rows::{json_col, opt_i64, to_u32};
use super::{SqlStore, placeholders};
use crate::error::Result;
use crate::lease::LeaseEpoch;
use crate::records::{EventRecord, Millis};

/// An event to append at the end of a transaction.
pub(super) struct PendingEvent {
    at: Millis,
    kind: &'static str,
    key: Option<TaskKey>,
    attempt: Option<u32>,
    data: String,
    /// The writing owner's lease epoch, for an owner's commit.
    pub(super) epoch: Option<LeaseEpoch>,
}

impl PendingEvent {
    pub(super) fn new(
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
            epoch: None,
        }
    }
}

/// Rows per multi-row INSERT, well below SQLite's and PostgreSQL's parameter limits.
const EVENT_ROWS_PER_INSERT: usize = 200;

pub(super) async fn insert_events(
    b: &mut Batch,
    conn: &mut sqlx::AnyConnection,
    run: &RunId,
    events: &[PendingEvent],
) -> Result<()> {
    let rows: Vec<(&RunId, &PendingEvent)> = events.iter().map(|e| (run, e)).collect();
    insert_event_rows(b, conn, &rows).await
}

/// Appends events of any number of runs, in multi-row statements.
pub(super) async fn insert_event_rows(
    b: &mut Batch,
    conn: &mut sqlx::AnyConnection,
    rows: &[(&RunId, &PendingEvent)],
) -> Result<()> {
    for chunk in rows.chunks(EVENT_ROWS_PER_INSERT) {
        b.sql(&format!(
            "INSERT INTO events (run_id, at, kind, task_key, attempt, data, epoch) VALUES {}",
            placeholders(chunk.len(), 7, 1)
        ));
        for (run, e) in chunk {
            b.bind(run.as_str())
                .bind(e.at)
                .bind(e.kind)
                .bind(e.key.as_ref().map(|k| k.as_str().to_owned()))
                .bind(e.attempt.map(i64::from))
                .bind(e.data.clone())
                .bind(e.epoch.map(|e| e.0));
        }
        b.end(conn).await?;
    }
    Ok(())
}

impl SqlStore {
    pub(super) async fn event_rows(&self, run: &RunId, after_seq: i64) -> Result<Vec<EventRecord>> {
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
                    epoch: opt_i64(row, "epoch")?.map(LeaseEpoch),
                })
            })
            .collect()
    }
}
