//! Upstream-pipeline triggers: when a run succeeds, pipelines with `triggers: - pipeline: it`
//! start. Each downstream run's idempotency key names the upstream run, so an announcement
//! seen twice never starts a second run.
//!
//! The runner's announcements are only a fast path: they live in memory and die with the
//! process. What makes firing durable is a scan of the store for upstream runs that finished
//! since a stored cursor (kept with the schedule ticks), on start and every few seconds. A
//! server that dies between an upstream's success and its dependents' creation finds that
//! success again when it starts; rescanning what was already fired is harmless.

use std::collections::{BTreeSet, HashMap};

use baton_core::ids::RunId;
use baton_core::model::Trigger;
use baton_core::state::RunState;
use baton_store::{Millis, RunFilter};

use crate::{Control, Launch, LaunchError};

/// The cursor's key among the schedule ticks; no pipeline has an empty namespace.
const CURSOR: (&str, &str, &str) = ("", "", "upstream-completions");
/// How far before the cursor each scan starts. Runs are stamped finished by the clocks of the
/// processes driving them and committed a moment later, so a run stamped just before the
/// cursor moved can become visible after it did.
pub const OVERLAP_MS: Millis = 60_000;
/// How often the store is scanned besides the runner's announcements.
const SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// Runs read per query while scanning.
const SCAN_PAGE: u32 = 200;

/// Starts downstream runs for every run the runner finishes, and for every successful run a
/// scan of the store finds (on start, then every few seconds), until the runner goes away.
pub fn watch(state: Control) {
    let mut finished = state.runner.subscribe();
    tokio::spawn(async move {
        let mut scanner = Scanner::new(state.clone());
        let mut every = tokio::time::interval(SCAN_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                announced = finished.recv() => match announced {
                    Ok((run, RunState::Succeeded)) => {
                        if let Err(e) = scanner.fire_once(&run, baton_engine::now_ms()).await {
                            tracing::error!(run = %run, error = ?e, "upstream trigger failed");
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "upstream triggers fell behind; the next scan catches up");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = every.tick() => {
                    if let Err(e) = scanner.scan(baton_engine::now_ms()).await {
                        tracing::error!(error = ?e, "upstream trigger scan failed");
                    }
                }
            }
        }
    });
}

/// Follows upstream completions through the store.
#[derive(Debug)]
pub struct Scanner {
    state: Control,
    /// Upstream runs this process already fired, with their finish time: saves starting the
    /// same runs again (which the idempotency keys would make a no-op anyway) while they stay
    /// in the overlap window.
    fired: HashMap<RunId, Millis>,
}

impl Scanner {
    pub fn new(state: Control) -> Self {
        Self {
            state,
            fired: HashMap::new(),
        }
    }

    /// Fires `upstream`'s dependents unless this scanner already did.
    async fn fire_once(
        &mut self,
        upstream: &RunId,
        finished_at: Millis,
    ) -> Result<Vec<RunId>, LaunchError> {
        if self.fired.contains_key(upstream) {
            return Ok(Vec::new());
        }
        let started = fire(&self.state, upstream).await?;
        self.fired.insert(upstream.clone(), finished_at);
        Ok(started)
    }

    /// One pass at `now`: fires the dependents of every upstream run that succeeded since the
    /// stored cursor (less [`OVERLAP_MS`]; from `now` on the first pass ever), then moves the
    /// cursor to `now`. Returns the runs it started.
    pub async fn scan(&mut self, now: Millis) -> Result<Vec<RunId>, LaunchError> {
        let store = std::sync::Arc::clone(&self.state.store);
        let (ns, name, key) = CURSOR;
        let last = store.last_tick(ns, name, key).await?;
        let from = last.unwrap_or(now) - OVERLAP_MS;
        // Only pipelines something depends on; the catalog lock is not held while firing,
        // which takes it again.
        let upstreams: BTreeSet<String> = {
            let catalog = self.state.catalog.read().await;
            catalog
                .entries()
                .filter_map(|e| e.active.as_ref())
                .flat_map(|v| v.pipeline.triggers.iter())
                .filter_map(|t| match t {
                    Trigger::Pipeline { pipeline } => Some(pipeline.to_string()),
                    _ => None,
                })
                .collect()
        };
        let mut started = Vec::new();
        for upstream in &upstreams {
            let mut after = (from, String::new());
            loop {
                let page = store
                    .runs(
                        &RunFilter {
                            state: Some(RunState::Succeeded),
                            finished_after: Some(after.clone()),
                            limit: SCAN_PAGE,
                            ..RunFilter::default()
                        }
                        .for_pipeline(Some(upstream)),
                    )
                    .await?;
                for run in &page {
                    let at = run.finished_at.unwrap_or(now);
                    started.extend(self.fire_once(&run.id, at).await?);
                    after = (at, run.id.to_string());
                }
                if page.len() < SCAN_PAGE as usize {
                    break;
                }
            }
        }
        self.fired.retain(|_, at| *at >= from);
        if last.is_none_or(|l| now > l) {
            // Losing this race to another server is fine: it fires the same runs, by the same
            // idempotency keys.
            store.advance_tick(ns, name, key, last, now).await?;
        }
        Ok(started)
    }
}

/// Starts the runs that `upstream`'s success triggers; returns them.
pub async fn fire(state: &Control, upstream: &RunId) -> Result<Vec<RunId>, LaunchError> {
    let Some(run) = state.store.run(upstream).await? else {
        return Ok(Vec::new());
    };
    let upstream_id = format!("{}/{}", run.namespace, run.pipeline);
    let catalog = state.catalog.read().await;
    let mut started = Vec::new();
    for entry in catalog.entries() {
        let Some(version) = &entry.active else {
            continue;
        };
        let p = &version.pipeline;
        let triggered = p.triggers.iter().any(
            |t| matches!(t, Trigger::Pipeline { pipeline } if pipeline.to_string() == upstream_id),
        );
        if !triggered
            || state
                .store
                .is_paused(p.id.namespace.as_str(), p.id.name.as_str())
                .await?
        {
            continue;
        }
        let launch = Launch {
            params: serde_json::Map::new(),
            trigger: baton_core::state::RunTrigger::Pipeline,
            logical_date: run.logical_date.clone(),
            idempotency_key: Some(format!("upstream:{upstream}:{}", p.id)),
            no_cache: false,
        };
        match state.launch(version, launch).await {
            Ok(created) if created.new => started.push(created.id),
            Ok(_) => {}
            Err(LaunchError::ConcurrencyLimit { .. }) => {
                tracing::info!(pipeline = %p.id, upstream = %upstream, "not started: the pipeline is at its max_active_runs (overlap: skip)");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(started)
}
