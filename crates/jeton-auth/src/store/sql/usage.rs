//! Usage in SQL (`auth_usage`): the gate's counts added to minute, hour and
//! day buckets at each flush, and read back as series and rankings.

use std::collections::BTreeMap;

use super::{SqlStore, SqlStoreError, from_micros, to_micros};
use crate::usage::{
    CountedCredential, Counts, Granularity, Rank, UsageOf, UsageRange, UsageRecord, UsageSeries,
};
use sqlx::FromRow;

/// Rows upserted by one statement: 15 parameters each, well under both
/// databases' limits, and each statement holds its row locks briefly.
const COUNTS_CHUNK: usize = 100;

/// The count columns, in the order they are bound.
const COLUMNS: &str = "ok, insufficient_scope, origin_not_allowed, secret_key_in_browser, \
                       csrf_failed, rate_limited, revoked, expired, unattributed";

/// Each count column summed, as BIGINT on both databases (PostgreSQL's
/// `SUM` of a BIGINT is NUMERIC).
const SUMS: &str = "CAST(SUM(ok) AS BIGINT) AS ok, \
    CAST(SUM(insufficient_scope) AS BIGINT) AS insufficient_scope, \
    CAST(SUM(origin_not_allowed) AS BIGINT) AS origin_not_allowed, \
    CAST(SUM(secret_key_in_browser) AS BIGINT) AS secret_key_in_browser, \
    CAST(SUM(csrf_failed) AS BIGINT) AS csrf_failed, \
    CAST(SUM(rate_limited) AS BIGINT) AS rate_limited, \
    CAST(SUM(revoked) AS BIGINT) AS revoked, \
    CAST(SUM(expired) AS BIGINT) AS expired, \
    CAST(SUM(unattributed) AS BIGINT) AS unattributed";

#[derive(FromRow)]
struct CountsRow {
    ok: i64,
    insufficient_scope: i64,
    origin_not_allowed: i64,
    secret_key_in_browser: i64,
    csrf_failed: i64,
    rate_limited: i64,
    revoked: i64,
    expired: i64,
    unattributed: i64,
}

impl From<CountsRow> for Counts {
    fn from(row: CountsRow) -> Counts {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Counts {
            ok: count(row.ok),
            insufficient_scope: count(row.insufficient_scope),
            origin_not_allowed: count(row.origin_not_allowed),
            secret_key_in_browser: count(row.secret_key_in_browser),
            csrf_failed: count(row.csrf_failed),
            rate_limited: count(row.rate_limited),
            revoked: count(row.revoked),
            expired: count(row.expired),
            unattributed: count(row.unattributed),
        }
    }
}

#[derive(FromRow)]
struct BucketRow {
    bucket: i64,
    #[sqlx(flatten)]
    counts: CountsRow,
}

#[derive(FromRow)]
struct ClientRow {
    client_id: String,
    #[sqlx(flatten)]
    counts: CountsRow,
}

/// The key of one row of `auth_usage`: granularity, bucket, credential.
type RowKey = (&'static str, i64, String);

fn count_param(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqlStore {
    /// Adds the gate's counts to their minute, hour and day buckets. One
    /// statement per chunk of rows, in the order of their keys, each
    /// committed on its own: processes adding to the same rows lock them in
    /// the same order and never deadlock.
    pub(super) async fn write_counts(&self, records: Vec<UsageRecord>) -> Result<(), sqlx::Error> {
        let mut rows: BTreeMap<RowKey, (Option<CountedCredential>, Counts)> = BTreeMap::new();
        for record in records {
            let id = record
                .credential
                .as_ref()
                .map_or_else(String::new, |credential| credential.id.clone());
            for granularity in Granularity::ALL {
                let bucket = to_micros(granularity.floor(record.minute));
                let row = rows
                    .entry((granularity.name(), bucket, id.clone()))
                    .or_insert_with(|| (record.credential.clone(), Counts::default()));
                row.1.merge(&record.counts);
            }
        }
        let rows: Vec<_> = rows.into_iter().collect();
        for chunk in rows.chunks(COUNTS_CHUNK) {
            let values = (0..chunk.len())
                .map(|row| {
                    let params = (1..=15)
                        .map(|i| format!("${}", row * 15 + i))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("({params})")
                })
                .collect::<Vec<_>>()
                .join(", ");
            let additions = COLUMNS
                .split(", ")
                .map(|column| format!("{column} = auth_usage.{column} + excluded.{column}"))
                .collect::<Vec<_>>()
                .join(", ");
            let statement = format!(
                "INSERT INTO auth_usage (granularity, bucket, credential_id, kind, client_id, \
                 user_id, {COLUMNS}) VALUES {values} \
                 ON CONFLICT (granularity, credential_id, bucket) DO UPDATE SET {additions}"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
            for ((granularity, bucket, id), (credential, counts)) in chunk {
                query = query
                    .bind(*granularity)
                    .bind(*bucket)
                    .bind(id.as_str())
                    .bind(credential.as_ref().map_or("none", |c| c.kind.name()))
                    .bind(credential.as_ref().and_then(|c| c.client_id.clone()))
                    .bind(credential.as_ref().and_then(|c| c.user_id.clone()))
                    .bind(count_param(counts.ok))
                    .bind(count_param(counts.insufficient_scope))
                    .bind(count_param(counts.origin_not_allowed))
                    .bind(count_param(counts.secret_key_in_browser))
                    .bind(count_param(counts.csrf_failed))
                    .bind(count_param(counts.rate_limited))
                    .bind(count_param(counts.revoked))
                    .bind(count_param(counts.expired))
                    .bind(count_param(counts.unattributed));
            }
            query.execute(self.writer()).await?;
        }
        Ok(())
    }

    /// The usage of a client, a user or everyone over `range`: every bucket
    /// present, zeros included, in time order. One range read of an index.
    pub async fn usage(
        &self,
        of: UsageOf<'_>,
        range: UsageRange,
    ) -> Result<UsageSeries, SqlStoreError> {
        let (filter, id) = match of {
            UsageOf::Client(id) => ("client_id = $4 AND ", Some(id)),
            UsageOf::User(id) => ("user_id = $4 AND ", Some(id)),
            UsageOf::All => ("", None),
        };
        let statement = format!(
            "SELECT bucket, {SUMS} FROM auth_usage WHERE {filter}granularity = $1 \
             AND bucket >= $2 AND bucket < $3 GROUP BY bucket"
        );
        let mut query = sqlx::query_as::<_, BucketRow>(sqlx::AssertSqlSafe(statement))
            .bind(range.granularity.name())
            .bind(to_micros(range.from))
            .bind(to_micros(range.to));
        if let Some(id) = id {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.0.pool).await?;
        Ok(UsageSeries::fill(
            range,
            rows.into_iter()
                .filter_map(|row| Some((from_micros(row.bucket)?, Counts::from(row.counts)))),
        ))
    }

    /// The clients with the most requests (or refusals) over `range`, with
    /// their totals, most first (ties by client id).
    pub async fn top_clients(
        &self,
        range: UsageRange,
        by: Rank,
        limit: u32,
    ) -> Result<Vec<(String, Counts)>, SqlStoreError> {
        let refused = "SUM(insufficient_scope + origin_not_allowed + secret_key_in_browser \
                       + csrf_failed + rate_limited + revoked + expired)";
        let rank = match by {
            Rank::Requests => format!("SUM(ok) + {refused}"),
            Rank::Refused => refused.to_owned(),
        };
        let statement = format!(
            "SELECT client_id, {SUMS} FROM auth_usage WHERE client_id IS NOT NULL \
             AND granularity = $1 AND bucket >= $2 AND bucket < $3 \
             GROUP BY client_id HAVING {rank} > 0 ORDER BY {rank} DESC, client_id LIMIT $4"
        );
        let rows = sqlx::query_as::<_, ClientRow>(sqlx::AssertSqlSafe(statement))
            .bind(range.granularity.name())
            .bind(to_micros(range.from))
            .bind(to_micros(range.to))
            .bind(i64::from(limit))
            .fetch_all(&self.0.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.client_id, Counts::from(row.counts)))
            .collect())
    }

    /// Deletes the buckets past their granularity's retention (minutes
    /// after 48 hours, hours after 90 days, days after 2 years), as of the
    /// store's clock; returns how many rows went.
    pub async fn purge_usage(&self) -> Result<u64, SqlStoreError> {
        let now = self.now();
        let mut purged = 0;
        for granularity in Granularity::ALL {
            let before = granularity.floor(now - granularity.retention());
            purged += sqlx::query("DELETE FROM auth_usage WHERE granularity = $1 AND bucket < $2")
                .bind(granularity.name())
                .bind(to_micros(before))
                .execute(self.writer())
                .await?
                .rows_affected();
        }
        Ok(purged)
    }
}
