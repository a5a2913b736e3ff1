//! Cached task results (`cache:`), found by pipeline, task id and the hash of the key.

use baton_core::ids::{RunId, TaskKey};
use sqlx::Row;

use super::SqlStore;
use super::rows::json_col;
use crate::error::Result;
use crate::records::{CacheEntry, CacheSource, Millis};

/// A cache entry's identity within its task: keys may be longer than an index entry can be.
pub(super) fn key_hash(cache_key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(cache_key.as_bytes()))
}

impl SqlStore {
    pub(super) async fn cache_lookup(
        &self,
        namespace: &str,
        pipeline: &str,
        task_id: &str,
        cache_key: &str,
        not_before: Option<Millis>,
    ) -> Result<Option<CacheEntry>> {
        self.read_lost()?;
        let row = sqlx::query(
            "SELECT run_id, task_key, outputs, created_at FROM task_cache \
             WHERE namespace = $1 AND pipeline = $2 AND task_id = $3 AND key_hash = $4 \
             AND created_at >= $5",
        )
        .bind(namespace)
        .bind(pipeline)
        .bind(task_id)
        .bind(key_hash(cache_key))
        .bind(not_before.unwrap_or(i64::MIN))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| -> Result<CacheEntry> {
            let outputs = match json_col(&row, "outputs")? {
                Some(serde_json::Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            };
            Ok(CacheEntry {
                source: CacheSource {
                    run: RunId::from_string(row.try_get::<String, _>("run_id")?),
                    task: TaskKey::from_string(row.try_get::<String, _>("task_key")?),
                },
                outputs,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }
}
