//! UI errors: the status of the API error they come from, as an HTML page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::shell;
use crate::ApiError;

/// An error answered with an HTML page (not the API's JSON body).
#[derive(Debug)]
pub(crate) struct UiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

pub(crate) type UiResult<T> = Result<T, UiError>;

impl UiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        Self::new(e.status, e.message)
    }
}

impl From<baton_store::Error> for UiError {
    fn from(e: baton_store::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        let body = html! {
            p.error-message { (self.message) }
            p { a href="/" { "Back to the pipelines" } }
        };
        shell::respond(self.status, &title, html! { (title) }, body)
    }
}

/// An error page with `status`, for refusals made before any UI handler runs.
pub(crate) fn error_page(status: StatusCode, message: String) -> Response {
    UiError::new(status, message).into_response()
}

/// The answer to a path the UI does not know (anything outside `/api/`).
pub(crate) fn not_found_page(path: &str) -> Response {
    UiError::not_found(format!("no page at `{path}`")).into_response()
}
