//! Admission groups (`max_active_runs`, `overlap`, a backfill's parallelism): which runs of a
//! group may start, decided in the database.

use baton_core::ids::RunId;
use baton_core::state::RunState;
use sqlx::Row;

use super::batch::Batch;
use super::events::{PendingEvent, insert_event_rows};
use super::rows::{opt_i64, run_record, state};
use super::runs::RUN_ROWS_PER_INSERT;
use super::{Backend, SqlStore, end_tx, placeholders};
use crate::changes::Kind;
use crate::error::{Error, Result};
use crate::records::{Admitted, Millis, RunRecord};

/// An unfinished run of an admission group, as admission sees it.
pub(super) struct Member {
    pub(super) id: RunId,
    /// Admitted (or already running): it holds one of the group's slots.
    pub(super) active: bool,
    /// Queued, not admitted, not asked to cancel: in line for a slot.
    pub(super) waiting: bool,
}

/// Serializes admission decisions on one group across servers sharing a PostgreSQL database
/// (held until the transaction ends). SQLite needs nothing: `BEGIN IMMEDIATE` already makes
/// every writing transaction exclusive.
pub(super) async fn lock_group(
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

pub(super) async fn group_members(
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

/// Task states a cancellation leaves alone.
const FINAL_TASK_STATES: &str =
    "('succeeded', 'failed', 'upstream_failed', 'skipped', 'cancelled')";

impl SqlStore {
    pub(super) async fn admit_run(&self, run: &RunId, now: Millis) -> Result<Admitted> {
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

    pub(super) async fn runs_of_group(&self, group: &str) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE admission_group = $1 AND state IN ('queued', 'running') \
             ORDER BY id",
        )
        .bind(group)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_record).collect()
    }

    pub(super) async fn cancel_waiting_runs(&self, group: &str, at: Millis) -> Result<Vec<RunId>> {
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
            let mut b = Batch::new(self.backend);
            insert_event_rows(&mut b, &mut tx, &rows).await?;
            b.finish(&mut tx).await?;
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
}
