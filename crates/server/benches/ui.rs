//! The web UI under load: page render times with many runs and a big DAG.
//!
//! Sets up a home with `--runs` finished runs (default 10,000) spread over 20 pipelines, and
//! a pipeline of `--tasks` tasks (default 2,000: 40 layers of 50, each task needing two of
//! the layer before, every tenth one also a task of the first layer) with one run of it,
//! then renders each page through the router (no socket) and prints the median and worst of
//! `--reps` renders.
//!
//! `cargo bench -p baton-server --bench ui` (`-- --runs N --tasks N --reps N` to resize).

#![allow(clippy::print_stdout, clippy::unwrap_used)]

mod support;

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use baton_control::Runner;
use baton_core::ids::{RunId, TaskKey};
use baton_core::state::{RunState, TaskState};
use baton_engine::executor::LocalExecutor;
use baton_observe::secrets::StaticSecrets;
use baton_server::{AppState, router};
use baton_store::{Change, DefinitionRecord, NewRun, NewTask, SqlStore, Store};
use http_body_util::BodyExt;
use support::arg;
use tower::ServiceExt;

fn big_pipeline(tasks: usize) -> String {
    let width = 50;
    let mut yaml = String::from("name: big\ntasks:\n");
    for i in 0..tasks {
        let _ = write!(yaml, "  t{i}:\n    run: \"true\"\n");
        if i >= width {
            let layer_start = (i / width - 1) * width;
            let a = layer_start + i % width;
            let b = layer_start + (i + 1) % width;
            // Every tenth task also needs one of the first layer: long edges, drawn with
            // a bend in each layer they cross.
            if i % 10 == 0 && i >= 2 * width {
                let c = i % width;
                let _ = writeln!(yaml, "    needs: [t{a}, t{b}, t{c}]");
            } else {
                let _ = writeln!(yaml, "    needs: [t{a}, t{b}]");
            }
        }
    }
    yaml
}

fn new_run(id: String, def: &DefinitionRecord, tasks: Vec<NewTask>, at: i64) -> NewRun {
    NewRun {
        id: RunId::from_string(id),
        definition: def.clone(),
        params: serde_json::json!({}),
        trigger: "manual".into(),
        logical_date: None,
        base_dir: "/tmp".into(),
        idempotency_key: None,
        created_at: at,
        tasks,
        admission: None,
        backfill_id: None,
        no_cache: false,
        parent: None,
    }
}

async fn time(app: &axum::Router, uri: &str, reps: usize) {
    let mut times = Vec::with_capacity(reps);
    let mut bytes = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{uri}: {}", resp.status());
        bytes = resp.into_body().collect().await.unwrap().to_bytes().len();
        times.push(t.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = times.last().copied().unwrap_or(Duration::ZERO);
    println!(
        "{uri:<48} median {:>8.1} ms   worst {:>8.1} ms   {:>8} KiB",
        median.as_secs_f64() * 1000.0,
        worst.as_secs_f64() * 1000.0,
        bytes / 1024
    );
}

fn main() {
    let runs = arg("--runs", 10_000);
    let tasks = arg("--tasks", 2_000);
    let reps = arg("--reps", 10);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let dir = tempfile::tempdir().unwrap();
            let pipelines = dir.path().join("pipelines");
            std::fs::create_dir_all(&pipelines).unwrap();
            let big = big_pipeline(tasks);
            std::fs::write(pipelines.join("big.yaml"), &big).unwrap();
            for p in 0..20 {
                std::fs::write(
                    pipelines.join(format!("p{p}.yaml")),
                    format!("name: p{p}\nschedule:\n  - cron: \"30 2 * * *\"\ntasks:\n  a:\n    run: \"true\"\n  b:\n    needs: [a]\n    run: \"true\"\n"),
                )
                .unwrap();
            }
            let home = dir.path().join("home");
            let store: Arc<dyn Store> = Arc::new(SqlStore::open_home(&home).await.unwrap());
            let runner = Runner::new(Arc::clone(&store), Arc::new(LocalExecutor::default()), home);
            let state = AppState::new(
                Arc::clone(&store),
                runner,
                pipelines,
                Arc::new(StaticSecrets(Default::default())),
            );
            state.reload().await;

            let setup = Instant::now();
            let now = baton_engine::now_ms();
            let task = |k: &str, pos| NewTask {
                key: TaskKey::from_string(k),
                task_id: k.to_owned(),
                position: pos,
                item: None,
                state: TaskState::Pending,
            };
            for i in 0..runs {
                let p = i % 20;
                let def = DefinitionRecord {
                    hash: format!("h{p}"),
                    namespace: "default".into(),
                    name: format!("p{p}"),
                    source: format!("name: p{p}\ntasks:\n  a:\n    run: \"true\"\n  b:\n    needs: [a]\n    run: \"true\"\n"),
                    path: None,
                };
                let at = now - (runs - i) as i64 * 30_000;
                let id = format!("01{:010}{}", i, "X".repeat(14));
                store
                    .create_run(&new_run(id.clone(), &def, vec![task("a", 0), task("b", 1)], at))
                    .await
                    .unwrap();
                let state = if i % 10 == 0 { RunState::Failed } else { RunState::Succeeded };
                store
                    .apply(
                        &RunId::from_string(id),
                        baton_store::Fence::Unfenced,
                        &[
                            Change::Run { state: RunState::Running, at, error: None },
                            Change::Run { state, at: at + 1000 + (i as i64 % 97) * 100, error: None },
                        ],
                    )
                    .await
                    .unwrap();
            }
            let catalog = state.catalog.read().await;
            let v = catalog.find("default", "big").unwrap().active.clone().unwrap();
            drop(catalog);
            let def = DefinitionRecord {
                hash: v.pipeline.version.to_string(),
                namespace: "default".into(),
                name: "big".into(),
                source: v.source.to_string(),
                path: None,
            };
            let big_tasks: Vec<NewTask> = (0..tasks).map(|i| task(&format!("t{i}"), i as i64)).collect();
            let big_run = "01ZZZZZZZZZZZZZZZZZZZZZZZZ".to_owned();
            store.create_run(&new_run(big_run.clone(), &def, big_tasks, now)).await.unwrap();
            println!(
                "setup: {runs} runs over 20 pipelines, a {tasks}-task pipeline and run, in {:.1} s",
                setup.elapsed().as_secs_f64()
            );
            let app = router(state);
            time(&app, "/", reps).await;
            time(&app, "/runs", reps).await;
            time(&app, "/runs?cursor=0100000050000XXXXXXXXXXXXXX", reps).await;
            time(&app, "/runs?pipeline=default/p3&state=failed", reps).await;
            time(&app, "/dead-letters", reps).await;
            time(&app, "/approvals", reps).await;
            time(&app, "/pipelines/default/big", reps).await;
            time(&app, "/pipelines/default/p3", reps).await;
            time(&app, &format!("/runs/{big_run}"), reps).await;
            time(&app, &format!("/runs/{big_run}?fragment=dag"), reps).await;
        });
}
