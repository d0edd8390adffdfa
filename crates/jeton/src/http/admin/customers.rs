use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    domain::{customer::EMAIL_MAX, ids::CustomerId},
    http::{
        error::{AppError, AppResult},
        extract::{Json, Query},
        state::AppState,
    },
    pagination::{Page, PageRequest},
    responses::{Customer, UserToken},
    store::{audit::Audit, user_tokens::Revoke},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CustomerQuery {
    /// 1 to 100, default 20.
    limit: Option<i64>,
    cursor: Option<String>,
    /// Only the customers whose email starts with this, whatever its case
    /// (emails are stored lower-cased); empty: all.
    #[param(max_length = 254)]
    email: Option<String>,
}

/// A customer as an admin sees them: with their live tokens and orders
/// counted.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerDetails {
    #[serde(flatten)]
    pub customer: Customer,
    /// Live user tokens (logins, cookie sessions, personal tokens): what
    /// `GET /admin/customers/{id}/tokens` lists.
    pub token_count: i64,
    /// Orders placed, cancelled ones included.
    pub order_count: i64,
}

/// List customers
///
/// A page of the customers in the order they registered, optionally only
/// those whose email starts with `email`. Changes nothing.
#[utoipa::path(get, operation_id = "listCustomers", path = "/api/v1/admin/customers", tag = "admin", params(CustomerQuery),
    responses((status = 200, body = Page<Customer>)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<CustomerQuery>,
) -> AppResult<Json<Page<Customer>>> {
    let page =
        PageRequest::parse(query.limit, query.cursor.as_deref()).map_err(AppError::Validation)?;
    if query
        .email
        .as_ref()
        .is_some_and(|email| email.chars().count() > EMAIL_MAX)
    {
        return Err(AppError::validation(
            "email",
            format!("must be at most {EMAIL_MAX} characters"),
        ));
    }
    let prefix = query
        .email
        .map(|email| email.trim().to_lowercase())
        .filter(|prefix| !prefix.is_empty());
    let rows = state
        .db
        .list_customers(prefix.as_deref(), page.after.as_deref(), page.fetch_limit())
        .await?;
    let customers = rows.into_iter().map(Customer::from).collect();
    Ok(Json(page.page(customers, |customer: &Customer| {
        customer.id.as_str()
    })))
}

/// Get a customer
///
/// One customer, by id, with how many live tokens and orders they have.
/// Changes nothing.
#[utoipa::path(get, operation_id = "getCustomer", path = "/api/v1/admin/customers/{id}", tag = "admin",
    responses((status = 200, body = CustomerDetails), (status = 404, description = "no such customer")))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<CustomerDetails>> {
    let id = CustomerId::parse(&id).ok_or(AppError::NotFound)?;
    let customer = state
        .db
        .get_customer(&id)
        .await?
        .ok_or(AppError::NotFound)?;
    let token_count = state.db.count_customer_tokens(&id).await?;
    let order_count = state.db.count_customer_orders(&id).await?;
    Ok(Json(CustomerDetails {
        customer: customer.into(),
        token_count,
        order_count,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CustomerTokenQuery {
    /// 1 to 100, default 20.
    limit: Option<i64>,
    cursor: Option<String>,
}

/// List a customer's tokens
///
/// A page of the customer's live tokens (logins, cookie sessions and
/// personal tokens), newest first, each with its last four characters only.
/// Changes nothing.
#[utoipa::path(get, operation_id = "listCustomerTokens", path = "/api/v1/admin/customers/{id}/tokens", tag = "admin",
    params(("id" = String, Path, description = "The customer's id"), CustomerTokenQuery),
    responses((status = 200, body = Page<UserToken>, description = "the customer's live tokens, newest first"),
        (status = 404, description = "no such customer")))]
pub async fn tokens(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<CustomerTokenQuery>,
) -> AppResult<Json<Page<UserToken>>> {
    let page =
        PageRequest::parse(query.limit, query.cursor.as_deref()).map_err(AppError::Validation)?;
    let id = CustomerId::parse(&id).ok_or(AppError::NotFound)?;
    state
        .db
        .get_customer(&id)
        .await?
        .ok_or(AppError::NotFound)?;
    let rows = state
        .db
        .list_user_tokens(&id, page.after.as_deref(), page.fetch_limit())
        .await?;
    let tokens = rows.into_iter().map(UserToken::from).collect();
    Ok(Json(
        page.page(tokens, |token: &UserToken| token.id.as_str()),
    ))
}

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
