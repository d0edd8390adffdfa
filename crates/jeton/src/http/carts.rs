//! Carts (API.md §16): a guest's or a customer's one cart, reached through
//! the caller's own credential and never by an id, so no request can name
//! somebody else's cart; and its checkout, which is an order placement.

use axum::{
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, request::Parts},
    response::Response,
};
use jeton_auth::{Principal, Refused, User};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    error::{AppError, AppResult},
    extract::Json,
    orders::{answer_placement, idempotency_key, take_order_rate},
    state::AppState,
};
use crate::{
    domain::{
        ids::{GuestId, ProductId, UserIds},
        schema,
    },
    responses::{self, Order},
    store::{
        carts::{CartError, CartOwner},
        orders::OrderSource,
    },
};

/// The caller whose cart a request reaches: a customer by their user
/// token, or a guest by theirs. The route table lets no other kind here.
pub struct Shopper(pub CartOwner);

impl<S: Send + Sync> FromRequestParts<S> for Shopper {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::Guest(guest) => Ok(Shopper(CartOwner::Guest(GuestId::from_store(
                guest.token_id.clone(),
            )))),
            // A user, or the refusal that names the kinds carts take.
            _ => {
                let User(user) = User::from_request_parts(parts, state).await?;
                Ok(Shopper(CartOwner::Customer(UserIds::from(&*user).customer)))
            }
        }
    }
}

fn quantity_schema() -> utoipa::openapi::Object {
    schema::field(
        schema::integer(0, crate::domain::order::MAX_QUANTITY, false)
            .description(Some(
                "Units of the product the cart should hold: 0 removes the line; at most the \
                 server's `--max-units-per-line` (1000 unless configured lower).",
            ))
            .examples([2]),
    )
}

/// `PUT /cart/items/{product_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"quantity": 2}))]
pub struct CartLineInput {
    #[schema(schema_with = quantity_schema)]
    quantity: i64,
}

fn product_id(id: &str) -> AppResult<ProductId> {
    ProductId::parse(id).ok_or(AppError::NotFound)
}

fn answer(cart: crate::store::carts::Cart) -> Json<responses::Cart> {
    Json(responses::Cart::from(cart))
}

/// Get my cart
///
/// The caller's cart (a guest's or a customer's) with each product's price
/// and availability as they are now. Changes nothing.
#[utoipa::path(get, operation_id = "getCart", path = "/api/v1/cart", tag = "carts",
    security(("bearer" = ["cart:write"])),
    responses((status = 200, body = responses::Cart)))]
pub async fn get(
    State(state): State<AppState>,
    Shopper(owner): Shopper,
) -> AppResult<Json<responses::Cart>> {
    Ok(answer(state.db.cart(&owner).await?))
}

/// Set a line of my cart
///
/// Sets how many units of a product the caller's cart holds (0 removes the
/// line), and answers the whole cart. A cart holds at most 100 lines, in one
/// currency, with a total exact in JavaScript.
#[utoipa::path(put, operation_id = "setCartItem", path = "/api/v1/cart/items/{product_id}", tag = "carts",
    request_body = CartLineInput,
    security(("bearer" = ["cart:write"])),
    responses((status = 200, body = responses::Cart),
        (status = 404, description = "no product has this id"),
        (status = 422, description = "quantity out of range, more than 100 lines, a second currency, a total too large")))]
pub async fn put_item(
    State(state): State<AppState>,
    Shopper(owner): Shopper,
    Path(id): Path<String>,
    body: Result<Json<CartLineInput>, AppError>,
) -> AppResult<Json<responses::Cart>> {
    let product = product_id(&id)?;
    let Json(input) = body?;
    let max = state.config.max_units_per_line;
    if !(0..=max).contains(&input.quantity) {
        return Err(AppError::validation(
            "quantity",
            format!("must be from 0 (remove the line) to {max}"),
        ));
    }
    match state
        .db
        .set_cart_line(&owner, &product, input.quantity)
        .await
    {
        Ok(cart) => Ok(answer(cart)),
        Err(CartError::UnknownProduct) => Err(AppError::NotFound),
        Err(CartError::TooManyLines) => Err(AppError::validation(
            "product_id",
            "a cart holds at most 100 lines: remove one first",
        )),
        Err(CartError::MixedCurrencies) => Err(AppError::validation(
            "product_id",
            "this product's currency differs from the cart's: a cart holds one currency",
        )),
        Err(CartError::TotalTooLarge) => Err(AppError::validation(
            "quantity",
            "the cart's total would be above 2^53 − 1 minor units (exact in JavaScript)",
        )),
        Err(CartError::Db(error)) => Err(error.into()),
    }
}

/// Remove a line from my cart
///
/// Removes the product's line from the caller's cart, and answers the cart.
/// A product the cart does not hold changes nothing (200 all the same), so
/// a retried removal is safe.
#[utoipa::path(delete, operation_id = "removeCartItem", path = "/api/v1/cart/items/{product_id}", tag = "carts",
    security(("bearer" = ["cart:write"])),
    responses((status = 200, body = responses::Cart), (status = 404, description = "no product has this id")))]
pub async fn delete_item(
    State(state): State<AppState>,
    Shopper(owner): Shopper,
    Path(id): Path<String>,
) -> AppResult<Json<responses::Cart>> {
    let product = product_id(&id)?;
    match state.db.set_cart_line(&owner, &product, 0).await {
        Ok(cart) => Ok(answer(cart)),
        Err(CartError::UnknownProduct) => Err(AppError::NotFound),
        Err(CartError::Db(error)) => Err(error.into()),
        Err(other) => Err(AppError::Internal(other.into())),
    }
}

/// Empty my cart
///
/// Removes every line of the caller's cart, and answers the (empty) cart.
#[utoipa::path(delete, operation_id = "clearCart", path = "/api/v1/cart", tag = "carts",
    security(("bearer" = ["cart:write"])),
    responses((status = 200, body = responses::Cart)))]
pub async fn clear(
    State(state): State<AppState>,
    Shopper(owner): Shopper,
) -> AppResult<Json<responses::Cart>> {
    Ok(answer(state.db.clear_cart(&owner).await?))
}

/// Check out my cart
///
/// Places the customer's cart as an order, with the rules of `POST /orders`,
/// and empties the cart, in one transaction: a line without the stock is
/// 409 and the cart stays as it was. An `Idempotency-Key` shares the
/// namespace of `POST /orders`: a retry returns the first answer.
#[utoipa::path(post, operation_id = "checkoutCart", path = "/api/v1/cart/checkout", tag = "carts",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 printable ASCII characters; a retry with the same key within 24 hours returns the first response again, with `Idempotent-Replayed: true`")),
    security(("bearer" = ["orders:write"])),
    responses((status = 201, body = Order),
        (status = 400, description = "`invalid_idempotency_key`"),
        (status = 409, description = "`insufficient_stock`, `idempotency_key_in_use`"),
        (status = 422, description = "`cart_empty`, mixed currencies, a total too large; `idempotency_key_reused`"),
        (status = 503, description = "the database is unavailable or too busy; retry after `Retry-After`, with the same `Idempotency-Key`")))]
pub async fn checkout(
    State(state): State<AppState>,
    User(user): User,
    headers: HeaderMap,
) -> AppResult<Response> {
    let key = idempotency_key(&headers)?;
    take_order_rate(&state, &user).await?;
    let customer = UserIds::from(&*user).customer;
    let placed = state
        .db
        .place_order(&customer, OrderSource::Cart, key.as_ref(), Order::render)
        .await;
    answer_placement(placed)
}
