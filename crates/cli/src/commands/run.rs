//! `baton run`, `baton resume`, `baton cancel`, `baton approve` / `reject`.

use std::path::Path;
use std::sync::Arc;

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::RunState;
use baton_engine::executor::LocalExecutor;
use baton_engine::{Options, RunRequest, Stop};
use baton_store::{SqlStore, Store};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};

use super::inspect::{print_run, run_json};
use super::live;
use super::validate::load_file;
use crate::cli::{DecideArgs, ResumeArgs, RunArgs, RunRef};
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(crate) async fn open(home: &Path) -> Result<Arc<dyn Store>, ExpectedError> {
    Ok(Arc::new(SqlStore::open_home(home).await?))
}

fn parse_params(
    pipeline: &baton_core::Pipeline,
    given: &[String],
) -> Result<Map<String, Value>, ExpectedError> {
    let mut out = Map::new();
    for text in given {
        let Some((name, value)) = text.split_once('=') else {
            return Err(ExpectedError::Usage(format!(
                "`--param {text}` is not `NAME=VALUE`"
            )));
        };
        let Some(param) = pipeline.params.get(name) else {
            let known: Vec<String> = pipeline.params.keys().map(|k| format!("`{k}`")).collect();
            let hint = if known.is_empty() {
                "the pipeline declares no params".to_owned()
            } else {
                format!("the pipeline declares {}", known.join(", "))
            };
            return Err(ExpectedError::Usage(format!(
                "unknown param `{name}`\n(hint: {hint})"
            )));
        };
        let v = param
            .parse_text(value)
            .map_err(|e| ExpectedError::Usage(format!("param `{name}`: {e}")))?;
        out.insert(name.to_owned(), v);
    }
    Ok(out)
}

/// Ctrl-C or SIGTERM asks the run to stop; the dispatcher cancels it cleanly.
fn stop_on_signals() -> watch::Receiver<Option<Stop>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(Some(Stop::Cancel));
    });
    rx
}

pub(crate) async fn run(
    home: &Path,
    args: &RunArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let file = load_file(&args.file)?;
    let Some(pipeline) = &file.loaded.pipeline else {
        out.eprint(&file.render());
        out.eprint("\n");
        return Err(ExpectedError::Invalid {
            path: file.path.clone(),
        });
    };
    let params = parse_params(pipeline, &args.params)?;
    let store = open(home).await?;
    let base_dir = std::fs::canonicalize(&args.file)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| ".".into());
    let id = baton_engine::create_run(
        store.as_ref(),
        RunRequest {
            pipeline,
            source: file.source.as_deref().unwrap_or_default(),
            path: Some(file.path.clone()),
            base_dir: base_dir.display().to_string(),
            params,
            trigger: "manual",
            logical_date: None,
            idempotency_key: args.idempotency_key.clone(),
        },
    )
    .await?
    .id;
    out.eprint(&format!(
        "run {id} of {} ({})\n",
        pipeline.id,
        pipeline.version.short()
    ));
    drive(home, store, &id, args.parallelism, args.json, out).await
}

pub(crate) async fn resume(
    home: &Path,
    args: &ResumeArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let store = open(home).await?;
    let id = store.resolve_run(&args.run).await?;
    out.eprint(&format!("resuming run {id}\n"));
    drive(home, store, &id, args.parallelism, args.json, out).await
}

async fn drive(
    home: &Path,
    store: Arc<dyn Store>,
    id: &RunId,
    parallelism: Option<usize>,
    json: bool,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let mut opts = Options::new(home.to_path_buf());
    if let Some(n) = parallelism {
        opts.parallelism = n.max(1);
    }
    let total = store.tasks(id).await?.len();
    let (tx, rx) = mpsc::unbounded_channel();
    let view = tokio::spawn(live::watch(rx, total));
    let executor = Arc::new(LocalExecutor::default());
    let result = baton_engine::execute(
        store.clone(),
        executor,
        id,
        &opts,
        Some(tx),
        stop_on_signals(),
    )
    .await;
    let _ = view.await;
    let state = result?;
    if json {
        let doc = run_json(store.as_ref(), id).await?;
        out.print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        ))?;
    } else {
        print_run(store.as_ref(), id, out, false).await?;
    }
    Ok(match state {
        RunState::Succeeded => ExitStatus::Success,
        RunState::Cancelled => ExitStatus::Cancelled,
        _ => ExitStatus::Failure,
    })
}

pub(crate) async fn cancel(
    home: &Path,
    args: &RunRef,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let store = open(home).await?;
    let id = store.resolve_run(&args.run).await?;
    let run = store
        .run(&id)
        .await?
        .ok_or_else(|| baton_store::Error::RunNotFound(id.to_string()))?;
    if run.state.is_final() {
        out.print(&format!("run {id} already {}\n", run.state))?;
        return Ok(ExitStatus::Success);
    }
    store.request_cancel(&id).await?;
    let owned = run
        .lease_owner
        .as_deref()
        .is_some_and(|o| !baton_engine::owner_is_dead(o))
        && run
            .lease_expires_at
            .is_some_and(|t| t > baton_engine::now_ms());
    if owned {
        out.print(&format!(
            "cancel requested; the process running {id} will stop it\n"
        ))?;
        return Ok(ExitStatus::Success);
    }
    // Nobody is running it: cancel it here, recording interrupted attempts as it goes.
    let (tx, rx) = watch::channel(Some(Stop::Cancel));
    let opts = Options::new(home.to_path_buf());
    let state = baton_engine::execute(
        store,
        Arc::new(LocalExecutor::default()),
        &id,
        &opts,
        None,
        rx,
    )
    .await?;
    drop(tx);
    out.print(&format!("run {id} {state}\n"))?;
    Ok(ExitStatus::Success)
}

pub(crate) async fn decide(
    home: &Path,
    args: &DecideArgs,
    approve: bool,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let store = open(home).await?;
    let id = store.resolve_run(&args.run).await?;
    let key = TaskKey::from_string(args.task.clone());
    let tasks = store.tasks(&id).await?;
    let Some(task) = tasks.iter().find(|t| t.key == key) else {
        let names: Vec<String> = tasks.iter().map(|t| format!("`{}`", t.key)).collect();
        return Err(ExpectedError::Usage(format!(
            "run {id} has no task `{key}`\n(hint: its tasks are {})",
            names.join(", ")
        )));
    };
    if task.state.is_final() {
        return Err(ExpectedError::Usage(format!(
            "task `{key}` is already {}",
            task.state
        )));
    }
    let by = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let recorded = store
        .decide(
            &id,
            &key,
            approve,
            &by,
            baton_engine::now_ms(),
            args.comment.as_deref(),
        )
        .await?;
    let verb = if approve { "approved" } else { "rejected" };
    if recorded {
        out.print(&format!("{verb} `{key}` of run {id}\n"))?;
    } else {
        out.print(&format!("`{key}` of run {id} was already decided\n"))?;
    }
    Ok(ExitStatus::Success)
}
