//! Action buttons. Destructive ones (cancel, retry, approve, reject, requeue) ask first: the
//! script opens the page's `<dialog>`; without the script the button leads to a confirm page
//! whose form posts the action.

use axum::response::Response;
use maud::{Markup, html};

use super::shell;

/// One action on one thing.
#[derive(Debug)]
pub(crate) struct Action {
    /// `data-action`: cancel, retry, approve, reject, requeue, pause, unpause.
    pub verb: &'static str,
    pub label: &'static str,
    /// Where the form posts (and, with GET, the confirm page).
    pub path: String,
    /// The question the confirm step asks.
    pub question: String,
    /// Where to go afterwards.
    pub back: String,
}

/// The button of a destructive action.
pub(crate) fn button(a: &Action) -> Markup {
    html! {
        form.action method="get" action=(a.path) data-question=(a.question) {
            input type="hidden" name="back" value=(a.back);
            button type="submit" class={ "btn btn-" (a.verb) } data-action=(a.verb) { (a.label) }
        }
    }
}

/// The button of an action that needs no confirmation (pause, unpause).
pub(crate) fn direct(a: &Action) -> Markup {
    html! {
        form.action method="post" action=(a.path) {
            input type="hidden" name="back" value=(a.back);
            button type="submit" class={ "btn btn-" (a.verb) } data-action=(a.verb) { (a.label) }
        }
    }
}

/// The confirm page, for browsers without the script.
pub(crate) fn page(a: &Action) -> Response {
    shell::ok(
        a.label,
        html! { (a.label) },
        html! {
            form.confirm-page method="post" action=(a.path) {
                p.confirm-text { (a.question) }
                input type="hidden" name="back" value=(a.back);
                @if matches!(a.verb, "approve" | "reject") {
                    label { "Comment (optional) " input type="text" name="comment"; }
                }
                div.buttons {
                    button type="submit" data-confirm=(a.verb) { (a.label) }
                    a href=(a.back) { "Keep it" }
                }
            }
        },
    )
}
