//! Request extractors whose rejections are [`AppError`]s, so a bad body or
//! query gets the same problem+json as everything else:
//! wrong content type 415, over 1 MiB 413, not JSON 400 `malformed_json`,
//! wrong or unknown fields 422 `validation_failed` naming the field.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, header::CONTENT_TYPE, request::Parts},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use super::error::AppError;
use crate::domain::FieldError;

/// The most bytes a request body may have.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body in, or a JSON response out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

fn is_json(content_type: &str) -> bool {
    content_type.parse::<mime::Mime>().is_ok_and(|mime| {
        mime.type_() == mime::APPLICATION
            && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
    })
}

/// serde's messages end with " at line 1 column 12", which is noise in a
/// field error.
fn clean_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !content_type.is_some_and(is_json) {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        AppError::PayloadTooLarge
                    } else {
                        AppError::MalformedJson("the body could not be read".to_owned())
                    }
                })?;
        parse_json(&bytes).map(Json)
    }
}

/// A JSON body that may also be left out entirely (no body, no
/// `Content-Type`) or be `null`, meaning "all defaults".
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for JsonOrEmpty<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if request.headers().contains_key(CONTENT_TYPE) {
            return Json::<Option<T>>::from_request(request, state)
                .await
                .map(|Json(value)| JsonOrEmpty(value.unwrap_or_default()));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| AppError::PayloadTooLarge)?;
        if bytes.is_empty() {
            Ok(JsonOrEmpty(T::default()))
        } else {
            Err(AppError::UnsupportedMediaType)
        }
    }
}

/// Parses a JSON body; public for the fuzz targets and tests.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    // Syntax first: deserializing into `T` stops at the first unknown field,
    // which would answer a body that is not JSON at all (`{"x": 1,}`) with a
    // 422 instead of the 400 it deserves.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|error| AppError::MalformedJson(clean_message(&error)))?;
    // Every body this API takes is an object (or `null` where a body may be
    // left out). serde would also read a struct from an array of its
    // fields' values, which no client means and the description does not
    // allow.
    if !matches!(
        bytes.iter().find(|byte| !byte.is_ascii_whitespace()),
        Some(b'{' | b'n')
    ) {
        return Err(AppError::validation("body", "must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    // Deep nesting is bounded too: serde_json's recursion limit, and the
    // typed parse stops at the first level that does not fit.
    let value = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => value,
        Err(error) => {
            return integral_floats_as_integers(bytes)
                .and_then(|value| serde_path_to_error::deserialize(value).ok())
                .ok_or_else(|| typed_error(error));
        }
    };
    deserializer
        .end()
        .map_err(|error| AppError::MalformedJson(clean_message(&error)))?;
    Ok(value)
}

fn typed_error(error: serde_path_to_error::Error<serde_json::Error>) -> AppError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data => {
            let field = if path == "." { "body".to_owned() } else { path };
            AppError::Validation(vec![FieldError::new(field, clean_message(&inner))])
        }
        _ => AppError::MalformedJson(clean_message(&inner)),
    }
}

/// JSON has one kind of number: `2.0` and `2e3` are the integers 2 and
/// 2000 to JSON Schema, and so to the API's description, though serde
/// refuses them where an integer is expected. A body that failed to parse is
/// read again with every such number written as an integer, when it has
/// one; `None` if it has none. Only numbers that a double holds exactly
/// (up to 2^53) are taken; every integer field's bound is far below that.
fn integral_floats_as_integers(bytes: &[u8]) -> Option<serde_json::Value> {
    fn rewrite(value: &mut serde_json::Value) -> bool {
        const EXACT: f64 = 9_007_199_254_740_992.0;
        match value {
            serde_json::Value::Number(number) if !number.is_i64() && !number.is_u64() => {
                match number.as_f64() {
                    Some(float) if float.fract() == 0.0 && float.abs() <= EXACT => {
                        *value = serde_json::Value::from(float as i64);
                        true
                    }
                    _ => false,
                }
            }
            serde_json::Value::Array(items) => items
                .iter_mut()
                .fold(false, |any, item| rewrite(item) | any),
            serde_json::Value::Object(fields) => fields
                .values_mut()
                .fold(false, |any, field| rewrite(field) | any),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    rewrite(&mut value).then_some(value)
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON body that is already serialized (from a cache).
#[derive(Debug, Clone)]
pub struct JsonBytes(pub Bytes);

impl IntoResponse for JsonBytes {
    fn into_response(self) -> Response {
        ([(CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

/// Query parameters; unknown or malformed ones are a 422.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                let field = error.path().to_string();
                let field = if field == "." {
                    "query".to_owned()
                } else {
                    field
                };
                AppError::Validation(vec![FieldError::new(field, error.into_inner().to_string())])
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("json"));
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        a: i64,
    }

    #[test]
    fn integral_numbers_are_integers_however_written() {
        assert_eq!(parse_json::<Strict>(b"{\"a\": 2.0}").unwrap().a, 2);
        assert_eq!(parse_json::<Strict>(b"{\"a\": 2e3}").unwrap().a, 2000);
        assert_eq!(parse_json::<Strict>(b"{\"a\": -0.0}").unwrap().a, 0);
        for body in [&b"{\"a\": 2.5}"[..], b"{\"a\": 1e300}", b"{\"a\": \"2\"}"] {
            assert!(matches!(
                parse_json::<Strict>(body),
                Err(AppError::Validation(_))
            ));
        }
    }

    #[test]
    fn invalid_json_is_malformed_even_after_an_unknown_field() {
        for body in [&b"{\"x\": 1,}"[..], b"{\"x\": 1} trailing", b"{\"x\": "] {
            assert!(matches!(
                parse_json::<Strict>(body),
                Err(AppError::MalformedJson(_))
            ));
        }
        assert!(matches!(
            parse_json::<Strict>(b"{\"x\": 1}"),
            Err(AppError::Validation(_))
        ));
        assert_eq!(parse_json::<Strict>(b"{\"a\": 1}").unwrap().a, 1);
    }

    #[test]
    fn a_body_is_an_object() {
        for body in [&b"[1]"[..], b" [1]", b"1", b"\"a\"", b"true"] {
            assert!(
                matches!(parse_json::<Strict>(body), Err(AppError::Validation(_))),
                "{body:?}"
            );
        }
        assert!(parse_json::<Option<Strict>>(b"null").unwrap().is_none());
    }
}
