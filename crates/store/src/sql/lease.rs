//! Run leases and the fence every write of a run's owner passes: the lease it names (owner
//! and epoch) must still be the run's, checked in the write's own transaction.

use baton_core::ids::{LeaseOwner, RunId};
use sqlx::Row;

use super::SqlStore;
use super::batch::Batch;
use crate::error::{Error, Result};
use crate::lease::{CommitSeq, Lease, LeaseEpoch};
use crate::records::Millis;

/// Refuses the rest of `tx` unless `lease` is still `run`'s. A no-op update rather than a
/// read: on PostgreSQL it also locks the run's row until `tx` ends, so a takeover
/// (`claim_orphans`, which skips locked rows) cannot slip in between the check and the commit.
/// SQLite's single writer serializes them anyway.
pub(super) async fn fence(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &RunId,
    lease: &Lease,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE runs SET lease_epoch = lease_epoch \
         WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3",
    )
    .bind(run.as_str())
    .bind(lease.owner.as_str())
    .bind(lease.epoch.0)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    Err(lost(&mut **tx, run).await?)
}

/// What a fenced commit found: whether to write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Commit {
    /// The run's next commit: write it.
    Next,
    /// The run has it already: a retry of a commit that landed although its answer was lost.
    Landed,
}

/// The fence of an owner's commit number `$4` (its lease `$2`, `$3` on run `$1`): it also
/// takes that number, so the same commit tried again finds it taken and is not written twice.
const FENCE_COMMIT: &str = "UPDATE runs SET commit_seq = $4 \
     WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3 AND commit_seq = $5";

/// [`fence`], for the owner's commit number `commit`, run on its own (PostgreSQL, where it
/// also takes the run's row lock before anything else is written).
pub(super) async fn fence_commit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &RunId,
    lease: &Lease,
    commit: CommitSeq,
) -> Result<Commit> {
    let done = sqlx::query(FENCE_COMMIT)
        .bind(run.as_str())
        .bind(lease.owner.as_str())
        .bind(lease.epoch.0)
        .bind(commit.0)
        .bind(commit.0 - 1)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 1 {
        return Ok(Commit::Next);
    }
    unmatched(&mut **tx, run, lease, commit).await
}

/// [`fence_commit`] as a statement of a batch (SQLite); the caller stops its script when it
/// changed no row, and asks [`unmatched`] why.
pub(super) fn fence_commit_first(b: &mut Batch, run: &RunId, lease: &Lease, commit: CommitSeq) {
    b.sql(FENCE_COMMIT)
        .bind(run.as_str())
        .bind(lease.owner.as_str())
        .bind(lease.epoch.0)
        .bind(commit.0)
        .bind(commit.0 - 1);
}

/// Why the fence of commit `commit` matched no row: the lease is gone (an error naming who
/// holds it), or the commit landed already (its answer was lost), or commits are missing.
pub(super) async fn unmatched<'e, E>(
    conn: E,
    run: &RunId,
    lease: &Lease,
    commit: CommitSeq,
) -> Result<Commit>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let now = holder(conn, run).await?;
    if !now.holds(lease) {
        return Err(now.refusal(run));
    }
    if now.commits >= commit {
        return Ok(Commit::Landed);
    }
    Err(Error::CommitGap {
        run: run.clone(),
        last: now.commits,
        commit,
    })
}

/// Who holds a run's lease now, and how many commits the run has.
struct Holder {
    owner: Option<String>,
    epoch: LeaseEpoch,
    commits: CommitSeq,
}

impl Holder {
    fn holds(&self, lease: &Lease) -> bool {
        self.owner.as_deref() == Some(lease.owner.as_str()) && self.epoch == lease.epoch
    }

    /// The refusal of a write to `run` by someone who no longer holds its lease, naming who
    /// does.
    fn refusal(self, run: &RunId) -> Error {
        Error::LeaseLost {
            run: run.clone(),
            holder: self.owner.unwrap_or_else(|| "nobody".into()),
            epoch: self.epoch,
        }
    }
}

async fn holder<'e, E>(conn: E, run: &RunId) -> Result<Holder>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query("SELECT lease_owner, lease_epoch, commit_seq FROM runs WHERE id = $1")
        .bind(run.as_str())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::RunNotFound(run.to_string()))?;
    Ok(Holder {
        owner: row.try_get("lease_owner")?,
        epoch: LeaseEpoch(row.try_get("lease_epoch")?),
        commits: CommitSeq(row.try_get("commit_seq")?),
    })
}

/// The refusal of a write to `run` by someone who no longer holds its lease.
async fn lost<'e, E>(conn: E, run: &RunId) -> Result<Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(holder(conn, run).await?.refusal(run))
}

impl SqlStore {
    pub(super) async fn acquire(
        &self,
        run: &RunId,
        owner: &LeaseOwner,
        now: Millis,
        expires_at: Millis,
        steal_from: Option<&str>,
    ) -> Result<Option<Lease>> {
        let mut writer = self.writer.lock().await;
        // The holder extending a live lease keeps its epoch; anyone else taking it, or the
        // holder after it lapsed (someone may have taken it and let it go in between), starts
        // a new one.
        let row = sqlx::query(
            "UPDATE runs SET lease_owner = $1, lease_expires_at = $2, \
             lease_epoch = CASE WHEN lease_owner = $1 AND lease_expires_at >= $4 \
               THEN lease_epoch ELSE lease_epoch + 1 END \
             WHERE id = $3 AND (lease_owner IS NULL OR lease_owner = $1 \
               OR lease_expires_at < $4 OR lease_owner = $5) \
             RETURNING lease_epoch, commit_seq",
        )
        .bind(owner.as_str())
        .bind(expires_at)
        .bind(run.as_str())
        .bind(now)
        .bind(steal_from)
        .fetch_optional(&mut **writer)
        .await?;
        row.map(|row| {
            Ok(Lease {
                owner: owner.clone(),
                epoch: LeaseEpoch(row.try_get("lease_epoch")?),
                commits: CommitSeq(row.try_get("commit_seq")?),
            })
        })
        .transpose()
    }

    pub(super) async fn renew(&self, run: &RunId, lease: &Lease, expires_at: Millis) -> Result<()> {
        let mut writer = self.writer.lock().await;
        // Even a lapsed lease: while owner and epoch match, nobody took it, so nobody else
        // can have written.
        let done = sqlx::query(
            "UPDATE runs SET lease_expires_at = $1 \
             WHERE id = $2 AND lease_owner = $3 AND lease_epoch = $4",
        )
        .bind(expires_at)
        .bind(run.as_str())
        .bind(lease.owner.as_str())
        .bind(lease.epoch.0)
        .execute(&mut **writer)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        Err(lost(&mut **writer, run).await?)
    }

    pub(super) async fn release(&self, run: &RunId, lease: &Lease) -> Result<()> {
        // The fence is the statement's own condition: one statement, atomic on its own, and
        // the transaction only when pool claims go with it.
        const RELEASE: &str = "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3";
        let mut writer = self.writer.lock().await;
        let release = sqlx::query(RELEASE)
            .bind(run.as_str())
            .bind(lease.owner.as_str())
            .bind(lease.epoch.0);
        if !self.claimed.has(run) {
            let done = release.execute(&mut **writer).await?;
            if done.rows_affected() == 1 {
                return Ok(());
            }
            return Err(lost(&mut **writer, run).await?);
        }
        let mut tx = self.begin_write(&mut writer).await?;
        let result = async {
            if release.execute(&mut *tx).await?.rows_affected() != 1 {
                return Err(lost(&mut *tx, run).await?);
            }
            // Tasks waiting for a slot when the run was handed back wait no more.
            sqlx::query("DELETE FROM pool_claims WHERE run_id = $1 AND owner = $2")
                .bind(run.as_str())
                .bind(lease.owner.as_str())
                .execute(&mut *tx)
                .await?;
            Ok(())
        }
        .await;
        let result = super::end_tx(tx, result).await;
        if result.is_ok() {
            self.claimed.forget(run);
        }
        result
    }
}
