//! Usage as the admin API and the CLI show it: the counts jeton-auth's
//! gate writes and its store reads, with Jeton's names for clients.

use jeton_auth::usage::{Counts, Rank, UsageOf, UsageRange, UsageSeries};

use super::{Db, store_error};
use crate::domain::{
    client::ClientKind,
    ids::{ClientId, CustomerId},
};

/// Whose usage: a client's, a customer's or the whole shop's.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Client(&'a ClientId),
    Customer(&'a CustomerId),
    Shop,
}

/// A client of the ranking, with its name and kind.
#[derive(Debug, Clone)]
pub struct RankedClient {
    pub client_id: ClientId,
    pub name: String,
    pub kind: ClientKind,
    pub totals: Counts,
}

impl Db {
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn usage(
        &self,
        subject: Subject<'_>,
        range: UsageRange,
    ) -> Result<UsageSeries, sqlx::Error> {
        let of = match subject {
            Subject::Client(id) => UsageOf::Client(id.as_str()),
            Subject::Customer(id) => UsageOf::User(id.as_str()),
            Subject::Shop => UsageOf::All,
        };
        self.auth().usage(of, range).await.map_err(store_error)
    }

    /// The clients with the most requests (or refusals) over `range`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn top_clients(
        &self,
        range: UsageRange,
        by: Rank,
        limit: u32,
    ) -> Result<Vec<RankedClient>, sqlx::Error> {
        let ranked = self
            .auth()
            .top_clients(range, by, limit)
            .await
            .map_err(store_error)?;
        let ids: Vec<String> = ranked.iter().map(|(id, _)| id.clone()).collect();
        let clients = self.clients_by_id(&ids).await?;
        Ok(ranked
            .into_iter()
            .filter_map(|(id, totals)| {
                let client = clients.iter().find(|client| client.id == *id.as_str())?;
                Some(RankedClient {
                    client_id: client.id.clone(),
                    name: client.name.clone(),
                    kind: client.kind,
                    totals,
                })
            })
            .collect())
    }

    /// Deletes usage buckets past their retention; how many went.
    pub async fn prune_usage(&self) -> Result<u64, sqlx::Error> {
        self.auth().purge_usage().await.map_err(store_error)
    }
}
