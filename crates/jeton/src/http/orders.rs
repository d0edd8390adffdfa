//! Placing orders and reading one's own.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use jeton_auth::{User, UserPrincipal, limits::Rate};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    error::{AppError, AppResult},
    extract::{Json, JsonBytes, Query},
    state::AppState,
};
use crate::{
    domain::{
        ids::{OrderId, UserIds},
        money::MAX_SAFE_AMOUNT,
        order::{IdempotencyKey, OrderInput, OrderRequest},
    },
    pagination::{Page, PageRequest},
    responses::Order,
    store::orders::{OrderSource, PlaceOrderError, Placed},
};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The `Idempotency-Key` header, if sent. A malformed one is a 400: it is
/// the request's envelope that is wrong, not a field of the body, and
/// nothing is looked up or written.
pub(super) fn idempotency_key(headers: &HeaderMap) -> AppResult<Option<IdempotencyKey>> {
    let invalid = |detail: String| AppError::BadRequest {
        code: "invalid_idempotency_key",
        detail,
    };
    let mut values = headers.get_all(&IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid("send at most one Idempotency-Key".to_owned()));
    }
    IdempotencyKey::parse(value.as_bytes())
        .map(Some)
        .map_err(|why| invalid(format!("the Idempotency-Key {why}")))
}

/// A JSON response from a stored body, so a replay is byte-for-byte the
/// first response.
fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// Place an order
///
/// Places an order for the calling customer: every line's product must be in
/// stock in the order's currency; the stock goes down and the order is
/// recorded in one transaction, or nothing is written. With an `Idempotency-
/// Key`, a retry with the same key and body within 24 hours returns the first
/// answer again (`Idempotent-Replayed: true`) and places nothing.
#[utoipa::path(post, operation_id = "placeOrder", path = "/api/v1/orders", tag = "orders", request_body = OrderInput,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 printable ASCII characters; the same key with the same body within 24 hours returns the first response again, with `Idempotent-Replayed: true`")),
    security(("bearer" = ["orders:write"])),
    responses((status = 201, body = Order),
        (status = 400, description = "`invalid_idempotency_key`, `malformed_json`"),
        (status = 409, description = "`insufficient_stock`, `idempotency_key_in_use`"),
        (status = 422, description = "unknown product, bad quantity, duplicate lines, mixed currencies; `idempotency_key_reused`"),
        (status = 503, description = "the database is unavailable or too busy; retry after `Retry-After`, with the same `Idempotency-Key`")))]
pub async fn place(
    State(state): State<AppState>,
    User(user): User,
    headers: HeaderMap,
    body: Result<Json<OrderInput>, AppError>,
) -> AppResult<Response> {
    // The key first: a malformed one is refused whatever the body is.
    let key = idempotency_key(&headers)?;
    let Json(input) = body?;
    let request = OrderRequest::try_from(input)
        .and_then(|request| request.within(state.config.max_units_per_line))
        .map_err(AppError::Validation)?;
    take_order_rate(&state, &user).await?;
    let customer = UserIds::from(&*user).customer;
    let placed = state
        .db
        .place_order(
            &customer,
            OrderSource::Request(&request),
            key.as_ref(),
            Order::render,
        )
        .await;
    answer_placement(placed)
}

/// Takes one of the customer's order placements (an order, or a cart's
/// checkout): counted for the fleet when limits are shared, so that a
/// customer cannot empty the shop by spreading orders over the processes.
pub(super) async fn take_order_rate(state: &AppState, user: &UserPrincipal) -> AppResult<()> {
    if let Some(rate) = Rate::per_minute(state.config.customer_orders_per_minute) {
        state
            .gate
            .limits()
            .take(&format!("orders:{}", user.user_id), rate)
            .await?;
    }
    Ok(())
}

/// The answer to a placement, new or replayed, or its refusal.
pub(super) fn answer_placement(placed: Result<Placed, PlaceOrderError>) -> AppResult<Response> {
    match placed {
        Ok(Placed::New { body, .. }) => Ok(json_response(StatusCode::CREATED, body, false)),
        Ok(Placed::Replayed { status, body }) => {
            let status = StatusCode::from_u16(status).map_err(|error| AppError::Internal(error.into()))?;
            Ok(json_response(status, body, true))
        }
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
            format!("the order total must be at most {MAX_SAFE_AMOUNT} minor units (2^53 − 1, exact in JavaScript)"),
        )),
        Err(PlaceOrderError::KeyReused) => Err(AppError::Unprocessable {
            code: "idempotency_key_reused",
            detail: "this Idempotency-Key was used with a different request; use a new key for a new order".to_owned(),
        }),
        Err(PlaceOrderError::KeyInUse) => Err(AppError::conflict(
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )),
        Err(PlaceOrderError::CartEmpty) => Err(AppError::Unprocessable {
            code: "cart_empty",
            detail: "the cart is empty: add products with PUT /cart/items/{product_id} first".to_owned(),
        }),
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

/// List my orders
///
/// A page of the calling customer's orders, newest first. Changes nothing.
#[utoipa::path(get, operation_id = "listMyOrders", path = "/api/v1/me/orders", tag = "orders", params(OrderQuery),
    security(("bearer" = ["orders:read"])),
    responses((status = 200, body = Page<Order>, description = "the caller's orders, newest first")))]
pub async fn list_mine(
    State(state): State<AppState>,
    User(user): User,
    Query(query): Query<OrderQuery>,
) -> AppResult<JsonBytes> {
    let page =
        PageRequest::parse(query.limit, query.cursor.as_deref()).map_err(AppError::Validation)?;
    let customer = UserIds::from(&*user).customer;
    Ok(JsonBytes(
        state
            .customers
            .orders_page(&state.db, &customer, &page)
            .await?,
    ))
}

/// Get one of my orders
///
/// One of the calling customer's orders, by id; another customer's order is
/// 404. Changes nothing.
#[utoipa::path(get, operation_id = "getMyOrder", path = "/api/v1/me/orders/{id}", tag = "orders",
    security(("bearer" = ["orders:read"])),
    responses((status = 200, body = Order), (status = 404, description = "no such order of the caller's")))]
pub async fn get_mine(
    State(state): State<AppState>,
    User(user): User,
    Path(id): Path<String>,
) -> AppResult<JsonBytes> {
    let id = OrderId::parse(&id).ok_or(AppError::NotFound)?;
    state
        .customers
        .order(&state.db, &UserIds::from(&*user).customer, &id)
        .await?
        .map(JsonBytes)
        .ok_or(AppError::NotFound)
}
