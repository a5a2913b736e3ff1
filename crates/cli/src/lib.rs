//! The `baton` command line: parsing arguments, dispatching to commands, and turning their
//! outcome into output and an exit code. Commands only render; the work lives in the library
//! crates.

mod absolute;
mod artifacts_config;
mod backend;
mod cli;
mod client;
mod commands;
mod config_file;
mod discover;
mod error;
mod executors_config;
mod logging;
mod observers;
mod output;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

pub use error::{ExitStatus, ExpectedError};

/// Runs the CLI with the given arguments (the first is the program name).
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let parsed = cli::Cli::command()
        .try_get_matches_from(args)
        .and_then(|m| cli::Cli::from_arg_matches(&m).map(|cli| (m, cli)));
    let (matches, mut args) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            // clap prints help and version itself, to the right stream, with the right code.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    // The server reports what it does; other commands speak through their output, and log
    // only what goes wrong.
    let level = if matches!(args.command, cli::Command::Server(_)) {
        "info"
    } else {
        "warn"
    };
    logging::init(args.log_format, level);
    let mut out = output::Output::stdout();
    let outcome = config_file::apply(&matches, &mut args)
        .and_then(|()| absolute::resolve(&mut args))
        .and_then(|()| commands::dispatch(args, &mut out));
    match outcome {
        Ok(status) => status.into(),
        Err(e) => {
            out.error(&e);
            e.exit_status().into()
        }
    }
}
