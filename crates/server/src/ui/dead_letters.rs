//! `/dead-letters`: task instances that failed for good, newest failure first, each with
//! requeue.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use baton_store::{DeadLetterCursor, DeadLetterFilter};
use maud::html;
use serde::Deserialize;

use super::actions::requeue_action;
use super::confirm;
use super::error::{UiError, UiResult};
use super::shell;
use super::widgets::{next_page_href, state as state_badge, take_page, task_href, time};
use crate::AppState;

const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeadQuery {
    pipeline: Option<String>,
    cursor: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    Query(q): Query<DeadQuery>,
) -> UiResult<Response> {
    let pipeline = q
        .pipeline
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(DeadLetterCursor::decode(c).ok_or_else(|| {
            UiError::new(StatusCode::BAD_REQUEST, format!("invalid cursor `{c}`"))
        })?),
        None => None,
    };
    let mut items = state
        .store
        .dead_letters(
            &DeadLetterFilter {
                limit: PAGE + 1,
                before,
                ..DeadLetterFilter::default()
            }
            .for_pipeline(pipeline),
        )
        .await?;
    let more = take_page(&mut items, PAGE);
    let next = items.last().filter(|_| more).map(|d| {
        next_page_href(
            "/dead-letters",
            &d.cursor().encode(),
            &[("pipeline", pipeline)],
        )
    });
    let now = baton_engine::now_ms();
    let body = html! {
        form #dead-filters method="get" action="/dead-letters" {
            input type="search" name="pipeline" placeholder="pipeline or namespace/pipeline" value=[pipeline];
            button type="submit" { "Filter" }
        }
        @if items.is_empty() {
            p.empty { "No dead letters." }
        } @else {
            table #dead-letters {
                thead { tr { th { "Run" } th { "Pipeline" } th { "Task" } th { "Attempts" } th { "Exit" } th { "Error" } th { "Failed" } th {} } }
                tbody {
                    @for d in &items {
                        tr data-run=(d.run) data-task=(d.key) {
                            td { a href={ "/runs/" (d.run) } { code { (d.run) } } " " (state_badge(d.run_state.as_str())) }
                            td { (d.namespace) "/" (d.pipeline) }
                            td { a href=(task_href(d.run.as_str(), d.key.as_str())) { (d.key) } }
                            td { (d.attempts) }
                            td { @if let Some(c) = d.exit_code { (c) } @if let Some(s) = d.signal { "signal " (s) } }
                            td.error { @if let Some(e) = &d.error { (e) } }
                            td { (time(d.finished_at, now)) }
                            td { (confirm::button(&requeue_action(d.run.as_str(), d.key.as_str(), Some("/dead-letters")))) }
                        }
                    }
                }
            }
        }
        @if let Some(n) = &next { p.pager { a #next-page href=(n) { "Next page →" } } }
    };
    Ok(shell::ok("Dead letters", html! { "Dead letters" }, body))
}
