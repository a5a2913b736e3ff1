//! The frame of every page: head with the embedded assets, the navigation, the heading.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::assets;

/// A whole page: `title` for the tab, `heading` as the `<h1>`, then `body`.
pub(crate) fn page(title: &str, heading: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · baton" }
                link rel="stylesheet" href=(assets::url("baton.css"));
                script src=(assets::url("baton.js")) defer {}
            }
            body {
                nav {
                    a.brand href="/" { "baton" }
                    a href="/" { "Pipelines" }
                    a href="/runs" { "Runs" }
                    a href="/approvals" { "Approvals" }
                    a href="/dead-letters" { "Dead letters" }
                    a href="/workers" { "Workers" }
                }
                main {
                    h1 { (heading) }
                    (body)
                }
                (confirm_dialog())
            }
        }
    }
}

/// The one confirm dialog of a page: the script fills in the action it confirms. Without
/// the script the action buttons lead to a confirm page instead.
fn confirm_dialog() -> Markup {
    html! {
        dialog #confirm {
            form method="post" {
                p.confirm-text {}
                input type="hidden" name="back" value="";
                label.comment hidden { "Comment (optional) " input type="text" name="comment"; }
                div.buttons {
                    button type="submit" data-confirm="" { "Confirm" }
                    button type="button" .dialog-close { "Keep it" }
                }
            }
        }
    }
}

/// A page answered with `status`.
pub(crate) fn respond(status: StatusCode, title: &str, heading: Markup, body: Markup) -> Response {
    (status, Html(page(title, heading, body).into_string())).into_response()
}

/// A page answered with 200.
pub(crate) fn ok(title: &str, heading: Markup, body: Markup) -> Response {
    respond(StatusCode::OK, title, heading, body)
}
