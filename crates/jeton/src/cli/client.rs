use crate::identity::TOKENS;
use clap::{Args, Subcommand};
use serde_json::json;

use super::parse_duration;
use crate::{
    config::Config,
    domain::{
        client::{ClientKind, NewClient, NewClientInput},
        ids::ClientId,
    },
    responses,
    store::{Db, audit::Audit, clients::Client},
};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client and print its key (shown once).
    Create(CreateArgs),
    /// List clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a client: all its keys stop working at once.
    Revoke {
        id: String,
        /// Also revoke every user token issued through this client.
        #[arg(long)]
        revoke_user_tokens: bool,
        #[arg(long)]
        json: bool,
    },
    /// Issue a new key; older keys keep working for the grace period.
    Rotate {
        id: String,
        /// How long older keys keep working, e.g. 0s, 10m, 1h.
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        grace: time::Duration,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: String,
    #[arg(long, value_parser = parse_kind)]
    kind: ClientKind,
    /// An ability; repeat for several.
    #[arg(long = "ability", required = true)]
    abilities: Vec<String>,
    /// An allowed origin (publishable keys); repeat for several.
    #[arg(long = "origin")]
    origins: Vec<String>,
    /// Requests per minute for the key: a number, or `none`.
    #[arg(long, value_parser = parse_limit)]
    rate_limit: Option<Limit>,
    /// Requests per minute per client IP (publishable): a number, or `none`.
    #[arg(long, value_parser = parse_limit)]
    per_ip_rate_limit: Option<Limit>,
    #[arg(long)]
    json: bool,
}

fn parse_kind(text: &str) -> Result<ClientKind, String> {
    ClientKind::parse(text).ok_or_else(|| "expected publishable or secret".to_owned())
}

/// A limit given on the command line: `Some(n)`, or `None` for `none`.
/// An alias on purpose: clap reads a literal `Option<Option<T>>` as "a flag
/// whose value may be left out" and then expects the parser to return `T`,
/// which panics at run time for a parser returning `Option<i64>`.
type Limit = Option<i64>;

fn parse_limit(text: &str) -> Result<Limit, String> {
    if text == "none" {
        Ok(None)
    } else {
        text.parse()
            .map(Some)
            .map_err(|_| "expected a number or `none`".to_owned())
    }
}

/// Warnings an operator must see: a key seen in a browser or reported
/// leaked (docs/leaks.md), and
/// `*` lets any website use a publishable key.
fn flags(client: &Client) -> String {
    let mut flags = Vec::new();
    if client.has_leaked_key() {
        flags.push("LEAKED-KEY(seen in a browser or reported leaked: rotate)");
    }
    if client.allows_any_origin() {
        flags.push("ANY-ORIGIN(*)");
    }
    flags.join(" ")
}

fn print_table(clients: &[Client]) {
    println!(
        "{:<36}  {:<11}  {:<8}  {:<24}  {:<30}  {:<24}  FLAGS",
        "ID", "KIND", "STATUS", "ABILITIES", "ORIGINS", "NAME"
    );
    for client in clients {
        let status = if client.revoked_at.is_some() {
            "revoked"
        } else {
            "active"
        };
        println!(
            "{:<36}  {:<11}  {:<8}  {:<24}  {:<30}  {:<24}  {}",
            client.id,
            client.kind.as_str(),
            status,
            client.abilities.to_spaced(),
            client.allowed_origins.join(" "),
            client.name,
            flags(client)
        );
    }
}

async fn find(db: &Db, id: &str) -> anyhow::Result<Client> {
    let client = match ClientId::parse(id) {
        Some(id) => db.get_client(&id).await?,
        None => None,
    };
    client.ok_or_else(|| anyhow::anyhow!("no client has the id {id}"))
}

pub async fn run(db: &Db, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create(args) => {
            let input = NewClientInput {
                name: args.name,
                kind: args.kind,
                abilities: args.abilities,
                allowed_origins: args.origins,
                rate_limit_per_minute: args.rate_limit,
                per_ip_rate_limit_per_minute: args.per_ip_rate_limit,
            };
            let new =
                NewClient::parse(input, Config::default().limit_defaults).map_err(|errors| {
                    let text: Vec<String> = errors
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect();
                    anyhow::anyhow!("invalid client: {}", text.join("; "))
                })?;
            let key = TOKENS.generate(new.kind.token_kind());
            let client = db.create_client(&new, &key, &Audit::cli()).await?;
            if args.json {
                println!(
                    "{}",
                    json!({"client_id": client.id, "key": key.expose_secret()})
                );
            } else {
                println!("client {} ({})", client.id, client.kind.as_str());
                println!("key (shown once): {}", key.expose_secret());
            }
        }
        ClientCommand::List { json } => {
            let clients = db.list_clients(None, i64::MAX).await?;
            if json {
                let clients: Vec<responses::Client> =
                    clients.into_iter().map(responses::Client::from).collect();
                println!("{}", serde_json::to_string_pretty(&clients)?);
            } else {
                print_table(&clients);
            }
        }
        ClientCommand::Show { id, json } => {
            let client = find(db, &id).await?;
            if json {
                let client = responses::Client::from(client);
                println!("{}", serde_json::to_string_pretty(&client)?);
            } else {
                print_table(std::slice::from_ref(&client));
                for key in &client.keys {
                    let until = key
                        .expires_at
                        .map(|at| format!(" (works until {at})"))
                        .unwrap_or_default();
                    println!("  key {} …{}{until}", key.id, key.last4);
                }
            }
        }
        ClientCommand::Revoke {
            id,
            revoke_user_tokens,
            json,
        } => {
            let revoked = match ClientId::parse(&id) {
                Some(id) => {
                    db.revoke_client(&id, revoke_user_tokens, &Audit::cli())
                        .await?
                }
                None => false,
            };
            anyhow::ensure!(revoked, "no live client has the id {id}");
            if json {
                println!(
                    "{}",
                    json!({"client_id": id, "revoked": true, "revoked_user_tokens": revoke_user_tokens})
                );
            } else {
                println!("revoked client {id}");
            }
        }
        ClientCommand::Rotate { id, grace, json } => {
            let client = find(db, &id).await?;
            anyhow::ensure!(
                grace >= time::Duration::ZERO,
                "the grace period cannot be negative"
            );
            let key = TOKENS.generate(client.kind.token_kind());
            let rotated = db
                .rotate_client_key(&client.id, &key, grace, &Audit::cli())
                .await?;
            let rotated = rotated.ok_or_else(|| anyhow::anyhow!("client {id} is revoked"))?;
            if json {
                println!(
                    "{}",
                    json!({"client_id": client.id, "key_id": rotated.id, "key": key.expose_secret()})
                );
            } else {
                println!("new key (shown once): {}", key.expose_secret());
                println!("older keys stop working in {grace}");
            }
        }
    }
    Ok(())
}
