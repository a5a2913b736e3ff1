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

/// A size for people: `512 B`, `12.0 KiB`, `3.4 MiB`, `1.2 GiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod bytes_tests {
    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(12 * 1024), "12.0 KiB");
        assert_eq!(super::bytes(3 * 1024 * 1024 + 400 * 1024), "3.4 MiB");
        assert_eq!(super::bytes(5 << 40), "5.0 TiB");
    }
}
