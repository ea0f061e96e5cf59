//! The OpenAPI document (generated from the handlers' annotations, so it
//! cannot drift from the routes) and a self-contained page that renders it.

use std::sync::Arc;

use axum::response::Html;
use axum::routing::get;
use axum::{Extension, Json, Router};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "ChainPay API", description = "Mobile money over USSD, SMS and REST. Amounts are integers in minor units."),
    paths(openapi_json),
    modifiers(&BearerAuth),
    components(schemas(super::error::Problem)),
    tags(
        (name = "auth", description = "Registration, login, PINs"),
        (name = "wallet", description = "Balances, transfers, conversions, history"),
        (name = "fx", description = "Exchange rates and locked conversion quotes"),
        (name = "blockchain", description = "The audit chain: blocks, inclusion proofs, validation"),
        (name = "mpesa", description = "M-Pesa deposits (STK Push), their status, and Daraja callbacks"),
        (name = "reversal", description = "Customers asking for a transfer to be reversed"),
        (name = "channels", description = "Africa's Talking webhooks: USSD, inbound SMS, delivery reports"),
        (name = "agent", description = "A cash agent's counter: cash-in, float summary, vouchers for cash (active agents only)"),
        (name = "vouchers", description = "Offline vouchers: buy, redeem once, cancel, and the key their signed form verifies against"),
        (name = "kyc", description = "Identity documents (numbers sealed, shown masked)"),
        (name = "merchant", description = "A business's own view: the payments it received (its owner's token)"),
        (name = "admin", description = "Operators only (role admin)"),
        (name = "meta", description = "This document")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub fn router(openapi: Arc<utoipa::openapi::OpenApi>) -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/docs", get(|| async { Html(DOCS_HTML) }))
        .layer(Extension(openapi))
}

/// This OpenAPI 3 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3 JSON")))]
async fn openapi_json(
    Extension(openapi): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json((*openapi).clone())
}

/// Renders the document in the browser without fetching anything from the
/// internet (operators may run ChainPay offline).
const DOCS_HTML: &str = include_str!("docs.html");
