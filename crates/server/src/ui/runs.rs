//! `/runs`: runs, newest first, filtered by pipeline and state, a page at a time (cursor).

use axum::extract::{Query, State};
use axum::response::Response;
use baton_core::state::RunState;
use baton_store::RunFilter;
use maud::html;
use serde::Deserialize;

use super::error::{UiError, UiResult};
use super::shell;
use super::widgets::{duration, encode, next_page_href, state as state_badge, take_page, time};
use crate::AppState;

const PAGE: u32 = 50;
const STATES: [&str; 5] = ["queued", "running", "succeeded", "failed", "cancelled"];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunsQuery {
    pipeline: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    Query(q): Query<RunsQuery>,
) -> UiResult<Response> {
    let pipeline = q
        .pipeline
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let wanted = q.state.as_deref().filter(|s| !s.is_empty());
    let run_state = match wanted {
        Some(s) => Some(RunState::from_name(s).ok_or_else(|| {
            UiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!(
                    "unknown run state `{s}`\n(hint: one of {})",
                    STATES.join(", ")
                ),
            )
        })?),
        None => None,
    };
    let mut runs = state
        .store
        .runs(
            &RunFilter {
                state: run_state,
                limit: PAGE + 1,
                before: q.cursor.clone().filter(|c| !c.is_empty()),
                ..RunFilter::default()
            }
            .for_pipeline(pipeline),
        )
        .await?;
    let more = take_page(&mut runs, PAGE);
    let next = runs.last().filter(|_| more).map(|r| {
        next_page_href(
            "/runs",
            r.id.as_str(),
            &[("pipeline", pipeline), ("state", wanted)],
        )
    });
    let now = baton_engine::now_ms();
    let body = html! {
        form #run-filters method="get" action="/runs" {
            input type="search" name="pipeline" placeholder="pipeline or namespace/pipeline" value=[pipeline];
            select name="state" {
                option value="" { "All states" }
                @for s in STATES { option value=(s) selected[wanted == Some(s)] { (s) } }
            }
            button type="submit" { "Filter" }
        }
        @if runs.is_empty() {
            p.empty { "No runs." }
        } @else {
            table #runs {
                thead { tr { th { "Run" } th { "Pipeline" } th { "State" } th { "Trigger" } th { "Created" } th { "Duration" } } }
                tbody {
                    @for r in &runs {
                        tr data-run=(r.id) data-state=(r.state) {
                            td { a href={ "/runs/" (r.id) } { code { (r.id) } } }
                            td { a href={ "/pipelines/" (encode(&r.namespace)) "/" (encode(&r.pipeline)) } { (r.namespace) "/" (r.pipeline) } }
                            td { (state_badge(r.state.as_str())) }
                            td { (r.trigger) @if let Some(d) = &r.logical_date { " " span.muted { (d) } } }
                            td { (time(r.created_at, now)) }
                            td { @if let Some(s) = r.started_at { (duration(r.finished_at.unwrap_or(now) - s)) } }
                        }
                    }
                }
            }
        }
        p.pager {
            @if q.cursor.is_some() { a href="/runs" { "First page" } " " }
            @if let Some(n) = &next { a #next-page href=(n) { "Next page →" } }
        }
    };
    Ok(shell::ok("Runs", html! { "Runs" }, body))
}
