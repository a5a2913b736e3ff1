//! Taking over runs nobody drives: a replica that dies (`kill -9`, a lost host) leaves its
//! runs leased to nobody alive and its waiting runs offered to nobody. Every server looks for
//! such runs every few seconds (jittered, so replicas do not look in step) and drives them.
//!
//! Nothing here decides alone: the store hands each orphan to one claimer (its lease, taken
//! atomically), and admission stays the store's, so a run listed by two servers is admitted,
//! and driven, once.

use std::collections::HashSet;
use std::time::Duration;

use baton_core::ids::RunId;
use baton_store::OrphanClaim;

use crate::Control;

/// How often a server looks for orphaned runs, unless configured.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Runs taken over in one pass at most; the rest wait for the next pass (or another replica).
const BATCH: u32 = 100;

/// One server's takeover: what the previous pass saw, since a run without an owner, or a
/// waiting run nobody admits, is an orphan only when it stays so.
#[derive(Debug)]
pub struct Takeover {
    state: Control,
    /// Runs without a lease at the previous pass.
    unowned: Vec<RunId>,
    /// Waiting runs the store would have admitted at the previous pass.
    admissible: HashSet<RunId>,
}

impl Takeover {
    pub fn new(state: Control) -> Self {
        Self {
            state,
            unowned: Vec::new(),
            admissible: HashSet::new(),
        }
    }

    /// Looks every `every` (give or take a fifth) until the server drains.
    pub fn spawn(mut self, every: Duration) {
        let every = every.max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                let jitter = every.mul_f64(rand::random::<f64>() * 0.4 + 0.8);
                tokio::time::sleep(jitter).await;
                if self.state.runner.stopping() {
                    return;
                }
                if let Err(e) = self.pass().await {
                    tracing::warn!(error = %e, "cannot look for runs to take over");
                }
            }
        });
    }

    /// One look: takes over orphaned runs and offers waiting runs nobody offers. Returns how
    /// many runs it took over.
    pub async fn pass(&mut self) -> Result<usize, baton_store::Error> {
        let store = &self.state.store;
        let runner = &self.state.runner;
        let now = baton_engine::now_ms();
        let dead: Vec<String> = store
            .lease_holders(now)
            .await?
            .into_iter()
            .filter(|owner| baton_engine::owner_is_dead(owner))
            .collect();
        let owner = baton_engine::owner_id();
        let ttl = i64::try_from(runner.lease_ttl().as_millis()).unwrap_or(i64::MAX);
        let taken = store
            .claim_orphans(&OrphanClaim {
                owner: &owner,
                now,
                expires_at: now.saturating_add(ttl),
                dead: &dead,
                unowned: &self.unowned,
                limit: BATCH,
            })
            .await?;
        let mut count = 0;
        for taken in taken {
            let run = &taken.run;
            let previous = run.lease_owner.as_deref().unwrap_or("none");
            let epoch = taken.lease.epoch;
            if !runner.take_over(&run.id, taken.lease.clone()).await {
                continue;
            }
            tracing::info!(
                run = %run.id,
                pipeline = %format!("{}/{}", run.namespace, run.pipeline),
                previous_owner = previous,
                %epoch,
                "taking over run"
            );
            self.state.metrics.counter(
                "baton_runs_taken_over_total",
                &[
                    ("namespace", run.namespace.clone()),
                    ("pipeline", run.pipeline.clone()),
                ],
                1,
            );
            count += 1;
        }
        self.unowned = store.unowned_runs(BATCH).await?;

        // A waiting run the store would admit, twice in a row: the server that listed it does
        // not offer it any more. Its whole group joins this server's waiting list.
        let admissible = store.admissible_waiting(BATCH).await?;
        let mut groups = HashSet::new();
        for run in &admissible {
            if let Some(group) = &run.admission_group
                && self.admissible.contains(&run.id)
            {
                groups.insert(group.clone());
            }
        }
        self.admissible = admissible.into_iter().map(|r| r.id).collect();
        for group in groups {
            let waiting: Vec<RunId> = store
                .group_runs(&group)
                .await?
                .into_iter()
                .filter(|r| {
                    r.state == baton_core::state::RunState::Queued && r.admitted_at.is_none()
                })
                .map(|r| r.id)
                .collect();
            tracing::info!(group = %group, runs = waiting.len(), "taking over waiting runs");
            runner.wait_for_admission(&group, waiting);
        }
        Ok(count)
    }
}
