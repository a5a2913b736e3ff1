//! `/approvals`: every gate waiting for a person, with approve and reject.

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::actions::{approve_action, reject_action};
use super::confirm;
use super::error::UiResult;
use super::shell;
use super::widgets::{encode, task_href, time};
use crate::AppState;

/// Gates listed at most; deciding some brings the rest up.
const LIMIT: u32 = 500;

pub(crate) async fn page(State(state): State<AppState>) -> UiResult<Response> {
    let waiting = state.store.awaiting_approval(LIMIT).await?;
    let now = baton_engine::now_ms();
    let body = html! {
        @if waiting.is_empty() {
            p.empty { "Nothing waits for approval." }
        } @else {
            table #approvals {
                thead { tr { th { "Run" } th { "Pipeline" } th { "Task" } th { "Asks" } th { "Waiting since" } th { "Decide" } } }
                tbody {
                    @for w in &waiting {
                        tr data-run=(w.run) data-task=(w.key) {
                            td { a href={ "/runs/" (w.run) } { code { (w.run) } } }
                            td { a href={ "/pipelines/" (encode(&w.namespace)) "/" (encode(&w.pipeline)) } { (w.namespace) "/" (w.pipeline) } }
                            td { a href=(task_href(w.run.as_str(), w.key.as_str())) { (w.key) } }
                            td.message { @if let Some(m) = &w.message { (m) } }
                            td { @if let Some(t) = w.since { (time(t, now)) } }
                            td.actions {
                                (confirm::button(&approve_action(w.run.as_str(), w.key.as_str(), Some("/approvals"))))
                                (confirm::button(&reject_action(w.run.as_str(), w.key.as_str(), Some("/approvals"))))
                            }
                        }
                    }
                }
            }
            @if waiting.len() >= LIMIT as usize { p.note { "Showing the first " (LIMIT) "." } }
        }
    };
    Ok(shell::ok("Approvals", html! { "Approvals" }, body))
}
