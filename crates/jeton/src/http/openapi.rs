//! OpenAPI 3.1 of the API, generated from the handlers' annotations, at
//! `/openapi.json`, and Swagger UI (bundled, works offline) at `/docs`. It
//! is the normative detail of every endpoint; `docs/api.md` is the prose
//! around it (credentials, errors, pagination, idempotency).

use axum::Router;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_swagger_ui::SwaggerUi;

use super::{admin, catalog, customers, orders, state::AppState, tokens};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Jeton",
        description = "A storefront API with first-class client keys and user tokens. \
            Every request carries `Authorization: Bearer <token>`: a publishable key (`jt_pk_`), \
            a secret key (`jt_sk_`) or a user token (`jt_ut_`). Errors are RFC 9457 problem+json."
    ),
    paths(
        catalog::list_products,
        catalog::get_product,
        customers::register,
        customers::login,
        customers::logout,
        customers::me,
        tokens::list,
        tokens::create,
        tokens::revoke,
        tokens::revoke_all,
        orders::place,
        orders::list_mine,
        orders::get_mine,
        admin::products::create,
        admin::products::update,
        admin::clients::create,
        admin::clients::list,
        admin::clients::get,
        admin::clients::rotate,
        admin::clients::revoke,
        admin::customers::revoke_tokens,
        admin::audit::list,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "catalog", description = "Products; publishable keys, secret keys and user tokens"),
        (name = "customers", description = "Registration and login through a client key; profile with a user token"),
        (name = "tokens", description = "A customer's own tokens"),
        (name = "orders", description = "Placing and reading one's own orders"),
        (name = "admin", description = "Secret keys with the `admin` ability"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("jt_pk_… | jt_sk_… | jt_ut_…")
                    .build(),
            ),
        );
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
