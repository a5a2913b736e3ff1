//! `baton backfill`: creates a backfill in the local home and drives its runs in this
//! process, at most `parallelism` at once, printing each run as it ends.
//!
//! Like `baton run` this is a direct run: the runs go through the backfill's own admission
//! group (so its parallelism holds even with another `baton backfill` continuing it), but a
//! pipeline's `concurrency` is the server's to enforce.

use std::path::Path;
use std::sync::Arc;

use baton_core::ids::{Namespace, PipelineId, RunId};
use baton_core::state::RunState;
use baton_engine::{BackfillError, BackfillRequest, Observers, Options, Stop};
use baton_store::Store;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::run::runnable_file;
use super::run::{parse_params, stop_on_signals};
use crate::backend::{Backend, open_store as open};
use crate::cli::BackfillArgs;
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

/// How long to wait before asking again when the store admits none of our runs (another
/// process drives some of the backfill's runs).
const ADMISSION_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// How often a backfill on a server is looked at until all its runs have ended.
const POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// `baton backfill`: from a file in the home, or of a pipeline known by name to `--server`.
pub(crate) async fn run(
    backend: &Backend,
    args: &BackfillArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    match backend {
        Backend::Local {
            home, observers, ..
        } => run_here(home, observers, args, out).await,
        Backend::Remote(client) => run_on_server(backend, client, args, out).await,
    }
}

/// A backfill as the server describes it.
#[derive(Debug, serde::Deserialize)]
struct Described {
    #[serde(flatten)]
    record: baton_server::api_model::Backfill,
    counts: std::collections::BTreeMap<String, u64>,
    done: bool,
}

/// Asks the server for the backfill, then follows it until every run has ended, printing what
/// `run_here` prints at the start and the end.
async fn run_on_server(
    backend: &Backend,
    client: &crate::client::Client,
    args: &BackfillArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let given = args.file.display().to_string();
    let id = PipelineId::parse(&given, &Namespace::default_namespace()).map_err(|e| {
        ExpectedError::Usage(format!(
            "{e}\n(hint: with --server, name the pipeline as the server knows it: `namespace/name`)"
        ))
    })?;
    let (ns, name) = (id.namespace.as_str(), id.name.as_str());
    let source = backend.source(ns, name).await?;
    let pipeline = baton_core::load(&source.text).pipeline.ok_or_else(|| {
        ExpectedError::Refused(format!("the server's version of `{id}` no longer loads"))
    })?;
    let params = parse_params(&pipeline, &args.params)?;
    let body = serde_json::json!({
        "start": args.start,
        "end": args.end,
        "parallelism": args.parallelism,
        "params": params,
        "schedule": args.schedule,
        "idempotency_key": args.idempotency_key,
    });
    let mut doc: Described = client
        .post(&["pipelines", ns, name, "backfill"], &body)
        .await?;
    let record = &doc.record;
    announce(out, record, &pipeline, false);
    let backfill = record.id.to_string();
    while !doc.done {
        tokio::time::sleep(POLL).await;
        doc = client.get(&["backfills", &backfill], &[]).await?;
    }
    let count = |s: RunState| doc.counts.get(s.as_str()).copied().unwrap_or(0);
    summary(out, &count, doc.record.runs)
}

/// The opening line: which backfill, of what, how big.
fn announce(
    out: &mut Output,
    record: &baton_server::api_model::Backfill,
    pipeline: &baton_core::Pipeline,
    continuing: bool,
) {
    out.eprint(&format!(
        "backfill {} of {} ({}): {} run(s), at most {} at once{}\n",
        record.id,
        pipeline.id,
        pipeline.version.short(),
        record.runs,
        record.parallelism,
        if continuing { " (continuing)" } else { "" },
    ));
}

/// The closing line, and the exit status it implies.
fn summary(
    out: &mut Output,
    count: &dyn Fn(RunState) -> u64,
    runs: u64,
) -> Result<ExitStatus, ExpectedError> {
    out.print(&format!(
        "{} succeeded, {} failed, {} cancelled, {} unfinished of {} run(s)\n",
        count(RunState::Succeeded),
        count(RunState::Failed),
        count(RunState::Cancelled),
        count(RunState::Queued) + count(RunState::Running),
        runs,
    ))?;
    Ok(if count(RunState::Succeeded) == runs {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

async fn run_here(
    home: &Path,
    observers: &Observers,
    args: &BackfillArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let file = runnable_file(&args.file, &args.params, out)?;
    let pipeline = &file.pipeline;
    let store = open(home).await?;
    let created = baton_engine::create_backfill(
        store.as_ref(),
        BackfillRequest {
            pipeline,
            source: &file.source,
            path: Some(file.path.clone()),
            base_dir: file.base_dir,
            params: file.params,
            schedule: args.schedule,
            start: args.start.clone(),
            end: args.end.clone(),
            parallelism: args.parallelism,
            idempotency_key: args.idempotency_key.clone(),
        },
    )
    .await
    .map_err(|e| match e {
        BackfillError::Store(e) => e.into(),
        other => ExpectedError::Usage(other.to_string()),
    })?;
    let record = store
        .backfill(&created.id)
        .await?
        .ok_or_else(|| baton_store::Error::BackfillNotFound(created.id.to_string()))?;
    let group = record.id.admission_group();
    let runs: Vec<RunId> = if created.new {
        created.runs
    } else {
        // The same key: continue whatever of that backfill has not ended.
        store
            .group_runs(&group)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    announce(out, &record.clone().into(), pipeline, !created.new);
    let stop = stop_on_signals();
    let parallelism = usize::try_from(record.parallelism.max(1)).unwrap_or(usize::MAX);
    let opts = crate::backend::engine_options(home, observers);
    let outcome = drive_all(&opts, &store, runs, parallelism, stop.clone(), out).await?;
    if stop.borrow().is_some() {
        // Interrupted: what never started ends now rather than waiting for nobody.
        store.cancel_waiting(&group, baton_engine::now_ms()).await?;
    }
    let counts = store.backfill_counts(&record.id).await?;
    let count = |s: RunState| counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
    let status = summary(out, &count, record.runs)?;
    Ok(if stop.borrow().is_some() {
        ExitStatus::Cancelled
    } else if outcome {
        status
    } else {
        ExitStatus::Failure
    })
}

/// Drives `runs` in order, at most `parallelism` at once, each once the store admits it.
/// Returns whether every run this call drove succeeded.
async fn drive_all(
    opts: &Options,
    store: &Arc<dyn Store>,
    runs: Vec<RunId>,
    parallelism: usize,
    stop: watch::Receiver<Option<Stop>>,
    out: &mut Output,
) -> Result<bool, ExpectedError> {
    let executor = Arc::new(crate::backend::executor());
    let mut pending = runs.into_iter().peekable();
    let mut driving: JoinSet<(RunId, Result<RunState, baton_engine::Error>)> = JoinSet::new();
    let mut all_ok = true;
    loop {
        // Start what the store admits, up to our parallelism.
        while driving.len() < parallelism && stop.borrow().is_none() {
            let Some(next) = pending.peek().cloned() else {
                break;
            };
            if !store
                .admit(&next, baton_engine::now_ms())
                .await?
                .is_admitted()
            {
                let ended = store.run(&next).await?.is_none_or(|r| r.state.is_final());
                if !ended {
                    break;
                }
            }
            pending.next();
            let (store, executor, opts, stop) = (
                Arc::clone(store),
                Arc::clone(&executor),
                opts.clone(),
                stop.clone(),
            );
            driving.spawn(async move {
                let state = baton_engine::execute(store, executor, &next, &opts, None, stop).await;
                (next, state)
            });
        }
        if driving.is_empty() {
            if pending.peek().is_none() || stop.borrow().is_some() {
                return Ok(all_ok);
            }
            // None of ours runs, yet none is admitted: another process holds the slots.
            tokio::time::sleep(ADMISSION_RETRY).await;
            continue;
        }
        let Some(joined) = driving.join_next().await else {
            continue;
        };
        let (id, state) = joined.map_err(|e| ExpectedError::Usage(e.to_string()))?;
        let state = state?;
        all_ok &= state == RunState::Succeeded;
        let logical_date = store
            .run(&id)
            .await?
            .and_then(|r| r.logical_date)
            .unwrap_or_default();
        out.print(&format!(
            "{logical_date}  {:<9}  run {id}\n",
            state.as_str()
        ))?;
    }
}
