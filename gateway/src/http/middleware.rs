//! Cross-cutting request handling: request ids in logs and audit rows,
//! metrics, and problem+json for panics and unknown routes.

use std::any::Any;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Response};
use axum::middleware::Next;
use axum::response::IntoResponse;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::error::{problem, problem_response, ApiError, Missing, Problem};
use super::AppState;
use crate::audit::REQUEST_ID;

/// Longest client-chosen request id kept; longer or stranger ones are
/// replaced by a fresh one, so an id can neither fill a log line or an audit
/// row nor forge fields in them.
const MAX_REQUEST_ID_LEN: usize = 64;

fn acceptable_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Drops a client's `x-request-id` unless it is short and of a safe
/// alphabet; the id layer then assigns a fresh UUID.
pub async fn sanitize_request_id(mut request: Request) -> Request {
    let unsafe_id = request
        .headers()
        .get("x-request-id")
        .is_some_and(|id| !acceptable_request_id(id.as_bytes()));
    if unsafe_id {
        request.headers_mut().remove("x-request-id");
    }
    request
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// One span per request carrying its id; the query string is left out of
/// logs on purpose (it may carry callback tokens).
pub fn trace_layer() -> TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    impl Fn(&Request<Body>) -> tracing::Span + Clone,
> {
    TraceLayer::new_for_http()
        .make_span_with(|request: &Request<Body>| {
            tracing::info_span!(
                "request",
                method = %request.method(),
                path = %request.uri().path(),
                request_id = %request_id(request.headers()),
                user_id = tracing::field::Empty,
            )
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO))
}

/// Records metrics per matched route and makes the request id visible to
/// the audit log for the duration of the request.
pub async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let id = request_id(request.headers());
    let response = REQUEST_ID.scope(id, next.run(request)).await;
    let status = response.status().as_u16().to_string();
    state
        .metrics
        .http_requests
        .with_label_values(&[&method, &route, &status])
        .inc();
    state
        .metrics
        .http_latency
        .with_label_values(&[&method, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// A panic becomes a logged 500 problem, never a dropped connection.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = message, "handler panicked");
    ApiError::Internal(anyhow::anyhow!("panic")).into_response()
}

pub async fn not_found() -> Response<Body> {
    let problem: Problem = problem(&ApiError::NotFound(Missing::Route));
    problem_response(&problem, None)
}
