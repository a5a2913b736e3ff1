//! The Grafana dashboards of deploy/grafana as a test sees them: their template variables, every
//! panel query, and Grafana's substitution of variables into PromQL.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

#[derive(Debug)]
pub struct Dashboard {
    /// The file name, for messages.
    pub file: String,
    pub doc: Value,
}

/// One query of a panel.
#[derive(Debug, Clone)]
pub struct Target {
    pub panel: String,
    /// The panel's type (`stat`, `timeseries`, ...): titles may repeat across types.
    pub kind: String,
    pub ref_id: String,
    pub expr: String,
}

/// A template variable, in the dashboard's order (later ones may use earlier ones).
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    /// Grafana's variable type: `datasource`, `query`, ...
    pub kind: String,
    /// A `query` variable's query text.
    pub query: Option<String>,
    /// What "All" stands for, when the variable offers it.
    pub all_value: Option<String>,
}

/// Every `*.json` of `dir`, by file name.
pub fn dashboards(dir: &Path) -> Vec<Dashboard> {
    let mut out: Vec<Dashboard> = std::fs::read_dir(dir)
        .expect("dashboards dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("dashboard");
            Dashboard {
                file: p.file_name().expect("name").to_string_lossy().into_owned(),
                doc: serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display())),
            }
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

impl Dashboard {
    /// Every panel query, rows' nested panels included. Fails when the dashboard holds an
    /// `expr` somewhere else (annotations, say), which a test walking panels would miss.
    pub fn targets(&self) -> Vec<Target> {
        fn walk(panels: &[Value], out: &mut Vec<Target>) {
            for panel in panels {
                let title = panel["title"].as_str().unwrap_or("(untitled)");
                for t in panel["targets"].as_array().into_iter().flatten() {
                    if let Some(expr) = t["expr"].as_str() {
                        out.push(Target {
                            panel: title.to_owned(),
                            kind: panel["type"].as_str().unwrap_or("?").to_owned(),
                            ref_id: t["refId"].as_str().unwrap_or("?").to_owned(),
                            expr: expr.to_owned(),
                        });
                    }
                }
                walk(panel["panels"].as_array().map_or(&[], Vec::as_slice), out);
            }
        }
        let mut out = Vec::new();
        walk(
            self.doc["panels"].as_array().map_or(&[], Vec::as_slice),
            &mut out,
        );
        let everywhere = count_exprs(&self.doc);
        assert_eq!(
            out.len(),
            everywhere,
            "{}: {} `expr` fields, {} of them in panel targets",
            self.file,
            everywhere,
            out.len()
        );
        out
    }

    pub fn variables(&self) -> Vec<Variable> {
        self.doc["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| Variable {
                name: v["name"].as_str().expect("variable name").to_owned(),
                kind: v["type"].as_str().unwrap_or("?").to_owned(),
                query: match &v["query"] {
                    Value::Object(q) => q.get("query").and_then(Value::as_str),
                    q => q.as_str(),
                }
                .map(str::to_owned),
                all_value: (v["includeAll"] == true)
                    .then(|| v["allValue"].as_str().map(str::to_owned))
                    .flatten(),
            })
            .collect()
    }

    /// `$__range` as Grafana sends it to Prometheus (`<seconds>s`), for the dashboard's
    /// default time range (`now-30d` to `now`).
    pub fn range(&self) -> String {
        let from = self.doc["time"]["from"].as_str().unwrap_or("");
        assert_eq!(
            self.doc["time"]["to"], "now",
            "{}: a range ending now",
            self.file
        );
        let span = from
            .strip_prefix("now-")
            .unwrap_or_else(|| panic!("{}: time.from `{from}` is not now-<span>", self.file));
        let (n, unit) = span.split_at(span.len() - 1);
        let n: u64 = n
            .parse()
            .unwrap_or_else(|_| panic!("{}: span `{span}`", self.file));
        let unit = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => panic!("{}: unit of `{span}`", self.file),
        };
        format!("{}s", n * unit)
    }
}

fn count_exprs(v: &Value) -> usize {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| usize::from(k == "expr" && v.is_string()) + count_exprs(v))
            .sum(),
        Value::Array(items) => items.iter().map(count_exprs).sum(),
        _ => 0,
    }
}

/// What a `query` variable asks Prometheus.
#[derive(Debug, PartialEq, Eq)]
pub enum VariableQuery {
    /// `label_values(series, label)`: `GET /api/v1/label/<label>/values?match[]=<series>`.
    LabelValues { series: String, label: String },
}

/// Parses a variable's query; anything but `label_values(series, label)` is refused, so a
/// dashboard using another kind makes the test say it needs teaching.
pub fn variable_query(q: &str) -> Result<VariableQuery, String> {
    let inner = q
        .trim()
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("`{q}` is not label_values(series, label)"))?;
    let (series, label) = inner
        .rsplit_once(',')
        .ok_or_else(|| format!("`{q}` names no series"))?;
    Ok(VariableQuery::LabelValues {
        series: series.trim().to_owned(),
        label: label.trim().to_owned(),
    })
}

/// Replaces Grafana variables (`$name`, `${name}`, `${name:format}`, `[[name]]`) in `text` by
/// `values`; an unknown variable is an error, never left for Prometheus to choke on.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['$', '[']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (name, len) = if let Some(braced) = tail.strip_prefix("${") {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
            let inner = &braced[..end];
            (inner.split(':').next().unwrap_or(inner), end + 3)
        } else if let Some(bracketed) = tail.strip_prefix("[[") {
            let end = bracketed
                .find("]]")
                .ok_or_else(|| format!("unclosed `[[` in `{text}`"))?;
            (&bracketed[..end], end + 4)
        } else if let Some(bare) = tail.strip_prefix('$') {
            let end = bare.find(|c: char| !is_name(c)).unwrap_or(bare.len());
            if end == 0 {
                // A regex anchor, not a variable.
                out.push('$');
                rest = bare;
                continue;
            }
            (&bare[..end], end + 1)
        } else {
            // A `[` of a range selector.
            out.push('[');
            rest = &tail[1..];
            continue;
        };
        let value = values
            .get(name)
            .ok_or_else(|| format!("unknown variable `{name}` in `{text}`"))?;
        out.push_str(value);
        rest = &tail[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// How Grafana's Prometheus data source writes several chosen values of a variable into a
/// query: regex-escaped alternatives.
pub fn alternatives(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|v| {
            v.chars()
                .flat_map(|c| {
                    let special = "\\^$.|?*+()[]{}".contains(c);
                    special.then_some('\\').into_iter().chain([c])
                })
                .collect()
        })
        .collect();
    match escaped.as_slice() {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}
