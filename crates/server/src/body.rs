//! A JSON body extractor whose rejections are API errors (JSON, with the right status:
//! 413 for an oversized body, 415 without a JSON content type, 400 for unreadable
//! JSON, 422 for a required body of the wrong shape).

use axum::extract::{FromRequest, Request};

use crate::error::ApiError;

#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => {
                object(value, axum::http::StatusCode::UNPROCESSABLE_ENTITY).map(Self)
            }
            Err(rejection) => {
                let status = rejection.status();
                let code = match status.as_u16() {
                    413 => "body_too_large",
                    415 => "unsupported_media_type",
                    _ => "invalid_body",
                };
                Err(ApiError::new(status, code, rejection.body_text()))
            }
        }
    }
}

/// Reads a body that must be a JSON object into `T`. serde would also fill a struct from an
/// array (`[null, null]` as its fields in order), which no schema of the API allows. A body
/// of the wrong shape is answered with `status`.
fn object<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    status: axum::http::StatusCode,
) -> Result<T, ApiError> {
    let unprocessable = |message: String| ApiError::new(status, "invalid_body", message);
    if !value.is_object() {
        return Err(unprocessable(format!(
            "the body must be a JSON object, got {}",
            kind(&value)
        )));
    }
    serde_json::from_value(value).map_err(|e| unprocessable(format!("invalid body: {e}")))
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Parses an optional JSON body: empty or `null` means the type's default; anything else must
/// be a JSON object.
pub(crate) fn optional<T: serde::de::DeserializeOwned + Default>(
    bytes: &[u8],
) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("invalid JSON body: {e}"),
        )
    })?;
    if value.is_null() {
        return Ok(T::default());
    }
    object(value, axum::http::StatusCode::BAD_REQUEST)
}

/// The raw body, whatever its content type; over the size limit it is a JSON 413.
#[derive(Debug)]
pub(crate) struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|rejection| {
                let status = rejection.status();
                let code = if status.as_u16() == 413 {
                    "body_too_large"
                } else {
                    "invalid_body"
                };
                ApiError::new(status, code, rejection.body_text())
            })
    }
}

/// An optional JSON body, read whatever its content type: empty means `T::default()`. The
/// rejections are API errors, like [`Body`]'s (413 over the size limit, 400 for bad JSON).
#[derive(Debug)]
pub(crate) struct OptionalBody<T>(pub T);

impl<S, T> FromRequest<S> for OptionalBody<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        optional(&bytes).map(Self)
    }
}

/// A query string extractor whose rejection is a JSON 400 `bad_request`.
#[derive(Debug)]
pub(crate) struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| Self(q))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Integers in bodies as JSON Schema counts them: `3` and `3.0` alike (serde's integer types
/// refuse `3.0`, which every schema-driven client may send for an `integer`).
pub(crate) mod whole {
    use serde::de::{Deserialize, Deserializer, Error};

    fn number<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        let whole = n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                // Exact: a whole number below 2^53 in magnitude.
                .map(|f| f as i64)
        });
        let whole =
            whole.ok_or_else(|| D::Error::custom(format!("expected an integer, got {n}")))?;
        T::try_from(whole).map_err(|_| D::Error::custom(format!("integer {whole} is out of range")))
    }

    /// A required integer field.
    pub(crate) fn required<'de, D: Deserializer<'de>, T: TryFrom<i64>>(
        d: D,
    ) -> Result<T, D::Error> {
        number(d)
    }

    /// An optional integer field (`null` or left out is `None`; use with `#[serde(default)]`).
    pub(crate) fn optional<'de, D: Deserializer<'de>, T: TryFrom<i64>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        match Option::<serde_json::Number>::deserialize(d)? {
            None => Ok(None),
            Some(n) => number(serde_json::Value::Number(n))
                .map_err(D::Error::custom)
                .map(Some),
        }
    }

    #[cfg(test)]
    mod tests {
        #[derive(Debug, serde::Deserialize)]
        struct Body {
            #[serde(deserialize_with = "super::required")]
            n: u32,
            #[serde(default, deserialize_with = "super::optional")]
            m: Option<u32>,
        }

        fn read(text: &str) -> Result<Body, String> {
            serde_json::from_str(text).map_err(|e| e.to_string())
        }

        #[test]
        fn whole_floats_are_integers_and_fractions_are_not() {
            let b = read(r#"{"n": 3.0, "m": 4}"#).unwrap();
            assert_eq!((b.n, b.m), (3, Some(4)));
            assert_eq!(read(r#"{"n": 3, "m": null}"#).unwrap().m, None);
            assert_eq!(read(r#"{"n": 3}"#).unwrap().m, None);
            assert!(
                read(r#"{"n": 3.5}"#)
                    .unwrap_err()
                    .contains("expected an integer, got 3.5")
            );
            assert!(
                read(r#"{"n": -1}"#)
                    .unwrap_err()
                    .contains("integer -1 is out of range")
            );
            assert!(read(r#"{"n": 1e300}"#).is_err());
        }
    }
}
