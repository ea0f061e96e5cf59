//! Operations endpoints: liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::{ApiError, Missing};
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// 200 as soon as the process serves HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// 200 only while PostgreSQL answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&state.pool)
        .await
    {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// `/metrics` on the main listener: only for a bearer of
/// `CHAINPAY_METRICS_TOKEN` (they show volumes by currency and outcome).
/// Without a token configured it is not served here at all; see
/// `CHAINPAY_METRICS_ADDR` for a private listener.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = &state.settings.metrics_token else {
        return ApiError::NotFound(Missing::Route).into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !crate::secrets::same_secret(given, expected) {
        return ApiError::Unauthorized.into_response();
    }
    exposition(&state).into_response()
}

fn exposition(state: &AppState) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The router of the private metrics listener (`CHAINPAY_METRICS_ADDR`):
/// `/metrics` and nothing else, without a token.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { exposition(&state) }),
        )
        .with_state(state)
}
