//! Problems found in a pipeline file, each tied to a location and a field path.

use serde::Serialize;

use crate::span::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem. `message` is a lowercase fragment naming the offending value in backticks;
/// `hint` suggests a fix when one is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Diagnostic {
    pub severity: Severity,
    #[serde(flatten)]
    pub span: Span,
    /// Dotted path of the field, e.g. `tasks.check.needs[0]`; empty for the document root.
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Span, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            span,
            field: field.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(span: Span, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(span, field, message)
        }
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics into reading order, so output follows the file top to bottom.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.span.line, a.span.column, a.severity).cmp(&(b.span.line, b.span.column, b.severity))
    });
}

/// Most problems reported for one file: past this the rest are counted, not listed (a
/// generated file of unknown keys would otherwise print hundreds of thousands of lines).
pub const MAX_PER_FILE: usize = 100;

/// Keeps the first [`MAX_PER_FILE`] of sorted diagnostics and says how many more there were,
/// as an error when any of those was one, so a capped file still fails validation.
pub fn cap(diags: &mut Vec<Diagnostic>) {
    if diags.len() <= MAX_PER_FILE {
        return;
    }
    let rest = diags.split_off(MAX_PER_FILE);
    let errors = rest.iter().filter(|d| d.is_error()).count();
    let first = &rest[0];
    let message = match rest.len() {
        1 => format!("1 more problem in this file ({errors} of them errors), not shown"),
        n => format!("{n} more problems in this file ({errors} of them errors), not shown"),
    };
    let more = if errors > 0 {
        Diagnostic::error(first.span, first.field.clone(), message)
    } else {
        Diagnostic::warning(first.span, first.field.clone(), message)
    };
    diags.push(more.with_hint(format!("fix the first {MAX_PER_FILE} and validate again")));
}

/// `did you mean ...?` for a misspelt name, when a candidate is close enough.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(wrong, c), c))
        // A third of the name may differ: `neds` -> `needs`, but no hint from `x` to `n`.
        .filter(|(d, c)| *d <= c.len().max(wrong.len()) / 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// `one of `a`, `b`, `c`` for hints listing the allowed values.
pub fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!("expected one of {}", quoted.join(", "))
}
