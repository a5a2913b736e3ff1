//! `baton dead-letters` and `baton dead-letters requeue`: task instances that failed for good,
//! listed from the home and requeued in the foreground (as `baton retry` does).

use std::path::Path;

use baton_core::ids::{RunId, TaskKey};
use baton_engine::control::RetryError;
use baton_store::{DeadLetterFilter, DeadLetterRecord};

use super::inspect::{table, timestamp};
use super::run::drive;
use crate::backend::open_store as open;
use crate::cli::{DeadLettersArgs, DeadLettersCommand, DeadLettersListArgs, RequeueArgs};
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

/// Dead letters read per query when requeuing them all.
const PAGE: u32 = 500;

pub(crate) async fn run(
    home: &Path,
    args: &DeadLettersArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    match &args.command {
        None => list(home, &args.list, out).await,
        Some(DeadLettersCommand::Requeue(requeue_args)) => requeue(home, requeue_args, out).await,
    }
}

pub(crate) async fn list(
    home: &Path,
    args: &DeadLettersListArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let store = open(home).await?;
    let letters = store
        .dead_letters(
            &DeadLetterFilter {
                limit: args.limit,
                ..DeadLetterFilter::default()
            }
            .for_pipeline(args.pipeline.as_deref()),
        )
        .await?;
    if args.json {
        out.print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&letters).unwrap_or_default()
        ))?;
        return Ok(ExitStatus::Success);
    }
    if letters.is_empty() {
        out.print("no dead letters\n")?;
        return Ok(ExitStatus::Success);
    }
    let mut t = table();
    t.set_header([
        "run", "pipeline", "task", "attempts", "exit", "failed", "error",
    ]);
    for d in &letters {
        let exit = match (d.exit_code, d.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!("signal {s}"),
            _ => "-".into(),
        };
        t.add_row([
            d.run.to_string(),
            format!("{}/{}", d.namespace, d.pipeline),
            d.key.to_string(),
            d.attempts.to_string(),
            exit,
            timestamp(d.finished_at),
            d.error.clone().unwrap_or_default(),
        ]);
    }
    out.print(&format!("{t}\n"))?;
    Ok(ExitStatus::Success)
}

fn refused(e: RetryError) -> ExpectedError {
    match e {
        RetryError::Store(e) => e.into(),
        other => ExpectedError::Usage(other.to_string()),
    }
}

pub(crate) async fn requeue(
    home: &Path,
    args: &RequeueArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let store = open(home).await?;
    let runs: Vec<(RunId, Vec<TaskKey>)> = match (&args.run, &args.task) {
        (Some(run), Some(task)) if !args.all => {
            let id = store.resolve_run(run).await?;
            vec![(id, vec![TaskKey::from_string(task.clone())])]
        }
        _ => by_run(all(store.as_ref(), args.pipeline.as_deref()).await?),
    };
    if runs.is_empty() {
        out.print("no dead letters\n")?;
        return Ok(ExitStatus::Success);
    }
    // Each run is requeued just before it is driven, so stopping (Ctrl-C) leaves the rest
    // as they were: still dead letters.
    let mut status = ExitStatus::Success;
    for (id, keys) in runs {
        let reopened = baton_engine::control::requeue(store.as_ref(), &id, &keys)
            .await
            .map_err(refused)?;
        let chosen: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        let names: Vec<String> = reopened.iter().map(ToString::to_string).collect();
        out.eprint(&format!(
            "requeued {} of run {id}: {}\n",
            chosen.join(", "),
            names.join(", ")
        ));
        match drive(home, store.clone(), &id, args.parallelism, false, out).await? {
            ExitStatus::Cancelled => return Ok(ExitStatus::Cancelled),
            ExitStatus::Success => {}
            other => status = other,
        }
    }
    Ok(status)
}

/// Every current dead letter (of one pipeline), oldest run first.
async fn all(
    store: &dyn baton_store::Store,
    pipeline: Option<&str>,
) -> Result<Vec<DeadLetterRecord>, ExpectedError> {
    let mut letters = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .dead_letters(
                &DeadLetterFilter {
                    limit: PAGE,
                    before,
                    ..DeadLetterFilter::default()
                }
                .for_pipeline(pipeline),
            )
            .await?;
        before = page.last().map(DeadLetterRecord::cursor);
        let done = page.len() < PAGE as usize;
        letters.extend(page);
        if done {
            break;
        }
    }
    letters.reverse();
    Ok(letters)
}

/// Groups dead letters by run, keeping the runs' order: a run is requeued once, with all of
/// its dead letters.
fn by_run(letters: Vec<DeadLetterRecord>) -> Vec<(RunId, Vec<TaskKey>)> {
    let mut runs: Vec<(RunId, Vec<TaskKey>)> = Vec::new();
    for d in letters {
        match runs.iter_mut().find(|(id, _)| *id == d.run) {
            Some((_, keys)) => keys.push(d.key),
            None => runs.push((d.run, vec![d.key])),
        }
    }
    runs
}
