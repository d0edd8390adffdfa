//! Placing orders and reading one's own.

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use jeton_auth::axum::User;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    error::{AppError, AppResult},
    extract::{Json, Query},
    pagination::{Page, PageRequest},
    state::AppState,
};
use crate::{
    domain::{
        ids::parse_id,
        order::{OrderInput, OrderRequest},
    },
    store::orders::{Order, PlaceOrderError},
};

#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = OrderInput,
    security(("bearer" = ["orders:write"])),
    responses((status = 201, body = Order), (status = 409, description = "`insufficient_stock`"),
        (status = 422, description = "unknown product, bad quantity, duplicate lines, mixed currencies")))]
pub async fn place(
    State(state): State<AppState>,
    User(user): User,
    Json(input): Json<OrderInput>,
) -> AppResult<(StatusCode, Json<Order>)> {
    let request = OrderRequest::try_from(input).map_err(AppError::Validation)?;
    match state.db.place_order(&user.user_id, &request).await {
        Ok(order) => Ok((StatusCode::CREATED, Json(order))),
        Err(PlaceOrderError::UnknownProduct { line }) => Err(AppError::validation(
            format!("items[{line}].product_id"),
            "no product has this id",
        )),
        Err(PlaceOrderError::InsufficientStock { line, product_id }) => Err(AppError::conflict(
            "insufficient_stock",
            format!("not enough stock for product {product_id} (items[{line}])"),
        )),
        Err(PlaceOrderError::MixedCurrencies) => Err(AppError::validation(
            "items",
            "all products of an order must have the same currency",
        )),
        Err(PlaceOrderError::TotalTooLarge) => Err(AppError::validation(
            "items",
            "the order total is too large",
        )),
        Err(PlaceOrderError::Db(error)) => Err(error.into()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// 1 to 100, default 20.
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/me/orders", tag = "orders", params(OrderQuery),
    security(("bearer" = ["orders:read"])),
    responses((status = 200, body = Page<Order>, description = "the caller's orders, newest first")))]
pub async fn list_mine(
    State(state): State<AppState>,
    User(user): User,
    Query(query): Query<OrderQuery>,
) -> AppResult<Json<Page<Order>>> {
    let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
    let rows = state
        .db
        .list_orders(&user.user_id, page.after.as_deref(), page.fetch_limit())
        .await?;
    Ok(Json(page.page(rows, |order| &order.id)))
}

#[utoipa::path(get, path = "/api/v1/me/orders/{id}", tag = "orders",
    security(("bearer" = ["orders:read"])),
    responses((status = 200, body = Order), (status = 404, description = "no such order of the caller's")))]
pub async fn get_mine(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> AppResult<Json<Order>> {
    let id = parse_id(&id).ok_or(AppError::NotFound)?;
    state
        .db
        .get_order(&user.user_id, &id)
        .await?
        .map(Json)
        .ok_or(AppError::NotFound)
}
