//! `baton run`, `baton resume`, `baton retry`, `baton cancel`, `baton approve` / `reject`.

use std::path::Path;
use std::sync::Arc;

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::RunState;
use baton_engine::{Observers, RunRequest, Stop};
use baton_store::Store;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};

use super::inspect::{print_run, run_json};
use super::live;
use super::validate::load_file;
use crate::backend::{Backend, CancelOutcome, RunView, engine_options, open_store as open};
use crate::cli::{DecideArgs, ResumeArgs, RetryArgs, RunArgs, RunRef};
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(crate) fn parse_params(
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
pub(crate) fn stop_on_signals() -> watch::Receiver<Option<Stop>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        baton_control::shutdown::shutdown_signal().await;
        let _ = tx.send(Some(Stop::Cancel));
    });
    rx
}

/// A pipeline file about to run here: valid, its params read by their types, and the
/// directory its commands run in.
pub(crate) struct RunnableFile {
    pub(crate) path: String,
    pub(crate) source: String,
    pub(crate) pipeline: baton_core::Pipeline,
    pub(crate) params: Map<String, Value>,
    pub(crate) base_dir: String,
}

/// `path` read and checked, with its pipeline; an invalid file prints its diagnostics.
fn valid_file(
    path: &Path,
    out: &mut Output,
) -> Result<(super::validate::LoadedFile, baton_core::Pipeline), ExpectedError> {
    let mut file = load_file(path)?;
    let Some(pipeline) = file.loaded.pipeline.take() else {
        out.eprint(&file.render());
        out.eprint("\n");
        return Err(ExpectedError::Invalid { path: file.path });
    };
    Ok((file, pipeline))
}

/// Loads `path` for `baton run` and `baton backfill`; an invalid file prints its diagnostics.
pub(crate) fn runnable_file(
    path: &Path,
    params: &[String],
    out: &mut Output,
) -> Result<RunnableFile, ExpectedError> {
    let (file, pipeline) = valid_file(path, out)?;
    crate::backend::check_placement(&pipeline, &file.path)?;
    let params = parse_params(&pipeline, params)?;
    let base_dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| ".".into());
    Ok(RunnableFile {
        path: file.path,
        source: file.source.unwrap_or_default(),
        pipeline,
        params,
        base_dir: base_dir.display().to_string(),
    })
}

/// `baton --server URL run FILE`: the server runs the file's pipeline, on its executors and
/// workers, and this follows it to its end. A server runs only what it has loaded from its
/// pipelines directory, so the file must be that very version: any other is refused, saying
/// so, rather than running something else under its name.
pub(crate) async fn on_server(
    backend: &Backend,
    args: &RunArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let (file, pipeline) = valid_file(&args.file, out)?;
    let id = &pipeline.id;
    let hint = format!(
        "(hint: put `{}` in the server's pipelines directory, which it reloads on change, or \
         run it here without --server)",
        file.path
    );
    let source = backend
        .source(id.namespace.as_str(), id.name.as_str())
        .await
        .map_err(|e| match e {
            ExpectedError::Refused(m) => {
                ExpectedError::Refused(format!("the server cannot run `{id}`: {m}\n{hint}"))
            }
            ExpectedError::Api { message, status } => ExpectedError::Api {
                message: format!("the server cannot run `{id}`: {message}\n{hint}"),
                status,
            },
            e => e,
        })?;
    let theirs = baton_core::load(&source.text).pipeline;
    if theirs.as_ref().map(|p| &p.version) != Some(&pipeline.version) {
        return Err(ExpectedError::Refused(format!(
            "the server's `{id}` is another version than `{}`: it runs what its pipelines \
             directory holds\n{hint}",
            file.path
        )));
    }
    let params = parse_params(&pipeline, &args.params)?;
    let run = backend
        .trigger(
            &pipeline,
            &source,
            params,
            args.idempotency_key.clone(),
            args.no_cache,
        )
        .await?;
    if !args.json {
        out.print(&format!("{run}\n"))?;
    }
    finish(&backend.wait(&run).await?, args.json, out)
}

pub(crate) async fn run(
    home: &Path,
    args: &RunArgs,
    observers: &Observers,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let file = runnable_file(&args.file, &args.params, out)?;
    let pipeline = &file.pipeline;
    let store = open(home).await?;
    crate::config_file::seed_pools(store.as_ref(), &args.pools).await?;
    let id = baton_engine::create_run(
        store.as_ref(),
        RunRequest {
            pipeline,
            source: &file.source,
            path: Some(file.path.clone()),
            base_dir: file.base_dir,
            params: file.params,
            trigger: baton_core::state::RunTrigger::Manual,
            logical_date: None,
            idempotency_key: args.idempotency_key.clone(),
            // A direct run in the foreground: `concurrency` is the server's to enforce.
            admission: None,
            backfill_id: None,
            no_cache: args.no_cache,
        },
    )
    .await?
    .id;
    out.eprint(&format!(
        "run {id} of {} ({})\n",
        pipeline.id,
        pipeline.version.short()
    ));
    drive(
        home,
        store,
        &id,
        args.parallelism,
        args.json,
        observers,
        out,
    )
    .await
}

pub(crate) async fn retry(
    backend: &Backend,
    args: &RetryArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let (id, reopened) = backend.retry(&args.run).await?;
    let names: Vec<String> = reopened.iter().map(ToString::to_string).collect();
    out.eprint(&format!("retrying run {id}: {}\n", names.join(", ")));
    match backend {
        Backend::Local {
            home,
            store,
            observers,
        } => {
            drive(
                home,
                Arc::clone(store),
                &id,
                args.parallelism,
                args.json,
                observers,
                out,
            )
            .await
        }
        Backend::Remote(_) if args.wait => finish(&backend.wait(&id).await?, args.json, out),
        Backend::Remote(_) => Ok(ExitStatus::Success),
    }
}

pub(crate) async fn resume(
    home: &Path,
    args: &ResumeArgs,
    observers: &Observers,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let store = crate::backend::open_home(home, crate::backend::HomeUse::Existing).await?;
    let id = store.resolve_run(&args.run).await?;
    out.eprint(&format!("resuming run {id}\n"));
    drive(
        home,
        store,
        &id,
        args.parallelism,
        args.json,
        observers,
        out,
    )
    .await
}

pub(crate) async fn drive(
    home: &Path,
    store: Arc<dyn Store>,
    id: &RunId,
    parallelism: Option<usize>,
    json: bool,
    observers: &Observers,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let mut opts = engine_options(home, observers);
    if let Some(n) = parallelism {
        opts.parallelism = n.max(1);
    }
    // Sub-pipeline tasks start the pipelines next to the run's file.
    if let Some(record) = store.run(id).await? {
        opts.pipelines = Some(Arc::new(crate::discover::DirPipelines::new(
            record.base_dir,
        )));
    }
    let total = store.tasks(id).await?.len();
    let (tx, rx) = mpsc::unbounded_channel();
    let view = tokio::spawn(live::watch(rx, total));
    let result = crate::backend::engine(store.clone(), opts)
        .execute_with_children(id, Some(tx), stop_on_signals())
        .await;
    let _ = view.await;
    result?;
    finish(&RunView::load(store.as_ref(), id).await?, json, out)
}

/// Prints a run that has stopped and says how `baton run` exits for it.
pub(crate) fn finish(
    view: &RunView,
    json: bool,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    if json {
        out.print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&run_json(view)).unwrap_or_default()
        ))?;
    } else {
        print_run(view, out, false)?;
    }
    Ok(match view.run.state {
        RunState::Succeeded => ExitStatus::Success,
        RunState::Cancelled => ExitStatus::Cancelled,
        _ => ExitStatus::Failure,
    })
}

pub(crate) async fn cancel(
    backend: &Backend,
    args: &RunRef,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    match backend.cancel(&args.run).await? {
        (id, CancelOutcome::Finished(state)) => {
            out.print(&format!("run {id} already {state}\n"))?
        }
        (id, CancelOutcome::Requested) => {
            out.print(&format!(
                "cancel requested; the process running {id} will stop it\n"
            ))?;
        }
        (id, CancelOutcome::Ended(state)) => out.print(&format!("run {id} {state}\n"))?,
    }
    Ok(ExitStatus::Success)
}

pub(crate) async fn decide(
    backend: &Backend,
    args: &DecideArgs,
    approve: bool,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let key = TaskKey::from_string(args.task.clone());
    let by = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let id = backend
        .decide(&args.run, &key, approve, &by, args.comment.as_deref())
        .await?;
    let verb = if approve { "approved" } else { "rejected" };
    out.print(&format!("{verb} `{key}` of run {id}\n"))?;
    Ok(ExitStatus::Success)
}
