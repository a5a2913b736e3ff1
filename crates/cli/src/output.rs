//! Where command output goes: stdout for results, stderr for errors, with a broken pipe
//! (`baton graph x | head`) ending quietly.

use std::io::{self, Write};

use crate::error::ExpectedError;

#[derive(Debug)]
pub(crate) struct Output {
    out: Box<dyn WriteDebug>,
    err: Box<dyn WriteDebug>,
}

trait WriteDebug: Write + std::fmt::Debug {}
impl<T: Write + std::fmt::Debug> WriteDebug for T {}

impl Output {
    pub(crate) fn stdout() -> Self {
        Self {
            out: Box::new(io::stdout()),
            err: Box::new(io::stderr()),
        }
    }

    /// Writes a result; a closed pipe is not an error worth reporting.
    pub(crate) fn print(&mut self, text: &str) -> Result<(), ExpectedError> {
        self.print_bytes(text.as_bytes())
    }

    /// Writes raw bytes as a result (a log, which need not be UTF-8).
    pub(crate) fn print_bytes(&mut self, bytes: &[u8]) -> Result<(), ExpectedError> {
        match self.out.write_all(bytes).and_then(|()| self.out.flush()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Writes diagnostics and progress to stderr.
    pub(crate) fn eprint(&mut self, text: &str) {
        let _ = self.err.write_all(text.as_bytes());
        let _ = self.err.flush();
    }

    /// Prints an error. Messages embed their causes, so the chain is not walked again.
    pub(crate) fn error(&mut self, e: &ExpectedError) {
        self.eprint(&format!("error: {e}\n"));
    }
}
