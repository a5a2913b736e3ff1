//! The server's metrics registry: one Prometheus recorder per app, written through explicit
//! handles rather than the process-wide `metrics` recorder.
//!
//! Each app (`baton_server::AppState`) owns its [`Metrics`], and everything that records (the run observer,
//! the scheduler, the HTTP layer, the scrape itself) reaches it through the state. So two apps
//! in one process (the router tests) never see each other's numbers, and spawned tasks need
//! no thread-local recorder. `baton server` also installs the same recorder as the global one
//! ([`Metrics::install_global`]), so `metrics::counter!` from any crate lands in this scrape.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Key, Label, Level, Metadata, Recorder as _};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// What kind of series a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric baton exports: name, kind, labels, meaning. The scrape's `# HELP` lines and
/// docs/observability.md both follow this table.
pub const METRICS: &[(&str, Kind, &str, &str)] = &[
    (
        "baton_up",
        Kind::Gauge,
        "",
        "1 while the control plane serves (M5).",
    ),
    (
        "baton_build_info",
        Kind::Gauge,
        "version",
        "Always 1; the labels say which build runs.",
    ),
    (
        "baton_runs_started_total",
        Kind::Counter,
        "namespace, pipeline, trigger",
        "Runs that started executing (a retried run starts again).",
    ),
    (
        "baton_runs_finished_total",
        Kind::Counter,
        "namespace, pipeline, state",
        "Runs that reached a final state, by state: the success rate SLI (M1).",
    ),
    (
        "baton_runs_taken_over_total",
        Kind::Counter,
        "namespace, pipeline",
        "Runs this server took over from an owner that died or stopped renewing its lease.",
    ),
    (
        "baton_lease_lost_total",
        Kind::Counter,
        "namespace, pipeline",
        "Runs this server stopped driving because another took their lease over while it stalled.",
    ),
    (
        "baton_run_duration_seconds",
        Kind::Histogram,
        "namespace, pipeline, state",
        "From a run's start to its final state (M2).",
    ),
    (
        "baton_task_attempt_duration_seconds",
        Kind::Histogram,
        "namespace, pipeline, task, state",
        "One attempt of a task, from start to end, by the attempt's final state.",
    ),
    (
        "baton_task_retries_total",
        Kind::Counter,
        "namespace, pipeline, task",
        "Failed attempts that will be retried (M3).",
    ),
    (
        "baton_task_cache_total",
        Kind::Counter,
        "namespace, pipeline, task, result",
        "Cache lookups of tasks with `cache:`, by result (`hit`: reused, did not run; `miss`: ran).",
    ),
    (
        "baton_task_queue_wait_seconds",
        Kind::Histogram,
        "namespace, pipeline",
        "From a task becoming ready (queued) to its attempt starting (M4).",
    ),
    (
        "baton_tasks_running",
        Kind::Gauge,
        "namespace, pipeline",
        "Task instances running now (read from the database at scrape).",
    ),
    (
        "baton_tasks_queued",
        Kind::Gauge,
        "namespace, pipeline",
        "Task instances ready and waiting for a slot now (read from the database at scrape).",
    ),
    (
        "baton_approvals_pending",
        Kind::Gauge,
        "namespace, pipeline",
        "Tasks waiting for a person's approval now (read from the database at scrape).",
    ),
    (
        "baton_dead_letters",
        Kind::Gauge,
        "namespace, pipeline",
        "Tasks that failed for good in ended runs and were not requeued (read from the database at scrape).",
    ),
    (
        "baton_workers",
        Kind::Gauge,
        "state",
        "`baton worker` agents registered, by state (`live`, `draining`, `lost`).",
    ),
    (
        "baton_worker_slots",
        Kind::Gauge,
        "state",
        "Slots of live and draining workers, `busy` (running an attempt) or `free`.",
    ),
    (
        "baton_worker_queue",
        Kind::Gauge,
        "",
        "Attempts waiting for a worker now.",
    ),
    (
        "baton_worker_leases_expired_total",
        Kind::Counter,
        "",
        "Attempts given back because their worker was not heard from within its lease.",
    ),
    (
        "baton_worker_stale_reports_total",
        Kind::Counter,
        "",
        "Worker reports refused because their lease had ended (a fenced-off worker).",
    ),
    (
        "baton_pool_slots",
        Kind::Gauge,
        "pool",
        "Slots of each pool (read from the database at scrape).",
    ),
    (
        "baton_pool_slots_used",
        Kind::Gauge,
        "pool",
        "Slots of each pool held by running tasks now (read from the database at scrape).",
    ),
    (
        "baton_pool_tasks_waiting",
        Kind::Gauge,
        "pool",
        "Tasks ready to run and waiting for a slot of each pool now (read from the database at scrape).",
    ),
    (
        "baton_scheduler_lag_seconds",
        Kind::Histogram,
        "",
        "How late the scheduler acted on a due cron tick.",
    ),
    (
        "baton_trigger_latency_seconds",
        Kind::Histogram,
        "namespace, pipeline, trigger",
        "From a run's creation (trigger accepted) to its first attempt starting.",
    ),
    (
        "baton_definition_load_errors",
        Kind::Gauge,
        "",
        "Pipeline files that do not load now (their last good version stays active).",
    ),
    (
        "baton_definition_reloads_total",
        Kind::Counter,
        "",
        "Reloads of the pipelines directory.",
    ),
    (
        "baton_policy_denials_total",
        Kind::Counter,
        "policy",
        "Requests the server refused by a rule: concurrency_skip, webhook_signature, paused.",
    ),
    (
        "baton_http_requests_total",
        Kind::Counter,
        "method, route, status",
        "HTTP requests served, by route template.",
    ),
    (
        "baton_http_request_duration_seconds",
        Kind::Histogram,
        "method, route",
        "Time to answer an HTTP request (to the response head; streams run longer).",
    ),
];

/// Short waits: scheduling, HTTP.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Waits behind concurrency limits and pools (queueing, a trigger's first task): usually
/// short, but an hour behind a busy pool is real and a p95 must be able to say so.
const WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    1800.0, 3600.0,
];
/// Work: attempts and runs, from a second to a day.
const DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
];

/// Where the registry's series come from, for the recorder's bookkeeping only.
static META: Metadata<'static> = Metadata::new("baton", Level::INFO, Some("baton_server"));

/// The app's metrics: cheap to clone, shared by every part of one app.
#[derive(Debug, Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    pub(crate) live: Arc<super::live::Live>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry holding `baton_up` and `baton_build_info`.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_duration_seconds".into()),
                DURATION_BUCKETS,
            )
            .and_then(|b| b.set_buckets(LATENCY_BUCKETS))
            .expect("bucket lists are not empty")
            .set_buckets_for_metric(
                Matcher::Full("baton_http_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("baton_task_queue_wait_seconds".into()),
                    WAIT_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("baton_trigger_latency_seconds".into()),
                    WAIT_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        for (name, kind, _, help) in METRICS {
            let (name, help) = ((*name).into(), (*help).into());
            match kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram => recorder.describe_histogram(name, None, help),
            }
        }
        let metrics = Self {
            handle: recorder.handle(),
            recorder: Arc::new(recorder),
            live: Arc::default(),
        };
        metrics.gauge("baton_up", &[], 1.0);
        metrics.gauge(
            "baton_build_info",
            &[("version", env!("CARGO_PKG_VERSION").to_owned())],
            1.0,
        );
        metrics
    }

    /// Makes this registry the process's `metrics` recorder too. Only the first call in a
    /// process succeeds; later ones say so in the log and change nothing.
    pub fn install_global(&self) {
        if metrics::set_global_recorder(Arc::clone(&self.recorder)).is_err() {
            tracing::warn!("a global metrics recorder is already installed; keeping it");
        }
    }

    /// Drains histogram samples into their buckets every few seconds, so an unscraped server
    /// does not grow them without bound (a scrape drains them too).
    pub fn spawn_upkeep(&self) {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }

    /// The registry in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        self.handle.render()
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, String)], by: u64) {
        self.recorder
            .register_counter(&key(name, labels), &META)
            .increment(by);
    }

    /// Sets a counter kept elsewhere to its total.
    pub fn counter_total(&self, name: &'static str, labels: &[(&'static str, String)], total: u64) {
        self.recorder
            .register_counter(&key(name, labels), &META)
            .absolute(total);
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, String)], value: f64) {
        self.recorder
            .register_gauge(&key(name, labels), &META)
            .set(value);
    }

    pub fn observe(&self, name: &'static str, labels: &[(&'static str, String)], seconds: f64) {
        self.recorder
            .register_histogram(&key(name, labels), &META)
            .record(seconds);
    }

    /// A request refused by a rule (see `baton_policy_denials_total`).
    pub fn denied(&self, policy: &'static str) {
        self.counter(
            "baton_policy_denials_total",
            &[("policy", policy.to_owned())],
            1,
        );
    }
}

fn key(name: &'static str, labels: &[(&'static str, String)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect::<Vec<_>>(),
    )
}

/// Milliseconds between two store times, as the seconds a histogram takes (never negative:
/// clocks of two processes may disagree a little).
pub fn seconds_between(from: i64, to: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // millisecond spans far below 2^52
    let ms = to.saturating_sub(from).max(0) as f64;
    ms / 1000.0
}
