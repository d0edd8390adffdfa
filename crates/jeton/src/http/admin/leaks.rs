//! `POST /admin/leaks` (API.md §15): leaked tokens found elsewhere than by
//! GitHub's secret scanning, with the same effects and answer.

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    domain::{Problems, schema, text::bounded},
    http::{
        error::{AppError, AppResult},
        extract::Json,
        secret_scanning::{self, LeakAnswer, MAX_TOKENS, Reported},
        state::AppState,
    },
    store::audit::Audit,
};

/// The longest text taken as a token: every token of this server is far
/// shorter; anything longer is nobody's.
const TOKEN_MAX: usize = 256;
const SOURCE_MAX: usize = 100;
const URL_MAX: usize = 2048;

fn tokens_schema() -> utoipa::openapi::Array {
    schema::array(
        schema::sized_text(1, TOKEN_MAX)
            .examples(["jt_sk_9eN2kTqW8bXc4LmR7sYz1aPdF3gH5jK0xyZ12a"])
            .build(),
        1,
        MAX_TOKENS,
        false,
    )
}

fn source_schema() -> utoipa::openapi::Object {
    schema::field(schema::bounded_text(1, SOURCE_MAX, false).examples(["pastebin"]))
}

fn url_schema() -> utoipa::openapi::Object {
    schema::field(
        schema::text_without_controls(URL_MAX, "")
            .schema_type(schema::scalar_type(utoipa::openapi::Type::String, true))
            .examples(["https://pastebin.example/abc"]),
    )
}

/// `POST /admin/leaks`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tokens": ["jt_sk_9eN2kTqW8bXc4LmR7sYz1aPdF3gH5jK0xyZ12a"], "source": "pastebin", "url": "https://pastebin.example/abc"}))]
pub struct LeaksInput {
    /// The texts found, 1 to 1000, each taken exactly as sent.
    #[schema(schema_with = tokens_schema)]
    pub tokens: Vec<String>,
    /// Where they were found (a service, a channel), for the audit log.
    #[schema(schema_with = source_schema)]
    pub source: String,
    /// Where exactly, if known.
    #[serde(default)]
    #[schema(schema_with = url_schema)]
    pub url: Option<String>,
}

/// Report leaked tokens
///
/// For leaks found elsewhere than by GitHub's secret scanning: the same
/// answer and effects as `POST /secret-scanning/github`. Each live
/// credential named is acted on at once, in one transaction with its audit
/// event `credential.exposed`: a secret key, access token, user token or
/// staff session is revoked (every process refuses it within a second), a
/// publishable key, public by design, is flagged (`exposed_at`). A token
/// reported before gets its first answer and changes nothing.
#[utoipa::path(post, operation_id = "reportLeaks", path = "/api/v1/admin/leaks", tag = "admin",
    request_body = LeaksInput,
    responses((status = 200, body = Vec<LeakAnswer>, description = "one answer per token sent, in order")))]
pub async fn report(
    State(state): State<AppState>,
    audit: Audit,
    Json(input): Json<LeaksInput>,
) -> AppResult<Json<Vec<LeakAnswer>>> {
    let mut problems = Problems::default();
    if input.tokens.is_empty() || input.tokens.len() > MAX_TOKENS {
        problems.add("tokens", format!("must list 1 to {MAX_TOKENS} tokens"));
    }
    for (i, token) in input.tokens.iter().enumerate() {
        let count = token.chars().count();
        if count == 0 || count > TOKEN_MAX {
            problems.add(
                format!("tokens[{i}]"),
                format!("must have 1 to {TOKEN_MAX} characters"),
            );
        }
    }
    let source = problems.check("source", bounded(&input.source, 1, SOURCE_MAX));
    if let Some(url) = &input.url {
        if url.chars().count() > URL_MAX {
            problems.add("url", format!("must have at most {URL_MAX} characters"));
        } else if url.chars().any(char::is_control) {
            problems.add("url", "must not hold control characters");
        }
    }
    let source = problems
        .finish(|| source.expect("checked"))
        .map_err(AppError::Validation)?;
    let reported = input
        .tokens
        .into_iter()
        .map(|token| Reported {
            token,
            token_type: None,
            source: source.clone(),
            url: input.url.clone(),
        })
        .collect();
    Ok(Json(
        secret_scanning::report(&state, reported, &audit).await?,
    ))
}
