//! Usage (API.md §12): each client's, customer's and the whole shop's
//! requests by outcome over time, as the gate counted them, and the
//! clients with the most. Needs `usage:read`.

use axum::extract::{Path, State};
use jeton_auth::usage::{Counts, Granularity, RangeError, Rank, UsageRange, UsageSeries};
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use utoipa::{IntoParams, ToSchema};

use crate::{
    domain::{
        client::ClientKind,
        ids::{ClientId, CustomerId},
    },
    http::{
        error::{AppError, AppResult},
        extract::{Json, Query},
        state::AppState,
    },
    store::usage::Subject,
};

/// Buckets of the default range: the last 24, the current one included.
const DEFAULT_BUCKETS: i64 = 24;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// The range's start (RFC 3339), rounded down to the granularity;
    /// default: 24 buckets before `to`.
    #[param(format = DateTime)]
    from: Option<String>,
    /// The range's end, excluded (RFC 3339), rounded down to the
    /// granularity; default: the end of the current bucket.
    #[param(format = DateTime)]
    to: Option<String>,
    /// `minute` (kept 48 hours), `hour` (90 days) or `day` (2 years);
    /// default `hour`.
    #[param(pattern = "^(minute|hour|day)$")]
    granularity: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// The range's start (RFC 3339); default: 24 hours before `to`.
    #[param(format = DateTime)]
    from: Option<String>,
    /// The range's end, excluded (RFC 3339); default: the end of the
    /// current minute.
    #[param(format = DateTime)]
    to: Option<String>,
    /// `requests` (the default: every request) or `refused`.
    #[param(pattern = "^(requests|refused)$")]
    by: Option<String>,
    /// 1 to 100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// A credential's requests by outcome (API.md §12).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct UsageCounts {
    /// Passed the gate (what a handler refused later counts here).
    pub ok: u64,
    /// 403 for a missing ability or a kind the route does not take.
    pub insufficient_scope: u64,
    /// 403 for an origin the client does not allow.
    pub origin_not_allowed: u64,
    /// 403 for a secret key or access token sent by a browser.
    pub secret_key_in_browser: u64,
    /// 403 for a cookie session without the right `X-CSRF-Token`.
    pub csrf_failed: u64,
    /// 429 from one of the gate's limits.
    pub rate_limited: u64,
    /// 401 for a revoked credential.
    pub revoked: u64,
    /// 401 for an expired credential.
    pub expired: u64,
}

impl From<Counts> for UsageCounts {
    fn from(counts: Counts) -> UsageCounts {
        UsageCounts {
            ok: counts.ok,
            insufficient_scope: counts.insufficient_scope,
            origin_not_allowed: counts.origin_not_allowed,
            secret_key_in_browser: counts.secret_key_in_browser,
            csrf_failed: counts.csrf_failed,
            rate_limited: counts.rate_limited,
            revoked: counts.revoked,
            expired: counts.expired,
        }
    }
}

/// The whole shop's requests by outcome, with those of no credential.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct ShopUsageCounts {
    #[serde(flatten)]
    pub counts: UsageCounts,
    /// Malformed and unknown tokens: no credential to count them against.
    pub unattributed: u64,
}

impl From<Counts> for ShopUsageCounts {
    fn from(counts: Counts) -> ShopUsageCounts {
        ShopUsageCounts {
            counts: counts.into(),
            unattributed: counts.unattributed,
        }
    }
}

/// One bucket of a client's or a customer's usage: its start and its
/// counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageBucket {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    #[serde(flatten)]
    pub counts: UsageCounts,
}

/// One bucket of the whole shop's usage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShopUsageBucket {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    #[serde(flatten)]
    pub counts: ShopUsageCounts,
}

/// A client's or a customer's usage over a range: every bucket, zeros
/// included, in time order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Usage {
    /// `minute`, `hour` or `day`.
    pub granularity: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub series: Vec<UsageBucket>,
    pub totals: UsageCounts,
}

/// The whole shop's usage over a range, with the requests of no
/// credential: every bucket, zeros included, in time order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShopUsage {
    /// `minute`, `hour` or `day`.
    pub granularity: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub series: Vec<ShopUsageBucket>,
    pub totals: ShopUsageCounts,
}

/// Each bucket of `series`, with its counts in the answer's shape `C`.
fn buckets<B, C: From<Counts>>(
    series: &UsageSeries,
    bucket: impl Fn(OffsetDateTime, C) -> B,
) -> Vec<B> {
    series
        .buckets
        .iter()
        .map(|(time, counts)| bucket(*time, C::from(*counts)))
        .collect()
}

impl From<UsageSeries> for Usage {
    fn from(series: UsageSeries) -> Usage {
        let range = series.range;
        Usage {
            granularity: range.granularity.name(),
            from: range.from,
            to: range.to,
            series: buckets(&series, |time, counts| UsageBucket { time, counts }),
            totals: series.totals.into(),
        }
    }
}

impl From<UsageSeries> for ShopUsage {
    fn from(series: UsageSeries) -> ShopUsage {
        let range = series.range;
        ShopUsage {
            granularity: range.granularity.name(),
            from: range.from,
            to: range.to,
            series: buckets(&series, |time, counts| ShopUsageBucket { time, counts }),
            totals: series.totals.into(),
        }
    }
}

/// A client of the ranking.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopClient {
    #[schema(value_type = String)]
    pub client_id: ClientId,
    pub name: String,
    pub kind: ClientKind,
    pub totals: UsageCounts,
}

/// The clients with the most requests (or refusals) over a range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopClients {
    /// The buckets summed: the finest that covers the range.
    pub granularity: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub data: Vec<TopClient>,
}

fn time_param(field: &str, value: Option<&str>) -> AppResult<Option<OffsetDateTime>> {
    value
        .map(|text| {
            OffsetDateTime::parse(text, &Rfc3339)
                .map_err(|_| AppError::validation(field, "must be an RFC 3339 date and time"))
        })
        .transpose()
}

fn range_error(error: RangeError) -> AppError {
    let field = match error {
        RangeError::Granularity => "granularity",
        RangeError::Empty => "to",
        RangeError::TooLong { .. } | RangeError::PastRetention { .. } => "from",
    };
    AppError::validation(field, error.to_string())
}

/// The range a query asks for, by §12's rules.
fn range(query: &UsageQuery, now: OffsetDateTime) -> AppResult<UsageRange> {
    let granularity = match &query.granularity {
        Some(text) => Some(text.parse().map_err(range_error)?),
        None => None,
    };
    let (from, to) = (
        time_param("from", query.from.as_deref())?,
        time_param("to", query.to.as_deref())?,
    );
    requested_range(granularity, from, to, now).map_err(range_error)
}

/// A range with the API's defaults (also the command line's): hourly
/// buckets, up to the end of the current one, 24 of them.
pub fn requested_range(
    granularity: Option<Granularity>,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<UsageRange, RangeError> {
    let granularity = granularity.unwrap_or(Granularity::Hour);
    let step = time::Duration::seconds(granularity.seconds());
    let to = to.unwrap_or_else(|| UsageRange::last(granularity, 1, now).to);
    let from = from.unwrap_or_else(|| granularity.floor(to) - step * DEFAULT_BUCKETS as i32);
    UsageRange::new(granularity, from, to, now)
}

/// Client usage
///
/// A client's requests by outcome over time: every key it ever had and the
/// OAuth 2.0 access tokens it obtained. The range `[from, to)` is rounded
/// down to the granularity; every bucket is present, zeros included, at
/// most 1,440. Counts are written every `--usage-interval`: the current
/// bucket may lag by that much. Changes nothing.
#[utoipa::path(get, operation_id = "getClientUsage", path = "/api/v1/admin/clients/{id}/usage", tag = "admin",
    params(("id" = String, Path, description = "The client's id"), UsageQuery),
    responses((status = 200, body = Usage),
        (status = 404, description = "no such client"),
        (status = 422, description = "a range past its granularity's retention, of more than 1,440 buckets, or empty (`validation_failed`)")))]
pub async fn client(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<UsageQuery>,
) -> AppResult<Json<Usage>> {
    let range = range(&query, state.db.now())?;
    let id = ClientId::parse(&id).ok_or(AppError::NotFound)?;
    state.db.get_client(&id).await?.ok_or(AppError::NotFound)?;
    let series = state.db.usage(Subject::Client(&id), range).await?;
    Ok(Json(series.into()))
}

/// Customer usage
///
/// A customer's requests by outcome over time: all their user tokens and
/// cookie sessions. The same range rules as a client's. Changes nothing.
#[utoipa::path(get, operation_id = "getCustomerUsage", path = "/api/v1/admin/customers/{id}/usage", tag = "admin",
    params(("id" = String, Path, description = "The customer's id"), UsageQuery),
    responses((status = 200, body = Usage),
        (status = 404, description = "no such customer"),
        (status = 422, description = "a range past its granularity's retention, of more than 1,440 buckets, or empty (`validation_failed`)")))]
pub async fn customer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<UsageQuery>,
) -> AppResult<Json<Usage>> {
    let range = range(&query, state.db.now())?;
    let id = CustomerId::parse(&id).ok_or(AppError::NotFound)?;
    state
        .db
        .get_customer(&id)
        .await?
        .ok_or(AppError::NotFound)?;
    let series = state.db.usage(Subject::Customer(&id), range).await?;
    Ok(Json(series.into()))
}

/// Shop usage
///
/// Every credential's requests by outcome over time, with `unattributed`:
/// malformed and unknown tokens, which belong to no credential. The same
/// range rules as a client's. Changes nothing.
#[utoipa::path(get, operation_id = "getUsage", path = "/api/v1/admin/usage", tag = "admin",
    params(UsageQuery),
    responses((status = 200, body = ShopUsage),
        (status = 422, description = "a range past its granularity's retention, of more than 1,440 buckets, or empty (`validation_failed`)")))]
pub async fn shop(
    State(state): State<AppState>,
    Query(query): Query<UsageQuery>,
) -> AppResult<Json<ShopUsage>> {
    let range = range(&query, state.db.now())?;
    let series = state.db.usage(Subject::Shop, range).await?;
    Ok(Json(series.into()))
}

/// Top clients
///
/// The clients with the most requests (`by=requests`) or refusals
/// (`by=refused`) over `[from, to)` (default: the last 24 hours), most
/// first; clients with none are left out. Summed over the finest buckets
/// that cover the range (minutes within 48 hours, then hours, then days),
/// whose boundaries `from` and `to` are rounded down to. Changes nothing.
#[utoipa::path(get, operation_id = "getTopClients", path = "/api/v1/admin/usage/top", tag = "admin",
    params(TopQuery),
    responses((status = 200, body = TopClients),
        (status = 422, description = "a range past two years, or empty (`validation_failed`)")))]
pub async fn top(
    State(state): State<AppState>,
    Query(query): Query<TopQuery>,
) -> AppResult<Json<TopClients>> {
    let now = state.db.now();
    let by = match query.by.as_deref() {
        None | Some("requests") => Rank::Requests,
        Some("refused") => Rank::Refused,
        Some(_) => return Err(AppError::validation("by", "is `requests` or `refused`")),
    };
    let limit = match query.limit {
        None => 10,
        Some(limit @ 1..=100) => limit as u32,
        Some(_) => return Err(AppError::validation("limit", "must be 1 to 100")),
    };
    // By default up to the end of the current minute, which counts too.
    let to = time_param("to", query.to.as_deref())?
        .unwrap_or_else(|| UsageRange::last(Granularity::Minute, 1, now).to);
    let from = time_param("from", query.from.as_deref())?.unwrap_or(to - time::Duration::DAY);
    let mut last_error = RangeError::Empty;
    let mut range = None;
    for granularity in Granularity::ALL {
        match UsageRange::new(granularity, from, to, now) {
            Ok(found) => {
                range = Some(found);
                break;
            }
            Err(error) => last_error = error,
        }
    }
    let range = range.ok_or_else(|| range_error(last_error))?;
    let ranked = state.db.top_clients(range, by, limit).await?;
    Ok(Json(TopClients {
        granularity: range.granularity.name(),
        from: range.from,
        to: range.to,
        data: ranked
            .into_iter()
            .map(|client| TopClient {
                client_id: client.client_id,
                name: client.name,
                kind: client.kind,
                totals: client.totals.into(),
            })
            .collect(),
    }))
}
