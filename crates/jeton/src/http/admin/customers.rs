use axum::{
    extract::{Path, State},
    http::StatusCode,
};

use crate::{
    domain::ids::CustomerId,
    http::{
        error::{AppError, AppResult},
        state::AppState,
    },
    store::{audit::Audit, user_tokens::Revoke},
};

/// Revoke a customer's tokens
///
/// Revokes every token of the customer (logins, cookie sessions, personal
/// tokens): signs them out everywhere. Recorded in the audit log.
#[utoipa::path(post, operation_id = "revokeCustomerTokens", path = "/api/v1/admin/customers/{id}/revoke-tokens", tag = "admin",
    responses((status = 204, description = "every token of the customer is revoked")))]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    audit: Audit,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let id = CustomerId::parse(&id).ok_or(AppError::NotFound)?;
    if state.db.get_customer(&id).await?.is_none() {
        return Err(AppError::NotFound);
    }
    state
        .db
        .revoke_user_tokens(Revoke::AllOf { customer_id: &id }, &audit)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
