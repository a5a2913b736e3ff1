//! One module per subcommand.

mod backfill;
mod graph;
mod inspect;
mod live;
mod run;
mod schedule;
mod schema;
mod server;
mod validate;

use crate::cli::{Cli, Command};
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

pub(crate) fn dispatch(cli: Cli, out: &mut Output) -> Result<ExitStatus, ExpectedError> {
    match cli.command {
        Command::Validate(args) => validate::run(&args, out),
        Command::Schema => schema::run(out),
        Command::Graph(args) => graph::run(&args, out),
        Command::Run(args) => with_runtime(run::run(&cli.home, &args, out)),
        Command::Resume(args) => with_runtime(run::resume(&cli.home, &args, out)),
        Command::Retry(args) => with_runtime(run::retry(&cli.home, &args, out)),
        Command::Runs(args) => with_runtime(inspect::runs(&cli.home, &args, out)),
        Command::Show(args) => with_runtime(inspect::show(&cli.home, &args, out)),
        Command::Logs(args) => with_runtime(inspect::logs(&cli.home, &args, out)),
        Command::Cancel(args) => with_runtime(run::cancel(&cli.home, &args, out)),
        Command::Server(args) => with_runtime(server::run(&cli.home, &args, out)),
        Command::Schedule(crate::cli::ScheduleCommand::Next(args)) => schedule::next(&args, out),
        Command::Approve(args) => with_runtime(run::decide(&cli.home, &args, true, out)),
        Command::Reject(args) => with_runtime(run::decide(&cli.home, &args, false, out)),
        Command::Backfill(args) => with_runtime(backfill::run(&cli.home, &args, out)),
    }
}

fn with_runtime(
    f: impl std::future::Future<Output = Result<ExitStatus, ExpectedError>>,
) -> Result<ExitStatus, ExpectedError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ExpectedError::Write)?
        .block_on(f)
}
