//! `baton dead-letters` and `baton dead-letters requeue`: task instances that failed for good,
//! listed from the home or a server, and requeued: in the foreground from the home (as
//! `baton retry` does), by the server otherwise.

use std::sync::Arc;

use baton_api::DeadLetter;
use baton_core::ids::{RunId, TaskKey};

use super::inspect::{table, timestamp};
use super::run::drive;
use crate::backend::Backend;
use crate::cli::{DeadLettersArgs, DeadLettersCommand, DeadLettersListArgs, RequeueArgs};
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(crate) async fn run(
    backend: &Backend,
    args: &DeadLettersArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    match &args.command {
        None => list(backend, &args.list, out).await,
        Some(DeadLettersCommand::Requeue(requeue_args)) => {
            requeue(backend, requeue_args, out).await
        }
    }
}

pub(crate) async fn list(
    backend: &Backend,
    args: &DeadLettersListArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let letters = backend
        .dead_letters(args.pipeline.as_deref(), args.limit)
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

pub(crate) async fn requeue(
    backend: &Backend,
    args: &RequeueArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let runs: Vec<(String, Vec<TaskKey>)> = match (&args.run, &args.task) {
        (Some(run), Some(task)) if !args.all => {
            vec![(run.clone(), vec![TaskKey::from_string(task.clone())])]
        }
        _ => {
            let mut letters = backend
                .dead_letters(args.pipeline.as_deref(), u32::MAX)
                .await?;
            letters.reverse();
            by_run(letters)
        }
    };
    if runs.is_empty() {
        out.print("no dead letters\n")?;
        return Ok(ExitStatus::Success);
    }
    // Each run is requeued just before it is driven, so stopping (Ctrl-C) leaves the rest
    // as they were: still dead letters.
    let mut status = ExitStatus::Success;
    for (run, keys) in runs {
        let (id, reopened) = backend.requeue(&run, &keys).await?;
        let chosen: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        let names: Vec<String> = reopened.iter().map(ToString::to_string).collect();
        out.eprint(&format!(
            "requeued {} of run {id}: {}\n",
            chosen.join(", "),
            names.join(", ")
        ));
        let Backend::Local {
            home,
            store,
            observers,
        } = backend
        else {
            continue; // the server drives it
        };
        match drive(
            home,
            Arc::clone(store),
            &id,
            args.parallelism,
            false,
            observers,
            out,
        )
        .await?
        {
            ExitStatus::Cancelled => return Ok(ExitStatus::Cancelled),
            ExitStatus::Success => {}
            other => status = other,
        }
    }
    Ok(status)
}

/// Groups dead letters by run, keeping the runs' order: a run is requeued once, with all of
/// its dead letters.
fn by_run(letters: Vec<DeadLetter>) -> Vec<(String, Vec<TaskKey>)> {
    let mut runs: Vec<(RunId, Vec<TaskKey>)> = Vec::new();
    for d in letters {
        match runs.iter_mut().find(|(id, _)| *id == d.run) {
            Some((_, keys)) => keys.push(d.key),
            None => runs.push((d.run, vec![d.key])),
        }
    }
    runs.into_iter()
        .map(|(id, keys)| (id.to_string(), keys))
        .collect()
}
