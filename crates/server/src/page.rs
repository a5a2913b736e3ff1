//! Cursor pagination, used by every list: `?limit=N&cursor=C`, checked the same way
//! everywhere (the bounds the OpenAPI document gives are the ones enforced here).

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// Items of a page when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
/// The most items one page holds; a larger `limit` is refused (400).
pub(crate) const MAX_LIMIT: u32 = 500;

/// The page size a `limit` parameter asks for: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when
/// absent; anything else is a 400 naming the bounds.
pub(crate) fn limit(given: Option<u32>) -> ApiResult<u32> {
    match given {
        None => Ok(DEFAULT_LIMIT),
        Some(n @ 1..=MAX_LIMIT) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {MAX_LIMIT}, got `{n}`"
        ))
        .with_details(serde_json::json!({ "minimum": 1, "maximum": MAX_LIMIT }))),
    }
}

/// A `cursor` parameter, empty meaning none (what a client sends that fills the query from
/// an absent `next_cursor`).
pub(crate) fn cursor(given: Option<&str>) -> Option<&str> {
    given.filter(|c| !c.is_empty())
}

/// A 400 for a cursor that no page could have handed out.
pub(crate) fn invalid_cursor(cursor: &str) -> ApiError {
    ApiError::bad_request(format!(
        "invalid cursor `{cursor}`\n(hint: pass the `next_cursor` of the previous page)"
    ))
}

/// Whether `text` is a run id as baton makes them: a ULID (26 letters and digits).
pub(crate) fn is_ulid(text: &str) -> bool {
    text.len() == 26 && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// One page of a list; `next_cursor` is absent on the last one.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` items, the extra one only telling that more exist.
    pub(crate) fn from_extra(
        mut items: Vec<T>,
        limit: u32,
        cursor_of: impl Fn(&T) -> String,
    ) -> Self {
        let limit = limit as usize;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more {
            items.last().map(&cursor_of)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_checked_against_its_documented_bounds() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some(1)).unwrap(), 1);
        assert_eq!(limit(Some(MAX_LIMIT)).unwrap(), MAX_LIMIT);
        for bad in [0, MAX_LIMIT + 1, u32::MAX] {
            let e = limit(Some(bad)).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            assert!(e.message.contains(&format!("`{bad}`")), "{}", e.message);
        }
    }

    #[test]
    fn an_empty_cursor_is_none_and_run_cursors_are_ulids() {
        assert_eq!(cursor(Some("")), None);
        assert_eq!(cursor(Some("x")), Some("x"));
        assert!(is_ulid("01jd0x6z4q7m8n9p0r1s2t3v4w"));
        assert!(!is_ulid("01jd0x6z4q7m8n9p0r1s2t3v4"));
        assert!(!is_ulid("01jd0x6z4q7m8n9p0r1s2t3v4-"));
    }
}
