use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{
    domain::{
        ids::ProductId,
        product::{MAX_STOCK, NewProduct, NewProductInput, ProductPatch, ProductPatchInput},
        text::bounded,
    },
    http::{
        error::{AppError, AppResult},
        extract::{Json, Query},
        state::AppState,
    },
    pagination::{Page, PageRequest},
    responses::Product,
    store::products::{ProductFilter, ProductWriteError},
};

fn write_error(error: ProductWriteError) -> AppError {
    match error {
        ProductWriteError::SkuTaken => {
            AppError::conflict("sku_taken", "another product has this SKU")
        }
        ProductWriteError::InsufficientStock => AppError::conflict(
            "insufficient_stock",
            "stock_delta would take the stock below zero; nothing was changed",
        ),
        ProductWriteError::StockLimitExceeded => AppError::conflict(
            "stock_limit_exceeded",
            format!("stock_delta would take the stock above {MAX_STOCK}; nothing was changed"),
        ),
        ProductWriteError::Db(error) => error.into(),
    }
}

/// Create a product
///
/// Adds a product to the catalogue (its SKU unique).
#[utoipa::path(post, operation_id = "createProduct", path = "/api/v1/admin/products", tag = "admin", request_body = NewProductInput,
    responses((status = 201, body = Product)))]
pub async fn create(
    State(state): State<AppState>,
    Json(input): Json<NewProductInput>,
) -> AppResult<(StatusCode, Json<Product>)> {
    let product = NewProduct::try_from(input).map_err(AppError::Validation)?;
    let created = state
        .db
        .create_product(&product)
        .await
        .map_err(write_error)?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Update a product
///
/// Changes the given fields of a product; `stock_delta` adds to (or takes
/// from) the stock atomically, instead of setting `stock`.
#[utoipa::path(patch, operation_id = "updateProduct", path = "/api/v1/admin/products/{id}", tag = "admin", request_body = ProductPatchInput,
    responses((status = 200, body = Product)))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(input): Json<ProductPatchInput>,
) -> AppResult<Json<Product>> {
    let patch = ProductPatch::try_from(input).map_err(AppError::Validation)?;
    let id = ProductId::parse(&id).ok_or(AppError::NotFound)?;
    state
        .db
        .update_product(&id, &patch)
        .await
        .map_err(write_error)?
        .map(|product| Json(product.into()))
        .ok_or(AppError::NotFound)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminProductQuery {
    /// 1 to 100, default 20.
    limit: Option<i64>,
    cursor: Option<String>,
    /// Case-insensitive substring of the name or SKU.
    q: Option<String>,
}

/// List products (admin)
///
/// A page of every product with its stock, sold-out ones included, in the
/// order they were added, optionally filtered by a search text (`q`, in the
/// name or SKU). Read from the database, never from a cache: a change just
/// made shows. Changes nothing.
#[utoipa::path(get, operation_id = "listAdminProducts", path = "/api/v1/admin/products", tag = "admin", params(AdminProductQuery),
    responses((status = 200, body = Page<Product>)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<AdminProductQuery>,
) -> AppResult<Json<Page<Product>>> {
    let page =
        PageRequest::parse(query.limit, query.cursor.as_deref()).map_err(AppError::Validation)?;
    let q = query
        .q
        .map(|q| bounded(&q, 0, 100).map_err(|message| AppError::validation("q", message)))
        .transpose()?
        .filter(|q| !q.is_empty());
    let filter = ProductFilter { q, in_stock: None };
    let rows = state
        .db
        .list_products(&filter, page.after.as_deref(), page.fetch_limit())
        .await?;
    let products = rows.into_iter().map(Product::from).collect();
    Ok(Json(
        page.page(products, |product: &Product| product.id.as_str()),
    ))
}
