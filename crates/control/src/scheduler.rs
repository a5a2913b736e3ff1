//! Firing cron schedules: each pass creates the runs of the ticks that came due, by the
//! schedule's catch-up policy, then records how far the schedule got.
//!
//! Runs are created before the tick is recorded, each with an idempotency key made of the
//! schedule and the tick, so a crash in between (or a second server doing the same) finds the
//! run already there: no tick is lost, none is doubled.

use baton_core::ids::RunId;
use jiff::Timestamp;

use crate::{Control, Launch, LaunchError};

/// Catch-up never creates more runs than this per schedule and pass.
pub const DEFAULT_CATCHUP_CAP: usize = 100;

#[derive(Debug, Clone)]
pub struct Scheduler {
    state: Control,
    cap: usize,
}

impl Scheduler {
    pub fn new(state: Control, cap: usize) -> Self {
        Self { state, cap }
    }

    /// One pass at `now`. Returns the runs it created.
    pub async fn tick(&self, now: Timestamp) -> Result<Vec<RunId>, LaunchError> {
        let mut created = Vec::new();
        let catalog = self.state.catalog.read().await;
        for entry in catalog.entries() {
            let Some(version) = &entry.active else {
                continue;
            };
            let p = &version.pipeline;
            let (ns, name) = (p.id.namespace.as_str(), p.id.name.as_str());
            for (i, schedule) in p.schedules.iter().enumerate() {
                // Changing a cron starts a new schedule rather than catching up the old one.
                let key = format!("{i}:{}@{}", schedule.cron, schedule.timezone);
                let now_ms = now.as_millisecond();
                let Some(last) = self.state.store.last_tick(ns, name, &key).await? else {
                    // First sight: start from now; the past before it was scheduled is not missed.
                    self.state
                        .store
                        .advance_tick(ns, name, &key, None, now_ms)
                        .await?;
                    continue;
                };
                let since = Timestamp::from_millisecond(last).unwrap_or(now);
                let missed = schedule.missed(since, now, self.cap);
                // Paused: the ticks pass without runs, so unpausing does not flood. Most passes
                // have no tick due; they need not ask.
                let ticks =
                    if missed.ticks.is_empty() || self.state.store.is_paused(ns, name).await? {
                        &[][..]
                    } else {
                        &missed.ticks[..]
                    };
                for tick in ticks {
                    self.state.metrics.observe(
                        "baton_scheduler_lag_seconds",
                        &[],
                        baton_observe::metrics::seconds_between(
                            tick.timestamp().as_millisecond(),
                            now_ms,
                        ),
                    );
                    let launch = Launch {
                        params: schedule.params.clone().into_iter().collect(),
                        trigger: baton_core::state::RunTrigger::Schedule,
                        logical_date: Some(tick.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()),
                        idempotency_key: Some(format!(
                            "schedule:{ns}/{name}:{key}:{}",
                            tick.timestamp().as_millisecond()
                        )),
                        no_cache: false,
                    };
                    match self.state.launch(version, launch).await {
                        Ok(run) if run.new => created.push(run.id),
                        Ok(_) => {}
                        // `overlap: skip`: the tick is consumed without a run.
                        Err(LaunchError::ConcurrencyLimit { active, .. }) => {
                            tracing::info!(
                                pipeline = %p.id,
                                tick = %tick,
                                active = ?active,
                                "tick skipped: the pipeline is at its max_active_runs (overlap: skip)"
                            );
                        }
                        Err(e) => return Err(e),
                    }
                }
                if let Some(latest) = missed.latest {
                    // Losing this race to another scheduler is fine: its runs are ours.
                    self.state
                        .store
                        .advance_tick(
                            ns,
                            name,
                            &key,
                            Some(last),
                            latest.timestamp().as_millisecond(),
                        )
                        .await?;
                }
            }
        }
        Ok(created)
    }

    /// Runs passes forever, about once a second.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.tick(Timestamp::now()).await {
                tracing::error!(error = ?e, "scheduler pass failed");
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}
