//! Gauges of what is true now (tasks running and queued, approvals pending, dead letters, pool
//! slots), read
//! from the database when scraped rather than kept by increments in memory: they stay right
//! across crashes and resumes, and with several replicas each reports the whole truth.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use baton_core::state::TaskState;
use baton_store::Store;
use tokio::sync::Mutex;

use super::registry::Metrics;

/// Scrapes closer together than this (several Prometheus servers, say) share one reading.
pub const REFRESH_AFTER: Duration = Duration::from_secs(1);

/// The live gauges per pipeline, in the order the store's counts fill them.
const GAUGES: [&str; 4] = [
    "baton_tasks_running",
    "baton_tasks_queued",
    "baton_approvals_pending",
    "baton_dead_letters",
];

/// When the gauges were last read, and every pipeline they were set for (so one whose count
/// dropped to nothing is set to 0 rather than left at its last value).
#[derive(Debug, Default)]
pub(crate) struct Live {
    state: Mutex<LiveState>,
}

#[derive(Debug, Default)]
struct LiveState {
    read_at: Option<Instant>,
    pipelines: BTreeSet<(String, String)>,
    pools: BTreeSet<String>,
}

/// The gauges of each pool, in the order [`pool_values`] fills them.
const POOL_GAUGES: [&str; 3] = [
    "baton_pool_slots",
    "baton_pool_slots_used",
    "baton_pool_tasks_waiting",
];

fn pool_values(p: &baton_store::PoolRecord) -> [u32; 3] {
    [p.slots, p.used, p.waiting]
}

impl Metrics {
    /// Reads the live gauges from `store` unless they were read within [`REFRESH_AFTER`].
    /// `known` are the catalog's pipelines, reported as 0 when nothing counts for them. A
    /// failing store leaves the last values (and says so in the log).
    pub async fn refresh_live(
        &self,
        store: &dyn Store,
        known: impl IntoIterator<Item = (String, String)>,
    ) {
        let mut live = self.live.state.lock().await;
        if live.read_at.is_some_and(|t| t.elapsed() < REFRESH_AFTER) {
            return;
        }
        let (tasks, dead, pools) = match tokio::try_join!(
            store.active_task_counts(),
            store.dead_letter_counts(),
            store.pools(baton_engine::now_ms())
        ) {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the live metrics from the store");
                return;
            }
        };
        live.read_at = Some(Instant::now());
        let mut values: std::collections::BTreeMap<(String, String), [u64; 4]> = live
            .pipelines
            .iter()
            .cloned()
            .chain(known)
            .map(|p| (p, [0; 4]))
            .collect();
        for c in tasks {
            let slot = match c.state {
                TaskState::Running => 0,
                TaskState::Queued => 1,
                TaskState::WaitingApproval => 2,
                _ => continue,
            };
            values.entry((c.namespace, c.pipeline)).or_default()[slot] += c.count;
        }
        for c in dead {
            values.entry((c.namespace, c.pipeline)).or_default()[3] += c.count;
        }
        for ((ns, name), counts) in &values {
            let labels = [("namespace", ns.clone()), ("pipeline", name.clone())];
            for (gauge, count) in GAUGES.iter().zip(counts) {
                #[allow(clippy::cast_precision_loss)] // counts of rows
                self.gauge(gauge, &labels, *count as f64);
            }
        }
        live.pipelines = values.into_keys().collect();
        // A deleted pool reads 0 rather than its last values.
        let mut pool_values: std::collections::BTreeMap<String, [u32; 3]> =
            live.pools.iter().map(|p| (p.clone(), [0; 3])).collect();
        for p in &pools {
            pool_values.insert(p.name.clone(), self::pool_values(p));
        }
        for (pool, counts) in &pool_values {
            let labels = [("pool", pool.clone())];
            for (gauge, count) in POOL_GAUGES.iter().zip(counts) {
                self.gauge(gauge, &labels, f64::from(*count));
            }
        }
        live.pools = pools.into_iter().map(|p| p.name).collect();
    }
}
