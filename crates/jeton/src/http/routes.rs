//! THE route table: every API route, which kinds of token it accepts, which
//! ability it needs (each admin route its own, API.md §13), and its handler. Nothing else grants access: a route is
//! only reachable through [`RouteTable`], which puts the guard in front of
//! every handler, and handlers receive typed principals (`User`, `Client`)
//! that the guard placed there.

use axum::{
    Router,
    handler::Handler,
    http::Method,
    routing::{MethodFilter, MethodRouter, on},
};
use jeton_auth::{Ability, Access, KindSet};

use super::{admin, carts, catalog, customers, guests, orders, staff, state::AppState, tokens};
use crate::domain::abilities::*;

const PK: KindSet = KindSet::PUBLISHABLE;
/// A secret key, or an OAuth 2.0 access token of its client (which stands
/// in for it, with its scope as its abilities).
const SK: KindSet = KindSet::SECRET.with(KindSet::ACCESS);
const UT: KindSet = KindSet::USER;
/// A storefront visitor's own token (API.md §16).
const GT: KindSet = KindSet::GUEST;
/// A staff member's console session (cookie only).
const STAFF: KindSet = KindSet::STAFF;
/// Who may call the admin API: a secret key or its access token, or a
/// staff member signed in to the console; each with the route's ability.
const ADMIN_CALLERS: KindSet = SK.with(STAFF);

/// Needs one of `kinds` holding `ability`.
const fn needs(kinds: KindSet, ability: Ability) -> Access {
    Access::new(kinds, ability)
}

/// Any token of `kinds`, whatever its abilities.
const fn any_token(kinds: KindSet) -> Access {
    Access::any_ability(kinds)
}

/// Where the table is served. Its routes are registered with the prefix
/// rather than nested under it: a nested router costs every request a
/// rewrite of its URI.
pub const PREFIX: &str = "/api/v1";

/// The table, under [`PREFIX`].
#[rustfmt::skip]
pub fn api() -> RouteTable {
    use Method as M;
    RouteTable::new()
        // method       path                                   who may call                                         handler
        .add(M::GET,    "/products",                           needs(PK | SK | UT | GT, PRODUCTS_READ),             catalog::list_products)
        .add(M::GET,    "/products/{id}",                      needs(PK | SK | UT | GT, PRODUCTS_READ),             catalog::get_product)
        .add(M::POST,   "/guest",                              needs(PK, GUEST_CREATE),                             guests::issue)
        .add(M::POST,   "/customers",                          needs(PK | SK, CUSTOMERS_CREATE),                    customers::register)
        .add(M::POST,   "/auth/login",                         needs(PK | SK, AUTH_LOGIN),                          customers::login)
        .add(M::POST,   "/auth/logout",                        any_token(UT),                                       customers::logout)
        .add(M::GET,    "/me",                                 needs(UT, PROFILE_READ),                             customers::me)
        .add(M::GET,    "/me/tokens",                          needs(UT, TOKENS_MANAGE),                            tokens::list)
        .add(M::POST,   "/me/tokens",                          needs(UT, TOKENS_MANAGE),                            tokens::create)
        .add(M::DELETE, "/me/tokens",                          needs(UT, TOKENS_MANAGE),                            tokens::revoke_all)
        .add(M::DELETE, "/me/tokens/{id}",                     needs(UT, TOKENS_MANAGE),                            tokens::revoke)
        .add(M::POST,   "/orders",                             needs(UT, ORDERS_WRITE),                             orders::place)
        .add(M::GET,    "/me/orders",                          needs(UT, ORDERS_READ),                              orders::list_mine)
        .add(M::GET,    "/me/orders/{id}",                     needs(UT, ORDERS_READ),                              orders::get_mine)
        .add(M::GET,    "/cart",                               needs(UT | GT, CART_WRITE),                          carts::get)
        .add(M::DELETE, "/cart",                               needs(UT | GT, CART_WRITE),                          carts::clear)
        .add(M::PUT,    "/cart/items/{product_id}",            needs(UT | GT, CART_WRITE),                          carts::put_item)
        .add(M::DELETE, "/cart/items/{product_id}",            needs(UT | GT, CART_WRITE),                          carts::delete_item)
        .add(M::POST,   "/cart/checkout",                      needs(UT, ORDERS_WRITE),                             carts::checkout)
        .add(M::GET,    "/admin/products",                     needs(ADMIN_CALLERS, PRODUCTS_WRITE),                admin::products::list)
        .add(M::POST,   "/admin/products",                     needs(ADMIN_CALLERS, PRODUCTS_WRITE),                admin::products::create)
        .add(M::PATCH,  "/admin/products/{id}",                needs(ADMIN_CALLERS, PRODUCTS_WRITE),                admin::products::update)
        .add(M::POST,   "/admin/clients",                      needs(ADMIN_CALLERS, CLIENTS_WRITE),                 admin::clients::create)
        .add(M::GET,    "/admin/clients",                      needs(ADMIN_CALLERS, CLIENTS_READ),                  admin::clients::list)
        .add(M::GET,    "/admin/clients/{id}",                 needs(ADMIN_CALLERS, CLIENTS_READ),                  admin::clients::get)
        .add(M::POST,   "/admin/clients/{id}/keys",            needs(ADMIN_CALLERS, CLIENTS_WRITE),                 admin::clients::rotate)
        .add(M::PATCH,  "/admin/clients/{id}",                 needs(ADMIN_CALLERS, CLIENTS_WRITE),                 admin::clients::update)
        .add(M::DELETE, "/admin/clients/{id}",                 needs(ADMIN_CALLERS, CLIENTS_WRITE),                 admin::clients::revoke)
        .add(M::GET,    "/admin/customers",                    needs(ADMIN_CALLERS, CUSTOMERS_READ),                admin::customers::list)
        .add(M::GET,    "/admin/customers/{id}",               needs(ADMIN_CALLERS, CUSTOMERS_READ),                admin::customers::get)
        .add(M::GET,    "/admin/customers/{id}/tokens",        needs(ADMIN_CALLERS, CUSTOMERS_READ),                admin::customers::tokens)
        .add(M::POST,   "/admin/customers/{id}/revoke-tokens", needs(ADMIN_CALLERS, CUSTOMERS_REVOKE),              admin::customers::revoke_tokens)
        .add(M::GET,    "/admin/orders",                       needs(ADMIN_CALLERS, ORDERS_READ_ALL),               admin::orders::list)
        .add(M::POST,   "/admin/orders/{id}/cancel",           needs(ADMIN_CALLERS, ORDERS_CANCEL),                 admin::orders::cancel)
        .add(M::POST,   "/admin/leaks",                        needs(ADMIN_CALLERS, CLIENTS_WRITE),                 admin::leaks::report)
        .add(M::GET,    "/admin/audit",                        needs(ADMIN_CALLERS, AUDIT_READ),                    admin::audit::list)
        .add(M::GET,    "/admin/usage",                        needs(ADMIN_CALLERS, USAGE_READ),                    admin::usage::shop)
        .add(M::GET,    "/admin/usage/top",                    needs(ADMIN_CALLERS, USAGE_READ),                    admin::usage::top)
        .add(M::GET,    "/admin/clients/{id}/usage",           needs(ADMIN_CALLERS, USAGE_READ),                    admin::usage::client)
        .add(M::GET,    "/admin/customers/{id}/usage",         needs(ADMIN_CALLERS, USAGE_READ),                    admin::usage::customer)
        .add(M::GET,    "/admin/staff",                        needs(ADMIN_CALLERS, STAFF_MANAGE),                  admin::staff::list)
        .add(M::POST,   "/admin/staff",                        needs(ADMIN_CALLERS, STAFF_MANAGE),                  admin::staff::invite)
        .add(M::PATCH,  "/admin/staff/{id}",                   needs(ADMIN_CALLERS, STAFF_MANAGE),                  admin::staff::update)
        .add(M::POST,   "/admin/staff/{id}/reset-mfa",         needs(ADMIN_CALLERS, STAFF_MANAGE),                  admin::staff::reset_mfa)
        .add(M::POST,   "/admin/webhooks",                     needs(ADMIN_CALLERS, CLIENTS_WRITE),                 admin::webhooks::create)
        .add(M::GET,    "/admin/webhooks",                     needs(ADMIN_CALLERS, CLIENTS_READ),                  admin::webhooks::list)
        .add(M::GET,    "/admin/webhooks/{id}",                needs(ADMIN_CALLERS, CLIENTS_READ),                  admin::webhooks::get)
        .add(M::PATCH,  "/admin/webhooks/{id}",                needs(ADMIN_CALLERS, CLIENTS_WRITE),                 admin::webhooks::update)
        .add(M::DELETE, "/admin/webhooks/{id}",                needs(ADMIN_CALLERS, CLIENTS_WRITE),                 admin::webhooks::delete)
        .add(M::POST,   "/admin/webhooks/{id}/rotate-secret",  needs(ADMIN_CALLERS, CLIENTS_WRITE),                 admin::webhooks::rotate_secret)
        .add(M::GET,    "/admin/webhooks/{id}/deliveries",     needs(ADMIN_CALLERS, CLIENTS_READ),                  admin::webhooks::deliveries)
        .add(M::POST,   "/admin/webhooks/{id}/deliveries/{delivery_id}/retry", needs(ADMIN_CALLERS, CLIENTS_WRITE), admin::webhooks::retry)
        .add(M::POST,   "/admin/webhooks/{id}/test",           needs(ADMIN_CALLERS, CLIENTS_WRITE),                 admin::webhooks::test)
        .add(M::GET,    "/staff/me",                           any_token(STAFF),                                    staff::me)
        .add(M::POST,   "/staff/logout",                       any_token(STAFF),                                    staff::logout)
        .add(M::POST,   "/staff/password",                     any_token(STAFF),                                    staff::change_password)
        .add(M::POST,   "/staff/mfa",                          any_token(STAFF),                                    staff::start_mfa)
        .add(M::POST,   "/staff/mfa/confirm",                  any_token(STAFF),                                    staff::confirm_mfa)
}

/// The OAuth 2.0 endpoints (`http/oauth/`), outside [`PREFIX`]. They are
/// not rows of the table: no bearer token guards them, they authenticate
/// the client themselves (HTTP Basic or the form; introspection also takes
/// a bearer secret key or access token with `tokens:introspect`), and
/// every failure is an RFC 6749 error.
#[rustfmt::skip]
pub const OAUTH: [(Method, &str, &str); 4] = [
    // method       path                           who may call
    (Method::POST, super::oauth::TOKEN_PATH,      "a secret client (client_secret_basic or client_secret_post)"),
    (Method::POST, super::oauth::INTROSPECT_PATH, "a secret client, or a bearer secret key or access token, with tokens:introspect"),
    (Method::POST, super::oauth::REVOKE_PATH,     "a secret client (client_secret_basic or client_secret_post)"),
    (Method::GET,  super::oauth::METADATA_PATH,   "anyone"),
];

/// One row of the table, for listings and tests.
#[derive(Debug, Clone)]
pub struct RouteEntry {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// The rows, each with its handler; [`RouteTable::into_router`] puts the
/// guard in front of every one.
pub struct RouteTable {
    routes: Vec<(RouteEntry, MethodRouter<AppState>)>,
    entries: Vec<RouteEntry>,
}

impl RouteTable {
    fn new() -> RouteTable {
        RouteTable {
            routes: Vec::new(),
            entries: Vec::new(),
        }
    }

    fn add<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> RouteTable
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter =
            MethodFilter::try_from(method.clone()).expect("the table uses standard methods");
        let entry = RouteEntry {
            method,
            path,
            access,
        };
        self.routes.push((entry.clone(), on(filter, handler)));
        self.entries.push(entry);
        self
    }

    pub fn entries(&self) -> &[RouteEntry] {
        &self.entries
    }

    /// The routes, each behind its guard: the gate of `state` and the
    /// row's access.
    pub fn into_router(self, state: &AppState) -> Router<AppState> {
        self.routes
            .into_iter()
            .fold(Router::new(), |router, (entry, route)| {
                let route = route.route_layer(state.gate.guard(entry.access));
                router.route(&format!("{PREFIX}{}", entry.path), route)
            })
    }
}
