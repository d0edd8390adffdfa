use axum::{
    extract::{Path, State},
    http::StatusCode,
};

use crate::{
    domain::{
        ids::ProductId,
        product::{MAX_STOCK, NewProduct, NewProductInput, ProductPatch, ProductPatchInput},
    },
    http::{
        error::{AppError, AppResult},
        extract::Json,
        state::AppState,
    },
    responses::Product,
    store::products::ProductWriteError,
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
