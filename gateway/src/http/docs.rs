//! The OpenAPI document (generated from the handlers' annotations, so it
//! cannot drift from the routes) and `/docs`, an interactive explorer of it
//! (Swagger UI, vendored into the binary: it works without internet
//! access) where "Authorize" takes a bearer token or `cpk_` key and "Try it
//! out" sends real requests.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::response::Response as ApiResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::Config;

use super::error::ApiError;
use super::AppState;
use crate::error::Missing;

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
        (name = "merchant", description = "A business's API: payments, refunds, payment requests, webhooks, keys and withdrawals (its owner's token, or a cpk_ key within its scopes)"),
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
    let explorer = Arc::new(
        Config::new(["/api/v1/openapi.json"])
            .try_it_out_enabled(true)
            .persist_authorization(false),
    );
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/docs", get(|| async { Redirect::permanent("/docs/") }))
        .route("/docs/", get(explorer_index))
        .route("/docs/{*file}", get(explorer_file))
        .layer(Extension(openapi))
        .layer(Extension(explorer))
}

async fn explorer_index(Extension(config): Extension<Arc<Config<'static>>>) -> Response {
    explorer(config, "")
}

async fn explorer_file(
    Extension(config): Extension<Arc<Config<'static>>>,
    Path(file): Path<String>,
) -> Response {
    explorer(config, &file)
}

/// One file of the explorer; its initializer points at this document.
fn explorer(config: Arc<Config<'static>>, file: &str) -> Response {
    match utoipa_swagger_ui::serve(file, config) {
        Ok(Some(file)) => (
            [(header::CONTENT_TYPE, file.content_type)],
            file.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => ApiError::NotFound(Missing::Route).into_response(),
        Err(error) => {
            tracing::error!(%error, "the API explorer could not be served");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Completes every operation's errors with what the shared layers answer:
/// the extractors' 400 for a malformed body, path or query, the session's
/// 401, the admin gate's 403, a 500, and for reads and keyed requests the
/// 503 of a database out of reach; and says that every error is
/// `application/problem+json`, as it is sent.
pub fn complete_errors(openapi: &mut utoipa::openapi::OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let admin = path.starts_with("/api/v1/admin/");
        // Each with whether its method is safe (a read).
        let operations = [
            (true, &mut item.get),
            (false, &mut item.put),
            (false, &mut item.post),
            (false, &mut item.delete),
            (false, &mut item.patch),
        ];
        for (is_safe_method, operation) in operations {
            let Some(operation) = operation else {
                continue;
            };
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let takes_input = operation.request_body.is_some()
                || operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in != ParameterIn::Header);
            let keyed = takes_idempotency_key(operation);
            // What `error::unreachable_is_retried_when_safe` answers 503.
            let safe_to_retry = keyed || is_safe_method;
            let responses = &mut operation.responses.responses;
            let common = [
                (
                    takes_input,
                    "400",
                    "validation_error: a malformed body, path or query",
                ),
                (
                    secured,
                    "401",
                    "unauthorized: no token, or an expired, revoked or unknown one",
                ),
                (admin, "403", "forbidden: the caller is not an operator"),
                (
                    keyed,
                    "409",
                    "idempotency_conflict: the Idempotency-Key was used with another request, or that request is still running",
                ),
                (true, "500", "internal_error"),
                (
                    safe_to_retry,
                    "503",
                    "service_unavailable: the database could not be reached in time (a read, or a request carrying its Idempotency-Key); Retry-After says when to try again",
                ),
            ];
            for (applies, status, description) in common {
                if applies && !responses.contains_key(status) {
                    responses.insert(status.to_owned(), RefOr::T(problem(description)));
                }
            }
            for (status, response) in responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.as_str() >= "400", response) {
                    if let Some(content) = response.content.shift_remove("application/json") {
                        response.content.insert(PROBLEM_JSON.to_owned(), content);
                    }
                }
            }
        }
    }
}

const PROBLEM_JSON: &str = "application/problem+json";

/// Whether `operation` documents an `Idempotency-Key` header (each that
/// does reads it: `extract::idempotency_key`).
fn takes_idempotency_key(operation: &Operation) -> bool {
    operation
        .parameters
        .iter()
        .flatten()
        .any(is_idempotency_key)
}

/// Whether `parameter` is the `Idempotency-Key` header.
pub fn is_idempotency_key(parameter: &Parameter) -> bool {
    parameter.parameter_in == ParameterIn::Header
        && parameter.name.eq_ignore_ascii_case("Idempotency-Key")
}

/// The operations that take an `Idempotency-Key`, by path as the router
/// matches it and method, read from the document that describes them.
#[derive(Clone, Default)]
pub struct KeyedRoutes(Arc<HashMap<String, Vec<Method>>>);

impl KeyedRoutes {
    pub fn of(openapi: &utoipa::openapi::OpenApi) -> Self {
        let mut keyed: HashMap<String, Vec<Method>> = HashMap::new();
        for (path, item) in &openapi.paths.paths {
            let operations = [
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ];
            for (method, operation) in operations {
                if operation.as_ref().is_some_and(takes_idempotency_key) {
                    keyed.entry(path.clone()).or_default().push(method);
                }
            }
        }
        Self(Arc::new(keyed))
    }

    /// Whether the route matched as `path` takes a key for `method`.
    pub fn contains(&self, method: &Method, path: &str) -> bool {
        self.0
            .get(path)
            .is_some_and(|methods| methods.contains(method))
    }
}

fn problem(description: &str) -> ApiResponse {
    let mut response = ApiResponse::new(description);
    let schema = Ref::from_schema_name("Problem");
    response
        .content
        .insert(PROBLEM_JSON.to_owned(), Content::new(Some(schema)));
    response
}

/// This OpenAPI 3 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "OpenAPI 3 JSON")))]
async fn openapi_json(
    Extension(openapi): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json((*openapi).clone())
}
