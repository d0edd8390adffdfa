use std::str::FromStr;

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{
    http::{
        error::{AppError, AppResult},
        extract::{Json, Query},
        state::AppState,
    },
    pagination::{Page, PageRequest},
    responses::AuditEvent,
    store::audit::AuditFilter,
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// 1 to 100, default 20.
    limit: Option<i64>,
    cursor: Option<String>,
    /// Only events about this client.
    client_id: Option<String>,
    /// Only events about this customer.
    customer_id: Option<String>,
}

fn id_filter<Id: FromStr>(field: &str, value: Option<String>) -> AppResult<Option<Id>> {
    value
        .map(|id| {
            id.parse()
                .map_err(|_| AppError::validation(field, "is not an id"))
        })
        .transpose()
}

/// List audit events
///
/// A page of the audit log (client and key changes, refused keys, token
/// issues and revocations, failed logins), in the order they happened,
/// optionally filtered. Changes nothing.
#[utoipa::path(get, operation_id = "listAuditEvents", path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = Page<AuditEvent>, description = "events in the order they happened")))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> AppResult<Json<Page<AuditEvent>>> {
    let page =
        PageRequest::parse(query.limit, query.cursor.as_deref()).map_err(AppError::Validation)?;
    let filter = AuditFilter {
        client_id: id_filter("client_id", query.client_id)?,
        customer_id: id_filter("customer_id", query.customer_id)?,
    };
    let rows = state
        .db
        .list_audit(&filter, page.after.as_deref(), page.fetch_limit())
        .await?;
    let events = rows.into_iter().map(AuditEvent::from).collect();
    Ok(Json(page.page(events, |event| &event.id)))
}
