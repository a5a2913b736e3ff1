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
                p.confirm-text { (question(&a.question)) }
                input type="hidden" name="back" value=(a.back);
                @if takes_comment(a.verb) {
                    label.comment { "Comment (optional) " input type="text" name="comment"; }
                }
                div.buttons {
                    button type="submit" data-confirm=(a.verb) { (a.label) }
                    a href=(a.back) { "Keep it" }
                }
            }
        },
    )
}

/// Whether the action records a comment with it (a gate's decision does).
pub(crate) fn takes_comment(verb: &str) -> bool {
    matches!(verb, "approve" | "reject")
}

/// A question whose `backticked` names show as code, like the script's dialog shows them.
fn question(text: &str) -> Markup {
    html! {
        @for (n, part) in text.split('`').enumerate() {
            @if n % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::question;

    #[test]
    fn backticked_names_become_code() {
        assert_eq!(
            question("Approve `ship` of run r-<1>?").into_string(),
            "Approve <code>ship</code> of run r-&lt;1&gt;?"
        );
        assert_eq!(question("no names").into_string(), "no names");
    }
}
