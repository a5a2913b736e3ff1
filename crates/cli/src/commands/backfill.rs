//! `baton backfill`: creates a backfill in the local home and drives its runs in this
//! process, at most `parallelism` at once (the server's runner admits them), printing each
//! run as it ends.
//!
//! Like `baton run` this is a direct run: the runs go through the backfill's own admission
//! group (so its parallelism holds even with another `baton backfill` continuing it), but a
//! pipeline's `concurrency` is the server's to enforce.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use baton_core::ids::{Namespace, PipelineId, RunId};
use baton_core::state::RunState;
use baton_engine::{BackfillError, BackfillRequest, Observers, Stop};
use baton_store::Store;
use tokio::sync::watch;

use super::run::runnable_file;
use super::run::{parse_params, stop_on_signals};
use crate::backend::{Backend, open_store as open};
use crate::cli::BackfillArgs;
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

/// How often the store is asked about runs that may have ended without this process.
const ENDED_ELSEWHERE: std::time::Duration = std::time::Duration::from_secs(2);

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
    record: baton_api::Backfill,
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
    record: &baton_api::Backfill,
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
    let engine = crate::backend::engine(
        Arc::clone(&store),
        crate::backend::engine_options(home, observers),
    );
    let outcome = drive_all(engine, &runs, stop.clone(), out).await?;
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

/// Drives the unfinished of `runs` through the one admission runner the server uses too
/// (oldest first, as the store admits them), printing each as it ends. Returns whether every
/// run this call saw end succeeded.
async fn drive_all(
    engine: baton_engine::Engine,
    runs: &[RunId],
    mut stop: watch::Receiver<Option<Stop>>,
    out: &mut Output,
) -> Result<bool, ExpectedError> {
    let store = Arc::clone(engine.store());
    let runner = baton_control::Runner::from_engine(engine);
    let mut finished = runner.subscribe();
    let mut left = HashSet::new();
    for id in runs {
        if let Some(record) = store.run(id).await?
            && !record.state.is_final()
        {
            left.insert(id.clone());
            runner.resume(&record);
        }
    }
    let mut all_ok = true;
    let mut look = tokio::time::interval(ENDED_ELSEWHERE);
    while !left.is_empty() {
        let ended: Vec<(RunId, RunState)> = tokio::select! {
            announced = finished.recv() => match announced {
                Ok((id, state)) => vec![(id, state)],
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => ended_of(store.as_ref(), &left).await?,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            // Runs can end without this runner: cancelled by another process while waiting, or
            // driven to their end by another `baton backfill` continuing this one.
            _ = look.tick() => ended_of(store.as_ref(), &left).await?,
            r = stop.wait_for(Option::is_some) => {
                let how = r.ok().and_then(|s| *s).unwrap_or(Stop::Cancel);
                runner.stop_all(how).await;
                break;
            }
        };
        for (id, state) in ended {
            if !left.remove(&id) {
                continue;
            }
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
    Ok(all_ok)
}

/// Those of `runs` the store has in a final state.
async fn ended_of(
    store: &dyn Store,
    runs: &HashSet<RunId>,
) -> Result<Vec<(RunId, RunState)>, ExpectedError> {
    let mut ended = Vec::new();
    for id in runs {
        if let Some(r) = store.run(id).await?
            && r.state.is_final()
        {
            ended.push((id.clone(), r.state));
        }
    }
    Ok(ended)
}
