//! What metrics cost: the observer per committed change, and a scrape of a server with 200
//! pipelines (rendering the registry, converting it to OpenMetrics, and the store queries of
//! the live gauges).
//!
//! `cargo bench -p baton-server --bench metrics` (`-- --pipelines N --runs N` to resize).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::{AttemptState, RunState, TaskState};
use baton_engine::{Observer, RunScope};
use baton_observe::metrics::{Metrics, RunObserver, openmetrics};
use baton_store::{Change, SqlStore, Store};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn task(key: &str, state: TaskState, at: i64) -> Change {
    Change::Task {
        key: TaskKey::from_string(key),
        state,
        at,
        next_attempt_at: None,
        outputs: None,
        error: None,
    }
}

/// The commits of a run of two tasks, as the dispatcher makes them (12 changes in 10 commits).
fn commits(t: i64) -> Vec<Vec<Change>> {
    let run = |state, at| Change::Run {
        state,
        at,
        error: None,
    };
    let start = |key: &str, at| Change::AttemptStarted {
        key: TaskKey::from_string(key),
        attempt: 1,
        at,
        log_path: String::new(),
        owner: String::new(),
        after_interruption: false,
    };
    let finish = |key: &str, started_at, at| Change::AttemptFinished {
        key: TaskKey::from_string(key),
        attempt: 1,
        state: AttemptState::Succeeded,
        started_at,
        at,
        exit_code: Some(0),
        signal: None,
        rusage: None,
        error: None,
    };
    vec![
        vec![
            run(RunState::Running, t),
            task("extract", TaskState::Queued, t),
        ],
        vec![start("extract", t + 1)],
        vec![task("extract", TaskState::Running, t + 1)],
        vec![finish("extract", t + 1, t + 900)],
        vec![
            task("extract", TaskState::Succeeded, t + 900),
            task("load", TaskState::Queued, t + 900),
        ],
        vec![start("load", t + 901)],
        vec![task("load", TaskState::Running, t + 901)],
        vec![finish("load", t + 901, t + 1800)],
        vec![task("load", TaskState::Succeeded, t + 1800)],
        vec![run(RunState::Succeeded, t + 1801)],
    ]
}

fn main() {
    let pipelines = arg("--pipelines", 200);
    let runs = arg("--runs", 20_000);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(pipelines, runs));
}

async fn run(pipelines: usize, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqlStore::open_home(dir.path()).await.unwrap());
    // One stored run per pipeline: its record is what the dispatcher hands observers.
    let mut defs = Vec::with_capacity(pipelines);
    for i in 0..pipelines {
        let source = format!(
            "name: p{i:03}\ntasks:\n  extract:\n    run: \"true\"\n  load:\n    needs: [extract]\n    run: \"true\"\n"
        );
        let pipeline = baton_core::load(&source).pipeline.unwrap();
        let created = baton_engine::create_run(
            store.as_ref(),
            baton_engine::RunRequest {
                trigger: baton_core::state::RunTrigger::Schedule,
                ..baton_engine::RunRequest::new(&pipeline, &source, "/tmp")
            },
        )
        .await
        .unwrap();
        let record = store.run(&created.id).await.unwrap().unwrap();
        defs.push((pipeline, record));
    }

    let metrics = Metrics::new();
    let observer = RunObserver::new(metrics.clone());
    let mut changes = 0usize;
    let mut spent = Duration::ZERO;
    for r in 0..runs {
        let (pipeline, record) = &defs[r % pipelines];
        let mut record = record.clone();
        record.id = RunId::from_string(format!("{}{r:08}", &record.id.as_str()[..18]));
        let batches = commits(1_000_000 + r as i64);
        let start = Instant::now();
        for batch in &batches {
            observer.committed(
                RunScope {
                    run: &record,
                    pipeline,
                    store: &store,
                },
                batch,
            );
        }
        spent += start.elapsed();
        changes += batches.iter().map(Vec::len).sum::<usize>();
    }
    println!(
        "observer: {changes} changes of {runs} runs over {pipelines} pipelines in {:.1} ms: {:.2} µs per change",
        spent.as_secs_f64() * 1e3,
        spent.as_secs_f64() * 1e6 / changes as f64
    );

    // Live gauges: the first refresh reads the store; later ones within a second do not.
    let known: Vec<(String, String)> = defs
        .iter()
        .map(|(p, _)| (p.id.namespace.to_string(), p.id.name.to_string()))
        .collect();
    let start = Instant::now();
    metrics.refresh_live(store.as_ref(), known.clone()).await;
    let refresh = start.elapsed();
    let rounds = 50u32;
    let start = Instant::now();
    for _ in 0..rounds {
        store.active_task_counts().await.unwrap();
        store.dead_letter_counts().await.unwrap();
    }
    let queries = start.elapsed() / rounds;

    let start = Instant::now();
    let mut text = String::new();
    for _ in 0..rounds {
        text = metrics.render();
    }
    let render = start.elapsed() / rounds;
    let start = Instant::now();
    let mut om = String::new();
    for _ in 0..rounds {
        om = openmetrics::from_prometheus(&text);
    }
    let convert = start.elapsed() / rounds;
    let series = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    println!(
        "scrape of {pipelines} pipelines: {series} series, {} KiB text ({} KiB OpenMetrics)",
        text.len() / 1024,
        om.len() / 1024
    );
    println!(
        "  render {:.2} ms, OpenMetrics conversion {:.2} ms, live gauge queries {:.2} ms (first refresh with gauge updates {:.2} ms)",
        render.as_secs_f64() * 1e3,
        convert.as_secs_f64() * 1e3,
        queries.as_secs_f64() * 1e3,
        refresh.as_secs_f64() * 1e3
    );
}
