//! `baton validate PATH...`

use std::path::Path;

use baton_core::diagnostic::Diagnostic;
use baton_core::load::Loaded;
use baton_core::render::render_diagnostics;
use serde_json::json;

use crate::cli::{ReportFormat, ValidateArgs};
use crate::discover::pipeline_files;
use crate::error::{ExitStatus, ExpectedError};
use crate::output::Output;

/// A file and what loading it produced.
#[derive(Debug)]
pub(super) struct LoadedFile {
    pub path: String,
    pub source: Option<String>,
    pub loaded: Loaded,
}

impl LoadedFile {
    pub(super) fn render(&self) -> String {
        render_diagnostics(&self.path, self.source.as_deref(), &self.loaded.diagnostics)
    }
}

/// Reads and loads one file. A file that is not UTF-8 is reported as a problem of the file.
pub(super) fn load_file(path: &Path) -> Result<LoadedFile, ExpectedError> {
    let bytes = std::fs::read(path).map_err(|source| ExpectedError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let display = path.display().to_string();
    match String::from_utf8(bytes) {
        Ok(source) => Ok(LoadedFile {
            path: display,
            loaded: {
                let executors = crate::backend::executor_names();
                baton_core::load_in(
                    &source,
                    baton_core::Setting {
                        executors: Some(&executors),
                    },
                )
            },
            source: Some(source),
        }),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let valid = &e.as_bytes()[..at];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let column = at - valid.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1) + 1;
            let span = baton_core::span::Span {
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: u32::try_from(column).unwrap_or(u32::MAX),
                ..Default::default()
            };
            Ok(LoadedFile {
                path: display,
                source: None,
                loaded: Loaded {
                    pipeline: None,
                    diagnostics: vec![Diagnostic::error(span, "", "file is not valid UTF-8")],
                    name_span: span,
                },
            })
        }
    }
}

pub(super) fn run(args: &ValidateArgs, out: &mut Output) -> Result<ExitStatus, ExpectedError> {
    let paths = pipeline_files(&args.paths)?;
    let mut files = Vec::with_capacity(paths.len());
    for p in &paths {
        // One unreadable file (permissions, a dangling link) must not hide problems in the
        // others, so it becomes a problem of that file.
        files.push(load_file(p).unwrap_or_else(|e| unreadable(p, &e)));
    }
    check_unique_ids(&mut files);

    let count = |sev| {
        files
            .iter()
            .flat_map(|f| &f.loaded.diagnostics)
            .filter(|d| d.severity == sev)
            .count()
    };
    let errors = count(baton_core::Severity::Error);
    let warnings = count(baton_core::Severity::Warning);
    let failed = errors > 0 || (args.deny_warnings && warnings > 0);

    match args.format {
        ReportFormat::Text => {
            let mut text = String::new();
            for f in &files {
                if !f.loaded.diagnostics.is_empty() {
                    text.push_str(&f.render());
                    text.push('\n');
                }
            }
            let invalid = files.iter().filter(|f| f.loaded.has_errors()).count();
            text.push_str(&summary(files.len(), invalid, errors, warnings));
            if args.deny_warnings && warnings > 0 && errors == 0 {
                text.push_str("error: warnings are denied (--deny-warnings)\n");
            }
            out.print(&text)?;
        }
        ReportFormat::Json => {
            let report: Vec<serde_json::Value> = files
                .iter()
                .map(|f| {
                    json!({
                        "path": f.path,
                        "valid": !f.loaded.has_errors(),
                        "pipeline": f.loaded.pipeline.as_ref().map(|p| p.id.to_string()),
                        "version": f.loaded.pipeline.as_ref().map(|p| p.version.to_string()),
                        "diagnostics": f.loaded.diagnostics,
                    })
                })
                .collect();
            let doc = json!({
                "valid": !failed,
                "errors": errors,
                "warnings": warnings,
                "files": report,
            });
            let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
            s.push('\n');
            out.print(&s)?;
        }
    }
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

fn unreadable(path: &Path, e: &ExpectedError) -> LoadedFile {
    let span = baton_core::span::Span {
        line: 1,
        column: 1,
        ..Default::default()
    };
    let message = match e {
        ExpectedError::Read { source, .. } => format!("cannot read file: {source}"),
        other => other.to_string(),
    };
    LoadedFile {
        path: path.display().to_string(),
        source: None,
        loaded: Loaded {
            pipeline: None,
            diagnostics: vec![Diagnostic::error(span, "", message)],
            name_span: span,
        },
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary(files: usize, invalid: usize, errors: usize, warnings: usize) -> String {
    let checked = plural(files, "file", "files");
    if invalid == 0 {
        let w = if warnings > 0 {
            format!(" ({})", plural(warnings, "warning", "warnings"))
        } else {
            String::new()
        };
        format!("ok: {checked} valid{w}\n")
    } else {
        format!(
            "checked {checked}: {invalid} invalid, {}, {}\n",
            plural(errors, "error", "errors"),
            plural(warnings, "warning", "warnings")
        )
    }
}

/// Two files defining the same `namespace/name` is an error in the later file.
fn check_unique_ids(files: &mut [LoadedFile]) {
    let dups = baton_core::load::duplicate_ids(
        files
            .iter()
            .map(|f| f.loaded.pipeline.as_ref().map(|p| &p.id)),
    );
    for (later, first) in dups {
        let first_path = files[first].path.clone();
        let f = &mut files[later];
        if let Some(p) = f.loaded.pipeline.take() {
            let diag =
                baton_core::load::duplicate_id_diagnostic(&p.id, f.loaded.name_span, &first_path);
            f.loaded.diagnostics.push(diag);
        }
    }
}
