//! The one error type of the API, rendered as RFC 9457 problem+json with a
//! stable `code`. Internal details are logged, never returned.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chainpay_core::compliance::Rule;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("authentication required")]
    Unauthorized,
    #[error("you are not allowed to do this")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Not found, with a sentence saying why.
    #[error("{0}")]
    NotFoundBecause(&'static str),
    #[error("phone number or PIN is wrong")]
    InvalidCredentials,
    #[error("too many wrong PINs; try again in {retry_after_s} seconds")]
    AccountLocked { retry_after_s: i64 },
    #[error("{0}")]
    WeakPin(String),
    #[error("this phone number is already registered")]
    PhoneTaken,
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("{0}")]
    AccountSuspended(&'static str),
    #[error("{0}")]
    KycRequired(&'static str),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyConflict,
    #[error("too many requests; retry in {retry_after_s} seconds")]
    RateLimited { retry_after_s: i64 },
    /// An AML rule refused the movement. The customer sees only the rule's
    /// plain message; which list or score fired stays in the audit log.
    #[error("{}", .0.message)]
    Compliance(Box<crate::compliance::Refusal>),
    #[error("{0}")]
    QuoteExpired(&'static str),
    #[error("{0}")]
    NotEligible(&'static str),
    /// A payment network (M-Pesa) refused or could not be reached.
    #[error("{0}")]
    Upstream(&'static str),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Internal(error.into())
    }
}

/// RFC 9457 problem details plus ChainPay's stable `code`.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::WeakPin(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::AccountSuspended(_) | ApiError::KycRequired(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound(_) | ApiError::NotFoundBecause(_) => StatusCode::NOT_FOUND,
            ApiError::AccountLocked { .. } => StatusCode::LOCKED,
            ApiError::PhoneTaken | ApiError::IdempotencyConflict => StatusCode::CONFLICT,
            ApiError::InsufficientFunds => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Compliance(refusal) => match refusal.rule {
                Rule::KycTier | Rule::Sanctions => StatusCode::FORBIDDEN,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            ApiError::QuoteExpired(_) => StatusCode::CONFLICT,
            ApiError::NotEligible(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_error",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound(_) | ApiError::NotFoundBecause(_) => "not_found",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::AccountLocked { .. } => "account_locked",
            ApiError::WeakPin(_) => "weak_pin",
            ApiError::PhoneTaken => "phone_taken",
            ApiError::InsufficientFunds => "insufficient_funds",
            ApiError::AccountSuspended(_) => "account_suspended",
            ApiError::KycRequired(_) => "kyc_required",
            ApiError::IdempotencyConflict => "idempotency_conflict",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Compliance(refusal) => match refusal.rule {
                Rule::KycTier => "kyc_required",
                Rule::SingleLimit | Rule::DailyLimit | Rule::Structuring => "limit_exceeded",
                Rule::HourlyVelocity => "velocity_exceeded",
                Rule::Sanctions => "sanctioned",
            },
            ApiError::QuoteExpired(_) => "quote_expired",
            ApiError::NotEligible(_) => "not_eligible",
            ApiError::Upstream(_) => "mpesa_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            type_uri: format!(
                "https://chainpay.dev/problems/{}",
                self.code().replace('_', "-")
            ),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code().to_owned(),
        }
    }

    fn retry_after(&self) -> Option<i64> {
        match self {
            ApiError::AccountLocked { retry_after_s } | ApiError::RateLimited { retry_after_s } => {
                Some((*retry_after_s).max(1))
            }
            _ => None,
        }
    }
}

/// Renders a problem with its status and content type.
pub fn problem_response(problem: &Problem, retry_after_s: Option<i64>) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(problem)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(seconds) = retry_after_s {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "request failed");
        }
        problem_response(&self.problem(), self.retry_after())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::Validation(match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "expected a JSON body (Content-Type: application/json)".into()
            }
            other => other.body_text(),
        })
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::Validation(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::Validation(rejection.body_text())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
