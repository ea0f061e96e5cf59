//! The API's wording of the domain [`Error`]: RFC 9457 problem+json with a
//! stable `code`. This is the REST channel's home for refusal sentences;
//! internal details are logged, never returned.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::MatchedPath;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chainpay_core::compliance::Rule;
use chainpay_core::refusal::Refusal;
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::error::{Error as ApiError, Missing};

pub type ApiResult<T> = Result<T, ApiError>;

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

/// How long a client is asked to wait before trying again while the
/// database is out of reach (about what a pool takes to replace a lost
/// connection).
const UNREACHABLE_RETRY_AFTER_S: i64 = 2;

/// Whether `error` is the database being out of reach for now (see
/// [`crate::db::unreachable`]), rather than something broken for good.
fn database_unreachable(error: &ApiError) -> bool {
    let ApiError::Internal(cause) = error else {
        return false;
    };
    cause
        .chain()
        .any(|cause| cause.downcast_ref().is_some_and(crate::db::unreachable))
}

/// Marks a 500 whose cause was the database being out of reach.
#[derive(Clone, Copy)]
struct DatabaseUnreachable;

/// Answers `503 service_unavailable` with `Retry-After` for a request that
/// failed because the database was out of reach, when trying it again is
/// safe: a read, or a request carrying an `Idempotency-Key` to a route that
/// takes one (done at most once however often it is sent). Any other
/// request stays a 500: it may have moved money or changed something
/// before the database was lost (a hold committed, a prompt sent, an API
/// key made), and sent again it would do so twice.
pub async fn unreachable_is_retried_when_safe(
    axum::extract::State(keyed): axum::extract::State<super::docs::KeyedRoutes>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // Only what the decision needs is kept; it is made only for a response
    // marked, so a request that succeeds pays for none of it.
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let carries_key = request
        .headers()
        .contains_key(super::extract::IDEMPOTENCY_KEY);
    let response = next.run(request).await;
    if response.extensions().get::<DatabaseUnreachable>().is_none() {
        return response;
    }
    let keyed_route = route.is_some_and(|path| keyed.contains(&method, path.as_str()));
    if !(method.is_safe() || (carries_key && keyed_route)) {
        return response;
    }
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let problem = Problem {
        type_uri: "https://chainpay.dev/problems/service-unavailable".into(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: "the service cannot reach its database right now; try again shortly".into(),
        code: "service_unavailable".into(),
    };
    problem_response(&problem, Some(UNREACHABLE_RETRY_AFTER_S))
}

pub fn status(error: &ApiError) -> StatusCode {
    match error {
        ApiError::Validation(_) | ApiError::WeakPin => StatusCode::BAD_REQUEST,
        ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
        ApiError::Forbidden | ApiError::SecondAdminNeeded => StatusCode::FORBIDDEN,
        ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        ApiError::AccountLocked { .. } => StatusCode::LOCKED,
        ApiError::IdempotencyConflict | ApiError::RequestInFlight | ApiError::Conflict(_) => {
            StatusCode::CONFLICT
        }
        ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ApiError::Refused(refusal) => refusal_status(*refusal),
        ApiError::Compliance(compliance) => refusal_status(Refusal::Compliance(compliance.rule)),
        ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn refusal_status(refusal: Refusal) -> StatusCode {
    match refusal {
        Refusal::SelfPayment | Refusal::BelowMinimum => StatusCode::BAD_REQUEST,
        Refusal::AccountSuspended
        | Refusal::RecipientCannotReceive
        | Refusal::Compliance(Rule::KycTier | Rule::Sanctions) => StatusCode::FORBIDDEN,
        Refusal::PhoneTaken
        | Refusal::QuoteUsed
        | Refusal::QuoteExpired
        | Refusal::VoucherSpent
        | Refusal::VoucherOnHold
        | Refusal::RequestNotPending
        | Refusal::DocumentClaimed
        | Refusal::DocumentAlreadySubmitted => StatusCode::CONFLICT,
        Refusal::VoucherGuessesExhausted => StatusCode::TOO_MANY_REQUESTS,
        Refusal::MpesaRefused | Refusal::MpesaUnreachable => StatusCode::BAD_GATEWAY,
        Refusal::InsufficientFunds
        | Refusal::AmountNotPriceable
        | Refusal::ReversalNotEligible
        | Refusal::ReversalAlreadyRequested
        | Refusal::ReversalAlreadyDecided
        | Refusal::AgentUnknown
        | Refusal::MerchantUnknown
        | Refusal::InsufficientFloat
        | Refusal::VoucherUnknown
        | Refusal::ResetCodeInvalid
        | Refusal::PromptOwnPhoneOnly
        | Refusal::Compliance(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The stable code clients switch on.
pub fn code(error: &ApiError) -> &'static str {
    match error {
        ApiError::Validation(_) => "validation_error",
        ApiError::Unauthorized => "unauthorized",
        ApiError::Forbidden | ApiError::SecondAdminNeeded => "forbidden",
        ApiError::NotFound(_) => "not_found",
        ApiError::Conflict(_) => "conflict",
        ApiError::InvalidCredentials => "invalid_credentials",
        ApiError::AccountLocked { .. } => "account_locked",
        ApiError::WeakPin => "weak_pin",
        ApiError::IdempotencyConflict | ApiError::RequestInFlight => "idempotency_conflict",
        ApiError::RateLimited { .. } => "rate_limited",
        ApiError::Refused(refusal) => refusal_code(*refusal),
        ApiError::Compliance(compliance) => refusal_code(Refusal::Compliance(compliance.rule)),
        ApiError::Internal(_) => "internal_error",
    }
}

fn refusal_code(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::InsufficientFunds | Refusal::InsufficientFloat => "insufficient_funds",
        Refusal::BelowMinimum => "validation_error",
        Refusal::VoucherUnknown | Refusal::VoucherSpent | Refusal::VoucherOnHold => {
            "voucher_invalid"
        }
        Refusal::VoucherGuessesExhausted => "rate_limited",
        Refusal::DocumentClaimed | Refusal::DocumentAlreadySubmitted => "conflict",
        Refusal::ResetCodeInvalid => "invalid_credentials",
        Refusal::AccountSuspended | Refusal::RecipientCannotReceive => "account_suspended",
        Refusal::SelfPayment | Refusal::AmountNotPriceable => "validation_error",
        Refusal::QuoteUsed | Refusal::QuoteExpired => "quote_expired",
        Refusal::ReversalNotEligible
        | Refusal::ReversalAlreadyRequested
        | Refusal::ReversalAlreadyDecided
        | Refusal::AgentUnknown
        | Refusal::MerchantUnknown
        | Refusal::PromptOwnPhoneOnly => "not_eligible",
        Refusal::MpesaRefused | Refusal::MpesaUnreachable => "mpesa_unavailable",
        Refusal::PhoneTaken => "phone_taken",
        Refusal::RequestNotPending => "request_not_pending",
        Refusal::Compliance(Rule::KycTier) => "kyc_required",
        Refusal::Compliance(Rule::SingleLimit | Rule::DailyLimit | Rule::Structuring) => {
            "limit_exceeded"
        }
        Refusal::Compliance(Rule::HourlyVelocity) => "velocity_exceeded",
        Refusal::Compliance(Rule::Sanctions) => "sanctioned",
    }
}

/// The sentence an API client (and through it, a person) reads.
pub fn detail(error: &ApiError) -> String {
    match error {
        ApiError::Refused(refusal) => refusal_detail(*refusal).to_owned(),
        ApiError::Compliance(compliance) => {
            refusal_detail(Refusal::Compliance(compliance.rule)).to_owned()
        }
        ApiError::NotFound(Missing::UnsealedTransaction) => {
            "the transaction is not sealed into a block yet; try again shortly".to_owned()
        }
        ApiError::Internal(_) => "internal error".to_owned(),
        other => other.to_string(),
    }
}

fn refusal_detail(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::InsufficientFunds => "insufficient funds",
        Refusal::AccountSuspended => "this account is suspended",
        Refusal::RecipientCannotReceive => "the recipient's account cannot receive payments",
        Refusal::SelfPayment => "you cannot send money to yourself",
        Refusal::AmountNotPriceable => "this amount cannot be priced in that currency",
        Refusal::QuoteUsed => "this quote has already been used; ask for a new one",
        Refusal::QuoteExpired => "this quote has expired; ask for a new one",
        Refusal::ReversalNotEligible => {
            "only your own transfers of the last 24 hours without a reversal request can be reversed"
        }
        Refusal::ReversalAlreadyRequested => "a reversal of this transaction was already requested",
        Refusal::ReversalAlreadyDecided => "this reversal request has already been decided",
        Refusal::AgentUnknown => "no active agent has that agent number",
        Refusal::MerchantUnknown => "no active business has that till or paybill number",
        Refusal::RequestNotPending => "this payment request was already paid, declined or has expired",
        Refusal::InsufficientFloat => "the agent's float is not enough for this amount",
        Refusal::BelowMinimum => "this amount is below the smallest allowed",
        Refusal::VoucherUnknown => "no active voucher has this code; check it and try again",
        Refusal::VoucherSpent => "this voucher was already redeemed, cancelled or has expired",
        Refusal::VoucherOnHold => {
            "this voucher cannot be redeemed now; ask whoever gave it to you"
        }
        Refusal::VoucherGuessesExhausted => {
            "too many wrong voucher codes; redeeming is paused for 24 hours"
        }
        Refusal::DocumentClaimed => "this document is registered to another account",
        Refusal::DocumentAlreadySubmitted => {
            "an identity document is already under review or verified for this account"
        }
        Refusal::ResetCodeInvalid => {
            "the reset code is wrong, used up or expired; ask ChainPay support for a new one"
        }
        Refusal::PromptOwnPhoneOnly => "a deposit prompts only your own registered phone number",
        Refusal::MpesaRefused => {
            "M-Pesa refused the payment request; check the number and try again"
        }
        Refusal::MpesaUnreachable => "M-Pesa is not reachable right now; try again shortly",
        Refusal::PhoneTaken => "this phone number is already registered",
        Refusal::Compliance(rule) => match rule {
            Rule::KycTier => "your account cannot move money until your identity is verified",
            Rule::SingleLimit => "this amount is above your limit for a single transaction",
            Rule::DailyLimit => "this amount would take you over your daily limit",
            Rule::HourlyVelocity => "too many transactions in the last hour; please try again later",
            Rule::Structuring => "this transaction cannot be completed",
            Rule::Sanctions => "this transaction cannot be completed; contact support",
        },
    }
}

pub fn problem(error: &ApiError) -> Problem {
    let status = status(error);
    Problem {
        type_uri: format!(
            "https://chainpay.dev/problems/{}",
            code(error).replace('_', "-")
        ),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail(error),
        code: code(error).to_owned(),
    }
}

fn retry_after(error: &ApiError) -> Option<i64> {
    match error {
        ApiError::AccountLocked { retry_after_s } => retry_after_s.map(|s| s.max(1)),
        ApiError::RateLimited { retry_after_s } => Some((*retry_after_s).max(1)),
        _ => None,
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
        let mut response = problem_response(&problem(&self), retry_after(&self));
        if database_unreachable(&self) {
            response.extensions_mut().insert(DatabaseUnreachable);
        }
        response
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

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        ApiError::Validation(rejection.body_text())
    }
}
