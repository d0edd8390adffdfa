//! Data steps that SQL cannot express, run by [`Db::connect`] after the
//! migrations. Each runs in one write transaction and is recorded in
//! `data_steps` when it commits, so it runs once per database.

use std::collections::BTreeMap;

use sqlx::AssertSqlSafe;

use super::{Backend, Db};
use crate::domain::customer::parse_email;

/// Customers' emails in the form registration stores since one identity
/// per visible email (`docs/api.md`): the domain in its IDNA ASCII form,
/// all lower-cased.
const EMAILS: &str = "customer_emails_idna";

pub(super) async fn run(db: &Db) -> anyhow::Result<()> {
    customer_emails(db).await?;
    feed_stamps(db).await
}

/// The triggers that stamp the change feed's rows whatever wrote them.
const FEED_STAMPS: &str = "feed_stamp_triggers";

/// The time in microseconds since the epoch, as the database tells it.
const SQLITE_NOW: &str = "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)";

/// Triggers that keep the change feed's stamps (`changes.rs`) moving on
/// every write to `orders` and `products`, whichever binary made it: an
/// order inserted without `updated_at` (a release before the column, whose
/// rows get its default 0) is stamped with the database's time, and an
/// update that leaves `updated_at` as it was (a version that does not know
/// the feed reads it) moves it to that time, or a microsecond on if the
/// stamp is ahead. A write that stamps its row itself, as every write of
/// this release does, is left as it is. So during a rolling deploy no
/// process, of any version, writes a change the others' feeds miss.
///
/// SQL of its own per database, so a data step rather than a migration
/// (migrations are one script for both).
async fn feed_stamps(db: &Db) -> anyhow::Result<()> {
    let mut tx = db.begin_write().await?;
    let statements: Vec<String> = match db.backend() {
        Backend::Postgres => {
            // Two servers starting at once: one makes the triggers, the
            // other then finds the step done.
            sqlx::query("SELECT pg_advisory_xact_lock(4741870301)")
                .execute(&mut *tx)
                .await?;
            let mut statements = vec![
                "CREATE OR REPLACE FUNCTION jeton_feed_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 DECLARE now_micros BIGINT := (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT; \
                 BEGIN \
                   IF TG_OP = 'INSERT' THEN \
                     IF NEW.updated_at = 0 THEN NEW.updated_at := now_micros; END IF; \
                   ELSIF NEW.updated_at = OLD.updated_at THEN \
                     NEW.updated_at := GREATEST(now_micros, OLD.updated_at + 1); \
                   END IF; \
                   RETURN NEW; \
                 END $$"
                    .to_owned(),
            ];
            for table in ["orders", "products"] {
                statements.push(format!("DROP TRIGGER IF EXISTS {table}_feed_stamp ON {table}"));
                statements.push(format!(
                    "CREATE TRIGGER {table}_feed_stamp BEFORE INSERT OR UPDATE ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION jeton_feed_stamp()"
                ));
            }
            statements
        }
        // SQLite's triggers cannot change the row being written: they
        // write it again (which fires no trigger: recursive triggers are
        // off, and the stamp then differs anyway).
        Backend::Sqlite => ["orders", "products"]
            .into_iter()
            .flat_map(|table| {
                [
                    format!(
                        "CREATE TRIGGER IF NOT EXISTS {table}_feed_stamp_insert AFTER INSERT ON {table} \
                         FOR EACH ROW WHEN NEW.updated_at = 0 BEGIN \
                         UPDATE {table} SET updated_at = {SQLITE_NOW} WHERE id = NEW.id; END"
                    ),
                    format!(
                        "CREATE TRIGGER IF NOT EXISTS {table}_feed_stamp_update AFTER UPDATE ON {table} \
                         FOR EACH ROW WHEN NEW.updated_at = OLD.updated_at BEGIN \
                         UPDATE {table} SET updated_at = MAX({SQLITE_NOW}, OLD.updated_at + 1) \
                         WHERE id = NEW.id; END"
                    ),
                ]
            })
            .collect(),
    };
    let done: Option<String> = sqlx::query_scalar("SELECT name FROM data_steps WHERE name = $1")
        .bind(FEED_STAMPS)
        .fetch_optional(&mut *tx)
        .await?;
    if done.is_some() {
        return Ok(());
    }
    for statement in statements {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("INSERT INTO data_steps (name, applied_at) VALUES ($1, $2)")
        .bind(FEED_STAMPS)
        .bind(db.now_micros())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
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
