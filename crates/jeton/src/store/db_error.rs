//! What a database error means. The one place that reads PostgreSQL
//! SQLSTATEs and SQLite result codes: the retry loop asks it whether to run a
//! transaction again, the HTTP layer whether to answer 503 or 500, the store
//! methods whether a row was refused as a duplicate.

/// The kinds of database failure the rest of the code tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorClass {
    /// Rolled back because of another transaction (a serialization failure,
    /// a deadlock, SQLite busy or locked): nothing was written, and running
    /// the transaction again may well succeed.
    Contention,
    /// The connection broke or the server is shutting down. A commit may or
    /// may not have happened, so only statements safe to repeat are retried.
    Disconnected,
    /// The database is up but cannot take this now: no pooled connection
    /// came free in time, the pool is closed, or the statement ran into its
    /// timeout.
    Overloaded,
    /// A unique constraint refused the row (a duplicate SKU or email).
    UniqueViolation,
    /// Anything else: a bug, not the client's nor the moment's fault.
    Other,
}

/// PostgreSQL: serialization_failure, deadlock_detected.
const POSTGRES_CONTENTION: &[&str] = &["40001", "40P01"];
/// SQLite extended result codes: BUSY, BUSY_RECOVERY, BUSY_SNAPSHOT,
/// BUSY_TIMEOUT, LOCKED, LOCKED_SHAREDCACHE, LOCKED_VTAB.
const SQLITE_CONTENTION: &[&str] = &["5", "261", "517", "773", "6", "262", "518"];
/// PostgreSQL: admin_shutdown, crash_shutdown, cannot_connect_now.
const POSTGRES_SHUTDOWN: &[&str] = &["57P01", "57P02", "57P03"];
/// PostgreSQL: query_canceled, which is what `statement_timeout` raises.
const POSTGRES_STATEMENT_TIMEOUT: &str = "57014";

impl DbErrorClass {
    pub fn of(error: &sqlx::Error) -> DbErrorClass {
        match error {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => {
                DbErrorClass::Disconnected
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => DbErrorClass::Overloaded,
            sqlx::Error::Database(db_error) => match db_error.code().as_deref() {
                Some(code) if POSTGRES_CONTENTION.contains(&code) => DbErrorClass::Contention,
                Some(code) if SQLITE_CONTENTION.contains(&code) => DbErrorClass::Contention,
                Some(code) if POSTGRES_SHUTDOWN.contains(&code) => DbErrorClass::Disconnected,
                Some(POSTGRES_STATEMENT_TIMEOUT) => DbErrorClass::Overloaded,
                _ if db_error.is_unique_violation() => DbErrorClass::UniqueViolation,
                _ => DbErrorClass::Other,
            },
            _ => DbErrorClass::Other,
        }
    }

    /// Will the same request likely work in a moment? Then the client is
    /// told to retry (503 with `Retry-After`) rather than shown a bug.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            DbErrorClass::Contention | DbErrorClass::Disconnected | DbErrorClass::Overloaded
        )
    }
}

/// Was this error contention that rolled the transaction back?
pub fn is_contention(error: &sqlx::Error) -> bool {
    DbErrorClass::of(error) == DbErrorClass::Contention
}

/// Contention, or the connection to the database broke (the server
/// restarted, an administrator ended the session, the network dropped).
pub fn is_contention_or_disconnect(error: &sqlx::Error) -> bool {
    matches!(
        DbErrorClass::of(error),
        DbErrorClass::Contention | DbErrorClass::Disconnected
    )
}

/// Was this a unique-constraint violation (a duplicate SKU or email)?
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    DbErrorClass::of(error) == DbErrorClass::UniqueViolation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_connection_errors_are_transient_but_not_contention() {
        for error in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
        ] {
            assert!(DbErrorClass::of(&error).is_transient(), "{error:?}");
            assert!(!is_contention(&error), "{error:?}");
        }
        assert!(is_contention_or_disconnect(&sqlx::Error::WorkerCrashed));
        assert!(!is_contention_or_disconnect(&sqlx::Error::PoolTimedOut));
        let other = sqlx::Error::RowNotFound;
        assert_eq!(DbErrorClass::of(&other), DbErrorClass::Other);
        assert!(!DbErrorClass::of(&other).is_transient());
    }
}
