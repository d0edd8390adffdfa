use clap::Subcommand;

use super::parse_duration;
use crate::{
    domain::ids::TokenId,
    store::{Db, audit::Audit, orders::KEY_RETENTION, user_tokens::Revoke},
};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Revoke one user token by id.
    Revoke { id: String },
    /// Delete tokens and client keys that expired or were revoked long ago,
    /// and the refusals recorded of them (their usage stays, with their
    /// client's and customer's); and usage buckets past their retention
    /// (minutes after 48 hours, hours after 90 days, days after 2 years).
    Prune {
        /// How long ago they must have expired or been revoked.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        expired_for: time::Duration,
    },
    /// Delete order idempotency keys older than a day (`serve` also does
    /// this every hour).
    PruneIdempotencyKeys {
        /// How old they must be; at least 24h, the retention clients are
        /// promised.
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        older_than: time::Duration,
    },
}

pub async fn run(db: &Db, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Revoke { id } => {
            let found = match TokenId::parse(&id) {
                Some(id) => {
                    let which = Revoke::One {
                        token_id: &id,
                        owner: None,
                    };
                    db.revoke_user_tokens(which, &Audit::cli()).await? == 1
                }
                None => false,
            };
            anyhow::ensure!(found, "no live user token has the id {id}");
            println!("revoked token {id}");
        }
        TokenCommand::Prune { expired_for } => {
            let pruned = db.prune_tokens(db.now() - expired_for).await?;
            println!(
                "pruned {} user tokens, {} client keys, {} access tokens and {} guest tokens",
                pruned.user_tokens, pruned.client_keys, pruned.access_tokens, pruned.guest_tokens
            );
            let buckets = db.prune_usage().await?;
            println!("pruned {buckets} usage buckets past their retention");
        }
        TokenCommand::PruneIdempotencyKeys { older_than } => {
            anyhow::ensure!(
                older_than >= KEY_RETENTION,
                "--older-than must be at least 24h: idempotency keys are kept that long"
            );
            let pruned = db.prune_idempotency_keys(db.now() - older_than).await?;
            println!("pruned {pruned} idempotency keys");
        }
    }
    Ok(())
}
