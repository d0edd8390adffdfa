//! The catalogue: what guests browse with a publishable key.

use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    error::{AppError, AppResult},
    extract::{JsonBytes, Query},
    state::AppState,
};
use crate::{
    domain::{ids::ProductId, text::bounded},
    pagination::{Page, PageRequest},
    responses::Product,
    store::products::ProductFilter,
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// 1 to 100, default 20.
    limit: Option<i64>,
    cursor: Option<String>,
    /// Case-insensitive substring of the name or SKU.
    q: Option<String>,
    /// `true`: only products in stock; `false`: only sold-out ones.
    in_stock: Option<bool>,
}

/// List products
///
/// A page of the catalogue, in the order products were added, optionally
/// filtered by a search text (`q`, in the name or SKU) and by stock
/// (`in_stock`). Changes nothing.
#[utoipa::path(get, operation_id = "listProducts", path = "/api/v1/products", tag = "catalog", params(ProductQuery),
    responses((status = 200, body = Page<Product>)))]
pub async fn list_products(
    State(state): State<AppState>,
    Query(query): Query<ProductQuery>,
) -> AppResult<JsonBytes> {
    let page =
        PageRequest::parse(query.limit, query.cursor.as_deref()).map_err(AppError::Validation)?;
    let q = query
        .q
        .map(|q| bounded(&q, 0, 100).map_err(|message| AppError::validation("q", message)))
        .transpose()?
        .filter(|q| !q.is_empty());
    let filter = ProductFilter {
        q,
        in_stock: query.in_stock,
    };
    Ok(JsonBytes(
        state.catalog.page(&state.db, &filter, &page).await?,
    ))
}

/// Get a product
///
/// One product of the catalogue, by id. Changes nothing.
#[utoipa::path(get, operation_id = "getProduct", path = "/api/v1/products/{id}", tag = "catalog",
    responses((status = 200, body = Product)))]
pub async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<JsonBytes> {
    let id = ProductId::parse(&id).ok_or(AppError::NotFound)?;
    state
        .catalog
        .product(&state.db, &id)
        .await?
        .map(JsonBytes)
        .ok_or(AppError::NotFound)
}
