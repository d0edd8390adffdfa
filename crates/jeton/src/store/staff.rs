//! Staff members and their sessions. The sessions are jeton-auth's
//! (`CredentialTx::issue_staff_session` and the rest), written in the same
//! transaction as the member's row and the audit event.

use jeton_auth::IssuedToken;
use sqlx::{AnyConnection, FromRow};
use time::OffsetDateTime;

use super::{
    Db,
    audit::{Audit, Event},
    columns::{MaybeMicros, Micros},
    db_error::is_unique_violation,
    store_error,
};
use crate::domain::{ids::new_id, staff::Role};

/// A staff member as stored, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct StaffRecord {
    pub id: String,
    pub email: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: StoredRole,
    #[sqlx(try_from = "Micros")]
    pub created_at: OffsetDateTime,
    #[sqlx(try_from = "MaybeMicros")]
    pub last_login_at: Option<OffsetDateTime>,
    #[sqlx(try_from = "MaybeMicros")]
    pub disabled_at: Option<OffsetDateTime>,
}

/// A role as stored (the column's CHECK keeps it one of the four).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRole(pub Role);

/// A role column holding something else.
#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`")]
pub struct UnknownRole(String);

impl TryFrom<String> for StoredRole {
    type Error = UnknownRole;

    fn try_from(text: String) -> Result<StoredRole, UnknownRole> {
        Role::parse(&text).map(StoredRole).ok_or(UnknownRole(text))
    }
}

impl StaffRecord {
    pub fn role(&self) -> Role {
        self.role.0
    }
}

/// A member and the hash their password is checked against.
#[derive(FromRow)]
pub struct StaffLogin {
    #[sqlx(flatten)]
    pub member: StaffRecord,
    pub password_hash: String,
}

/// Why a change to the staff was not made.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("a staff member with this email exists")]
    EmailTaken,
    #[error("no staff member with this email")]
    NotFound,
    /// It would leave the shop with no active owner.
    #[error("the last active owner cannot be disabled or demoted")]
    LastOwner,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

const COLUMNS: &str = "id, email, name, role, created_at, last_login_at, disabled_at";

impl Db {
    /// `email` must already be in the form `domain::customer::parse_email`
    /// gives.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn create_staff(
        &self,
        email: &str,
        name: &str,
        role: Role,
        password_hash: &str,
        audit: &Audit,
    ) -> Result<StaffRecord, StaffError> {
        let mut tx = self.begin_write().await?;
        let id = new_id();
        let created = sqlx::query_as::<_, StaffRecord>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO staff (id, email, name, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        )))
        .bind(&id)
        .bind(email.to_owned())
        .bind(name.to_owned())
        .bind(role.as_str())
        .bind(password_hash.to_owned())
        .bind(self.now_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StaffError::EmailTaken
            } else {
                StaffError::Db(error)
            }
        })?;
        let event = Event {
            action: "staff.created",
            subject_id: Some(&id),
            detail: Some(format!("role {role}")),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        tx.commit().await?;
        Ok(created)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_staff(&self) -> Result<Vec<StaffRecord>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM staff ORDER BY id"
        )))
        .fetch_all(self.reader())
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get_staff(&self, id: &str) -> Result<Option<StaffRecord>, sqlx::Error> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM staff WHERE id = $1"
        )))
        .bind(id.to_owned())
        .fetch_optional(self.reader())
        .await
    }

    /// The member and their password hash, for sign-in and for a password
    /// change.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn find_staff_login(
        &self,
        column: StaffKey<'_>,
    ) -> Result<Option<StaffLogin>, sqlx::Error> {
        let (condition, value) = match column {
            StaffKey::Email(email) => ("email = $1", email),
            StaffKey::Id(id) => ("id = $1", id),
        };
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, password_hash FROM staff WHERE {condition}"
        )))
        .bind(value.to_owned())
        .fetch_optional(self.reader())
        .await
    }

    /// Disables (ending every session at once) or enables a member.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn set_staff_disabled(
        &self,
        email: &str,
        disabled: bool,
        audit: &Audit,
    ) -> Result<StaffRecord, StaffError> {
        let mut tx = self.begin_credentials().await?;
        let member = locked_member(&mut tx, email).await?;
        if disabled && member.disabled_at.is_none() && member.role() == Role::Owner {
            check_other_owner(&mut tx, &member.id).await?;
        }
        let at = if disabled {
            Some(self.now_micros())
        } else {
            None
        };
        let changed = sqlx::query(
            "UPDATE staff SET disabled_at = $2 WHERE id = $1 \
             AND ((disabled_at IS NULL) <> ($2 IS NULL))",
        )
        .bind(member.id.clone())
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if disabled {
            tx.revoke_staff_sessions(&member.id)
                .await
                .map_err(store_error)?;
        }
        if changed > 0 {
            let event = Event {
                action: if disabled {
                    "staff.disabled"
                } else {
                    "staff.enabled"
                },
                subject_id: Some(&member.id),
                ..Event::default()
            };
            self.append_audit(&mut tx, audit, event).await?;
        }
        tx.commit().await?;
        Ok(self.get_staff(&member.id).await?.unwrap_or(member))
    }

    /// Gives a member another role; their live sessions hold its abilities
    /// at once (within a second on every process).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn set_staff_role(
        &self,
        email: &str,
        role: Role,
        audit: &Audit,
    ) -> Result<StaffRecord, StaffError> {
        let mut tx = self.begin_credentials().await?;
        let member = locked_member(&mut tx, email).await?;
        if member.role() == role {
            return Ok(member);
        }
        if member.role() == Role::Owner && member.disabled_at.is_none() {
            check_other_owner(&mut tx, &member.id).await?;
        }
        sqlx::query("UPDATE staff SET role = $2 WHERE id = $1")
            .bind(member.id.clone())
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        tx.set_staff_abilities(&member.id, role.abilities())
            .await
            .map_err(store_error)?;
        let event = Event {
            action: "staff.role_changed",
            subject_id: Some(&member.id),
            detail: Some(format!("{} to {role}", member.role())),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        tx.commit().await?;
        Ok(self.get_staff(&member.id).await?.unwrap_or(member))
    }

    /// A new session for a member who has just proved their password:
    /// their role's abilities, for [`crate::domain::staff::ABSOLUTE_LIFETIME`]
    /// at most. `None` if the member was disabled meanwhile.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn sign_in_staff(
        &self,
        member: &StaffRecord,
        audit: &Audit,
    ) -> Result<Option<(StaffRecord, IssuedToken, OffsetDateTime)>, sqlx::Error> {
        let mut tx = self.begin_credentials().await?;
        let now = self.now();
        let signed_in = sqlx::query_as::<_, StaffRecord>(sqlx::AssertSqlSafe(format!(
            "UPDATE staff SET last_login_at = $2 WHERE id = $1 AND disabled_at IS NULL \
             RETURNING {COLUMNS}"
        )))
        .bind(member.id.clone())
        .bind(self.now_micros())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(signed_in) = signed_in else {
            return Ok(None);
        };
        let expires_at = now + crate::domain::staff::ABSOLUTE_LIFETIME;
        // The role as stored now, not as read before the password check.
        let issued = tx
            .issue_staff_session(&signed_in.id, signed_in.role().abilities(), expires_at)
            .await
            .map_err(store_error)?;
        let event = Event {
            action: "staff.signed_in",
            subject_id: Some(&issued.id),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        tx.commit().await?;
        Ok(Some((signed_in, issued, expires_at)))
    }

    /// Ends one session (signing out).
    #[tracing::instrument(level = "debug", skip(self, audit))]
    pub async fn sign_out_staff(&self, session_id: &str, audit: &Audit) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_credentials().await?;
        if tx
            .revoke_staff_session(session_id)
            .await
            .map_err(store_error)?
        {
            let event = Event {
                action: "staff.signed_out",
                subject_id: Some(session_id),
                ..Event::default()
            };
            self.append_audit(&mut tx, audit, event).await?;
        }
        tx.commit().await
    }

    /// A new password; every session of the member but `keep` ends.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn change_staff_password(
        &self,
        staff_id: &str,
        password_hash: &str,
        keep: &str,
        audit: &Audit,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_credentials().await?;
        sqlx::query("UPDATE staff SET password_hash = $2 WHERE id = $1")
            .bind(staff_id.to_owned())
            .bind(password_hash.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.revoke_other_staff_sessions(staff_id, keep)
            .await
            .map_err(store_error)?;
        let event = Event {
            action: "staff.password_changed",
            subject_id: Some(staff_id),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        tx.commit().await
    }
}

/// How a member is looked up.
#[derive(Debug, Clone, Copy)]
pub enum StaffKey<'a> {
    Email(&'a str),
    Id(&'a str),
}

/// The member with this email, in a write transaction (which holds the
/// write lock on SQLite; on PostgreSQL the row is locked).
async fn locked_member(conn: &mut AnyConnection, email: &str) -> Result<StaffRecord, StaffError> {
    let lock = if conn.backend_name() == "PostgreSQL" {
        " FOR UPDATE"
    } else {
        ""
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM staff WHERE email = $1{lock}"
    )))
    .bind(email.to_owned())
    .fetch_optional(conn)
    .await?
    .ok_or(StaffError::NotFound)
}

/// Refuses to leave the shop without an active owner besides `id`. On
/// PostgreSQL the other owners' rows are locked, so two such changes take
/// turns.
async fn check_other_owner(conn: &mut AnyConnection, id: &str) -> Result<(), StaffError> {
    let lock = if conn.backend_name() == "PostgreSQL" {
        " FOR UPDATE"
    } else {
        ""
    };
    let others: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM staff WHERE role = 'owner' AND disabled_at IS NULL AND id <> $1{lock}"
    )))
    .bind(id.to_owned())
    .fetch_all(conn)
    .await?;
    if others.is_empty() {
        Err(StaffError::LastOwner)
    } else {
        Ok(())
    }
}
