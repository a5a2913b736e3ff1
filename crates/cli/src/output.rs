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
        match self
            .out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
        {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Writes diagnostics and progress to stderr.
    pub(crate) fn eprint(&mut self, text: &str) {
        let _ = self.err.write_all(text.as_bytes());
        let _ = self.err.flush();
    }

    pub(crate) fn error(&mut self, e: &ExpectedError) {
        let mut text = format!("error: {e}");
        let mut source = std::error::Error::source(e);
        // Messages already embed their direct cause; show deeper causes only.
        if source.is_some() {
            source = source.and_then(std::error::Error::source);
        }
        while let Some(s) = source {
            text.push_str(&format!("\n  caused by: {s}"));
            source = s.source();
        }
        text.push('\n');
        self.eprint(&text);
    }
}
