//! The `baton` command line: parsing arguments, dispatching to commands, and turning their
//! outcome into output and an exit code. Commands only render; the work lives in the library
//! crates.

mod backend;
mod cli;
mod client;
mod commands;
mod discover;
mod error;
mod output;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

pub use error::{ExitStatus, ExpectedError};

/// Runs the CLI with the given arguments (the first is the program name).
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match cli::Cli::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            // clap prints help and version itself, to the right stream, with the right code.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let mut out = output::Output::stdout();
    match commands::dispatch(args, &mut out) {
        Ok(status) => status.into(),
        Err(e) => {
            out.error(&e);
            e.exit_status().into()
        }
    }
}
