//! `/workers`: the `baton worker` agents connected to this server, what each runs, and the
//! tasks waiting for one.

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::error::UiResult;
use super::shell;
use super::widgets::{task_href, time};
use crate::AppState;

pub(crate) async fn page(State(state): State<AppState>) -> UiResult<Response> {
    let list = crate::routes::workers::worker_list(&state);
    let now = baton_engine::now_ms();
    let body = html! {
        @if state.workers.is_none() {
            p.empty {
                "The worker API is off. Set " code { "[workers] secret_file" } " in "
                code { "baton.toml" } " and start agents with "
                code { "baton worker --server URL --secret-file PATH --labels …" } "."
            }
        } @else if list.workers.is_empty() {
            p.empty { "No worker is connected. Start one with " code { "baton worker --server URL --secret-file PATH --labels …" } "." }
        } @else {
            table #workers {
                thead { tr { th { "Name" } th { "State" } th { "Labels" } th { "Slots" } th { "Running" } th { "Last heartbeat" } th { "Host" } th { "Version" } } }
                tbody {
                    @for w in &list.workers {
                        tr data-worker=(w.id) data-state=(w.state) {
                            td { (w.name) }
                            td { span class={ "state state-" (w.state) } { (w.state) } }
                            td { @for l in &w.labels { code.label { (l) } " " } }
                            td { (w.running.len()) " / " (w.slots) }
                            td {
                                @for a in &w.running {
                                    a href=(task_href(a.run.as_str(), a.task.as_str())) { (a.task) } " "
                                }
                            }
                            td { (time(w.last_heartbeat, now)) }
                            td { (w.host) }
                            td { (w.version) }
                        }
                    }
                }
            }
        }
        @if !list.waiting.is_empty() {
            h2 { "Waiting for a worker" }
            table #waiting {
                thead { tr { th { "Run" } th { "Task" } th { "Since" } th { "Why" } } }
                tbody {
                    @for w in &list.waiting {
                        tr data-run=(w.run) data-task=(w.task) {
                            td { a href={ "/runs/" (w.run) } { code { (w.run) } } }
                            td { a href=(task_href(w.run.as_str(), w.task.as_str())) { (w.task) } }
                            td { (time(w.since, now)) }
                            td.waiting { (w.reason) }
                        }
                    }
                }
            }
        }
    };
    Ok(shell::ok("Workers", html! { "Workers" }, body))
}
