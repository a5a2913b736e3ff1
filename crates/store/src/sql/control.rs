//! Requests from outside a run's owner: cancel, approval decisions, and what the owner reads
//! of them; and deadline misses, recorded once.

use baton_core::ids::{RunId, TaskKey};
use sqlx::Row;

use super::{Backend, SqlStore, end_tx};
use crate::changes::Kind;
use crate::error::Result;
use crate::records::{ApprovalRecord, Control, Millis};

impl SqlStore {
    pub(super) async fn request_run_cancel(&self, run: &RunId) -> Result<()> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let result = async {
            sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1")
                .bind(run.as_str())
                .execute(&mut *tx)
                .await?;
            self.notify(&mut tx, Kind::Request, &[run]).await
        }
        .await;
        end_tx(tx, result).await?;
        self.feed.committed(Kind::Request, [run]);
        Ok(())
    }

    pub(super) async fn record_decision(
        &self,
        run: &RunId,
        key: &TaskKey,
        approved: bool,
        by: &str,
        at: Millis,
        comment: Option<&str>,
    ) -> Result<bool> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "INSERT OR IGNORE INTO approvals (run_id, task_key, decision, decided_by, decided_at, comment) \
                 VALUES ($1, $2, $3, $4, $5, $6)"
            }
            Backend::Postgres => {
                "INSERT INTO approvals (run_id, task_key, decision, decided_by, decided_at, comment) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
            }
        };
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let result = async {
            let done = sqlx::query(sql)
                .bind(run.as_str())
                .bind(key.as_str())
                .bind(if approved { "approved" } else { "rejected" })
                .bind(by)
                .bind(at)
                .bind(comment)
                .execute(&mut *tx)
                .await?;
            let first = done.rows_affected() == 1;
            if first {
                self.notify(&mut tx, Kind::Request, &[run]).await?;
            }
            Ok(first)
        }
        .await;
        let first = end_tx(tx, result).await?;
        if first {
            self.feed.committed(Kind::Request, [run]);
        }
        Ok(first)
    }

    pub(super) async fn control_of(&self, run: &RunId) -> Result<Control> {
        let cancel: Option<i64> = sqlx::query("SELECT cancel_requested FROM runs WHERE id = $1")
            .bind(run.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("cancel_requested"))
            .transpose()?;
        let rows = sqlx::query("SELECT * FROM approvals WHERE run_id = $1")
            .bind(run.as_str())
            .fetch_all(&self.pool)
            .await?;
        let approvals = rows
            .iter()
            .map(|row| {
                Ok(ApprovalRecord {
                    key: TaskKey::from_string(row.try_get::<String, _>("task_key")?),
                    approved: row.try_get::<String, _>("decision")? == "approved",
                    decided_by: row.try_get("decided_by")?,
                    decided_at: row.try_get("decided_at")?,
                    comment: row.try_get("comment")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Control {
            cancel_requested: cancel.unwrap_or(0) != 0,
            approvals,
        })
    }

    pub(super) async fn insert_deadline_miss(
        &self,
        run: &RunId,
        key: Option<&TaskKey>,
        at: Millis,
    ) -> Result<bool> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "INSERT OR IGNORE INTO deadline_misses (run_id, task_key, missed_at) \
                 VALUES ($1, $2, $3)"
            }
            Backend::Postgres => {
                "INSERT INTO deadline_misses (run_id, task_key, missed_at) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            }
        };
        // A primary key column cannot be NULL: the run's own deadline is the empty key, which
        // no task has.
        let done = sqlx::query(sql)
            .bind(run.as_str())
            .bind(key.map_or("", TaskKey::as_str))
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
