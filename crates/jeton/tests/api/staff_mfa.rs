//! Staff members' second factor (API.md §13): TOTP enrolment with codes
//! computed from the `otpauth://` URI as an authenticator app would, each
//! code accepted once, at most 5 wrong codes per member in 15 minutes,
//! `--require-staff-mfa`, and resets by an owner or on the command line.

use std::time::Duration;

use jeton::{config::Config, domain::staff::Role, store::audit::Audit};
use serde_json::json;

use crate::on_both_databases;
use crate::support::{PASSWORD, TestApp, process::jeton, s, staff::Authenticator};

on_both_databases!(
    enrolment_shows_the_secret_once_and_a_code_turns_it_on,
    sign_in_needs_a_fresh_code_once_enrolled,
    five_wrong_codes_per_member_then_429,
    an_owner_or_the_command_line_resets_a_second_factor,
);

on_both_databases!(
    config = Config { require_staff_mfa: true, ..Config::default() };
    a_required_second_factor_limits_an_unenrolled_member_to_enrolling,
);

const THIRTY_SECONDS: Duration = Duration::from_secs(30);

async fn enrolment_shows_the_secret_once_and_a_code_turns_it_on(app: TestApp) {
    let session = app.staff(Role::Developer).await;
    let res = app.post("/api/v1/staff/mfa").staff(&session).send().await;
    res.expect(200);
    let body = res.json();
    assert_eq!(crate::support::keys(&body), ["otpauth_uri", "qr_svg"]);
    let uri = s(&body["otpauth_uri"]);
    assert!(uri.starts_with("otpauth://totp/Jeton:developer-"), "{uri}");
    for part in ["secret=", "issuer=Jeton"] {
        assert!(uri.contains(part), "{uri}");
    }
    let svg = s(&body["qr_svg"]);
    assert!(svg.contains("<svg") && svg.contains("</svg>"));
    // Starting again replaces the secret not yet confirmed.
    let again = app.post("/api/v1/staff/mfa").staff(&session).send().await;
    again.expect(200);
    let first = Authenticator::from_uri(&uri);
    let second = Authenticator::from_uri(&s(&again.json()["otpauth_uri"]));
    let confirm = |code: String| {
        app.post("/api/v1/staff/mfa/confirm")
            .staff(&session)
            .json(json!({"totp": code}))
    };
    let wrong = confirm(first.code(app.now())).send().await;
    wrong.expect_problem(422, "validation_failed");
    assert_eq!(wrong.json()["errors"][0]["field"], "totp");
    confirm("12345".into())
        .send()
        .await
        .expect_problem(422, "validation_failed");
    // Off until confirmed.
    let me = app.get("/api/v1/staff/me").staff(&session).send().await;
    assert_eq!(me.json()["mfa"], false);
    let res = confirm(second.code(app.now())).send().await;
    res.expect(201);
    // A new session in new cookies: the one that enrolled has ended.
    let renewed = crate::support::staff::StaffSession::from_sign_in(&res, &session.email);
    assert_ne!(renewed.token, session.token);
    assert_eq!(res.json()["staff"]["mfa"], true);
    assert_eq!(res.json()["mfa_enrollment_required"], false);
    app.get("/api/v1/staff/me")
        .staff(&session)
        .send()
        .await
        .expect_problem(401, "invalid_token");
    let me = app.get("/api/v1/staff/me").staff(&renewed).send().await;
    assert_eq!(me.json()["mfa"], true);
    // Once on, it is not replaced by a new enrolment, nor confirmed again.
    app.post("/api/v1/staff/mfa")
        .staff(&renewed)
        .send()
        .await
        .expect_problem(409, "mfa_enabled");
    app.post("/api/v1/staff/mfa/confirm")
        .staff(&renewed)
        .json(json!({"totp": second.code(app.now())}))
        .send()
        .await
        .expect_problem(409, "mfa_not_started");
    let events = app.staff_actions(&renewed.staff_id).await;
    assert!(
        events.contains(&"staff.mfa_enabled".to_owned()),
        "{events:?}"
    );
}

async fn sign_in_needs_a_fresh_code_once_enrolled(app: TestApp) {
    let session = app.staff(Role::Owner).await;
    let email = session.email.clone();
    let (_, authenticator) = app.enrol_mfa(&session).await;
    // The right password alone: asked for a code.
    let res = app.staff_login(&email, PASSWORD).await;
    res.expect_problem(401, "mfa_required");
    assert!(res.header("www-authenticate").is_some());
    assert!(res.header("set-cookie").is_none());
    // The code of the confirmation's step was used by the confirmation.
    app.staff_login_with_code(&email, PASSWORD, &authenticator.code(app.now()))
        .await
        .expect_problem(401, "mfa_required");
    app.advance(THIRTY_SECONDS);
    let code = authenticator.code(app.now());
    // A wrong password with the right code says nothing of the code.
    app.staff_login_with_code(&email, "wrong password", &code)
        .await
        .expect_problem(401, "invalid_credentials");
    let res = app.staff_login_with_code(&email, PASSWORD, &code).await;
    res.expect(201);
    assert_eq!(res.json()["staff"]["mfa"], true);
    // Each code once, even within its 30 seconds.
    app.staff_login_with_code(&email, PASSWORD, &code)
        .await
        .expect_problem(401, "mfa_required");
    // One step of drift either way is accepted; an older step than one
    // used is not.
    app.advance(THIRTY_SECONDS);
    let late = authenticator.code(app.now() - time::Duration::seconds(30));
    app.staff_login_with_code(&email, PASSWORD, &late)
        .await
        .expect_problem(401, "mfa_required");
    let early = authenticator.code(app.now() + time::Duration::seconds(30));
    app.staff_login_with_code(&email, PASSWORD, &early)
        .await
        .expect(201);
    app.staff_login_with_code(&email, PASSWORD, "12ab56")
        .await
        .expect_problem(422, "validation_failed");
    let events = app.staff_actions(&session.staff_id).await;
    assert!(
        events.contains(&"staff.sign_in_failed".to_owned()),
        "{events:?}"
    );
}

async fn five_wrong_codes_per_member_then_429(app: TestApp) {
    let session = app.staff(Role::Viewer).await;
    let email = session.email.clone();
    let (_, authenticator) = app.enrol_mfa(&session).await;
    app.advance(THIRTY_SECONDS);
    let right = authenticator.code(app.now());
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        app.staff_login_with_code(&email, PASSWORD, wrong)
            .await
            .expect_problem(401, "mfa_required");
    }
    // The sixth, even right, waits for the window.
    let res = app.staff_login_with_code(&email, PASSWORD, &right).await;
    res.expect_problem(429, "rate_limited");
    assert!(res.header("retry-after").is_some());
    // Another member is not held back.
    let other = app.staff(Role::Viewer).await;
    let (_, other_app) = app.enrol_mfa(&other).await;
    app.advance(THIRTY_SECONDS);
    app.staff_login_with_code(&other.email, PASSWORD, &other_app.code(app.now()))
        .await
        .expect(201);
    app.advance(Duration::from_secs(15 * 60));
    app.staff_login_with_code(&email, PASSWORD, &authenticator.code(app.now()))
        .await
        .expect(201);
}

async fn an_owner_or_the_command_line_resets_a_second_factor(app: TestApp) {
    let owner = app.staff(Role::Owner).await;
    let support = app.staff(Role::Support).await;
    let (support, _) = app.enrol_mfa(&support).await;
    // Only staff:manage resets.
    let path = format!("/api/v1/admin/staff/{}/reset-mfa", support.staff_id);
    app.post(&path)
        .staff(&support)
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
    let res = app.post(&path).staff(&owner).send().await;
    res.expect(200);
    assert_eq!(res.json()["mfa"], false);
    // The member's sessions ended; the password alone signs in again.
    app.get("/api/v1/staff/me")
        .staff(&support)
        .send()
        .await
        .expect_problem(401, "invalid_token");
    let support = app.staff_sign_in(&support.email).await;
    let (_, _) = app.enrol_mfa(&support).await;
    app.staff_login(&support.email, PASSWORD)
        .await
        .expect_problem(401, "mfa_required");
    let run = jeton(
        &app.url,
        &["staff", "reset-mfa", "--email", &support.email, "--json"],
    );
    run.ok();
    assert_eq!(run.json()["mfa"], false);
    app.staff_login(&support.email, PASSWORD).await.expect(201);
    let unknown = jeton(
        &app.url,
        &["staff", "reset-mfa", "--email", "nobody@shop.example"],
    );
    unknown.fails();
    app.get(&format!(
        "/api/v1/admin/staff/{}/reset-mfa",
        support.staff_id
    ))
    .staff(&owner)
    .send()
    .await
    .expect(405);
    app.post("/api/v1/admin/staff/0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b/reset-mfa")
        .staff(&owner)
        .send()
        .await
        .expect_problem(404, "not_found");
    let events = app.staff_actions(&owner.staff_id).await;
    assert!(events.contains(&"staff.mfa_reset".to_owned()), "{events:?}");
}

async fn a_required_second_factor_limits_an_unenrolled_member_to_enrolling(app: TestApp) {
    let email = "dev@shop.example";
    app.staff_member(email, Role::Developer).await;
    let restricted = app.staff_sign_in(email).await;
    assert_eq!(restricted.body["mfa_enrollment_required"], true);
    // What it reaches: itself, the enrolment, signing out.
    app.get("/api/v1/staff/me")
        .staff(&restricted)
        .send()
        .await
        .expect(200);
    app.get("/api/v1/admin/clients")
        .staff(&restricted)
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
    app.post("/api/v1/staff/password")
        .staff(&restricted)
        .json(json!({"current": PASSWORD, "new": "another password"}))
        .send()
        .await
        .expect_problem(403, "mfa_enrollment_required");
    // A role change reaches live sessions, but does not widen this one.
    app.db
        .set_staff_role(email, Role::Support, &Audit::cli())
        .await
        .unwrap();
    app.get("/api/v1/admin/clients")
        .staff(&restricted)
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
    let (enrolled, authenticator) = app.enrol_mfa(&restricted).await;
    assert_eq!(enrolled.body["mfa_enrollment_required"], false);
    assert_eq!(enrolled.body["staff"]["role"], "support");
    app.get("/api/v1/admin/clients")
        .staff(&enrolled)
        .send()
        .await
        .expect(200);
    app.get("/api/v1/staff/me")
        .staff(&restricted)
        .send()
        .await
        .expect_problem(401, "invalid_token");
    app.advance(THIRTY_SECONDS);
    let res = app
        .staff_login_with_code(email, PASSWORD, &authenticator.code(app.now()))
        .await;
    res.expect(201);
    assert_eq!(res.json()["mfa_enrollment_required"], false);
    // Signing out works restricted too.
    let other = "viewer@shop.example";
    app.staff_member(other, Role::Viewer).await;
    let session = app.staff_sign_in(other).await;
    app.post("/api/v1/staff/logout")
        .staff(&session)
        .send()
        .await
        .expect(204);
}
