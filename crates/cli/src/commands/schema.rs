//! `baton schema`

use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(super) fn run(out: &mut Output) -> Result<ExitStatus, ExpectedError> {
    out.print(&baton_core::schema::pipeline_schema_text())?;
    Ok(ExitStatus::Success)
}
