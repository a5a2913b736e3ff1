//! A new SQLite database starts as a copy of `empty.db`: every migration applied, recorded in
//! sqlx's table as its migrator records them, and the file already in WAL mode. Applying the
//! 19 migrations to a fresh home took 6 to 11 ms of a one-task `baton run` (most of it SQLite
//! compiling the schema), and switching an empty file to WAL wrote, synced and deleted a
//! rollback journal. A copy is one write, one sync of the file and one of its directory.
//!
//! The migrator still runs on every open, so a copy older than the migrations only costs the
//! ones it lacks; `tests::the_template_is_the_migrations_applied` keeps it current
//! (`BATON_BLESS=1 cargo test -p baton-store template` writes it anew).

use std::path::{Path, PathBuf};

#[cfg(test)]
use sqlx::migrate::{Migrate as _, Migrator};
#[cfg(test)]
use sqlx::{AnyConnection, Connection as _, Executor as _};

#[cfg(test)]
use super::{SQLITE_MIGRATIONS, install_drivers};

static EMPTY: &[u8] = include_bytes!("empty.db");

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates the database at `path` from the template, under another name first and renamed
/// into place once written and synced: a crash leaves only the other name, overwritten on
/// the next try, and never a partial `path`.
pub(super) async fn create(path: &Path) -> Result<(), sqlx::Error> {
    let creating = with_suffix(path, ".creating");
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let to = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::write(&creating, EMPTY)?;
        std::fs::File::open(&creating)?.sync_all()?;
        std::fs::rename(&creating, &to)?;
        std::fs::File::open(&dir)?.sync_all()
    })
    .await
    .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))??;
    Ok(())
}

#[cfg(test)]
/// Builds what `empty.db` holds at `path` (which must not exist) from the migrations: with
/// no rollback journal and no syncs, all in one script, then switched to WAL.
async fn build(path: &Path) -> Result<(), sqlx::Error> {
    install_drivers();
    let mut conn = AnyConnection::connect(&format!("sqlite://{}?mode=rwc", path.display())).await?;
    let built = async {
        conn.execute("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")
            .await?;
        conn.ensure_migrations_table(&SQLITE_MIGRATIONS.table_name)
            .await
            .map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        conn.execute(sqlx::AssertSqlSafe(all_migrations(&SQLITE_MIGRATIONS)))
            .await?;
        // Kept in the file's header: every connection opens it in WAL mode from the start.
        conn.execute("PRAGMA journal_mode = WAL").await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    let closed = conn.close().await;
    built?;
    closed
}

#[cfg(test)]
/// Every migration of `migrator` and the rows sqlx records for them (as its `apply` writes
/// them), as one script.
fn all_migrations(migrator: &Migrator) -> String {
    let mut script = String::new();
    for m in migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
    {
        script.push_str(m.sql.as_str());
        // A file may end in a comment without a newline, or without its last `;`.
        script.push_str("\n;\n");
        script.push_str(&format!(
            "INSERT INTO {} (version, description, success, checksum, execution_time) \
             VALUES ({}, '{}', TRUE, X'{}', -1);\n",
            migrator.table_name,
            m.version,
            m.description.replace('\'', "''"),
            hex::encode(&*m.checksum),
        ));
    }
    script
}

#[cfg(test)]
mod tests {
    use sqlx::Row as _;

    use super::*;

    /// What a database holds that the template must match: its schema, the migrations
    /// recorded, and its journal mode.
    async fn contents(path: &Path) -> Vec<String> {
        install_drivers();
        let mut conn = AnyConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
            .await
            .expect("open");
        let mut out = Vec::new();
        for row in sqlx::query(
            "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || COALESCE(sql, '') AS s \
             FROM sqlite_master ORDER BY type, name",
        )
        .fetch_all(&mut conn)
        .await
        .expect("schema")
        {
            out.push(row.get::<String, _>("s"));
        }
        for row in sqlx::query(
            "SELECT version || ' ' || description || ' ' || hex(checksum) || ' ' || success AS s \
             FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(&mut conn)
        .await
        .expect("migrations")
        {
            out.push(row.get::<String, _>("s"));
        }
        let mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .expect("journal mode")
            .get(0);
        out.push(format!("journal_mode {mode}"));
        out
    }

    #[tokio::test]
    async fn the_template_is_the_migrations_applied() {
        let dir = tempfile::tempdir().expect("temp dir");
        let built = dir.path().join("built.db");
        build(&built).await.expect("build from the migrations");
        let copied = dir.path().join("copied.db");
        create(&copied).await.expect("create from the template");
        let (want, got) = (contents(&built).await, contents(&copied).await);
        if want != got && std::env::var_os("BATON_BLESS").is_some() {
            let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sql/connect/empty.db");
            std::fs::copy(&built, &target).expect("write the template");
            return;
        }
        assert_eq!(
            want, got,
            "`empty.db` is not the migrations applied: \
             `BATON_BLESS=1 cargo test -p baton-store template` writes it anew"
        );
        assert!(
            want.last().is_some_and(|m| m == "journal_mode wal"),
            "{want:?}"
        );
    }

    #[tokio::test]
    async fn a_crash_while_creating_leaves_no_database_and_the_next_try_succeeds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("baton.db");
        std::fs::write(with_suffix(&path, ".creating"), b"torn").expect("leftover");
        create(&path).await.expect("create over a leftover");
        assert_eq!(std::fs::read(&path).expect("read"), EMPTY);
        assert!(!with_suffix(&path, ".creating").exists());
    }
}
