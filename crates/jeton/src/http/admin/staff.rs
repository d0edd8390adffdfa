//! The shop's people, managed by an owner (`staff:manage`, API.md §13):
//! the list, invitations, a role change or a disable, a second factor
//! reset. The first owner is made on the command line (`jeton staff
//! create`).

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    domain::{
        Problems,
        customer::{NAME_MAX, parse_email},
        staff::{INVITATION_LIFETIME, InvitationToken, Role, invitation_hash},
        text::bounded,
    },
    http::{
        error::{AppError, AppResult},
        extract::Json,
        staff::StaffMember,
        state::AppState,
    },
    pagination::Page,
    store::{
        audit::Audit,
        staff::{Invitee, StaffChange, StaffError, StaffKey},
    },
};

/// `POST /admin/staff`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "sam@shop.example", "name": "Sam", "role": "support"}))]
pub struct InvitationRequest {
    #[schema(schema_with = crate::domain::customer::email_schema)]
    pub email: String,
    #[schema(schema_with = crate::domain::customer::name_schema)]
    pub name: String,
    pub role: Role,
}

/// An invitation just made: the link is shown this once.
#[derive(Serialize, ToSchema)]
pub struct Invitation {
    pub staff: StaffMember,
    /// The console's page where the invitee sets a password: single use,
    /// for 72 hours. Send it to them; it is not shown again.
    pub invite_url: String,
}

/// `PATCH /admin/staff/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "viewer"}))]
pub struct StaffUpdate {
    pub role: Option<Role>,
    /// `true` ends the member's sessions at once and keeps them from
    /// signing in; `false` lets them sign in again.
    pub disabled: Option<bool>,
}

fn refused(error: StaffError) -> AppError {
    match error {
        StaffError::LastOwner => AppError::conflict(
            "last_owner",
            "the last active owner cannot be disabled or demoted; make another owner first",
        ),
        StaffError::EmailTaken => {
            AppError::conflict("email_taken", "a staff member has this email")
        }
        StaffError::NotFound => AppError::NotFound,
        StaffError::Db(error) => error.into(),
    }
}

/// List the staff
///
/// Every member, invited ones (who have not yet set a password) and
/// disabled ones included, in the order they were added. Changes nothing.
#[utoipa::path(get, operation_id = "listStaff", path = "/api/v1/admin/staff", tag = "admin",
    responses((status = 200, body = Page<StaffMember>)))]
pub async fn list(State(state): State<AppState>) -> AppResult<Json<Page<StaffMember>>> {
    let staff = state.db.list_staff().await?;
    Ok(Json(Page {
        data: staff.into_iter().map(StaffMember::from).collect(),
        next_cursor: None,
    }))
}

/// Invite a staff member
///
/// Adds a member with a role and no password, and returns a link (single
/// use, 72 hours) where they set one: shown once. Inviting again someone
/// who has not yet accepted gives them this name and role and a new link;
/// the old one stops working. 409 `email_taken` for a member who has.
#[utoipa::path(post, operation_id = "inviteStaff", path = "/api/v1/admin/staff", tag = "admin",
    request_body = InvitationRequest,
    responses(
        (status = 201, body = Invitation),
        (status = 409, description = "`email_taken`: a member with this email has accepted already")))]
pub async fn invite(
    State(state): State<AppState>,
    audit: Audit,
    Json(input): Json<InvitationRequest>,
) -> AppResult<(StatusCode, Json<Invitation>)> {
    let mut problems = Problems::default();
    let email = problems.check("email", parse_email(&input.email));
    let name = problems.check("name", bounded(&input.name, 1, NAME_MAX));
    let (email, name) = problems
        .finish(|| (email.expect("checked"), name.expect("checked")))
        .map_err(AppError::Validation)?;
    let token = InvitationToken::generate();
    let invitee = Invitee {
        email: &email,
        name: &name,
        role: input.role,
    };
    let expires_at = state.db.now() + INVITATION_LIFETIME;
    let member = state
        .db
        .invite_staff(
            invitee,
            &invitation_hash(token.expose()),
            expires_at,
            &audit,
        )
        .await
        .map_err(refused)?;
    // In the fragment: browsers send it to no server, so it stays out of
    // access logs and `Referer`.
    let invite_url = state
        .config
        .public_url
        .join(&format!("/console/#/invite/{}", token.expose()));
    Ok((
        StatusCode::CREATED,
        Json(Invitation {
            staff: member.into(),
            invite_url,
        }),
    ))
}

/// Change a staff member
///
/// A new role (the member's live sessions hold it at once, and on every
/// process within a second), or disabled (their sessions end) or enabled
/// again: all of it or nothing. The last active owner cannot be demoted or
/// disabled: 409 `last_owner`.
#[utoipa::path(patch, operation_id = "updateStaff", path = "/api/v1/admin/staff/{id}", tag = "admin",
    params(("id" = String, Path)),
    request_body = StaffUpdate,
    responses(
        (status = 200, body = StaffMember),
        (status = 404, description = "`not_found`"),
        (status = 409, description = "`last_owner`")))]
pub async fn update(
    State(state): State<AppState>,
    audit: Audit,
    Path(id): Path<String>,
    Json(input): Json<StaffUpdate>,
) -> AppResult<Json<StaffMember>> {
    let change = StaffChange {
        role: input.role,
        disabled: input.disabled,
    };
    let member = state
        .db
        .update_staff(StaffKey::Id(&id), change, &audit)
        .await
        .map_err(refused)?;
    Ok(Json(member.into()))
}

/// Reset a staff member's second factor
///
/// For a lost phone: the member's second factor is forgotten and their
/// sessions end; they sign in with their password alone (or, on a server
/// that requires one, only to enrol again).
#[utoipa::path(post, operation_id = "resetStaffMfa", path = "/api/v1/admin/staff/{id}/reset-mfa", tag = "admin",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = StaffMember),
        (status = 404, description = "`not_found`")))]
pub async fn reset_mfa(
    State(state): State<AppState>,
    audit: Audit,
    Path(id): Path<String>,
) -> AppResult<Json<StaffMember>> {
    let member = state
        .db
        .reset_staff_mfa(StaffKey::Id(&id), &audit)
        .await
        .map_err(refused)?;
    Ok(Json(member.into()))
}
