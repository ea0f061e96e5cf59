//! Extractors that turn axum's rejections into [`ApiError`] problem+json.

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;

use super::error::ApiError;

/// `Json<T>` whose malformed-body errors are `validation_error` problems.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` whose bad-parameter errors are `validation_error` problems.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` whose bad-segment errors are `validation_error` problems.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// The request's `Idempotency-Key`, if it carries one, for `user_id`'s
/// request identified by `fingerprint`.
pub fn idempotency_key(
    headers: &axum::http::HeaderMap,
    user_id: uuid::Uuid,
    fingerprint: &str,
) -> Result<Option<crate::idempotency::IdempotencyKey>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let raw = raw.to_str().map_err(|_| {
        ApiError::Validation("Idempotency-Key must be visible ASCII characters".into())
    })?;
    crate::idempotency::IdempotencyKey::new(user_id, raw, fingerprint).map(Some)
}

/// The response to a keyed request: its result (201, or 202 for a movement
/// still waiting on a channel) or its problem, and `Idempotent-Replayed:
/// true` when it repeats an earlier answer.
pub fn reply_response<T: serde::Serialize>(
    reply: crate::movements::Reply<T>,
    status: impl FnOnce(&T) -> axum::http::StatusCode,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = match reply.outcome {
        Ok(result) => (status(&result), axum::Json(result)).into_response(),
        Err(error) => error.into_response(),
    };
    if reply.replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    response
}
