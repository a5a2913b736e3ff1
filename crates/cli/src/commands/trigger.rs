//! `baton trigger NS/NAME`: a run of a pipeline known by name, started by a server or, without
//! one, from the newest version recorded in the home.

use std::sync::Arc;

use baton_core::ids::{Namespace, PipelineId};

use super::run::{drive, finish, parse_params};
use crate::backend::Backend;
use crate::cli::TriggerArgs;
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(crate) async fn run(
    backend: &Backend,
    args: &TriggerArgs,
    out: &mut Output,
) -> Result<ExitStatus, ExpectedError> {
    let id = PipelineId::parse(&args.pipeline, &Namespace::default_namespace())
        .map_err(|e| ExpectedError::Usage(e.to_string()))?;
    let source = backend
        .source(id.namespace.as_str(), id.name.as_str())
        .await?;
    // Params are read by their declared types here, as `baton run` reads them, so both
    // backends refuse a bad one with the same message before anything starts.
    let pipeline = baton_core::load(&source.text).pipeline.ok_or_else(|| {
        ExpectedError::Refused(format!("the recorded version of `{id}` no longer loads"))
    })?;
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
    // First and alone on its line, so scripts can take it: `id=$(baton trigger p | head -1)`.
    out.print(&format!("{run}\n"))?;
    match backend {
        Backend::Local {
            home,
            store,
            observers,
        } => {
            drive(
                home,
                Arc::clone(store),
                &run,
                args.parallelism,
                false,
                observers,
                out,
            )
            .await
        }
        Backend::Remote(_) if args.wait => finish(&backend.wait(&run).await?, false, out),
        Backend::Remote(_) => Ok(ExitStatus::Success),
    }
}
