//! Data steps that SQL cannot express, run by [`Db::connect`] after the
//! migrations. Each runs in one write transaction and is recorded in
//! `data_steps` when it commits, so it runs once per database.

use std::collections::BTreeMap;

use super::Db;
use crate::domain::customer::parse_email;

/// Customers' emails in the form registration stores since one identity
/// per visible email (`docs/api.md`): the domain in its IDNA ASCII form,
/// all lower-cased.
const EMAILS: &str = "customer_emails_idna";

pub(super) async fn run(db: &Db) -> anyhow::Result<()> {
    customer_emails(db).await
}

/// Rewrites each customer's email in its stored form. If two customers
/// would then share one, nothing changes and the server refuses to start,
/// naming them: merging accounts is a person's decision, never a silent
/// one. An email the rule now refuses (such as a non-ASCII local part)
/// stays as it is: its owner can still log in with it.
async fn customer_emails(db: &Db) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    let done: Option<String> = sqlx::query_scalar("SELECT name FROM data_steps WHERE name = $1")
        .bind(EMAILS)
        .fetch_optional(&mut *tx)
        .await?;
    if done.is_some() {
        return Ok(());
    }
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, email FROM customers ORDER BY id")
        .fetch_all(&mut *tx)
        .await?;
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut rewrites = Vec::new();
    let mut refused = Vec::new();
    for (id, email) in rows {
        let normal = match parse_email(&email) {
            Ok(normal) => normal,
            Err(_) => {
                refused.push(id.clone());
                email.clone()
            }
        };
        if normal != email {
            rewrites.push((id.clone(), normal.clone()));
        }
        owners.entry(normal).or_default().push(id);
    }
    let collisions: Vec<String> = owners
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(email, ids)| format!("{email}: customers {}", ids.join(", ")))
        .collect();
    if !collisions.is_empty() {
        anyhow::bail!(
            "customers whose emails are one address once normalized (IDNA domain, lower case); \
             change or merge them by hand, then start again: {}",
            collisions.join("; ")
        );
    }
    if !refused.is_empty() {
        tracing::warn!(
            customers = %refused.join(", "),
            "emails that registration would now refuse are kept as they are"
        );
    }
    for (id, email) in &rewrites {
        sqlx::query("UPDATE customers SET email = $1 WHERE id = $2")
            .bind(email.clone())
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
    }
    // Two servers starting at once may both run the step (on PostgreSQL):
    // the same rewrites, and one record.
    sqlx::query(
        "INSERT INTO data_steps (name, applied_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(EMAILS)
    .bind(db.now_micros())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if !rewrites.is_empty() {
        tracing::info!(
            customers = rewrites.len(),
            "emails rewritten in their stored form"
        );
    }
    Ok(())
}
