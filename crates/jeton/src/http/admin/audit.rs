use std::str::FromStr;

use axum::extract::State;
use serde::Deserialize;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::IntoParams;

use crate::{
    domain::ids::parse_id,
    http::{
        error::{AppError, AppResult},
        extract::{Json, Query},
        state::AppState,
    },
    pagination::{Page, PageRequest},
    responses::AuditEvent,
    store::audit::{AuditFilter, AuditOrder},
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
    /// Only the actions of this staff member. No staff account exists yet
    /// (API.md §13): any id gives an empty page.
    staff_id: Option<String>,
    /// Only events of this action, exactly (`client.created`, …).
    #[serde(rename = "type")]
    #[param(min_length = 1, max_length = 100)]
    action: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// `asc` (the default: in the order they happened) or `desc` (newest
    /// first). Pass the same with each page's cursor.
    #[param(pattern = "^(asc|desc)$")]
    order: Option<String>,
}

fn id_filter<Id: FromStr>(field: &str, value: Option<String>) -> AppResult<Option<Id>> {
    value
        .map(|id| {
            id.parse()
                .map_err(|_| AppError::validation(field, "is not an id"))
        })
        .transpose()
}

fn time_filter(field: &str, value: Option<&str>) -> AppResult<Option<OffsetDateTime>> {
    value
        .map(|text| {
            OffsetDateTime::parse(text, &Rfc3339)
                .map_err(|_| AppError::validation(field, "must be an RFC 3339 date and time"))
        })
        .transpose()
}

/// The longest action the log holds is far shorter.
const MAX_ACTION_LEN: usize = 100;

/// List audit events
///
/// A page of the audit log (client and key changes, refused keys, token
/// issues and revocations, failed logins, admin actions), in the order they
/// happened or with `order=desc` newest first, optionally filtered by
/// client, customer, staff member, action (`type`) and time (`[from, to)`).
/// Changes nothing.
#[utoipa::path(get, operation_id = "listAuditEvents", path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = Page<AuditEvent>, description = "events in the order asked for"),
        (status = 422, description = "an invalid id, time, `type` or `order`, or `from` after `to` (`validation_failed`)")))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> AppResult<Json<Page<AuditEvent>>> {
    let page =
        PageRequest::parse(query.limit, query.cursor.as_deref()).map_err(AppError::Validation)?;
    let order = match query.order.as_deref() {
        None | Some("asc") => AuditOrder::Oldest,
        Some("desc") => AuditOrder::Newest,
        Some(_) => return Err(AppError::validation("order", "is `asc` or `desc`")),
    };
    let action = match query.action {
        Some(action) if action.is_empty() || action.chars().count() > MAX_ACTION_LEN => {
            return Err(AppError::validation(
                "type",
                format!("must be 1 to {MAX_ACTION_LEN} characters"),
            ));
        }
        action => action,
    };
    let (from, to) = (
        time_filter("from", query.from.as_deref())?,
        time_filter("to", query.to.as_deref())?,
    );
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(AppError::validation("to", "must not be before `from`"));
    }
    if let Some(staff_id) = &query.staff_id
        && parse_id(staff_id).is_none()
    {
        return Err(AppError::validation("staff_id", "is not an id"));
    }
    let filter = AuditFilter {
        client_id: id_filter("client_id", query.client_id)?,
        customer_id: id_filter("customer_id", query.customer_id)?,
        action,
        from,
        to,
        staff_id: query.staff_id,
    };
    let rows = state
        .db
        .list_audit(&filter, order, page.after.as_deref(), page.fetch_limit())
        .await?;
    let events = rows.into_iter().map(AuditEvent::from).collect();
    Ok(Json(page.page(events, |event| &event.id)))
}
