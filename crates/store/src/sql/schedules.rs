//! Schedules' last ticks (moved forward by compare-and-set) and paused pipelines.

use sqlx::Row;

use super::{Backend, SqlStore};
use crate::error::Result;
use crate::records::Millis;

impl SqlStore {
    pub(super) async fn schedule_last_tick(
        &self,
        namespace: &str,
        pipeline: &str,
        schedule: &str,
    ) -> Result<Option<Millis>> {
        let row = sqlx::query(
            "SELECT last_tick FROM schedule_ticks WHERE namespace = $1 AND pipeline = $2 AND schedule = $3",
        )
        .bind(namespace)
        .bind(pipeline)
        .bind(schedule)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("last_tick")).transpose()?)
    }

    pub(super) async fn advance_schedule_tick(
        &self,
        namespace: &str,
        pipeline: &str,
        schedule: &str,
        from: Option<Millis>,
        to: Millis,
    ) -> Result<bool> {
        let done = match from {
            None => {
                let sql = match self.backend {
                    Backend::Sqlite => {
                        "INSERT OR IGNORE INTO schedule_ticks (namespace, pipeline, schedule, last_tick) \
                         VALUES ($1, $2, $3, $4)"
                    }
                    Backend::Postgres => {
                        "INSERT INTO schedule_ticks (namespace, pipeline, schedule, last_tick) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
                    }
                };
                sqlx::query(sql)
                    .bind(namespace)
                    .bind(pipeline)
                    .bind(schedule)
                    .bind(to)
                    .execute(&self.pool)
                    .await?
            }
            Some(from) => sqlx::query(
                "UPDATE schedule_ticks SET last_tick = $1 WHERE namespace = $2 AND pipeline = $3 \
                     AND schedule = $4 AND last_tick = $5",
            )
            .bind(to)
            .bind(namespace)
            .bind(pipeline)
            .bind(schedule)
            .bind(from)
            .execute(&self.pool)
            .await?,
        };
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn set_pipeline_paused(
        &self,
        namespace: &str,
        pipeline: &str,
        paused: bool,
        by: &str,
        at: Millis,
    ) -> Result<bool> {
        let done = if paused {
            let sql = match self.backend {
                Backend::Sqlite => {
                    "INSERT OR IGNORE INTO paused_pipelines (namespace, pipeline, paused_at, paused_by) \
                     VALUES ($1, $2, $3, $4)"
                }
                Backend::Postgres => {
                    "INSERT INTO paused_pipelines (namespace, pipeline, paused_at, paused_by) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
                }
            };
            sqlx::query(sql)
                .bind(namespace)
                .bind(pipeline)
                .bind(at)
                .bind(by)
                .execute(&self.pool)
                .await?
        } else {
            sqlx::query("DELETE FROM paused_pipelines WHERE namespace = $1 AND pipeline = $2")
                .bind(namespace)
                .bind(pipeline)
                .execute(&self.pool)
                .await?
        };
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn pipeline_paused(&self, namespace: &str, pipeline: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM paused_pipelines WHERE namespace = $1 AND pipeline = $2",
        )
        .bind(namespace)
        .bind(pipeline)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    pub(super) async fn paused_pipeline_rows(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT namespace, pipeline FROM paused_pipelines ORDER BY namespace, pipeline",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("namespace")?, row.try_get("pipeline")?)))
            .collect()
    }
}
