//! `/pipelines/{ns}/{name}`: the DAG, a grid of recent runs by task, the trigger form built
//! from the typed params, pause / unpause, upcoming fire times, the definition's source.

use baton_core::lineage::{LinkedPipeline, PipelineLineage};
use baton_core::model::Dataset;
use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use baton_core::model::Param;
use baton_core::spec::ParamType;
use baton_core::state::TaskState;
use baton_store::{RunFilter, RunRecord, TaskRecord};
use maud::{Markup, html};
use serde_json::Value;

use super::actions::pause_action;
use super::confirm;
use super::csrf;
use super::dag_svg::{self, Node};
use super::error::{UiError, UiResult};
use super::shell;
use super::widgets::{encode, fire_time, icon};
use super::{cron_words, pipelines};
use crate::routes::PipelinePath;
use baton_control::Launch;
use baton_control::catalog::{Entry, Version};

use crate::{ApiError, AppState};

/// Runs (columns) of the grid.
const GRID_RUNS: u32 = 20;
/// Tasks (rows) of the grid; a bigger pipeline shows the first ones.
const GRID_TASKS: usize = 200;
/// Upcoming fire times per schedule.
const UPCOMING: usize = 5;

/// What the trigger form shows again after a refusal.
#[derive(Debug, Default)]
struct FormState {
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    general: Vec<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    Path(PipelinePath { namespace, name }): Path<PipelinePath>,
) -> UiResult<Response> {
    render(
        &state,
        &namespace,
        &name,
        StatusCode::OK,
        &FormState::default(),
    )
    .await
}

async fn render(
    state: &AppState,
    ns: &str,
    name: &str,
    status: StatusCode,
    form: &FormState,
) -> UiResult<Response> {
    let catalog = state.catalog.read().await;
    let entry = catalog
        .find(ns, name)
        .ok_or_else(|| UiError::not_found(format!("pipeline `{ns}/{name}` not found")))?;
    let Some(v) = &entry.active else {
        return Err(UiError::not_found(format!(
            "pipeline `{ns}/{name}` not found"
        )));
    };
    let paused = state.store.is_paused(ns, name).await?;
    let runs = state
        .store
        .runs(&RunFilter {
            namespace: Some(ns.to_owned()),
            pipeline: Some(name.to_owned()),
            limit: GRID_RUNS,
            ..RunFilter::default()
        })
        .await?;
    let mut tasks = Vec::with_capacity(runs.len());
    for r in &runs {
        tasks.push(state.store.tasks(&r.id).await?);
    }
    let now = baton_engine::now_ms();
    let lineage = baton_core::lineage::lineage(
        &v.pipeline,
        catalog
            .entries()
            .filter_map(|e| e.active.as_ref())
            .map(|v| v.pipeline.as_ref()),
    );
    let recent = grid(v, &runs, &tasks);
    let body = body(entry, v, paused, recent, form, &lineage, now);
    Ok(shell::respond(
        status,
        &v.pipeline.id.to_string(),
        html! { (v.pipeline.id) },
        body,
    ))
}

fn body(
    entry: &Entry,
    v: &Version,
    paused: bool,
    recent: Markup,
    form: &FormState,
    lineage: &PipelineLineage,
    now: i64,
) -> Markup {
    let p = &v.pipeline;
    let now_ts = jiff::Timestamp::from_millisecond(now).unwrap_or_else(|_| jiff::Timestamp::now());
    let runs_href = format!("/runs?pipeline={}", encode(&p.id.to_string()));
    html! {
        section.summary {
            @if let Some(d) = &p.description { p.description { (d) } }
            dl {
                dt { "Namespace" } dd { (p.id.namespace) }
                @if let Some(o) = &p.owner { dt { "Owner" } dd { (o) } }
                @if !p.tags.is_empty() { dt { "Tags" } dd { @for t in &p.tags { span.tag { (t) } " " } } }
                dt { "File" } dd { code { (entry.path) } }
                dt { "Version" } dd { code #version title=(p.version) { (p.version.short()) } }
                dt { "State" } dd {
                    @if paused { span.paused title="paused" { "⏸ paused" } } @else { span.active title="active" { "● active" } }
                    " " (confirm::direct(&pause_action(p.id.namespace.as_str(), p.id.name.as_str(), paused)))
                }
            }
            @if !entry.errors.is_empty() {
                div.warning {
                    p { "The file has errors now; runs start from the last version that validated." }
                    (pipelines::errors(entry))
                }
            }
            p { a href=(runs_href) { "All runs of this pipeline" } }
        }
        section {
            h2 { "Graph" }
            div.dag-wrap { (graph(v)) }
        }
        section {
            h2 { "Recent runs" }
            (recent)
        }
        section {
            h2 { "Trigger a run" }
            (trigger_form(v, form))
        }
        @if !p.schedules.is_empty() {
            section #upcoming {
                h2 { "Schedule" }
                @for s in &p.schedules {
                    h3 { (cron_words::describe(s)) " " code { (s.cron) } }
                    @if paused { p.muted { "Paused: these ticks pass without runs." } }
                    ol { @for t in s.next_times(now_ts, UPCOMING) { li { (fire_time(&t, now)) } } }
                }
            }
        }
        @if !lineage.tasks.is_empty() {
            section #lineage {
                h2 { "Lineage" }
                (lineage_view(lineage))
            }
        }
        section {
            h2 { "Definition" }
            pre #source { code { (v.source) } }
        }
    }
}

fn dataset(d: &Dataset) -> Markup {
    html! { code.dataset title=(format!("namespace {}, name {}", d.namespace, d.name)) { (d.namespace) "/" (d.name) } }
}

fn datasets(ds: &[Dataset]) -> Markup {
    html! { @for (i, d) in ds.iter().enumerate() { @if i > 0 { ", " } (dataset(d)) } }
}

fn linked(title: &str, id: &str, pipelines: &[LinkedPipeline]) -> Markup {
    html! {
        h3 { (title) }
        @if pipelines.is_empty() {
            p.muted { "None among the loaded pipelines." }
        } @else {
            ul #(id) {
                @for l in pipelines {
                    li data-pipeline=(l.pipeline) {
                        a href=(format!("/pipelines/{}", l.pipeline)) { (l.pipeline) }
                        " via " (datasets(&l.datasets))
                    }
                }
            }
        }
    }
}

/// Which datasets each task reads and writes, and the pipelines on either side.
fn lineage_view(l: &PipelineLineage) -> Markup {
    html! {
        (linked("Upstream", "upstream", &l.upstream))
        table #datasets {
            thead { tr { th { "Task" } th { "Reads" } th { "Writes" } } }
            tbody {
                @for t in &l.tasks {
                    tr data-task=(t.task) {
                        td { (t.task) }
                        td { (datasets(&t.inputs)) }
                        td { (datasets(&t.outputs)) }
                    }
                }
            }
        }
        (linked("Downstream", "downstream", &l.downstream))
    }
}

fn graph(v: &Version) -> Markup {
    let p = &v.pipeline;
    let nodes: Vec<Node> = p
        .tasks
        .iter()
        .map(|t| Node {
            key: t.id.to_string(),
            label: if t.for_each.is_some() {
                format!("{} [for each]", t.id)
            } else {
                t.id.to_string()
            },
            ..Node::default()
        })
        .collect();
    let edges: Vec<(usize, usize)> = p
        .dag
        .upstream
        .iter()
        .enumerate()
        .flat_map(|(i, ups)| ups.iter().map(move |&u| (u, i)))
        .collect();
    dag_svg::render(&nodes, &edges)
}

/// The state a task shows in the grid: a fan-out's worst instance.
pub(crate) fn task_state_of(tasks: &[TaskRecord], id: &str) -> Option<TaskState> {
    let rank = |s: TaskState| match s {
        TaskState::Failed => 9,
        TaskState::UpstreamFailed => 8,
        TaskState::Running => 7,
        TaskState::Retrying => 6,
        TaskState::WaitingApproval => 5,
        TaskState::Queued => 4,
        TaskState::Cancelled => 3,
        TaskState::Pending => 2,
        TaskState::Skipped => 1,
        TaskState::Succeeded => 0,
    };
    let instances: Vec<&TaskRecord> = tasks
        .iter()
        .filter(|t| t.task_id == id && t.key.as_str() != id)
        .collect();
    if instances.is_empty() {
        tasks.iter().find(|t| t.task_id == id).map(|t| t.state)
    } else {
        instances.iter().map(|t| t.state).max_by_key(|s| rank(*s))
    }
}

/// `table#grid`: tasks by recent runs (oldest left), each cell coloured by state.
fn grid(v: &Version, runs: &[RunRecord], tasks: &[Vec<TaskRecord>]) -> Markup {
    let p = &v.pipeline;
    let order: Vec<usize> = (0..runs.len()).rev().collect();
    html! {
        @if runs.is_empty() {
            p.empty { "No runs yet." }
        } @else {
            div.grid-wrap {
                table #grid {
                    thead { tr {
                        th { "Task" }
                        @for &i in &order {
                            th { a class={ "square state-" (runs[i].state) } href={ "/runs/" (runs[i].id) }
                                title={ (runs[i].id) ": " (runs[i].state) } data-run=(runs[i].id) data-state=(runs[i].state) {
                                (icon(runs[i].state.as_str()))
                            } }
                        }
                    } }
                    tbody {
                        @for t in p.tasks.iter().take(GRID_TASKS) {
                            tr data-task=(t.id) {
                                th { (t.id) }
                                @for &i in &order {
                                    @match task_state_of(&tasks[i], t.id.as_str()) {
                                        Some(s) => td class={ "cell state-" (s) } title={ (t.id) " in " (runs[i].id) ": " (s) } data-state=(s) {
                                            a href=(super::widgets::task_href(runs[i].id.as_str(), t.id.as_str())) { (icon(s.as_str())) }
                                        },
                                        None => td.cell {},
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if p.tasks.len() > GRID_TASKS {
                p.note { "Showing the first " (GRID_TASKS) " of " (p.tasks.len()) " tasks." }
            }
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `form#trigger`: one field per param, typed.
fn trigger_form(v: &Version, form: &FormState) -> Markup {
    let p = &v.pipeline;
    let action = format!(
        "/pipelines/{}/{}/trigger",
        encode(p.id.namespace.as_str()),
        encode(p.id.name.as_str())
    );
    html! {
        form #trigger method="post" action=(action) {
            @if !form.general.is_empty() {
                ul.errors.form-errors { @for e in &form.general { li { (e) } } }
            }
            @if p.params.is_empty() { p.muted { "This pipeline has no params." } }
            @for (name, param) in &p.params {
                @let error = form.errors.get(name);
                div.field.invalid[error.is_some()] {
                    label for={ "param-" (name) } {
                        (name) " " span.type { (param.ty.article()) }
                        @if param.is_required() { " " span.required title="required" { "(required)" } }
                    }
                    (field(name, param, form.values.get(name)))
                    @if let Some(d) = &param.description { div.help { (d) } }
                    @if let Some(e) = error { div.field-error role="alert" { (e) } }
                }
            }
            button type="submit" #trigger-submit { "Trigger run" }
        }
    }
}

fn field(name: &str, param: &Param, given: Option<&String>) -> Markup {
    let id = format!("param-{name}");
    let default = param.default.as_ref().map(value_text);
    let value = given.cloned().or(default);
    if let Some(choices) = &param.choices {
        return html! {
            select id=(id) name=(name) {
                @if param.is_required() && value.is_none() { option value="" { "choose…" } }
                @for c in choices {
                    @let t = value_text(c);
                    option value=(t) selected[value.as_deref() == Some(t.as_str())] { (t) }
                }
            }
        };
    }
    match param.ty {
        ParamType::Boolean => {
            let on = value.as_deref() == Some("true");
            html! { input type="checkbox" id=(id) name=(name) value="true" checked[on]; }
        }
        ParamType::Integer | ParamType::Number => {
            let step = if param.ty == ParamType::Integer {
                "1"
            } else {
                "any"
            };
            html! {
                input type="number" id=(id) name=(name) step=(step) value=[value]
                    min=[param.min] max=[param.max] required[param.is_required()];
            }
        }
        ParamType::Array | ParamType::Object => html! {
            textarea id=(id) name=(name) rows="3" placeholder="JSON" { (value.unwrap_or_default()) }
        },
        ParamType::String => html! {
            input type="text" id=(id) name=(name) value=[value] required[param.is_required()];
        },
    }
}

/// Reads the form's fields by the params' types: every problem next to its field.
fn read_params(
    params: &indexmap::IndexMap<String, Param>,
    fields: &[(String, String)],
) -> Result<serde_json::Map<String, Value>, FormState> {
    let mut out = serde_json::Map::new();
    let mut state = FormState::default();
    for (k, v) in fields {
        state.values.insert(k.clone(), v.clone());
        if !params.contains_key(k) && k != "back" {
            state.general.push(format!("unknown param `{k}`"));
        }
    }
    for (name, param) in params {
        let text = fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let parsed = match (param.ty, text) {
            // An unticked box sends nothing: false.
            (ParamType::Boolean, None) if param.choices.is_none() => Ok(Some(Value::Bool(false))),
            (ParamType::Boolean, Some(_)) if param.choices.is_none() => Ok(Some(Value::Bool(true))),
            (_, None) | (_, Some("")) if param.default.is_some() => Ok(None),
            (_, None) | (_, Some("")) => Err(format!("`{name}` is required")),
            (_, Some(t)) => param
                .parse_text(t)
                .map(Some)
                .map_err(|e| format!("`{name}` {e}")),
        };
        match parsed {
            Ok(Some(v)) => {
                out.insert(name.clone(), v);
            }
            Ok(None) => {}
            Err(e) => {
                state.errors.insert(name.clone(), e);
            }
        }
    }
    if state.errors.is_empty() && state.general.is_empty() {
        Ok(out)
    } else {
        Err(state)
    }
}

/// `POST /pipelines/{ns}/{name}/trigger` (a plain form): 303 to the new run, or the page
/// again with each problem next to its field (422).
pub(crate) async fn trigger(
    State(state): State<AppState>,
    Path(PipelinePath { namespace, name }): Path<PipelinePath>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> UiResult<Response> {
    csrf::check(&headers)?;
    let version = state
        .active_version(&namespace, &name)
        .await
        .map_err(ApiError::from)?;
    let params = match read_params(&version.pipeline.params, &fields) {
        Ok(p) => p,
        Err(form) => {
            return render(
                &state,
                &namespace,
                &name,
                StatusCode::UNPROCESSABLE_ENTITY,
                &form,
            )
            .await;
        }
    };
    let launch = Launch {
        params,
        trigger: baton_core::state::RunTrigger::Manual,
        logical_date: None,
        idempotency_key: None,
        no_cache: false,
    };
    match state.launch(&version, launch).await {
        Ok(created) => Ok(Redirect::to(&format!("/runs/{}", created.id)).into_response()),
        Err(e) => {
            let e = ApiError::from(e);
            let mut form = FormState {
                values: fields.into_iter().collect(),
                ..FormState::default()
            };
            form.general.push(e.message.clone());
            if let Some(problems) = e.details.get("problems").and_then(Value::as_array) {
                form.general
                    .extend(problems.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            render(&state, &namespace, &name, e.status, &form).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_read_by_type() {
        let loaded = baton_core::load(
            "name: p\nparams:\n  n: { type: integer, default: 1, min: 1 }\n  flag: { type: boolean, default: true }\n  who: { type: string }\ntasks:\n  a:\n    run: x\n",
        );
        let p = loaded.pipeline.expect("valid");
        let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        let ok = read_params(&p.params, &f(&[("n", "3"), ("who", "x")])).expect("valid");
        assert_eq!(ok.get("n"), Some(&Value::from(3)));
        assert_eq!(ok.get("flag"), Some(&Value::Bool(false)));
        let bad = read_params(&p.params, &f(&[("n", "0"), ("who", "")])).expect_err("invalid");
        assert!(bad.errors["n"].contains("at least 1"), "{:?}", bad.errors);
        assert!(bad.errors["who"].contains("required"));
    }
}
