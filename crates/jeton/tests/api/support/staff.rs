//! Staff members and their console sessions, for the tests.

use axum::http::Method;
use jeton::{domain::staff::Role, store::audit::Audit};
use serde_json::{Value, json};

use super::{PASSWORD, Req, Res, TestApp, password_hash};

/// A signed-in staff member: their session's token (the `jeton_staff`
/// cookie) and its CSRF token.
#[derive(Debug, Clone)]
pub struct StaffSession {
    pub staff_id: String,
    pub email: String,
    pub token: String,
    pub csrf: String,
    /// The sign-in's answer.
    pub body: Value,
}

impl StaffSession {
    /// The `Cookie` header a browser would send to the API.
    pub fn cookie(&self) -> String {
        format!("jeton_staff={}", self.token)
    }
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
pub fn set_cookie(res: &Res, name: &str) -> Option<String> {
    res.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
}

impl TestApp {
    /// A staff member with `role` and [`PASSWORD`], made straight in the
    /// store; returns their id.
    pub async fn staff_member(&self, email: &str, role: Role) -> String {
        self.db
            .create_staff(email, "Staff", role, password_hash().await, &Audit::cli())
            .await
            .unwrap()
            .id
    }

    /// `POST /api/v1/staff/login`.
    pub async fn staff_login(&self, email: &str, password: &str) -> Res {
        self.post("/api/v1/staff/login")
            .json(json!({"email": email, "password": password}))
            .send()
            .await
    }

    /// `POST /api/v1/staff/login` with a second factor's code.
    pub async fn staff_login_with_code(&self, email: &str, password: &str, totp: &str) -> Res {
        self.post("/api/v1/staff/login")
            .json(json!({"email": email, "password": password, "totp": totp}))
            .send()
            .await
    }

    /// Signs `email` in with [`PASSWORD`].
    pub async fn staff_sign_in(&self, email: &str) -> StaffSession {
        let res = self.staff_login(email, PASSWORD).await;
        res.expect(201);
        StaffSession::from_sign_in(&res, email)
    }

    /// Enrols a second factor for the member of `session` (`POST
    /// /staff/mfa`, then a confirmation with a code of the URI, as an
    /// authenticator app would): the new session and the app.
    pub async fn enrol_mfa(&self, session: &StaffSession) -> (StaffSession, Authenticator) {
        let res = self.post("/api/v1/staff/mfa").staff(session).send().await;
        res.expect(200);
        let app = Authenticator::from_uri(&super::s(&res.json()["otpauth_uri"]));
        let res = self
            .post("/api/v1/staff/mfa/confirm")
            .staff(session)
            .json(json!({"totp": app.code(self.now())}))
            .send()
            .await;
        res.expect(201);
        (StaffSession::from_sign_in(&res, &session.email), app)
    }
}

/// An authenticator app, from the `otpauth://` URI it was given.
pub struct Authenticator(totp_rs::Totp);

impl Authenticator {
    pub fn from_uri(uri: &str) -> Authenticator {
        Authenticator(totp_rs::Totp::from_url(uri).expect("an otpauth URI"))
    }

    /// The code the app shows at `at`.
    pub fn code(&self, at: time::OffsetDateTime) -> String {
        self.0
            .generate(u64::try_from(at.unix_timestamp()).unwrap())
            .to_string()
    }
}

impl StaffSession {
    /// The session a 201 of the sign-in (or of an MFA confirmation) set.
    pub fn from_sign_in(res: &Res, email: &str) -> StaffSession {
        let cookie = set_cookie(res, "jeton_staff").expect("the session cookie");
        let token = cookie
            .trim_start_matches("jeton_staff=")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body = res.json();
        StaffSession {
            staff_id: super::s(&body["staff"]["id"]),
            email: email.to_owned(),
            token,
            csrf: super::s(&body["csrf_token"]),
            body,
        }
    }
}

impl TestApp {
    /// The actions of the audit log's events made by the staff member
    /// `staff_id`, oldest first.
    pub async fn staff_actions(&self, staff_id: &str) -> Vec<String> {
        let filter = jeton::store::audit::AuditFilter {
            staff_id: Some(staff_id.to_owned()),
            ..Default::default()
        };
        self.db
            .list_audit(&filter, jeton::store::audit::AuditOrder::Oldest, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|event| event.action)
            .collect()
    }

    /// A new member with `role`, signed in.
    pub async fn staff(&self, role: Role) -> StaffSession {
        let email = format!("{}-{}@shop.example", role.as_str(), uuid::Uuid::now_v7());
        self.staff_member(&email, role).await;
        self.staff_sign_in(&email).await
    }
}

impl Req<'_> {
    /// With the session's cookie, and its CSRF token on an unsafe method,
    /// as the console sends them.
    pub fn staff(self, session: &StaffSession) -> Self {
        let unsafe_method = !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let req = self.header("cookie", &session.cookie());
        if unsafe_method {
            req.header("x-csrf-token", &session.csrf)
        } else {
            req
        }
    }
}
