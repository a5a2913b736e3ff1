//! Counters of a loaded pipeline, set to 0 before anything happens to it.
//!
//! Prometheus sees a series only from its first sample on, so a counter that first appears at 1
//! shows no increase: without a 0 before it, a pipeline's first failure since the server
//! started would never make `increase(baton_runs_finished_total{state="failed"}[15m]) > 0`
//! true, and `BatonRunsFailing` would stay silent. The labels are known from the definition, so
//! the series exist from the moment the pipeline is loaded.

use baton_core::Pipeline;
use baton_core::state::RunState;

use super::registry::Metrics;

/// Final run states the success rate counts (`baton_runs_finished_total{state}`).
const FINAL: [RunState; 3] = [RunState::Succeeded, RunState::Failed, RunState::Cancelled];

impl Metrics {
    /// Sets `pipeline`'s run outcome counters, the retry counter of each task that may retry,
    /// and the cache counters of each task with `cache:`, to 0 where they do not exist yet (an
    /// existing counter keeps its value).
    pub fn known_pipeline(&self, pipeline: &Pipeline) {
        let ns = pipeline.id.namespace.to_string();
        let name = pipeline.id.name.to_string();
        for state in FINAL {
            self.counter(
                "baton_runs_finished_total",
                &[
                    ("namespace", ns.clone()),
                    ("pipeline", name.clone()),
                    ("state", state.to_string()),
                ],
                0,
            );
        }
        for task in pipeline.tasks.iter().filter(|t| t.retry.limit > 0) {
            self.counter(
                "baton_task_retries_total",
                &[
                    ("namespace", ns.clone()),
                    ("pipeline", name.clone()),
                    ("task", task.id.to_string()),
                ],
                0,
            );
        }
        for task in pipeline.tasks.iter().filter(|t| t.cache.is_some()) {
            for result in ["hit", "miss"] {
                self.counter(
                    "baton_task_cache_total",
                    &[
                        ("namespace", ns.clone()),
                        ("pipeline", name.clone()),
                        ("task", task.id.to_string()),
                        ("result", result.to_owned()),
                    ],
                    0,
                );
            }
        }
    }
}
