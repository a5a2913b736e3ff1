//! [`crate::Store`] over sqlx's `Any` driver: one implementation for SQLite (embedded default)
//! and PostgreSQL, with a migration folder for each.
//!
//! This file holds the store and what its concept files share (the writer transaction,
//! notifications, test hooks, placeholders); `store_impl.rs` holds `impl Store`, whose methods
//! hand each call to the concept file of `sql/` that answers it.

use baton_core::ids::RunId;
use sqlx::AnyPool;

use crate::changes::{CHANNEL, ChangeFeed, Kind, ListenerGuard};
use crate::error::Result;

mod admission;
mod apply;
mod artifacts;
mod backfills;
mod batch;
mod cache;
mod connect;
mod control;
mod dead_letters;
mod definitions;
mod events;
mod lease;
mod logs;
mod pools;
mod reads;
mod rows;
mod runs;
mod schedules;
mod store_impl;
mod takeover;
mod task_pages;
mod tasks;

pub(crate) use connect::connection_lost;
pub use logs::DatabaseLogStore;

/// The embedded database's file in a home.
pub(crate) const HOME_DATABASE: &str = "baton.db";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    /// Writes go through one connection held for the store's life: the engine commits once
    /// per step of every run, and taking a connection from the pool each time costs as much
    /// as a statement. Replaced when it breaks (see [`connect::Writer`]).
    writer: std::sync::Arc<connect::Writer>,
    backend: Backend,
    /// Runs this handle claimed pool slots for.
    claimed: pools::Claimed,
    feed: ChangeFeed,
    /// PostgreSQL: the listener that brings other processes' commits into `feed`.
    _listener: Option<std::sync::Arc<ListenerGuard>>,
    /// See [`SqlStore::lose_commit_acks`].
    lost_acks: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// See [`SqlStore::lose_reads`].
    lost_reads: std::sync::Arc<std::sync::atomic::AtomicU32>,
    read_count: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl SqlStore {
    /// Starts a transaction that will write. SQLite needs `BEGIN IMMEDIATE`: a transaction that
    /// reads first and writes later fails at once (busy, without waiting) when another
    /// connection wrote in between.
    async fn begin_write<'c>(
        &self,
        conn: &'c mut sqlx::pool::PoolConnection<sqlx::Any>,
    ) -> Result<sqlx::Transaction<'c, sqlx::Any>> {
        let tx = match self.backend {
            Backend::Sqlite => sqlx::Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE").await?,
            Backend::Postgres => sqlx::Connection::begin(&mut **conn).await?,
        };
        Ok(tx)
    }

    /// Tells other processes (their listeners) that `runs` changed, when `tx` commits:
    /// PostgreSQL delivers a notification only then, and drops it with a rollback. SQLite has
    /// no notifications; other processes on a SQLite home see changes by reading.
    async fn notify(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        kind: Kind,
        runs: &[&RunId],
    ) -> Result<()> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        for chunk in runs.chunks(runs::RUN_ROWS_PER_INSERT) {
            // Selected through a subquery: `pg_notify` returns `void`, which sqlx's `Any`
            // driver cannot decode (a volatile call is evaluated all the same).
            let sql = format!(
                "SELECT 1 AS n FROM (SELECT pg_notify('{CHANNEL}', v) FROM (VALUES {}) AS t(v)) AS x",
                placeholders(chunk.len(), 1, 1)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for run in chunk {
                q = q.bind(format!("{run} {} {}", self.feed.origin(), kind.letter()));
            }
            q.fetch_all(&mut **tx).await?;
        }
        Ok(())
    }

    /// For tests: the next `n` commits of [`crate::Store::apply`] land but report a lost connection,
    /// as when the database committed and its answer never came back (the network dropped,
    /// the server was killed right then). Whoever retries such a commit must not apply it twice.
    #[doc(hidden)]
    pub fn lose_commit_acks(&self, n: u32) {
        self.lost_acks.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// For tests: a commit that takes `run`'s row lock, as every owner's commit does, then
    /// stalls for `stall` before committing, as a process frozen or cut off in the middle of a
    /// commit would. Returns how the commit ended.
    #[doc(hidden)]
    pub async fn stall_in_commit(&self, run: &RunId, stall: std::time::Duration) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE runs SET commit_seq = commit_seq WHERE id = $1")
            .bind(run.as_str())
            .execute(&mut *tx)
            .await?;
        tokio::time::sleep(stall).await;
        tx.commit().await?;
        Ok(())
    }

    /// For tests: of the next reads a dispatcher makes of a run (its record, definition,
    /// tasks, attempts, cached results), every other one fails as if the connection had
    /// dropped (a PostgreSQL restart), `n` in all, so that each read fails once and its retry
    /// works.
    #[doc(hidden)]
    pub fn lose_reads(&self, n: u32) {
        self.lost_reads
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    fn ack_lost(&self) -> bool {
        take_one(&self.lost_acks)
    }

    fn read_lost(&self) -> Result<()> {
        // Every read passes here: one plain load when the hook is off, as it is outside tests.
        if self.lost_reads.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return Ok(());
        }
        // Alternate: the read after a lost one (its retry) goes through.
        let ordinal = self
            .read_count
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if ordinal.is_multiple_of(2) && take_one(&self.lost_reads) {
            return Err(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()).into());
        }
        Ok(())
    }

    /// Drops every table (PostgreSQL: recreates the `public` schema), for tests that need an
    /// empty database on a shared server.
    pub async fn reset_for_tests(&self) -> Result<()> {
        match self.backend {
            Backend::Postgres => {
                sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
                    .execute(&self.pool)
                    .await?;
            }
            Backend::Sqlite => {
                for table in [
                    "events",
                    "approvals",
                    "attempts",
                    "tasks",
                    "runs",
                    "definitions",
                    "_sqlx_migrations",
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
                        .execute(&self.pool)
                        .await?;
                }
            }
        }
        Ok(())
    }
}

/// `($1, $2, $3), ($4, $5, $6)` for `rows` rows of `columns` parameters, numbered from
/// `first`.
fn placeholders(rows: usize, columns: usize, first: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (0..columns)
                .map(|c| format!("${}", first + r * columns + c))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Takes one from a test hook's count, if any is left.
fn take_one(count: &std::sync::atomic::AtomicU32) -> bool {
    count
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        )
        .is_ok()
}

/// Ends a transaction by its outcome. Returning early (an error, or an answer found before
/// any write) must not leave it open: a dropped transaction is rolled back only when its
/// connection is next used, and the writer connection can sit idle holding locks meanwhile
/// (on PostgreSQL, the group lock other servers wait for).
async fn end_tx<T>(tx: sqlx::Transaction<'_, sqlx::Any>, result: Result<T>) -> Result<T> {
    match result {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}
