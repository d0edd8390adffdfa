//! The form body every OAuth endpoint takes (RFC 6749 §3.2).

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::rejection::BytesRejection,
    http::{HeaderMap, HeaderValue, StatusCode, header},
};

use super::OAuthError;

/// A form body's parameters: each at most once, empty ones left out
/// (RFC 6749 §3.2: an empty parameter counts as absent).
#[derive(Debug, Default)]
pub struct Form(HashMap<String, String>);

impl Form {
    /// The body must be `application/x-www-form-urlencoded` (UTF-8); an
    /// empty body without a `Content-Type` is an empty form.
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
        let content_types: Vec<&HeaderValue> =
            headers.get_all(header::CONTENT_TYPE).iter().collect();
        match content_types.as_slice() {
            [] if body.is_empty() => return Ok(Form::default()),
            [one] => {
                let parsed = one
                    .to_str()
                    .ok()
                    .and_then(|text| text.parse::<mime::Mime>().ok());
                let form = parsed.as_ref().is_some_and(|mime| {
                    mime.essence_str() == "application/x-www-form-urlencoded"
                        && mime
                            .get_param(mime::CHARSET)
                            .is_none_or(|charset| charset == mime::UTF_8)
                });
                if !form {
                    return Err(OAuthError::invalid_request(
                        "the body must be application/x-www-form-urlencoded",
                    ));
                }
            }
            _ => {
                return Err(OAuthError::invalid_request(
                    "the body must be application/x-www-form-urlencoded",
                ));
            }
        }
        if std::str::from_utf8(body).is_err() {
            return Err(OAuthError::invalid_request("the form is not UTF-8"));
        }
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                continue;
            }
            if params
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter `{}` is repeated",
                    name.chars().take(64).collect::<String>()
                )));
            }
        }
        Ok(Form(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// The body, or the answer to one that could not be read (413 past the
/// body limit).
pub(super) fn form(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Form, OAuthError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!(
                    "the body is over {} bytes",
                    crate::http::extract::MAX_BODY_BYTES
                ),
            )
        } else {
            OAuthError::invalid_request("the body could not be read")
        }
    })?;
    Form::parse(headers, &body)
}
