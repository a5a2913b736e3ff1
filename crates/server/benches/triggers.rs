//! Sustained scheduling: 100 pipelines, each scheduled every minute, through a simulated day.
//!
//! The clock is the scheduler's argument, so a day of minutes passes as fast as the control
//! plane can go: each minute is one scheduler pass (creating 100 runs with their idempotency
//! keys and tick records), and every run is driven to its end by the real dispatcher on the
//! embedded SQLite store. Tasks go to an executor that reports success at once, so the figure
//! is the control plane's own throughput, not process start-up (`bench/run.py` measures that).
//!
//! `cargo bench -p baton-server --bench triggers` (`-- --minutes N --pipelines N` to resize).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_control::Runner;
use baton_control::scheduler::Scheduler;
use baton_engine::executor::{AttemptSpec, CancelHandle, Executor, Finished, Outcome};
use baton_server::AppState;
use baton_store::{RunFilter, SqlStore, Store};
use support::arg;
use tokio::sync::mpsc;

/// Every attempt succeeds at once.
#[derive(Debug)]
struct Instant0;

impl Executor for Instant0 {
    fn start(&self, spec: AttemptSpec, done: mpsc::UnboundedSender<Finished>) -> CancelHandle {
        let _ = done.send(Finished {
            key: spec.key,
            attempt: spec.attempt,
            outcome: Outcome::Exited {
                exit_code: Some(0),
                signal: None,
            },
            rusage: None,
            outputs: baton_engine::executor::Outputs::default(),
            artifacts: None,
        });
        CancelHandle::new().0
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let pipelines = arg("--pipelines", 100);
    let minutes = arg("--minutes", 1440);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(pipelines, minutes));
}

async fn run(pipelines: usize, minutes: usize) {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("pipelines");
    std::fs::create_dir_all(&flows).unwrap();
    for i in 0..pipelines {
        std::fs::write(
            flows.join(format!("p{i:03}.yaml")),
            format!(
                "name: p{i:03}\nschedule:\n  - cron: \"* * * * *\"\n    catchup: all\ntasks:\n  extract:\n    run: \"true\"\n  load:\n    run: \"true\"\n    needs: [extract]\n"
            ),
        )
        .unwrap();
    }
    let home = dir.path().join("home");
    let store: Arc<dyn Store> = Arc::new(SqlStore::open_home(&home).await.unwrap());
    let runner = Runner::new(Arc::clone(&store), Arc::new(Instant0), home);
    let state = AppState::new(
        Arc::clone(&store),
        runner.clone(),
        flows,
        Arc::new(baton_observe::secrets::EnvSecrets),
    );
    let loaded = state.reload().await;
    assert_eq!(loaded.loaded, pipelines, "{loaded:?}");
    let mut finished = runner.subscribe();
    let scheduler = Scheduler::new(
        state.control.clone(),
        baton_control::scheduler::DEFAULT_CATCHUP_CAP,
    );

    let t0: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    scheduler.tick(t0).await.unwrap(); // first sight: schedules start counting
    let start = Instant::now();
    let mut passes = Vec::with_capacity(minutes);
    let mut created = 0usize;
    let mut done = 0usize;
    for m in 1..=minutes {
        let now = t0 + jiff::SignedDuration::from_secs(60 * m as i64);
        let pass = Instant::now();
        created += scheduler.tick(now).await.unwrap().len();
        passes.push(pass.elapsed());
        // Keep up as a real server must: a minute's runs end before the next minute comes.
        while done < created {
            finished.recv().await.unwrap();
            done += 1;
        }
    }
    let elapsed = start.elapsed();
    passes.sort();

    // Nothing lost, nothing doubled.
    let mut all = 0usize;
    let mut before = None;
    loop {
        let page = store
            .runs(&RunFilter {
                limit: 10_000,
                before: before.clone(),
                ..RunFilter::default()
            })
            .await
            .unwrap();
        all += page.len();
        match page.last() {
            Some(last) if page.len() == 10_000 => before = Some(last.id.to_string()),
            _ => break,
        }
    }
    assert_eq!(created, pipelines * minutes, "runs created");
    assert_eq!(all, created, "runs stored");

    let secs = elapsed.as_secs_f64();
    println!(
        "simulated {minutes} minutes x {pipelines} pipelines: {created} scheduled runs (2 tasks each) in {secs:.1} s"
    );
    println!(
        "sustained: {:.0} triggers/s, each run created, driven and finished (a real day needs {:.2}/s)",
        created as f64 / secs,
        pipelines as f64 / 60.0
    );
    println!(
        "scheduler pass ({pipelines} runs created): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&passes, 0.5).as_secs_f64() * 1e3,
        percentile(&passes, 0.99).as_secs_f64() * 1e3,
        passes.last().unwrap().as_secs_f64() * 1e3,
    );
}
