//! `baton graph FILE`

use baton_core::graph;

use super::validate::load_file;
use crate::cli::{GraphArgs, GraphFormat};
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(super) fn run(args: &GraphArgs, out: &mut Output) -> Result<ExitStatus, ExpectedError> {
    let file = load_file(&args.file)?;
    let Some(p) = &file.loaded.pipeline else {
        out.eprint(&file.render());
        return Err(ExpectedError::Invalid {
            path: file.path.clone(),
        });
    };
    let text = match args.format {
        GraphFormat::Text => graph::to_text(p),
        GraphFormat::Dot => graph::to_dot(p),
        GraphFormat::Mermaid => graph::to_mermaid(p),
        GraphFormat::Json => {
            let mut s = serde_json::to_string_pretty(&graph::to_json(p)).unwrap_or_default();
            s.push('\n');
            s
        }
    };
    out.print(&text)?;
    Ok(ExitStatus::Success)
}
