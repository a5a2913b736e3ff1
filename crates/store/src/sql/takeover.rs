//! Finding runs nobody drives, for a server replica to take over: runs whose owner's lease
//! ran out (or whose owner is known dead), runs handed back without an owner, and waiting
//! runs that nobody offers for admission.

use baton_core::ids::RunId;
use sqlx::Row;

use super::rows::run_record;
use super::{Backend, SqlStore, end_tx};
use crate::error::Result;
use crate::lease::{CommitSeq, Lease, LeaseEpoch, TakenRun};
use crate::records::{Millis, OrphanClaim, RunRecord};

/// `$first, $first+1, ...` for `n` values, or `NULL` (matching nothing) for none.
fn list(n: usize, first: usize) -> String {
    if n == 0 {
        return "NULL".into();
    }
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SqlStore {
    pub(super) async fn holders(&self, now: Millis) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT lease_owner FROM runs WHERE state IN ('queued', 'running') \
             AND lease_owner IS NOT NULL AND lease_expires_at >= $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("lease_owner")?)).collect()
    }

    pub(super) async fn unowned(&self, limit: u32) -> Result<Vec<RunId>> {
        // Waiting for admission is not being orphaned: those runs have no owner by design,
        // unless asked to cancel, when whoever drives them ends them (the server that took the
        // request does at once; if it died first, nobody else would).
        let rows = sqlx::query(
            "SELECT id FROM runs WHERE state IN ('queued', 'running') AND lease_owner IS NULL \
             AND NOT (state = 'queued' AND admission_group IS NOT NULL AND admitted_at IS NULL \
             AND cancel_requested = 0) \
             ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(RunId::from_string(r.try_get::<String, _>("id")?)))
            .collect()
    }

    pub(super) async fn claim_orphaned(&self, claim: &OrphanClaim<'_>) -> Result<Vec<TakenRun>> {
        let mut writer = self.writer.lock().await;
        let mut tx = self.begin_write(&mut writer).await?;
        let result = async {
            // Rows another replica is claiming right now are skipped, not waited for: it
            // takes them, and this one takes the rest. SQLite's single writer serializes
            // claimers anyway.
            let lock = match self.backend {
                Backend::Postgres => " FOR UPDATE SKIP LOCKED",
                Backend::Sqlite => "",
            };
            let dead = list(claim.dead.len(), 3);
            let unowned = list(claim.unowned.len(), 3 + claim.dead.len());
            let sql = format!(
                "SELECT * FROM runs WHERE state IN ('queued', 'running') AND \
                 ((lease_owner IS NOT NULL AND (lease_expires_at < $1 OR lease_owner IN ({dead}))) \
                 OR (lease_owner IS NULL AND id IN ({unowned}))) ORDER BY id LIMIT $2{lock}"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(claim.now)
                .bind(i64::from(claim.limit));
            for owner in claim.dead {
                q = q.bind(owner.clone());
            }
            for id in claim.unowned {
                q = q.bind(id.as_str().to_owned());
            }
            let rows = q.fetch_all(&mut *tx).await?;
            let mut taken = Vec::with_capacity(rows.len());
            for row in &rows {
                let record = run_record(row)?;
                // Compare-and-set on the holder seen: the lease is the arbiter, as in
                // `acquire_lease`. A new holder gets a new epoch, which fences the previous
                // holder's writes from now on.
                let claimed = sqlx::query(
                    "UPDATE runs SET lease_owner = $1, lease_expires_at = $2, \
                     lease_epoch = lease_epoch + 1 \
                     WHERE id = $3 AND lease_owner IS NOT DISTINCT FROM $4 \
                     RETURNING lease_epoch, commit_seq",
                )
                .bind(claim.owner.as_str())
                .bind(claim.expires_at)
                .bind(record.id.as_str())
                .bind(record.lease_owner.as_deref())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = claimed {
                    taken.push(TakenRun {
                        run: record,
                        lease: Lease {
                            owner: claim.owner.clone(),
                            epoch: LeaseEpoch(row.try_get("lease_epoch")?),
                            commits: CommitSeq(row.try_get("commit_seq")?),
                        },
                    });
                }
            }
            Ok(taken)
        }
        .await;
        end_tx(tx, result).await
    }

    pub(super) async fn admissible(&self, limit: u32) -> Result<Vec<RunRecord>> {
        // The oldest waiting run of each group whose group has room: what `admit` would let in.
        let rows = sqlx::query(
            "SELECT * FROM runs r WHERE r.state = 'queued' AND r.admission_group IS NOT NULL \
             AND r.admitted_at IS NULL AND r.cancel_requested = 0 \
             AND r.id = (SELECT MIN(w.id) FROM runs w WHERE w.admission_group = r.admission_group \
               AND w.state = 'queued' AND w.admitted_at IS NULL AND w.cancel_requested = 0) \
             AND (SELECT COUNT(*) FROM runs a WHERE a.admission_group = r.admission_group \
               AND (a.state = 'running' OR (a.state = 'queued' AND a.admitted_at IS NOT NULL))) \
               < COALESCE(r.admission_limit, 1) \
             ORDER BY r.id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_record).collect()
    }
}
