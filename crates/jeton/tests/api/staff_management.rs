//! An owner manages the staff over the API (API.md §13): invitations whose
//! link works once for 72 hours, the list, role changes and disables that
//! reach live sessions, and the last owner kept.

use std::time::Duration;

use jeton::domain::staff::Role;
use serde_json::json;

use crate::on_both_databases;
use crate::support::{PASSWORD, TestApp, s, staff::StaffSession};

on_both_databases!(
    an_invitation_link_works_once,
    an_invitation_expires_and_a_new_one_replaces_it,
    an_owner_changes_roles_and_disables_over_the_api,
    the_last_owner_stays_over_the_api,
);

/// The token of an invitation's link.
fn link_token(url: &str) -> String {
    url.rsplit_once("/console/#/invite/")
        .unwrap_or_else(|| panic!("an invitation link: {url}"))
        .1
        .to_owned()
}

async fn invite(app: &TestApp, owner: &StaffSession, email: &str, role: &str) -> (String, String) {
    let res = app
        .post("/api/v1/admin/staff")
        .staff(owner)
        .json(json!({"email": email, "name": "Sam", "role": role}))
        .send()
        .await;
    res.expect(201);
    let body = res.json();
    (s(&body["staff"]["id"]), link_token(&s(&body["invite_url"])))
}

async fn accept(app: &TestApp, token: &str, password: &str) -> crate::support::Res {
    app.post(&format!("/api/v1/staff/invites/{token}"))
        .json(json!({"password": password}))
        .send()
        .await
}

async fn an_invitation_link_works_once(app: TestApp) {
    let owner = app.staff(Role::Owner).await;
    let res = app
        .post("/api/v1/admin/staff")
        .staff(&owner)
        .json(json!({"email": "Sam@Shop.Example", "name": "Sam", "role": "support"}))
        .send()
        .await;
    res.expect(201);
    let body = res.json();
    assert_eq!(crate::support::keys(&body), ["invite_url", "staff"]);
    let staff = &body["staff"];
    assert_eq!(staff["email"], "sam@shop.example");
    assert_eq!(staff["role"], "support");
    assert_eq!(staff["mfa"], false);
    assert!(staff["last_login_at"].is_null());
    let url = s(&body["invite_url"]);
    assert!(
        url.starts_with("http://127.0.0.1:8080/console/#/invite/"),
        "{url}"
    );
    let token = link_token(&url);
    assert_eq!(token.len(), 64);
    // Listed, and unable to sign in until the link is used.
    let list = app.get("/api/v1/admin/staff").staff(&owner).send().await;
    list.expect(200);
    let emails: Vec<String> = list.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| s(&member["email"]))
        .collect();
    assert!(
        emails.contains(&"sam@shop.example".to_owned()),
        "{emails:?}"
    );
    app.staff_login("sam@shop.example", "any password at all")
        .await
        .expect_problem(401, "invalid_credentials");
    // Passwords as customers'.
    accept(&app, &token, "short")
        .await
        .expect_problem(422, "validation_failed");
    let res = accept(&app, &token, PASSWORD).await;
    res.expect(200);
    assert_eq!(res.json()["email"], "sam@shop.example");
    // Once.
    accept(&app, &token, "another password")
        .await
        .expect_problem(404, "not_found");
    accept(&app, &"0".repeat(64), PASSWORD)
        .await
        .expect_problem(404, "not_found");
    let sam = app.staff_sign_in("sam@shop.example").await;
    assert_eq!(sam.body["staff"]["role"], "support");
    // Accepted: inviting the email again is a conflict.
    app.post("/api/v1/admin/staff")
        .staff(&owner)
        .json(json!({"email": "sam@shop.example", "name": "Sam", "role": "viewer"}))
        .send()
        .await
        .expect_problem(409, "email_taken");
    // A link is not accepted from another site's page.
    let (_, other) = invite(&app, &owner, "kim@shop.example", "viewer").await;
    app.post(&format!("/api/v1/staff/invites/{other}"))
        .header("origin", "https://evil.example")
        .json(json!({"password": PASSWORD}))
        .send()
        .await
        .expect_problem(403, "origin_not_allowed");
    // Bad input is one 422 with every field.
    let res = app
        .post("/api/v1/admin/staff")
        .staff(&owner)
        .json(json!({"email": "not an email", "name": "", "role": "viewer"}))
        .send()
        .await;
    res.expect_problem(422, "validation_failed");
    assert_eq!(crate::support::error_fields(&res.json()), ["email", "name"]);
    app.post("/api/v1/admin/staff")
        .staff(&owner)
        .json(json!({"email": "lee@shop.example", "name": "Lee", "role": "admin"}))
        .send()
        .await
        .expect_problem(422, "validation_failed");
    let events = app.staff_actions(&owner.staff_id).await;
    assert!(events.contains(&"staff.invited".to_owned()), "{events:?}");
    let events = app.staff_actions(&sam.staff_id).await;
    assert!(
        events.contains(&"staff.invitation_accepted".to_owned()),
        "{events:?}"
    );
}

async fn an_invitation_expires_and_a_new_one_replaces_it(app: TestApp) {
    let owner = app.staff(Role::Owner).await;
    let (id, first) = invite(&app, &owner, "ana@shop.example", "viewer").await;
    app.advance(Duration::from_secs(72 * 3600 + 1));
    accept(&app, &first, PASSWORD)
        .await
        .expect_problem(404, "not_found");
    let owner = app.staff_sign_in(&owner.email).await;
    // Invited again (not yet accepted): the same member, the new role, a
    // new link; the old one stays dead.
    let (again, second) = invite(&app, &owner, "ana@shop.example", "developer").await;
    assert_eq!(again, id);
    let (_, third) = invite(&app, &owner, "ana@shop.example", "developer").await;
    accept(&app, &second, PASSWORD)
        .await
        .expect_problem(404, "not_found");
    accept(&app, &third, PASSWORD).await.expect(200);
    let ana = app.staff_sign_in("ana@shop.example").await;
    assert_eq!(ana.body["staff"]["role"], "developer");
    // A member disabled before accepting cannot accept.
    let (kim, link) = invite(&app, &owner, "kim@shop.example", "viewer").await;
    app.patch(&format!("/api/v1/admin/staff/{kim}"))
        .staff(&owner)
        .json(json!({"disabled": true}))
        .send()
        .await
        .expect(200);
    accept(&app, &link, PASSWORD)
        .await
        .expect_problem(404, "not_found");
}

async fn an_owner_changes_roles_and_disables_over_the_api(app: TestApp) {
    let owner = app.staff(Role::Owner).await;
    let dev = app.staff(Role::Developer).await;
    let path = format!("/api/v1/admin/staff/{}", dev.staff_id);
    // Only staff:manage.
    app.get("/api/v1/admin/staff")
        .staff(&dev)
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
    app.patch(&path)
        .staff(&dev)
        .json(json!({"role": "owner"}))
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
    app.get("/api/v1/admin/products")
        .staff(&dev)
        .send()
        .await
        .expect(200);
    let res = app
        .patch(&path)
        .staff(&owner)
        .json(json!({"role": "viewer"}))
        .send()
        .await;
    res.expect(200);
    assert_eq!(res.json()["role"], "viewer");
    // The live session holds the new role at once.
    app.get("/api/v1/admin/products")
        .staff(&dev)
        .send()
        .await
        .expect_problem(403, "insufficient_scope");
    let res = app
        .patch(&path)
        .staff(&owner)
        .json(json!({"disabled": true}))
        .send()
        .await;
    res.expect(200);
    assert!(res.json()["disabled_at"].is_string());
    app.get("/api/v1/staff/me")
        .staff(&dev)
        .send()
        .await
        .expect_problem(401, "invalid_token");
    app.staff_login(&dev.email, PASSWORD)
        .await
        .expect_problem(401, "invalid_credentials");
    let res = app
        .patch(&path)
        .staff(&owner)
        .json(json!({"disabled": false, "role": "support"}))
        .send()
        .await;
    res.expect(200);
    assert!(res.json()["disabled_at"].is_null());
    assert_eq!(res.json()["role"], "support");
    app.staff_sign_in(&dev.email).await;
    // No change: the member as they are.
    app.patch(&path)
        .staff(&owner)
        .json(json!({}))
        .send()
        .await
        .expect(200);
    app.patch("/api/v1/admin/staff/0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b")
        .staff(&owner)
        .json(json!({"role": "viewer"}))
        .send()
        .await
        .expect_problem(404, "not_found");
    app.patch(&path)
        .staff(&owner)
        .json(json!({"role": "root"}))
        .send()
        .await
        .expect_problem(422, "validation_failed");
    app.patch(&path)
        .staff(&owner)
        .json(json!({"email": "x@shop.example"}))
        .send()
        .await
        .expect_problem(422, "validation_failed");
    let events = app.staff_actions(&owner.staff_id).await;
    for action in ["staff.role_changed", "staff.disabled", "staff.enabled"] {
        assert!(events.contains(&action.to_owned()), "{action}: {events:?}");
    }
}

async fn the_last_owner_stays_over_the_api(app: TestApp) {
    let owner = app.staff(Role::Owner).await;
    let path = format!("/api/v1/admin/staff/{}", owner.staff_id);
    for change in [
        json!({"role": "developer"}),
        json!({"disabled": true}),
        json!({"role": "viewer", "disabled": false}),
    ] {
        app.patch(&path)
            .staff(&owner)
            .json(change)
            .send()
            .await
            .expect_problem(409, "last_owner");
    }
    // Nothing was written.
    let me = app.get("/api/v1/staff/me").staff(&owner).send().await;
    assert_eq!(me.json()["role"], "owner");
    assert!(me.json()["disabled_at"].is_null());
    // With a second owner, the first may step down.
    let second = app.staff(Role::Owner).await;
    app.patch(&path)
        .staff(&second)
        .json(json!({"role": "developer"}))
        .send()
        .await
        .expect(200);
    app.patch(&format!("/api/v1/admin/staff/{}", second.staff_id))
        .staff(&second)
        .json(json!({"disabled": true}))
        .send()
        .await
        .expect_problem(409, "last_owner");
}
