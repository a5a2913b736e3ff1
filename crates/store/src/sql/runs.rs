//! Creating runs and reading them.

use baton_core::ids::RunId;
use baton_core::spec::Overlap;
use baton_core::state::RunState;
use sqlx::Row;

use super::admission::{group_members, lock_group};
use super::batch::Batch;
use super::definitions::insert_definition;
use super::events::{PendingEvent, insert_events};
use super::rows::{run_brief, run_record};
use super::tasks::insert_tasks;
use super::{SqlStore, end_tx, placeholders};
use crate::changes::Kind;
use crate::error::{Error, Result};
use crate::records::{Millis, NewRun, RunBrief, RunFilter, RunRecord};

/// Rows per multi-row INSERT of runs (19 parameters each).
pub(super) const RUN_ROWS_PER_INSERT: usize = 100;

/// Inserts runs (not their tasks), each admitted at the given time or, with `None` and a
/// group, waiting for admission.
pub(super) async fn insert_run_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[(&NewRun, Option<Millis>)],
) -> Result<()> {
    for chunk in rows.chunks(RUN_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO runs (id, namespace, pipeline, version, state, params, trigger_kind, \
             logical_date, base_dir, idempotency_key, created_at, admission_group, \
             admission_limit, admitted_at, backfill_id, no_cache, parent_run_id, \
             parent_task_key, parent_attempt) VALUES {}",
            placeholders(chunk.len(), 19, 1)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (run, admitted_at) in chunk {
            let d = &run.definition;
            q = q
                .bind(run.id.as_str().to_owned())
                .bind(d.namespace.clone())
                .bind(d.name.clone())
                .bind(d.hash.clone())
                .bind(RunState::Queued.as_str())
                .bind(run.params.to_string())
                .bind(run.trigger.clone())
                .bind(run.logical_date.clone())
                .bind(run.base_dir.clone())
                .bind(run.idempotency_key.clone())
                .bind(run.created_at)
                .bind(run.admission.as_ref().map(|a| a.group.clone()))
                .bind(run.admission.as_ref().map(|a| i64::from(a.limit)))
                .bind(*admitted_at)
                .bind(run.backfill_id.as_ref().map(|b| b.as_str().to_owned()))
                .bind(i64::from(run.no_cache))
                .bind(run.parent.as_ref().map(|p| p.run.as_str().to_owned()))
                .bind(run.parent.as_ref().map(|p| p.task.as_str().to_owned()))
                .bind(run.parent.as_ref().map(|p| i64::from(p.attempt)));
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

pub(super) fn run_created_event(run: &NewRun) -> PendingEvent {
    let d = &run.definition;
    let data = serde_json::json!({
        "pipeline": format!("{}/{}", d.namespace, d.name),
        "version": d.hash,
        "params": run.params,
        "trigger": run.trigger,
    });
    PendingEvent::new(run.created_at, "run_created", None, None, data)
}

impl SqlStore {
    /// `create_run` inside its transaction (which the caller commits or rolls back); adds the
    /// runs it asked to cancel to `cancelled`.
    async fn create_run_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run: &NewRun,
        cancelled: &mut Vec<RunId>,
    ) -> Result<RunId> {
        if let Some(key) = &run.idempotency_key {
            let existing =
                sqlx::query("SELECT id, namespace, pipeline FROM runs WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_optional(&mut **tx)
                    .await?;
            if let Some(row) = existing {
                let same = row.try_get::<String, _>("namespace")? == run.definition.namespace
                    && row.try_get::<String, _>("pipeline")? == run.definition.name;
                if !same {
                    return Err(Error::IdempotencyConflict(key.clone()));
                }
                return Ok(RunId::from_string(row.try_get::<String, _>("id")?));
            }
        }
        let admitted_at = match &run.admission {
            None => None,
            Some(a) => {
                lock_group(tx, self.backend, &a.group).await?;
                let members = group_members(tx, &a.group).await?;
                let active: Vec<&RunId> =
                    members.iter().filter(|m| m.active).map(|m| &m.id).collect();
                let waiting: Vec<&RunId> = members
                    .iter()
                    .filter(|m| m.waiting)
                    .map(|m| &m.id)
                    .collect();
                let limit = usize::try_from(a.limit.max(1)).unwrap_or(usize::MAX);
                if active.len() < limit && waiting.is_empty() {
                    Some(run.created_at)
                } else {
                    match a.overlap {
                        Overlap::Skip => {
                            return Err(Error::Skipped {
                                group: a.group.clone(),
                                active: active.into_iter().chain(waiting).cloned().collect(),
                            });
                        }
                        Overlap::Queue => None,
                        Overlap::CancelPrevious => {
                            // Everyone in line, and the oldest active runs until one slot is
                            // free for this run once they have stopped.
                            let excess = (active.len() + 1).saturating_sub(limit);
                            for id in waiting.into_iter().chain(active.into_iter().take(excess)) {
                                sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1")
                                    .bind(id.as_str())
                                    .execute(&mut **tx)
                                    .await?;
                                cancelled.push(id.clone());
                            }
                            None
                        }
                    }
                }
            }
        };
        insert_definition(tx, self.backend, &run.definition, run.created_at).await?;
        insert_run_rows(tx, &[(run, admitted_at)]).await?;
        let mut b = Batch::new(self.backend);
        insert_tasks(&mut b, tx, &run.id, &run.tasks).await?;
        insert_events(&mut b, tx, &run.id, &[run_created_event(run)]).await?;
        b.finish(tx).await?;
        self.notify(tx, Kind::Request, &cancelled.iter().collect::<Vec<_>>())
            .await?;
        self.notify(tx, Kind::State, &[&run.id]).await?;
        Ok(run.id.clone())
    }

    pub(super) async fn insert_run(&self, run: &NewRun) -> Result<RunId> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let mut cancelled = Vec::new();
        let result = self.create_run_in(&mut tx, run, &mut cancelled).await;
        let id = end_tx(tx, result).await?;
        self.feed.committed(Kind::Request, &cancelled);
        self.feed.committed(Kind::State, [&id]);
        Ok(id)
    }

    pub(super) async fn run_by_id(&self, id: &RunId) -> Result<Option<RunRecord>> {
        self.read_lost()?;
        sqlx::query("SELECT * FROM runs WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(run_record)
            .transpose()
    }

    pub(super) async fn resolve_prefix(&self, prefix: &str) -> Result<RunId> {
        let pattern = format!("{}%", prefix.replace(['%', '_'], ""));
        let rows = sqlx::query("SELECT id FROM runs WHERE id LIKE $1 ORDER BY id LIMIT 2")
            .bind(&pattern)
            .fetch_all(&self.pool)
            .await?;
        match rows.as_slice() {
            [] => Err(Error::RunNotFound(prefix.to_owned())),
            [one] => Ok(RunId::from_string(one.try_get::<String, _>("id")?)),
            _ => {
                let exact = rows
                    .iter()
                    .filter_map(|r| r.try_get::<String, _>("id").ok())
                    .find(|id| id == prefix);
                match exact {
                    Some(id) => Ok(RunId::from_string(id)),
                    None => {
                        let count: i64 =
                            sqlx::query("SELECT COUNT(*) AS n FROM runs WHERE id LIKE $1")
                                .bind(&pattern)
                                .fetch_one(&self.pool)
                                .await?
                                .try_get("n")?;
                        Err(Error::AmbiguousRun {
                            prefix: prefix.to_owned(),
                            count: usize::try_from(count).unwrap_or(usize::MAX),
                        })
                    }
                }
            }
        }
    }

    pub(super) async fn children_of(&self, parent: &RunId) -> Result<Vec<RunRecord>> {
        sqlx::query("SELECT * FROM runs WHERE parent_run_id = $1 ORDER BY id")
            .bind(parent.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(run_record)
            .collect()
    }

    pub(super) async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        // Following completions reads oldest finish first; every other listing newest first.
        let order = if filter.finished_after.is_some() {
            "finished_at, id"
        } else {
            "id DESC"
        };
        let (finished_at, finished_id) = filter
            .finished_after
            .as_ref()
            .map_or((None, None), |(at, id)| (Some(*at), Some(id.as_str())));
        let sql = format!(
            "SELECT * FROM runs WHERE ($1 IS NULL OR namespace = $1) AND ($2 IS NULL OR pipeline = $2) \
             AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR id < $4) \
             AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) \
             AND ($7 IS NULL OR finished_at > $7 OR (finished_at = $7 AND id > $8)) \
             ORDER BY {order} LIMIT $9"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.namespace.as_deref())
            .bind(filter.pipeline.as_deref())
            .bind(filter.state.map(|s| s.as_str()))
            .bind(filter.before.as_deref())
            .bind(filter.created_after)
            .bind(filter.created_before)
            .bind(finished_at)
            .bind(finished_id)
            .bind(i64::from(if filter.limit == 0 { 20 } else { filter.limit }))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(run_record).collect()
    }

    pub(super) async fn latest_per_pipeline(&self, per_pipeline: u32) -> Result<Vec<RunBrief>> {
        // Run ids sort by creation, so the window's order is the newest first.
        let rows = sqlx::query(
            "SELECT id, namespace, pipeline, state, created_at, started_at, finished_at FROM \
             (SELECT id, namespace, pipeline, state, created_at, started_at, finished_at, \
             ROW_NUMBER() OVER (PARTITION BY namespace, pipeline ORDER BY id DESC) AS rn \
             FROM runs) latest WHERE rn <= $1 ORDER BY namespace, pipeline, id DESC",
        )
        .bind(i64::from(per_pipeline))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_brief).collect()
    }

    pub(super) async fn briefs_finished_since(&self, since: Millis) -> Result<Vec<RunBrief>> {
        let rows = sqlx::query(
            "SELECT id, namespace, pipeline, state, created_at, started_at, finished_at \
             FROM runs WHERE finished_at >= $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_brief).collect()
    }
}
