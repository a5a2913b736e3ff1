//! Reading what a task wrote to `$BATON_OUTPUTS`: `key=value` lines, and GitHub Actions'
//! heredoc form for multi-line values:
//!
//! ```text
//! rows=42
//! report<<EOF
//! line one
//! line two
//! EOF
//! ```

use baton_core::ids::Identifier;
use serde_json::{Map, Value};

/// Outputs larger than this fail the attempt: they are stored with the run and passed to
/// templates, not a channel for data.
pub const MAX_OUTPUTS_BYTES: usize = 1024 * 1024;

/// The outputs an attempt reported: its `$BATON_OUTPUTS` text parsed, or of the values it
/// returned those declared, as text (a value that is not a string as JSON).
pub fn from_report(
    report: &crate::executor::Outputs,
    declared: &[Identifier],
) -> Result<Map<String, Value>, String> {
    match report {
        crate::executor::Outputs::Text(text) => parse(text, declared),
        crate::executor::Outputs::Values(values) => {
            let mut out = Map::new();
            for name in declared {
                if let Some(v) = values.get(name.as_str()) {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    out.insert(name.to_string(), Value::String(text));
                }
            }
            let size: usize = out.values().map(|v| v.as_str().map_or(0, str::len)).sum();
            if size > MAX_OUTPUTS_BYTES {
                return Err(format!(
                    "outputs are {size} bytes, more than the limit of {MAX_OUTPUTS_BYTES}"
                ));
            }
            Ok(out)
        }
    }
}

/// Parses an outputs file, accepting only declared names.
pub fn parse(text: &str, declared: &[Identifier]) -> Result<Map<String, Value>, String> {
    if text.len() > MAX_OUTPUTS_BYTES {
        return Err(format!(
            "outputs are {} bytes, more than the limit of {MAX_OUTPUTS_BYTES}\n(hint: write large data to a file or object store and output its path)",
            text.len()
        ));
    }
    let mut out = Map::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = if let Some((key, delim)) = line.split_once("<<") {
            let delim = delim.trim();
            if delim.is_empty() {
                return Err(format!(
                    "line {}: empty heredoc delimiter after `{key}<<`",
                    n + 1
                ));
            }
            let mut body = Vec::new();
            let mut closed = false;
            for (_, l) in lines.by_ref() {
                if l == delim {
                    closed = true;
                    break;
                }
                body.push(l);
            }
            if !closed {
                return Err(format!(
                    "line {}: heredoc for `{key}` is not closed by `{delim}`",
                    n + 1
                ));
            }
            (key, body.join("\n"))
        } else if let Some((key, value)) = line.split_once('=') {
            (key, value.to_owned())
        } else {
            return Err(format!(
                "line {}: expected `key=value` or `key<<DELIMITER`, found `{}`",
                n + 1,
                line.chars().take(60).collect::<String>()
            ));
        };
        let key = key.trim();
        if !declared.iter().any(|d| d.as_str() == key) {
            let names: Vec<String> = declared.iter().map(|d| format!("`{d}`")).collect();
            let hint = if names.is_empty() {
                "declare it under the task's `outputs:`".to_owned()
            } else {
                format!("the task declares {}", names.join(", "))
            };
            return Err(format!("output `{key}` is not declared\n(hint: {hint})"));
        }
        out.insert(key.to_owned(), Value::String(value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<Identifier> {
        names
            .iter()
            .map(|n| Identifier::new(*n).expect("valid"))
            .collect()
    }

    #[test]
    fn reads_lines_and_heredocs() {
        let out = parse(
            "rows=42\n\nreport<<EOF\na=1\nb\nEOF\nempty=\n",
            &ids(&["rows", "report", "empty"]),
        )
        .expect("valid");
        assert_eq!(out["rows"], "42");
        assert_eq!(out["report"], "a=1\nb");
        assert_eq!(out["empty"], "");
    }

    #[test]
    fn rejects_undeclared_malformed_unclosed_and_oversized() {
        assert_eq!(
            parse("x=1\n", &ids(&["rows"])).expect_err("undeclared"),
            "output `x` is not declared\n(hint: the task declares `rows`)"
        );
        assert_eq!(
            parse("garbage\n", &ids(&["rows"])).expect_err("malformed"),
            "line 1: expected `key=value` or `key<<DELIMITER`, found `garbage`"
        );
        assert_eq!(
            parse("r<<END\nx\n", &ids(&["r"])).expect_err("unclosed"),
            "line 1: heredoc for `r` is not closed by `END`"
        );
        let big = format!("r={}", "x".repeat(MAX_OUTPUTS_BYTES));
        assert!(
            parse(&big, &ids(&["r"]))
                .expect_err("big")
                .starts_with("outputs are")
        );
    }
}
