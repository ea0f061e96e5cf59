//! Extractors that turn axum's rejections into [`ApiError`] problem+json.

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;

use axum::extract::rejection::JsonRejection;

use super::error::ApiError;

/// `Json<T>` whose malformed-body errors are `validation_error` problems.
/// JSON Schema counts `100.0` as the integer 100, so a body the typed
/// parse refuses is tried once more with such numbers written as integers
/// (only then: the common case parses once).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::Bytes::from_request(
            axum::extract::Request::from_parts(parts.clone(), body),
            state,
        )
        .await
        .map_err(|e| ApiError::Validation(e.body_text()))?;
        let request =
            axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection @ JsonRejection::JsonDataError(_)) => {
                integral(&bytes).map(Self).ok_or_else(|| rejection.into())
            }
            Err(rejection) => Err(rejection.into()),
        }
    }
}

/// `bytes` as `T` once every whole-valued float in it is an integer; `None`
/// when there was none to rewrite or it still does not parse.
fn integral<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    /// Beyond this a double no longer holds every integer exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    fn rewrite(value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::Number(n) if n.is_f64() => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() <= EXACT => {
                    *value = serde_json::Value::from(f as i64);
                    true
                }
                _ => false,
            },
            serde_json::Value::Array(items) => {
                items.iter_mut().fold(false, |any, v| rewrite(v) | any)
            }
            serde_json::Value::Object(map) => {
                map.values_mut().fold(false, |any, v| rewrite(v) | any)
            }
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    rewrite(&mut value)
        .then(|| serde_json::from_value(value).ok())
        .flatten()
}

/// `Form<T>` whose malformed-body and wrong-content-type errors are
/// `validation_error` problems, as for JSON bodies.
#[derive(FromRequest)]
#[from_request(via(axum::Form), rejection(ApiError))]
pub struct ApiForm<T>(pub T);

/// `Query<T>` whose bad-parameter errors are `validation_error` problems.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` whose bad-segment errors are `validation_error` problems.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// The header that makes a request safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The request's `Idempotency-Key`, if it carries one, for `user_id`'s
/// request identified by `fingerprint`.
pub fn idempotency_key(
    headers: &axum::http::HeaderMap,
    user_id: uuid::Uuid,
    fingerprint: &str,
) -> Result<Option<crate::idempotency::IdempotencyKey>, ApiError> {
    let Some(raw) = headers.get(IDEMPOTENCY_KEY) else {
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
