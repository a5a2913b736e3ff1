//! The DAG of a pipeline as text, Graphviz dot, Mermaid or JSON.

use std::fmt::Write;

use serde::Serialize;

use crate::ids::TaskId;
use crate::model::{Action, DefinitionHash, Pipeline, Task};
use crate::spec::TriggerRule;

/// Short markers for what a task is beyond a plain command.
fn badges(t: &Task) -> Vec<String> {
    let mut out = Vec::new();
    match &t.action {
        Action::Pipeline { pipeline, .. } => out.push(format!("pipeline {pipeline}")),
        Action::Gate => out.push("gate".into()),
        Action::Http(call) => out.push(format!("http {}", call.method)),
        Action::Container(c) => out.push(format!("container {}", c.image.0)),
        Action::Command { .. } => {}
    }
    if t.for_each.is_some() {
        out.push("for_each".into());
    }
    if t.approval.is_some() && !matches!(t.action, Action::Gate) {
        out.push("approval".into());
    }
    if t.condition.is_some() {
        out.push("if".into());
    }
    if t.trigger_rule != TriggerRule::AllSuccess {
        out.push(t.trigger_rule.to_string());
    }
    out
}

/// Tasks in topological layers, one line per task.
pub fn to_text(p: &Pipeline) -> String {
    let layers = p.dag.layers();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): {} tasks in {} layers",
        p.id,
        p.version.short(),
        p.tasks.len(),
        layers.len()
    );
    let width = p
        .tasks
        .iter()
        .map(|t| t.id.as_str().len())
        .max()
        .unwrap_or(0);
    for (l, tasks) in layers.iter().enumerate() {
        let _ = writeln!(out, "layer {l}:");
        for &i in tasks {
            let t = &p.tasks[i];
            let mut line = format!("  {:width$}", t.id.as_str());
            if !t.needs.is_empty() {
                let needs: Vec<&str> = t.needs.iter().map(|n| n.as_str()).collect();
                let _ = write!(line, "  <- {}", needs.join(", "));
            }
            let b = badges(t);
            if !b.is_empty() {
                let _ = write!(line, "  [{}]", b.join(", "));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn to_dot(p: &Pipeline) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&p.id.to_string()));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  node [shape=box, style=rounded];");
    for t in &p.tasks {
        let b = badges(t);
        let label = if b.is_empty() {
            t.id.to_string()
        } else {
            format!("{}\\n[{}]", t.id, b.join(", "))
        };
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\"];",
            t.id,
            dot_escape(&label).replace("\\\\n", "\\n")
        );
    }
    for (i, ups) in p.dag.upstream.iter().enumerate() {
        for &u in ups {
            let _ = writeln!(out, "  \"{}\" -> \"{}\";", p.tasks[u].id, p.tasks[i].id);
        }
    }
    out.push_str("}\n");
    out
}

pub fn to_mermaid(p: &Pipeline) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, t) in p.tasks.iter().enumerate() {
        let b = badges(t);
        let label = if b.is_empty() {
            t.id.to_string()
        } else {
            format!("{}<br/>[{}]", t.id, b.join(", "))
        };
        let _ = writeln!(out, "  t{i}[\"{}\"]", label.replace('"', "#quot;"));
    }
    for (i, ups) in p.dag.upstream.iter().enumerate() {
        for &u in ups {
            let _ = writeln!(out, "  t{u} --> t{i}");
        }
    }
    out
}

/// A pipeline's DAG as data: what `baton graph --format json` prints and the API serves.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Graph {
    /// `namespace/name`.
    pub pipeline: String,
    pub version: DefinitionHash,
    /// In file order.
    pub tasks: Vec<GraphTask>,
    /// `[upstream, downstream]` task id pairs.
    pub edges: Vec<[String; 2]>,
    /// Task ids in an order that runs every task after its upstreams.
    pub order: Vec<TaskId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GraphTask {
    pub id: TaskId,
    /// Length of the longest chain of upstreams above it (0 for a root).
    pub layer: usize,
    pub needs: Vec<TaskId>,
    pub kind: TaskKind,
    pub trigger_rule: TriggerRule,
    /// Runs once per item of a `for_each`.
    pub fan_out: bool,
    /// Waits for a person's approval before it runs.
    pub approval: bool,
    /// Has a `when` condition.
    pub conditional: bool,
}

/// What a task does when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Command,
    Pipeline,
    Gate,
    Http,
    Container,
}

impl Graph {
    pub fn of(p: &Pipeline) -> Self {
        let tasks = p
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| GraphTask {
                id: t.id.clone(),
                layer: p.dag.layer[i],
                needs: t.needs.clone(),
                kind: match t.action {
                    Action::Command { .. } => TaskKind::Command,
                    Action::Pipeline { .. } => TaskKind::Pipeline,
                    Action::Gate => TaskKind::Gate,
                    Action::Http(_) => TaskKind::Http,
                    Action::Container(_) => TaskKind::Container,
                },
                trigger_rule: t.trigger_rule,
                fan_out: t.for_each.is_some(),
                approval: t.approval.is_some(),
                conditional: t.condition.is_some(),
            })
            .collect();
        let edges = p
            .dag
            .upstream
            .iter()
            .enumerate()
            .flat_map(|(i, ups)| {
                ups.iter()
                    .map(move |&u| [p.tasks[u].id.to_string(), p.tasks[i].id.to_string()])
            })
            .collect();
        let order = p.dag.order.iter().map(|&i| p.tasks[i].id.clone()).collect();
        Self {
            pipeline: p.id.to_string(),
            version: p.version.clone(),
            tasks,
            edges,
            order,
        }
    }
}

pub fn to_json(p: &Pipeline) -> serde_json::Value {
    serde_json::to_value(Graph::of(p)).unwrap_or_default()
}
