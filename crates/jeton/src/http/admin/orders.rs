use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    domain::ids::{CustomerId, OrderId},
    http::{
        error::{AppError, AppResult},
        extract::{Json, Query},
        state::AppState,
    },
    pagination::{Page, PageRequest},
    responses::Order,
    store::audit::Audit,
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminOrderQuery {
    /// 1 to 100, default 20.
    limit: Option<i64>,
    cursor: Option<String>,
    /// Only this customer's orders.
    customer_id: Option<String>,
    /// Only the orders with this status: `placed` or `cancelled`.
    #[param(pattern = "^(placed|cancelled)$")]
    status: Option<String>,
}

/// An order as an admin sees it: with its customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerOrder {
    #[serde(flatten)]
    pub order: Order,
    #[schema(value_type = String)]
    pub customer_id: CustomerId,
}

/// List orders
///
/// A page of every customer's orders, newest first, each with its customer,
/// optionally only one customer's (`customer_id`) or of one status
/// (`status`). Changes nothing.
#[utoipa::path(get, operation_id = "listOrders", path = "/api/v1/admin/orders", tag = "admin", params(AdminOrderQuery),
    responses((status = 200, body = Page<CustomerOrder>, description = "orders, newest first"),
        (status = 422, description = "a `customer_id` that is not an id, or a `status` other than `placed` and `cancelled` (`validation_failed`)")))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<AdminOrderQuery>,
) -> AppResult<Json<Page<CustomerOrder>>> {
    let page =
        PageRequest::parse(query.limit, query.cursor.as_deref()).map_err(AppError::Validation)?;
    let customer_id = query
        .customer_id
        .map(|id| {
            CustomerId::parse(&id)
                .ok_or_else(|| AppError::validation("customer_id", "is not an id"))
        })
        .transpose()?;
    let status = match query.status.as_deref() {
        None => None,
        Some(status @ ("placed" | "cancelled")) => Some(status),
        Some(_) => {
            return Err(AppError::validation("status", "is `placed` or `cancelled`"));
        }
    };
    let rows = state
        .db
        .list_all_orders(
            customer_id.as_ref(),
            status,
            page.after.as_deref(),
            page.fetch_limit(),
        )
        .await?;
    let orders = rows
        .into_iter()
        .map(|(customer_id, order)| CustomerOrder {
            order: order.into(),
            customer_id,
        })
        .collect();
    Ok(Json(page.page(orders, |order: &CustomerOrder| {
        order.order.id.as_str()
    })))
}

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
