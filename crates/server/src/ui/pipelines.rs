//! `/`: every pipeline with its schedule, state, last runs and 7-day statistics; filter by
//! namespace or tag, search by name.

use std::collections::{BTreeSet, HashMap, HashSet};

use axum::extract::{Query, State};
use axum::response::Response;
use baton_store::RunBrief;
use maud::{Markup, html};
use serde::Deserialize;

use super::cron_words;
use super::error::UiResult;
use super::shell;
use super::stats::Stats;
use super::widgets::{duration, encode, fire_time};
use crate::AppState;
use baton_control::catalog::Entry;

/// Runs shown as squares per pipeline.
const LAST_RUNS: u32 = 10;
/// The statistics window.
const WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    q: Option<String>,
    namespace: Option<String>,
    tag: Option<String>,
}

fn given(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// Runs grouped by `(namespace, pipeline)`, in the order given.
fn by_pipeline(runs: Vec<RunBrief>) -> HashMap<(String, String), Vec<RunBrief>> {
    let mut grouped: HashMap<(String, String), Vec<RunBrief>> = HashMap::new();
    for r in runs {
        grouped
            .entry((r.namespace.clone(), r.pipeline.clone()))
            .or_default()
            .push(r);
    }
    grouped
}

pub(crate) async fn page(
    State(state): State<AppState>,
    Query(f): Query<Filters>,
) -> UiResult<Response> {
    let now = baton_engine::now_ms();
    let catalog = state.catalog.read().await;
    let entries: Vec<&Entry> = catalog.entries().collect();
    let namespaces: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| {
            e.active
                .as_ref()
                .map(|v| v.pipeline.id.namespace.to_string())
        })
        .collect();
    let tags: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e.active.as_ref())
        .flat_map(|v| v.pipeline.tags.iter().cloned())
        .collect();
    let q = given(f.q.as_ref()).map(str::to_lowercase);
    let ns = given(f.namespace.as_ref());
    let tag = given(f.tag.as_ref());
    let filtering = q.is_some() || ns.is_some() || tag.is_some();
    let mut shown: Vec<&Entry> = entries
        .into_iter()
        .filter(|e| match &e.active {
            Some(v) => {
                let p = &v.pipeline;
                q.as_ref()
                    .is_none_or(|q| p.id.to_string().to_lowercase().contains(q))
                    && ns.is_none_or(|ns| p.id.namespace.as_str() == ns)
                    && tag.is_none_or(|t| p.tags.iter().any(|x| x == t))
            }
            // Files that never validated match only an unfiltered view or a search of their path.
            None => {
                ns.is_none()
                    && tag.is_none()
                    && q.as_ref().is_none_or(|q| e.path.to_lowercase().contains(q))
            }
        })
        .collect();
    shown.sort_by_key(|e| {
        e.active
            .as_ref()
            .map_or_else(|| format!("~{}", e.path), |v| v.pipeline.id.to_string())
    });
    let latest = by_pipeline(state.store.latest_runs(LAST_RUNS).await?);
    let finished = by_pipeline(state.store.finished_since(now - WINDOW_MS).await?);
    let paused: HashSet<(String, String)> =
        state.store.paused_pipelines().await?.into_iter().collect();
    let rows: Vec<Markup> = shown
        .iter()
        .map(|e| {
            let paused = e.active.as_ref().is_some_and(|v| {
                let id = &v.pipeline.id;
                paused.contains(&(id.namespace.to_string(), id.name.to_string()))
            });
            row(e, paused, &latest, &finished, now)
        })
        .collect();
    let body = html! {
        form #filters method="get" action="/" {
            input type="search" name="q" placeholder="Search by name" value=[f.q.as_deref()];
            select name="namespace" {
                option value="" { "All namespaces" }
                @for n in &namespaces {
                    option value=(n) selected[ns == Some(n.as_str())] { (n) }
                }
            }
            select name="tag" {
                option value="" { "All tags" }
                @for t in &tags {
                    option value=(t) selected[tag == Some(t.as_str())] { (t) }
                }
            }
            button type="submit" { "Filter" }
            @if filtering { a href="/" { "Clear" } }
        }
        @if shown.is_empty() {
            p.empty { @if filtering { "No pipeline matches." } @else { "No pipelines: add YAML files to the pipelines directory." } }
        } @else {
            table #pipelines {
                thead { tr {
                    th { "Pipeline" } th { "Owner" } th { "Tags" } th { "Schedule" }
                    th { "State" } th { "Last runs" } th { "7 days" }
                } }
                tbody { @for r in &rows { (r) } }
            }
        }
    };
    Ok(shell::ok("Pipelines", html! { "Pipelines" }, body))
}

fn row(
    e: &Entry,
    paused: bool,
    latest: &HashMap<(String, String), Vec<RunBrief>>,
    finished: &HashMap<(String, String), Vec<RunBrief>>,
    now: i64,
) -> Markup {
    let Some(v) = &e.active else {
        return html! {
            tr.broken data-file=(e.path) {
                td { code { (e.path) } }
                td {} td {} td {}
                td { span.state.state-failed title="invalid" { "✗ invalid" } (errors(e)) }
                td {} td {}
            }
        };
    };
    let p = &v.pipeline;
    let key = (p.id.namespace.to_string(), p.id.name.to_string());
    let href = format!(
        "/pipelines/{}/{}",
        encode(p.id.namespace.as_str()),
        encode(p.id.name.as_str())
    );
    let stats = Stats::of(finished.get(&key).into_iter().flatten());
    let now_ts = jiff::Timestamp::from_millisecond(now).unwrap_or_else(|_| jiff::Timestamp::now());
    html! {
        tr data-pipeline=(p.id) {
            td {
                a.pipeline-link href=(href) { (p.id.name) }
                " " span.namespace { (p.id.namespace) }
                @if let Some(d) = &p.description { div.description { (d) } }
            }
            td { @if let Some(o) = &p.owner { (o) } }
            td { @for t in &p.tags { span.tag { (t) } " " } }
            td {
                @for s in &p.schedules {
                    div.schedule {
                        (cron_words::describe(s))
                        @if let Some(next) = s.next_after(now_ts) {
                            div.next { "next: " (fire_time(&next, now)) }
                        }
                    }
                }
            }
            td {
                @if paused { span.paused title="paused" { "⏸ paused" } } @else { span.active title="active" { "● active" } }
                @if !e.errors.is_empty() { (errors(e)) }
            }
            td.squares {
                @for r in latest.get(&key).into_iter().flatten().rev() {
                    a class={ "square state-" (r.state) } href={ "/runs/" (r.id) }
                        title={ (r.id) ": " (r.state) } data-state=(r.state) {
                        (super::widgets::icon(r.state.as_str()))
                    }
                }
            }
            td.stats {
                @if let Some(pct) = stats.success_percent() {
                    span.rate title={ (stats.succeeded) " of " (stats.finished) " runs succeeded" } { (pct) "%" }
                    @if let (Some(p50), Some(p95)) = (stats.p50, stats.p95) {
                        " · p50 " (duration(p50)) " · p95 " (duration(p95))
                    }
                } @else { span.muted { "no runs" } }
            }
        }
    }
}

/// A file's validation errors, each with its place.
pub(crate) fn errors(e: &Entry) -> Markup {
    html! {
        @if !e.errors.is_empty() {
            ul.errors {
                @for d in &e.errors {
                    li {
                        code { (e.path) ":" (d.span.line) ":" (d.span.column) }
                        @if !d.field.is_empty() { " " code { (d.field) } }
                        ": " (d.message)
                        @if let Some(h) = &d.hint { br; span.hint { "hint: " (h) } }
                    }
                }
            }
        }
    }
}
