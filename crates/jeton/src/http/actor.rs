//! Who is acting, for the audit log: the authenticated principal and the
//! client IP, taken from what the route guard and the client-IP middleware
//! put in the request.

use axum::{extract::FromRequestParts, http::request::Parts};
use jeton_auth::{AuthError, Principal, Refused, client_ip::ClientIp};

use crate::{identity::identity, store::audit::Audit};

impl<S: Send + Sync> FromRequestParts<S> for Audit {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .ok_or_else(|| identity().refuse(AuthError::Unauthenticated))?;
        let client_ip = parts.extensions.get::<ClientIp>().map(|ip| ip.0);
        Ok(Audit::of(principal, client_ip))
    }
}
