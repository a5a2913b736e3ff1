//! Backfills: many runs of one pipeline created in one transaction, admitted as one group.

use baton_core::ids::{BackfillId, RunId};
use baton_core::state::RunState;
use sqlx::Row;

use super::batch::Batch;
use super::definitions::insert_definition;
use super::events::{PendingEvent, insert_event_rows};
use super::rows::{backfill_record, state};
use super::runs::{insert_run_rows, run_created_event};
use super::tasks::insert_task_rows;
use super::{SqlStore, end_tx};
use crate::changes::Kind;
use crate::error::Result;
use crate::records::{BackfillFilter, BackfillRecord, DefinitionRecord, Millis, NewRun, NewTask};

impl SqlStore {
    pub(super) async fn insert_backfill(
        &self,
        backfill: &BackfillRecord,
        runs: &[NewRun],
    ) -> Result<BackfillId> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let result = async {
            if let Some(key) = &backfill.idempotency_key {
                let existing = sqlx::query("SELECT id FROM backfills WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(row) = existing {
                    return Ok(BackfillId::from_string(row.try_get::<String, _>("id")?));
                }
            }
            let mut definitions: Vec<&DefinitionRecord> = Vec::new();
            for run in runs {
                if !definitions.iter().any(|d| d.hash == run.definition.hash) {
                    definitions.push(&run.definition);
                }
            }
            for d in definitions {
                insert_definition(&mut tx, self.backend, d, backfill.created_at).await?;
            }
            sqlx::query(
                "INSERT INTO backfills (id, namespace, pipeline, version, schedule, range_start, \
             range_end, parallelism, params, runs, idempotency_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(backfill.id.as_str())
            .bind(&backfill.namespace)
            .bind(&backfill.pipeline)
            .bind(&backfill.version)
            .bind(i64::from(backfill.schedule))
            .bind(&backfill.start)
            .bind(&backfill.end)
            .bind(i64::from(backfill.parallelism))
            .bind(backfill.params.to_string())
            .bind(i64::try_from(runs.len()).unwrap_or(i64::MAX))
            .bind(backfill.idempotency_key.as_deref())
            .bind(backfill.created_at)
            .execute(&mut *tx)
            .await?;
            // The group is new: its first runs (up to each one's limit) are admitted at once.
            let rows: Vec<(&NewRun, Option<Millis>)> = runs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let limit = r.admission.as_ref().map_or(usize::MAX, |a| {
                        usize::try_from(a.limit.max(1)).unwrap_or(usize::MAX)
                    });
                    (r, (i < limit).then_some(r.created_at))
                })
                .collect();
            insert_run_rows(&mut tx, &rows).await?;
            let tasks: Vec<(&RunId, &NewTask)> = runs
                .iter()
                .flat_map(|r| r.tasks.iter().map(move |t| (&r.id, t)))
                .collect();
            let mut b = Batch::new(self.backend);
            insert_task_rows(&mut b, &mut tx, &tasks).await?;
            let events: Vec<PendingEvent> = runs.iter().map(run_created_event).collect();
            let rows: Vec<(&RunId, &PendingEvent)> =
                runs.iter().map(|r| &r.id).zip(&events).collect();
            insert_event_rows(&mut b, &mut tx, &rows).await?;
            b.finish(&mut tx).await?;
            let ids: Vec<&RunId> = runs.iter().map(|r| &r.id).collect();
            self.notify(&mut tx, Kind::State, &ids).await?;
            Ok(backfill.id.clone())
        }
        .await;
        let id = end_tx(tx, result).await?;
        // An existing backfill (same idempotency key) created nothing now: announcing its runs
        // costs a needless read at most.
        self.feed.committed(Kind::State, runs.iter().map(|r| &r.id));
        Ok(id)
    }

    pub(super) async fn backfill_by_id(&self, id: &BackfillId) -> Result<Option<BackfillRecord>> {
        sqlx::query("SELECT * FROM backfills WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(backfill_record)
            .transpose()
    }

    pub(super) async fn list_backfills(
        &self,
        filter: &BackfillFilter,
    ) -> Result<Vec<BackfillRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM backfills WHERE ($1 IS NULL OR namespace = $1) \
             AND ($2 IS NULL OR pipeline = $2) AND ($3 IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4",
        )
        .bind(filter.namespace.as_deref())
        .bind(filter.pipeline.as_deref())
        .bind(filter.before.as_deref())
        .bind(i64::from(if filter.limit == 0 { 20 } else { filter.limit }))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(backfill_record).collect()
    }

    pub(super) async fn backfill_state_counts(
        &self,
        id: &BackfillId,
    ) -> Result<Vec<(RunState, u64)>> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM runs WHERE backfill_id = $1 GROUP BY state \
             ORDER BY state",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    state(row, "state", RunState::from_name)?,
                    u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0),
                ))
            })
            .collect()
    }
}
