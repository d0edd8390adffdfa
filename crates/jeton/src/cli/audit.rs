use std::str::FromStr;

use clap::Args;

use crate::{
    responses,
    store::{
        Db,
        audit::{AuditEvent, AuditFilter, AuditOrder},
    },
};

/// `jeton audit`: the audit log, oldest first.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events about this client.
    #[arg(long)]
    client_id: Option<String>,
    /// Only events about this customer.
    #[arg(long)]
    customer_id: Option<String>,
    /// At most this many events (the newest ones).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

fn id<Id: FromStr>(flag: &str, value: Option<String>) -> anyhow::Result<Option<Id>> {
    value
        .map(|v| {
            v.parse()
                .map_err(|_| anyhow::anyhow!("--{flag} is not an id: {v}"))
        })
        .transpose()
}

fn print_table(events: &[AuditEvent]) {
    println!(
        "{:<27}  {:<30}  {:<11}  {:<36}  {:<15}  DETAIL",
        "AT", "ACTION", "ACTOR", "CLIENT / CUSTOMER", "IP"
    );
    for event in events {
        let about = event
            .client_id
            .as_deref()
            .or(event.customer_id.as_deref())
            .unwrap_or("");
        println!(
            "{:<27}  {:<30}  {:<11}  {:<36}  {:<15}  {}",
            event.at,
            event.action,
            event.actor_kind,
            about,
            event.client_ip.as_deref().unwrap_or(""),
            event.detail.as_deref().unwrap_or("")
        );
    }
}

pub async fn run(db: &Db, args: AuditArgs) -> anyhow::Result<()> {
    let filter = AuditFilter {
        client_id: id("client-id", args.client_id)?,
        customer_id: id("customer-id", args.customer_id)?,
        ..AuditFilter::default()
    };
    // The latest `limit`, shown oldest first.
    let limit = i64::try_from(args.limit).unwrap_or(i64::MAX);
    let mut events = db
        .list_audit(&filter, AuditOrder::Newest, None, limit)
        .await?;
    events.reverse();
    if args.json {
        let events: Vec<responses::AuditEvent> = events
            .into_iter()
            .map(responses::AuditEvent::from)
            .collect();
        println!("{}", serde_json::to_string_pretty(&events)?);
    } else {
        print_table(&events);
    }
    Ok(())
}
