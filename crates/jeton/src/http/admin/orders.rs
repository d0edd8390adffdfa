use axum::extract::{Path, State};

use crate::{
    domain::ids::OrderId,
    http::{
        error::{AppError, AppResult},
        extract::Json,
        state::AppState,
    },
    responses::Order,
    store::audit::Audit,
};

/// Cancel an order
///
/// Cancels an order and puts its units back in stock; cancelling it again
/// changes nothing.
#[utoipa::path(post, operation_id = "cancelOrder", path = "/api/v1/admin/orders/{id}/cancel", tag = "admin",
    responses((status = 200, body = Order,
        description = "the order, `cancelled`, its units back in stock; cancelling it again returns it as it is and changes nothing")))]
pub async fn cancel(
    State(state): State<AppState>,
    audit: Audit,
    Path(id): Path<String>,
) -> AppResult<Json<Order>> {
    let id = OrderId::parse(&id).ok_or(AppError::NotFound)?;
    state
        .db
        .cancel_order(&id, &audit)
        .await?
        .map(|order| Json(order.into()))
        .ok_or(AppError::NotFound)
}
