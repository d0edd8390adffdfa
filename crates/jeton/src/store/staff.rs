//! Staff members and their sessions. The sessions are jeton-auth's
//! (`CredentialTx::issue_staff_session` and the rest), written in the same
//! transaction as the member's row and the audit event.

use crate::webhooks::events::EventType;
use jeton_auth::{CredentialTx, IssuedToken};
use sqlx::{AnyConnection, FromRow};
use time::OffsetDateTime;

use super::{
    Db,
    audit::{Audit, Event},
    columns::{MaybeMicros, Micros},
    db_error::is_unique_violation,
    store_error,
};
use crate::domain::{ids::new_id, mfa::TotpSecret, staff::Role};

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
    /// When the member's second factor was confirmed; `None`: no MFA.
    #[sqlx(try_from = "MaybeMicros")]
    pub mfa_enabled_at: Option<OffsetDateTime>,
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

/// A member and what their sign-in is checked against.
#[derive(FromRow)]
pub struct StaffLogin {
    #[sqlx(flatten)]
    pub member: StaffRecord,
    /// Empty for an invited member who has not yet set a password.
    pub password_hash: String,
    /// The confirmed TOTP secret (base32).
    pub totp_secret: Option<String>,
    /// A TOTP secret shown for enrolment, not yet confirmed.
    pub totp_pending: Option<String>,
}

impl StaffLogin {
    /// The hash to check a password against; `None` (checked against a
    /// dummy, in the same time) for a member with no password yet.
    pub fn password_hash(&self) -> Option<String> {
        Some(self.password_hash.clone()).filter(|hash| !hash.is_empty())
    }
}

/// Why a change to the staff was not made.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("a staff member with this email exists")]
    EmailTaken,
    #[error("no such staff member")]
    NotFound,
    /// It would leave the shop with no active owner.
    #[error("the last active owner cannot be disabled or demoted")]
    LastOwner,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

const COLUMNS: &str =
    "id, email, name, role, created_at, last_login_at, disabled_at, mfa_enabled_at";

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
        let data = crate::http::staff::StaffMember::from(created.clone());
        self.raise_webhook(&mut tx, EventType::StaffChanged, &data)
            .await?;
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
        let (condition, value) = column.condition();
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, password_hash, totp_secret, totp_pending FROM staff \
             WHERE {condition}"
        )))
        .bind(value)
        .fetch_optional(self.reader())
        .await
    }

    /// Changes a member's role, or disables (ending every session at once)
    /// or enables them, in one transaction: all of it or, when it would
    /// leave the shop with no active owner, none. A new role reaches their
    /// live sessions at once (within a second on every process).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn update_staff(
        &self,
        key: StaffKey<'_>,
        change: StaffChange,
        audit: &Audit,
    ) -> Result<StaffRecord, StaffError> {
        let mut tx = self.begin_credentials().await?;
        let member = locked_member(&mut tx, key).await?;
        let role = change.role.unwrap_or(member.role());
        let disabled = change.disabled.unwrap_or(member.disabled_at.is_some());
        let active_owner = member.role() == Role::Owner && member.disabled_at.is_none();
        if active_owner && (role != Role::Owner || disabled) {
            check_other_owner(&mut tx, &member.id).await?;
        }
        if role != member.role() {
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
        }
        if disabled != member.disabled_at.is_some() {
            let at = disabled.then(|| self.now_micros());
            sqlx::query("UPDATE staff SET disabled_at = $2 WHERE id = $1")
                .bind(member.id.clone())
                .bind(at)
                .execute(&mut *tx)
                .await?;
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
        if disabled {
            tx.revoke_staff_sessions(&member.id)
                .await
                .map_err(store_error)?;
        }
        if role != member.role() || disabled != member.disabled_at.is_some() {
            let changed = staff_in(&mut tx, &member.id).await?;
            let data = crate::http::staff::StaffMember::from(changed);
            self.raise_webhook(&mut tx, EventType::StaffChanged, &data)
                .await?;
        }
        tx.commit().await?;
        Ok(self.get_staff(&member.id).await?.unwrap_or(member))
    }

    /// Disables or enables the member with `email` (see [`Db::update_staff`]).
    pub async fn set_staff_disabled(
        &self,
        email: &str,
        disabled: bool,
        audit: &Audit,
    ) -> Result<StaffRecord, StaffError> {
        let change = StaffChange {
            disabled: Some(disabled),
            ..StaffChange::default()
        };
        self.update_staff(StaffKey::Email(email), change, audit)
            .await
    }

    /// Gives the member with `email` another role (see [`Db::update_staff`]).
    pub async fn set_staff_role(
        &self,
        email: &str,
        role: Role,
        audit: &Audit,
    ) -> Result<StaffRecord, StaffError> {
        let change = StaffChange {
            role: Some(role),
            ..StaffChange::default()
        };
        self.update_staff(StaffKey::Email(email), change, audit)
            .await
    }

    /// A new session for a member who has just proved their password
    /// (and code): their role's abilities, or none while `restricted` (a
    /// member who must enrol a second factor first), for
    /// [`crate::domain::staff::ABSOLUTE_LIFETIME`] at most. `None` if the
    /// member was disabled meanwhile.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn sign_in_staff(
        &self,
        member: &StaffRecord,
        restricted: bool,
        audit: &Audit,
    ) -> Result<Option<NewStaffSession>, sqlx::Error> {
        let mut tx = self.begin_credentials().await?;
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
        let data = crate::http::staff::StaffMember::from(signed_in.clone());
        self.raise_webhook(&mut tx, EventType::StaffSignedIn, &data)
            .await?;
        let session = self
            .issue_staff_session(&mut tx, signed_in, restricted, "staff.signed_in", audit)
            .await?;
        tx.commit().await?;
        Ok(Some(session))
    }

    /// Issues a session to `member` (the role as stored now, not as read
    /// before a password check) and records `action`.
    async fn issue_staff_session(
        &self,
        tx: &mut CredentialTx<'static>,
        member: StaffRecord,
        restricted: bool,
        action: &'static str,
        audit: &Audit,
    ) -> Result<NewStaffSession, sqlx::Error> {
        let expires_at = self.now() + crate::domain::staff::ABSOLUTE_LIFETIME;
        let abilities = if restricted {
            Vec::new()
        } else {
            member.role().abilities()
        };
        let issued = tx
            .issue_staff_session(&member.id, abilities, expires_at)
            .await
            .map_err(store_error)?;
        let event = Event {
            action,
            subject_id: Some(&issued.id),
            ..Event::default()
        };
        self.append_audit(tx, audit, event).await?;
        Ok(NewStaffSession {
            member,
            issued,
            expires_at,
        })
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

/// Second factors and invitations.
impl Db {
    /// Keeps `pending` as the member's secret awaiting confirmation
    /// (replacing one shown before). `false`: the member has MFA already.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn start_staff_mfa(
        &self,
        staff_id: &str,
        pending: &TotpSecret,
    ) -> Result<bool, sqlx::Error> {
        let changed = sqlx::query(
            "UPDATE staff SET totp_pending = $2 WHERE id = $1 AND mfa_enabled_at IS NULL",
        )
        .bind(staff_id.to_owned())
        .bind(pending.expose().to_owned())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(changed > 0)
    }

    /// Marks `step` as used by the member: `false` if it (or a later one)
    /// was used already, so that each code is accepted once.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn use_totp_step(&self, staff_id: &str, step: i64) -> Result<bool, sqlx::Error> {
        let changed = sqlx::query(
            "UPDATE staff SET totp_last_step = $2 WHERE id = $1 \
             AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(staff_id.to_owned())
        .bind(step)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(changed > 0)
    }

    /// Turns the member's pending secret (`pending`, as they confirmed a
    /// code of it at `step`) into their second factor. Their sessions end
    /// and a new one with their role's abilities starts, as at a sign-in:
    /// a session changes when what it may do does. `None`: the pending
    /// secret changed meanwhile, or the member was disabled.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn confirm_staff_mfa(
        &self,
        staff_id: &str,
        pending: &TotpSecret,
        step: i64,
        audit: &Audit,
    ) -> Result<Option<NewStaffSession>, sqlx::Error> {
        let mut tx = self.begin_credentials().await?;
        let confirmed = sqlx::query_as::<_, StaffRecord>(sqlx::AssertSqlSafe(format!(
            "UPDATE staff SET totp_secret = totp_pending, totp_pending = NULL, \
             totp_last_step = $3, mfa_enabled_at = $4 \
             WHERE id = $1 AND totp_pending = $2 AND mfa_enabled_at IS NULL \
             AND disabled_at IS NULL RETURNING {COLUMNS}"
        )))
        .bind(staff_id.to_owned())
        .bind(pending.expose().to_owned())
        .bind(step)
        .bind(self.now_micros())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(member) = confirmed else {
            return Ok(None);
        };
        let data = crate::http::staff::StaffMember::from(member.clone());
        self.raise_webhook(&mut tx, EventType::StaffChanged, &data)
            .await?;
        tx.revoke_staff_sessions(staff_id)
            .await
            .map_err(store_error)?;
        let session = self
            .issue_staff_session(&mut tx, member, false, "staff.mfa_enabled", audit)
            .await?;
        tx.commit().await?;
        Ok(Some(session))
    }

    /// Forgets a member's second factor (a lost phone): they sign in with
    /// their password alone, or enrol again. Their sessions end.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn reset_staff_mfa(
        &self,
        key: StaffKey<'_>,
        audit: &Audit,
    ) -> Result<StaffRecord, StaffError> {
        let mut tx = self.begin_credentials().await?;
        let member = locked_member(&mut tx, key).await?;
        sqlx::query(
            "UPDATE staff SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL, \
             mfa_enabled_at = NULL WHERE id = $1",
        )
        .bind(member.id.clone())
        .execute(&mut *tx)
        .await?;
        tx.revoke_staff_sessions(&member.id)
            .await
            .map_err(store_error)?;
        let event = Event {
            action: "staff.mfa_reset",
            subject_id: Some(&member.id),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        let changed = staff_in(&mut tx, &member.id).await?;
        let data = crate::http::staff::StaffMember::from(changed);
        self.raise_webhook(&mut tx, EventType::StaffChanged, &data)
            .await?;
        tx.commit().await?;
        Ok(self.get_staff(&member.id).await?.unwrap_or(member))
    }

    /// A member with no password yet, and a link (`token_hash` is its
    /// SHA-256) to set one until `expires_at`. Inviting again someone who
    /// has not accepted gives them the new name and role, and a new link in
    /// place of the old ones.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn invite_staff(
        &self,
        invitee: Invitee<'_>,
        token_hash: &str,
        expires_at: OffsetDateTime,
        audit: &Audit,
    ) -> Result<StaffRecord, StaffError> {
        let mut tx = self.begin_write().await?;
        let now = self.now_micros();
        let existing: Option<(String, String)> =
            sqlx::query_as("SELECT id, password_hash FROM staff WHERE email = $1")
                .bind(invitee.email.to_owned())
                .fetch_optional(&mut *tx)
                .await?;
        let member = match existing {
            Some((_, hash)) if !hash.is_empty() => return Err(StaffError::EmailTaken),
            Some((id, _)) => {
                sqlx::query("UPDATE staff_invitations SET used_at = $2 WHERE staff_id = $1 AND used_at IS NULL")
                    .bind(id.clone())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query_as::<_, StaffRecord>(sqlx::AssertSqlSafe(format!(
                    "UPDATE staff SET name = $2, role = $3 WHERE id = $1 RETURNING {COLUMNS}"
                )))
                .bind(id)
                .bind(invitee.name.to_owned())
                .bind(invitee.role.as_str())
                .fetch_one(&mut *tx)
                .await?
            }
            None => sqlx::query_as::<_, StaffRecord>(sqlx::AssertSqlSafe(format!(
                "INSERT INTO staff (id, email, name, role, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, '', $5) RETURNING {COLUMNS}"
            )))
            .bind(new_id())
            .bind(invitee.email.to_owned())
            .bind(invitee.name.to_owned())
            .bind(invitee.role.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|error| {
                if is_unique_violation(&error) {
                    StaffError::EmailTaken
                } else {
                    StaffError::Db(error)
                }
            })?,
        };
        sqlx::query(
            "INSERT INTO staff_invitations (token_hash, staff_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash.to_owned())
        .bind(member.id.clone())
        .bind(now)
        .bind(crate::domain::time::to_micros(expires_at))
        .execute(&mut *tx)
        .await?;
        let event = Event {
            action: "staff.invited",
            subject_id: Some(&member.id),
            detail: Some(format!("role {}", invitee.role)),
            ..Event::default()
        };
        self.append_audit(&mut tx, audit, event).await?;
        let data = crate::http::staff::StaffMember::from(member.clone());
        self.raise_webhook(&mut tx, EventType::StaffChanged, &data)
            .await?;
        tx.commit().await?;
        Ok(member)
    }

    /// Whether the invitation whose link hashes to `token_hash` may be used
    /// now.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn staff_invitation_open(&self, token_hash: &str) -> Result<bool, sqlx::Error> {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM staff_invitations \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash.to_owned())
        .bind(self.now_micros())
        .fetch_one(self.reader())
        .await?;
        Ok(open > 0)
    }

    /// Uses the invitation whose link hashes to `token_hash`: the member
    /// gets `password_hash`. `None` for a link unknown, used, expired, or of
    /// a member disabled since.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn accept_staff_invitation(
        &self,
        token_hash: &str,
        password_hash: &str,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Option<StaffRecord>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = self.now_micros();
        let staff_id: Option<String> = sqlx::query_scalar(
            "UPDATE staff_invitations SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING staff_id",
        )
        .bind(token_hash.to_owned())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(staff_id) = staff_id else {
            return Ok(None);
        };
        let member = sqlx::query_as::<_, StaffRecord>(sqlx::AssertSqlSafe(format!(
            "UPDATE staff SET password_hash = $2 \
             WHERE id = $1 AND password_hash = '' AND disabled_at IS NULL RETURNING {COLUMNS}"
        )))
        .bind(staff_id.clone())
        .bind(password_hash.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(member) = member else {
            return Ok(None);
        };
        let event = Event {
            action: "staff.invitation_accepted",
            subject_id: Some(&staff_id),
            ..Event::default()
        };
        self.append_audit(&mut tx, &Audit::staff(&staff_id, client_ip), event)
            .await?;
        tx.commit().await?;
        Ok(Some(member))
    }
}

/// The member as `tx` sees them now, for an event about the change.
async fn staff_in(tx: &mut sqlx::AnyConnection, id: &str) -> Result<StaffRecord, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM staff WHERE id = $1"
    )))
    .bind(id.to_owned())
    .fetch_one(tx)
    .await
}

/// What [`Db::update_staff`] changes; `None`: as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaffChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// Who is invited, as `POST /admin/staff` gives them.
#[derive(Debug, Clone, Copy)]
pub struct Invitee<'a> {
    /// In the form `domain::customer::parse_email` gives.
    pub email: &'a str,
    pub name: &'a str,
    pub role: Role,
}

/// A session just issued, with its member.
pub struct NewStaffSession {
    pub member: StaffRecord,
    pub issued: IssuedToken,
    pub expires_at: OffsetDateTime,
}

/// How a member is looked up.
#[derive(Debug, Clone, Copy)]
pub enum StaffKey<'a> {
    Email(&'a str),
    Id(&'a str),
}

impl StaffKey<'_> {
    /// The condition that finds the member, and its one parameter.
    fn condition(self) -> (&'static str, String) {
        match self {
            StaffKey::Email(email) => ("email = $1", email.to_owned()),
            StaffKey::Id(id) => ("id = $1", id.to_owned()),
        }
    }
}

/// The member, in a write transaction (which holds the write lock on
/// SQLite; on PostgreSQL the row is locked).
async fn locked_member(
    conn: &mut AnyConnection,
    key: StaffKey<'_>,
) -> Result<StaffRecord, StaffError> {
    let lock = if conn.backend_name() == "PostgreSQL" {
        " FOR UPDATE"
    } else {
        ""
    };
    let (condition, value) = key.condition();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM staff WHERE {condition}{lock}"
    )))
    .bind(value)
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
