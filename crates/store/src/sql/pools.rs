//! Pools and their slots. A slot is a row of `pool_claims`; whether it counts is decided by
//! the run's lease (same owner, not expired), so coordination across processes and replicas
//! is the database's: no process keeps a count of its own.

use baton_core::ids::{RunId, TaskKey};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::batch::Batch;
use super::rows::to_u32;
use super::{Backend, SqlStore, end_tx};
use crate::error::Result;
use crate::lease::Lease;
use crate::records::{Millis, PoolRecord, SlotClaim};

/// Claim `c` counts: its run's lease is held by the claim's owner and unexpired at `$1`.
const LIVE: &str = "EXISTS (SELECT 1 FROM runs r WHERE r.id = c.run_id \
     AND r.lease_owner = c.owner AND r.lease_expires_at >= $1)";

fn pool_record(row: &AnyRow) -> Result<PoolRecord> {
    Ok(PoolRecord {
        name: row.try_get("name")?,
        slots: to_u32(row.try_get("slots")?),
        description: row.try_get("description")?,
        used: to_u32(row.try_get("used")?),
        waiting: to_u32(row.try_get("waiting")?),
    })
}

/// Pools with their counts; `$1` is now, `$2` a name or NULL for all.
fn pools_sql() -> String {
    format!(
        "SELECT p.name, p.slots, p.description, \
         (SELECT COUNT(*) FROM pool_claims c WHERE c.pool = p.name AND c.held = 1 AND {LIVE}) \
         AS used, \
         (SELECT COUNT(*) FROM pool_claims c WHERE c.pool = p.name AND c.held = 0 AND {LIVE}) \
         AS waiting \
         FROM pools p WHERE ($2 IS NULL OR p.name = $2) ORDER BY p.name"
    )
}

/// The runs a store handle claimed slots for: [`crate::Store::apply`] looks for claims to
/// release only in those, so runs without pools pay nothing. Only the claims of a run's
/// lease owner count, and the owner claims through the handle it commits with, so a claim
/// this set misses (a predecessor's) counts for nobody anyway.
#[derive(Debug, Clone, Default)]
pub(super) struct Claimed(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

impl Claimed {
    pub(super) fn has(&self, run: &RunId) -> bool {
        self.0.lock().is_ok_and(|set| set.contains(run.as_str()))
    }

    fn add(&self, run: &RunId) {
        if let Ok(mut set) = self.0.lock() {
            set.insert(run.as_str().to_owned());
        }
    }

    pub(super) fn forget(&self, run: &RunId) {
        if let Ok(mut set) = self.0.lock() {
            set.remove(run.as_str());
        }
    }
}

impl SqlStore {
    pub(super) async fn pools_at(
        &self,
        now: Millis,
        name: Option<&str>,
    ) -> Result<Vec<PoolRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(pools_sql()))
            .bind(now)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(pool_record).collect()
    }

    pub(super) async fn put_pool_row(
        &self,
        name: &str,
        slots: u32,
        description: Option<&str>,
        at: Millis,
    ) -> Result<PoolRecord> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        // Read back in the same transaction, which holds the row: a delete that comes right
        // after waits for it, so the answer is the pool as set, never "no such pool".
        let result = async {
            sqlx::query(
                "INSERT INTO pools (name, slots, description, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, \
                 description = COALESCE(excluded.description, pools.description), \
                 updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(i64::from(slots))
            .bind(description)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(sqlx::AssertSqlSafe(pools_sql()))
                .bind(at)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
            pool_record(&row)
        }
        .await;
        end_tx(tx, result).await
    }

    pub(super) async fn delete_pool_row(&self, name: &str) -> Result<bool> {
        let mut writer = self.writer.lock().await;
        let done = sqlx::query("DELETE FROM pools WHERE name = $1")
            .bind(name)
            .execute(&mut **writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn claim(
        &self,
        pool: &str,
        run: &RunId,
        key: &TaskKey,
        priority: i32,
        lease: &Lease,
        now: Millis,
    ) -> Result<SlotClaim> {
        let owner = lease.owner.as_str();
        // Before the claim exists, so no commit of the run can miss it.
        self.claimed.add(run);
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let result = async {
            super::lease::fence(&mut tx, run, lease).await?;
            // PostgreSQL: claimers of one pool take turns on its row, so two of them never
            // both see the last free slot, nor the same place among the waiters. SQLite's
            // `BEGIN IMMEDIATE` already lets one writer in at a time.
            let lock = match self.backend {
                Backend::Postgres => "SELECT slots FROM pools WHERE name = $1 FOR UPDATE",
                Backend::Sqlite => "SELECT slots FROM pools WHERE name = $1",
            };
            let Some(row) = sqlx::query(lock)
                .bind(pool)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Ok(SlotClaim::NoPool);
            };
            let slots: i64 = row.try_get("slots")?;
            // Claims that no longer count (their run's owner changed or its lease expired) go.
            sqlx::query(
                "DELETE FROM pool_claims WHERE pool = $2 AND NOT EXISTS (SELECT 1 FROM runs r \
                 WHERE r.id = pool_claims.run_id AND r.lease_owner = pool_claims.owner \
                 AND r.lease_expires_at >= $1)",
            )
            .bind(now)
            .bind(pool)
            .execute(&mut *tx)
            .await?;
            let sql = format!(
                "SELECT c.owner, c.run_id, c.task_key FROM pool_claims c \
                 WHERE c.pool = $2 AND c.held = 1 AND {LIVE}"
            );
            let holders = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(pool)
                .fetch_all(&mut *tx)
                .await?;
            let mut owners: Vec<String> = Vec::new();
            let mut taken: i64 = 0;
            for h in &holders {
                let (run_id, task_key): (String, String) =
                    (h.try_get("run_id")?, h.try_get("task_key")?);
                if run_id == run.as_str() && task_key == key.as_str() {
                    // Held already (asked again after a commit failed, say).
                    return Ok(SlotClaim::Held);
                }
                taken += 1;
                let owner: String = h.try_get("owner")?;
                if !owners.contains(&owner) {
                    owners.push(owner);
                }
            }
            // A waiter keeps its place (`since`) while it keeps waiting for this owner.
            let since: Millis = sqlx::query(
                "SELECT since FROM pool_claims WHERE run_id = $1 AND task_key = $2 \
                 AND pool = $3 AND owner = $4 AND held = 0",
            )
            .bind(run.as_str())
            .bind(key.as_str())
            .bind(pool)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("since"))
            .transpose()?
            .unwrap_or(now);
            let held = taken < slots
                && ahead(&mut tx, pool, run, priority, since, now).await? < slots - taken;
            sqlx::query(
                "INSERT INTO pool_claims \
                 (run_id, task_key, pool, owner, held, since, priority, asked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id, task_key) DO UPDATE \
                 SET since = excluded.since, pool = excluded.pool, owner = excluded.owner, \
                 held = excluded.held, priority = excluded.priority, asked_at = excluded.asked_at",
            )
            .bind(run.as_str())
            .bind(key.as_str())
            .bind(pool)
            .bind(owner)
            .bind(i64::from(held))
            .bind(if held { now } else { since })
            .bind(i64::from(priority))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(if held {
                SlotClaim::Held
            } else {
                SlotClaim::Full { holders: owners }
            })
        }
        .await;
        end_tx(tx, result).await
    }

    pub(super) async fn drop_owner_claims(&self, owner: &str) -> Result<u64> {
        let mut writer = self.writer.lock().await;
        let done = sqlx::query("DELETE FROM pool_claims WHERE owner = $1")
            .bind(owner)
            .execute(&mut **writer)
            .await?;
        Ok(done.rows_affected())
    }
}

/// How long a waiter counts without asking again. Dispatchers ask every few hundred
/// milliseconds while they wait; a run that stops asking (it drains, or runs as many tasks as
/// its parallelism allows) keeps its claim but lets the slot go to the next waiter.
const WAITER_COUNTS_FOR: Millis = 3_000;

/// How many waiters of `pool` a freed slot goes to before a task of `run` that has waited
/// since `since` with `priority`: the live ones of other runs that asked lately, of higher
/// priority or waiting longer (runs' ids break ties). A run's own waiters are not counted: its
/// dispatcher asks for its tasks in its own order, and would otherwise stall behind one it
/// does not ask for yet.
async fn ahead(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    pool: &str,
    run: &RunId,
    priority: i32,
    since: Millis,
    now: Millis,
) -> Result<i64> {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM pool_claims c WHERE c.pool = $2 AND c.held = 0 \
         AND c.run_id <> $3 AND c.asked_at >= $6 AND {LIVE} \
         AND (c.priority > $4 OR (c.priority = $4 AND (c.since < $5 \
         OR (c.since = $5 AND c.run_id < $3))))"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(pool)
        .bind(run.as_str())
        .bind(i64::from(priority))
        .bind(since)
        .bind(now.saturating_sub(WAITER_COUNTS_FOR))
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("n")?)
}

/// Releases the claims of `keys` of `run` inside a commit of [`crate::Store::apply`].
pub(super) async fn release(
    b: &mut Batch,
    conn: &mut sqlx::AnyConnection,
    run: &RunId,
    keys: &[TaskKey],
) -> Result<()> {
    for chunk in keys.chunks(super::tasks::TASK_ROWS_PER_INSERT) {
        let list = super::placeholders(chunk.len(), 1, 2).replace(['(', ')'], "");
        b.sql(&format!(
            "DELETE FROM pool_claims WHERE run_id = $1 AND task_key IN ({list})"
        ))
        .bind(run.as_str());
        for k in chunk {
            b.bind(k.as_str().to_owned());
        }
        b.end(conn).await?;
    }
    Ok(())
}

/// Releases every claim of `run` (it ended).
pub(super) async fn release_run(
    b: &mut Batch,
    conn: &mut sqlx::AnyConnection,
    run: &RunId,
) -> Result<()> {
    b.sql("DELETE FROM pool_claims WHERE run_id = $1")
        .bind(run.as_str());
    b.end(conn).await
}
