//! M-Pesa endpoints: starting a deposit, its status and history, and the
//! Daraja callbacks (STK results, B2C results and queue timeouts, and the
//! answers of Transaction Status and Account Balance).
//!
//! Callbacks carry `?token=` (Daraja does not sign them); they are always
//! acknowledged quickly in Daraja's shape once the token is right, whatever
//! they say, and never move money twice.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chainpay_core::Msisdn;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Missing, Problem};
use super::extract::{idempotency_key, reply_response, ApiJson, ApiPath, ApiQuery};
use super::session::AuthUser;
use super::AppState;
use crate::mpesa::deposits::{self, DepositOrder, DepositView, Initiated};
use crate::mpesa::{self, payout_status, withdrawals};
use crate::reconciliation::float;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(initiate))
        .routes(routes!(callback))
        .routes(routes!(b2c_result))
        .routes(routes!(b2c_timeout))
        .routes(routes!(txstatus_result))
        .routes(routes!(txstatus_timeout))
        .routes(routes!(balance_result))
        .routes(routes!(balance_timeout))
        .routes(routes!(status))
        .routes(routes!(history))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InitiateRequest {
    /// KES cents, whole shillings (10000 = KES 100).
    #[schema(format = "mpesa-deposit-cents")]
    pub amount: i64,
    /// The Safaricom number to prompt; the caller's own by default.
    #[schema(format = "safaricom-phone")]
    pub phone: Option<String>,
}

/// Starts a deposit: `Idempotency-Key` makes a retry answer as the first
/// request did without prompting the phone again.
pub async fn start_deposit(
    state: &AppState,
    user: &AuthUser,
    headers: &HeaderMap,
    amount: i64,
    phone: Option<&str>,
) -> ApiResult<Response> {
    let phone = match phone.map(str::trim).filter(|p| !p.is_empty()) {
        Some(raw) => Msisdn::parse(raw).map_err(|e| ApiError::Validation(format!("phone: {e}")))?,
        None => Msisdn::parse(&user.phone).map_err(|e| ApiError::Internal(e.into()))?,
    };
    let order = DepositOrder::new(user.user_id, &phone, amount)?;
    let fingerprint = format!("POST /mpesa/initiate|{amount}|{phone}");
    let key = idempotency_key(headers, user.user_id, &fingerprint)?;
    let reply = deposits::initiate(state, &order, key.as_ref()).await;
    Ok(reply_response(reply, |_| StatusCode::ACCEPTED))
}

/// Deposit KES from M-Pesa: the phone gets an STK prompt; the wallet is
/// credited when Safaricom confirms. Poll `/mpesa/status/{ref}`.
#[utoipa::path(post, path = "/mpesa/initiate", tag = "mpesa", security(("bearer" = [])), request_body = InitiateRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 202, body = Initiated), (status = 400, body = Problem),
              (status = 403, description = "account_suspended, kyc_required or sanctioned", body = Problem),
              (status = 422, description = "not_eligible (a phone other than the caller's own), limit_exceeded or velocity_exceeded", body = Problem),
              (status = 429, description = "rate_limited: a phone is prompted a few times an hour", body = Problem),
              (status = 502, description = "mpesa_unavailable", body = Problem)))]
async fn initiate(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<InitiateRequest>,
) -> ApiResult<Response> {
    start_deposit(&state, &user, &headers, body.amount, body.phone.as_deref()).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackToken {
    /// Must equal `MPESA_CALLBACK_TOKEN`.
    /// Only compared, never stored: any text.
    #[param(pattern = r"^[\s\S]*$")]
    pub token: Option<String>,
}

/// Daraja never writes NUL, and PostgreSQL can neither store it nor look up
/// an id holding it: such a body reaches its reader as
/// `{"unreadable": <the body, NUL shown as U+FFFD>}`, which no reader can
/// parse, so it is recorded (and audited) as unreadable and moves nothing.
fn readable(body: Value) -> Value {
    if crate::db::holds_nul(&body) {
        json!({ "unreadable": crate::db::jsonb_safe(body) })
    } else {
        body
    }
}

fn ack(description: &str) -> Response {
    (
        StatusCode::OK,
        Json(json!({"ResultCode": 0, "ResultDesc": description})),
    )
        .into_response()
}

/// Daraja's STK Push result for a deposit.
#[utoipa::path(post, path = "/mpesa/callback", tag = "mpesa", params(CallbackToken),
    request_body(content = Object, content_type = "application/json", description = "`{\"Body\":{\"stkCallback\":{MerchantRequestID, CheckoutRequestID, ResultCode, ResultDesc, CallbackMetadata?}}}`, as Daraja posts it"),
    responses((status = 200, description = "`{ResultCode: 0, ResultDesc}`"), (status = 401, body = Problem)))]
async fn callback(
    State(state): State<AppState>,
    ApiQuery(token): ApiQuery<CallbackToken>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    if !mpesa::token_matches(&state, token.token.as_deref()) {
        // Counted, never stored: an unauthenticated caller writes nothing.
        state.metrics.reject_webhook("mpesa_stk", "bad_token");
        return Err(ApiError::Unauthorized);
    }
    let outcome = deposits::on_callback(&state, readable(body)).await?;
    tracing::info!(outcome = %outcome, "M-Pesa STK callback");
    Ok(ack("Accepted"))
}

async fn b2c(
    state: &AppState,
    token: &CallbackToken,
    body: Value,
    timed_out: bool,
) -> ApiResult<Response> {
    if !mpesa::token_matches(state, token.token.as_deref()) {
        state.metrics.reject_webhook("mpesa_b2c", "bad_token");
        return Err(ApiError::Unauthorized);
    }
    let outcome = withdrawals::on_result(state, readable(body), timed_out).await?;
    tracing::info!(outcome = %outcome, timed_out, "M-Pesa B2C result");
    Ok(ack("Accepted"))
}

/// Daraja's B2C result for a withdrawal.
#[utoipa::path(post, path = "/mpesa/b2c/result", tag = "mpesa", params(CallbackToken),
    request_body(content = Object, content_type = "application/json", description = "`{\"Result\":{ResultType, ResultCode, ResultDesc, OriginatorConversationID, ConversationID, TransactionID, ResultParameters?}}`, as Daraja posts it"),
    responses((status = 200, description = "Acknowledged"), (status = 401, body = Problem)))]
async fn b2c_result(
    State(state): State<AppState>,
    ApiQuery(token): ApiQuery<CallbackToken>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    b2c(&state, &token, body, false).await
}

/// Daraja's queue timeout for a withdrawal: the money stays held until
/// Transaction Status says what became of it.
#[utoipa::path(post, path = "/mpesa/b2c/timeout", tag = "mpesa", params(CallbackToken),
    request_body(content = Object, content_type = "application/json", description = "Daraja's `{\"Result\":{…}}` queue timeout"),
    responses((status = 200, description = "Acknowledged"), (status = 401, body = Problem)))]
async fn b2c_timeout(
    State(state): State<AppState>,
    ApiQuery(token): ApiQuery<CallbackToken>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    b2c(&state, &token, body, true).await
}

/// Which Daraja answer a callback carries.
#[derive(Clone, Copy)]
enum Enquiry {
    TransactionStatus,
    AccountBalance,
}

async fn enquiry(
    state: &AppState,
    token: &CallbackToken,
    body: Value,
    which: Enquiry,
    timed_out: bool,
) -> ApiResult<Response> {
    let name = match which {
        Enquiry::TransactionStatus => "mpesa_txstatus",
        Enquiry::AccountBalance => "mpesa_balance",
    };
    if !mpesa::token_matches(state, token.token.as_deref()) {
        state.metrics.reject_webhook(name, "bad_token");
        return Err(ApiError::Unauthorized);
    }
    let body = readable(body);
    let outcome = match which {
        Enquiry::TransactionStatus => payout_status::on_result(state, body, timed_out).await?,
        Enquiry::AccountBalance => float::on_result(&state.pool, &body, timed_out).await?,
    };
    tracing::info!(outcome = %outcome, timed_out, webhook = name, "M-Pesa enquiry answer");
    Ok(ack("Accepted"))
}

/// Daraja's Transaction Status result: what became of a payout whose
/// answer was lost; settles it once.
#[utoipa::path(post, path = "/mpesa/txstatus/result", tag = "mpesa", params(CallbackToken),
    request_body(content = Object, content_type = "application/json", description = "`{\"Result\":{…}}`: a Transaction Status answer, as Daraja posts it"),
    responses((status = 200, description = "Acknowledged"), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn txstatus_result(
    State(state): State<AppState>,
    ApiQuery(token): ApiQuery<CallbackToken>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    enquiry(&state, &token, body, Enquiry::TransactionStatus, false).await
}

/// Daraja's queue timeout for a Transaction Status query: asked again later.
#[utoipa::path(post, path = "/mpesa/txstatus/timeout", tag = "mpesa", params(CallbackToken),
    request_body(content = Object, content_type = "application/json", description = "Daraja's `{\"Result\":{…}}` queue timeout"),
    responses((status = 200, description = "Acknowledged"), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn txstatus_timeout(
    State(state): State<AppState>,
    ApiQuery(token): ApiQuery<CallbackToken>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    enquiry(&state, &token, body, Enquiry::TransactionStatus, true).await
}

/// Daraja's Account Balance result, for the float check.
#[utoipa::path(post, path = "/mpesa/balance/result", tag = "mpesa", params(CallbackToken),
    request_body(content = Object, content_type = "application/json", description = "`{\"Result\":{…}}`: an Account Balance answer, as Daraja posts it"),
    responses((status = 200, description = "Acknowledged"), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn balance_result(
    State(state): State<AppState>,
    ApiQuery(token): ApiQuery<CallbackToken>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    enquiry(&state, &token, body, Enquiry::AccountBalance, false).await
}

/// Daraja's queue timeout for an Account Balance query.
#[utoipa::path(post, path = "/mpesa/balance/timeout", tag = "mpesa", params(CallbackToken),
    request_body(content = Object, content_type = "application/json", description = "Daraja's `{\"Result\":{…}}` queue timeout"),
    responses((status = 200, description = "Acknowledged"), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn balance_timeout(
    State(state): State<AppState>,
    ApiQuery(token): ApiQuery<CallbackToken>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    enquiry(&state, &token, body, Enquiry::AccountBalance, true).await
}

/// One of the caller's deposits.
#[utoipa::path(get, path = "/mpesa/status/{ref}", tag = "mpesa", security(("bearer" = [])),
    params(("ref" = Uuid, Path, description = "The deposit's ref")),
    responses((status = 200, body = DepositView), (status = 404, body = Problem)))]
async fn status(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(reference): ApiPath<Uuid>,
) -> ApiResult<Json<DepositView>> {
    let owner = (!user.is_admin()).then_some(user.user_id);
    deposits::find(&state, owner, reference)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound(Missing::Deposit))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DepositHistory {
    pub deposits: Vec<DepositView>,
}

/// The caller's deposits, newest first.
#[utoipa::path(get, path = "/mpesa/history", tag = "mpesa", security(("bearer" = [])),
    responses((status = 200, body = DepositHistory)))]
async fn history(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<DepositHistory>> {
    Ok(Json(DepositHistory {
        deposits: deposits::history(&state, Some(user.user_id), None, 100).await?,
    }))
}
