//! The HTTP surface: shared state, the route table and middleware.

pub mod admin;
pub mod agent;
pub mod auth;
pub mod blockchain;
pub mod channels;
pub mod console;
pub mod docs;
pub mod error;
pub mod extract;
pub mod formats;
pub mod fx;
pub mod kyc;
pub mod merchant;
pub mod middleware;
pub mod mpesa;
pub mod ops;
pub mod paging;
pub mod payment_requests;
pub mod reversal;
pub mod server;
pub mod session;
pub mod transactions;
pub mod vouchers;
pub mod wallet;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use crate::state::AppState;

/// Largest request body accepted; every legitimate request is far smaller.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Requests still running after this are answered 408 so clients can retry.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
// A transfer batch given up answers its requests itself (a keyed one 503
// with Retry-After) before this timeout's bare 408 would.
const _: () = assert!((crate::config::POSTING_PATIENCE_MS as u128) < REQUEST_TIMEOUT.as_millis());

/// The `/api/v1` routes and the OpenAPI document describing exactly them.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .nest(
            "/api/v1",
            OpenApiRouter::new()
                .merge(auth::router())
                .merge(wallet::router())
                .merge(fx::router())
                .merge(transactions::router())
                .merge(blockchain::router())
                .merge(reversal::router())
                .merge(mpesa::router())
                .merge(channels::router())
                .merge(agent::router())
                .merge(vouchers::router())
                .merge(kyc::router())
                .merge(merchant::router())
                .merge(payment_requests::router())
                .merge(admin::router()),
        )
        .split_for_parts();
    docs::complete_errors(&mut openapi);
    formats::complete(&mut openapi);
    (router, openapi)
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api();
    let keyed = docs::KeyedRoutes::of(&openapi);
    let openapi = Arc::new(openapi);
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new()
        .merge(api)
        .merge(ops::router())
        .merge(console::router())
        .merge(crate::sim::router(&state.settings))
        .merge(docs::router(openapi))
        .fallback(middleware::not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            keyed,
            error::unreachable_is_retried_when_safe,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(middleware::trace_layer())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(axum::middleware::map_request(
            middleware::sanitize_request_id,
        ))
}
