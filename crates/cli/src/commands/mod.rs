//! One module per subcommand.

mod graph;
mod schema;
mod validate;

use crate::cli::{Cli, Command};
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(crate) fn dispatch(cli: Cli, out: &mut Output) -> Result<ExitStatus, ExpectedError> {
    match cli.command {
        Command::Validate(args) => validate::run(&args, out),
        Command::Schema => schema::run(out),
        Command::Graph(args) => graph::run(&args, out),
    }
}
