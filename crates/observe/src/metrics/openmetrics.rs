//! The Prometheus text format (0.0.4), as the exporter renders it, turned into OpenMetrics 1.0
//! text for scrapers that ask for it.
//!
//! The two differ in little that matters here: a counter family is named without its `_total`
//! suffix (its samples keep it), `untyped` is `unknown`, `# HELP` escapes quotes, blank lines
//! are not allowed, and the exposition ends with `# EOF`.

use std::collections::HashMap;

/// The content type of an OpenMetrics answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of a Prometheus text answer.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (Prometheus sends it first, with a fallback
/// to the text format at a lower `q`).
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut params = part.split(';').map(str::trim);
            params.next() == Some("application/openmetrics-text")
                && !params.any(|p| p.replace(' ', "") == "q=0")
        })
    })
}

/// Converts a Prometheus text exposition to OpenMetrics text.
pub fn from_prometheus(text: &str) -> String {
    // Types first: a family's `# HELP` comes before its `# TYPE`, and both are renamed.
    let types: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let family = |name: &str| -> String {
        match types.get(name) {
            Some(&"counter") => name.strip_suffix("_total").unwrap_or(name).to_owned(),
            _ => name.to_owned(),
        }
    };
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str("# HELP ");
            out.push_str(&family(name));
            out.push(' ');
            out.push_str(&escape_quotes(help));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            out.push_str("# TYPE ");
            out.push_str(&family(name));
            out.push(' ');
            out.push_str(if kind == "untyped" { "unknown" } else { kind });
        } else if line.starts_with('#') {
            // Other comments have no place in OpenMetrics.
            continue;
        } else {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let (name, rest) = line.split_at(end);
            out.push_str(name);
            // A counter's samples end in `_total` even when its family name does not.
            if types.get(name) == Some(&"counter") && !name.ends_with("_total") {
                out.push_str("_total");
            }
            out.push_str(rest);
        }
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

/// `"` escaped as `\"`, leaving existing escapes (`\\`, `\n`, `\"`) alone.
fn escape_quotes(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_lose_total_in_their_family_name_and_the_text_ends_with_eof() {
        let text = "# HELP a_total Things \"done\".\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\n# TYPE b counter\nb 2\n\n# TYPE g gauge\ng 1.5\n# TYPE u untyped\nu 1\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n";
        assert_eq!(
            from_prometheus(text),
            "# HELP a Things \\\"done\\\".\n# TYPE a counter\na_total{x=\"1\"} 3\n# TYPE b counter\nb_total 2\n# TYPE g gauge\ng 1.5\n# TYPE u unknown\nu 1\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n# EOF\n"
        );
    }

    #[test]
    fn accept_headers() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wanted(Some(prometheus)));
        assert!(wanted(Some("application/openmetrics-text")));
        assert!(!wanted(Some("text/plain")));
        assert!(!wanted(Some("application/openmetrics-text; q=0")));
        assert!(!wanted(None));
    }
}
