//! Human-readable rendering of diagnostics, compiler style.

use std::fmt::Write;

use crate::diagnostic::{Diagnostic, Severity};

/// Renders `path:line:col: error: message`, then the source line with the span underlined,
/// the field path and the hint.
pub fn render_diagnostic(path: &str, source: Option<&str>, diag: &Diagnostic) -> String {
    let mut out = String::new();
    let level = match diag.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = writeln!(
        out,
        "{path}:{}:{}: {level}: {}",
        diag.span.line, diag.span.column, diag.message
    );
    let line_text = source.and_then(|s| s.lines().nth((diag.span.line as usize).checked_sub(1)?));
    let gutter = diag.span.line.to_string().len();
    if let Some(text) = line_text {
        let text = text.trim_end();
        let col = (diag.span.column as usize).saturating_sub(1);
        let rest = text.chars().count().saturating_sub(col);
        let width = (diag.span.len as usize).clamp(1, rest.max(1));
        let _ = writeln!(out, "{:gutter$} |", "");
        let _ = writeln!(out, "{} | {text}", diag.span.line);
        let _ = writeln!(
            out,
            "{:gutter$} | {}{}",
            "",
            " ".repeat(col),
            "^".repeat(width)
        );
    }
    if !diag.field.is_empty() {
        let _ = writeln!(out, "{:gutter$} = field: {}", "", diag.field);
    }
    if let Some(hint) = &diag.hint {
        let _ = writeln!(out, "{:gutter$} = hint: {hint}", "");
    }
    out
}

/// Renders every diagnostic of a file, separated by blank lines.
pub fn render_diagnostics(path: &str, source: Option<&str>, diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| render_diagnostic(path, source, d))
        .collect::<Vec<_>>()
        .join("\n")
}
