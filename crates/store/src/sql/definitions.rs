//! Pipeline definitions: the text a run is pinned to, and a pipeline's versions.

use sqlx::Row;

use super::{Backend, SqlStore};
use crate::error::Result;
use crate::records::{DefinitionRecord, Millis, VersionRecord};

pub(super) async fn insert_definition(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    d: &DefinitionRecord,
    at: Millis,
) -> Result<()> {
    let sql = match backend {
        Backend::Sqlite => {
            "INSERT OR IGNORE INTO definitions (hash, namespace, name, source, path, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        }
        Backend::Postgres => {
            "INSERT INTO definitions (hash, namespace, name, source, path, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING"
        }
    };
    sqlx::query(sql)
        .bind(&d.hash)
        .bind(&d.namespace)
        .bind(&d.name)
        .bind(&d.source)
        .bind(d.path.as_deref())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl SqlStore {
    pub(super) async fn definition_by_hash(&self, hash: &str) -> Result<Option<DefinitionRecord>> {
        self.read_lost()?;
        let row = sqlx::query(
            "SELECT hash, namespace, name, source, path FROM definitions WHERE hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| -> Result<DefinitionRecord> {
            Ok(DefinitionRecord {
                hash: row.try_get("hash")?,
                namespace: row.try_get("namespace")?,
                name: row.try_get("name")?,
                source: row.try_get("source")?,
                path: row.try_get("path")?,
            })
        })
        .transpose()
    }

    pub(super) async fn put_definition_row(
        &self,
        definition: &DefinitionRecord,
        at: Millis,
    ) -> Result<()> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        insert_definition(&mut tx, self.backend, definition, at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn definition_versions(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(
            "SELECT hash, path, created_at FROM definitions WHERE namespace = $1 AND name = $2 \
             ORDER BY created_at DESC, hash",
        )
        .bind(namespace)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(VersionRecord {
                    hash: row.try_get("hash")?,
                    path: row.try_get("path")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}
