//! Cross-site request checks for the UI's form posts: a page elsewhere must not make a
//! visitor's browser cancel runs or approve gates here.

use axum::http::{HeaderMap, StatusCode};

use super::error::UiError;

/// Refuses a request a browser marks as cross-site, or whose `Origin` is not this host (the
/// rules of [`crate::guard::cross_site`], which every request already passed; checked again
/// here so that a form handler stays safe wherever it is mounted). Requests without either
/// header (curl, old browsers) pass: they carry no ambient session a foreign page could use.
pub(crate) fn check(headers: &HeaderMap) -> Result<(), UiError> {
    match crate::guard::cross_site(headers) {
        None => Ok(()),
        Some(why) => Err(UiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "cross-site request refused: {why}\n(hint: submit the form from baton's own pages)"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_passes_and_foreign_origins_do_not() {
        assert!(check(&headers(&[])).is_ok());
        assert!(check(&headers(&[("host", "a:8080"), ("origin", "http://a:8080")])).is_ok());
        assert!(check(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(check(&headers(&[("host", "a:8080"), ("origin", "http://evil")])).is_err());
        assert!(check(&headers(&[("host", "a"), ("origin", "null")])).is_err());
        assert!(check(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
    }
}
