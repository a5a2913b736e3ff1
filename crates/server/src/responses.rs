//! Error responses that several operations share, documented once: each set is listed in an
//! operation's `responses(...)` instead of repeating its rows. An operation lists a set only
//! when it can answer every status in it.

use utoipa::IntoResponses;

use crate::error::ErrorBody;

/// 503 `store_unavailable`: what any operation that reads or writes the database answers when
/// the database does not.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI description is used.
pub(crate) enum StoreDown {
    /// `store_unavailable`: the database is not available
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// What reading a required JSON body can answer before the operation looks at it.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI description is used.
pub(crate) enum JsonBody {
    /// `invalid_body`: the body is not JSON
    #[response(status = 400)]
    Unreadable(ErrorBody),
    /// `body_too_large`: the body is over 1 MiB
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// `unsupported_media_type`: not `Content-Type: application/json`
    #[response(status = 415)]
    NotJson(ErrorBody),
}

/// What reading an optional JSON body (empty, `null` or an object, whatever its content type)
/// can answer before the operation looks at it.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI description is used.
pub(crate) enum OptionalJsonBody {
    /// `invalid_body`: the body is not JSON, not an object, or not of the documented shape
    #[response(status = 400)]
    Unreadable(ErrorBody),
    /// `body_too_large`: the body is over 1 MiB
    #[response(status = 413)]
    TooLarge(ErrorBody),
}

/// 409 `ambiguous_run`: what an operation on one run answers when the id prefix it was given
/// matches several runs. Operations whose 409 also means something else describe both in one
/// row of their own instead (a status has one description).
#[derive(IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI description is used.
pub(crate) enum AmbiguousRun {
    /// `ambiguous_run`: the id prefix matches several runs
    #[response(status = 409)]
    Ambiguous(ErrorBody),
}
