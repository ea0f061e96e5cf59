//! The caller's wallets: balances, sending money, history.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use chainpay_core::status::TxStatus;
use chainpay_core::{Amount, CurrencyCode, Msisdn};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{idempotency_key, reply_response, ApiJson, ApiQuery};
use super::paging::{next_cursor, PageQuery};
use super::session::AuthUser;
use super::AppState;
use crate::movements::cash_out::{CashOutOrder, CashOutPreview};
use crate::movements::conversion::{ConvertOrder, ConvertTerms};
use crate::movements::transfer::{SendOrder, SendPreview};
use crate::movements::{self, Operation};
use crate::mpesa::withdrawals::{self, WithdrawOrder};
use crate::transactions::{self, TxView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(balances))
        .routes(routes!(send))
        .routes(routes!(preview_send))
        .routes(routes!(convert))
        .routes(routes!(deposit))
        .routes(routes!(withdraw))
        .routes(routes!(preview_withdraw))
        .routes(routes!(list_transactions))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Wallet {
    pub currency: String,
    /// Minor units.
    pub balance: i64,
    /// Reserved for pending operations.
    pub locked: i64,
    /// `balance - locked`: what can be spent now.
    pub available: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Balances {
    pub wallets: Vec<Wallet>,
}

/// Every wallet of the caller, one per supported currency.
#[utoipa::path(get, path = "/wallet/balances", tag = "wallet", security(("bearer" = [])),
    responses((status = 200, body = Balances), (status = 401, body = Problem)))]
async fn balances(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Balances>> {
    let wallets = sqlx::query_as!(
        Wallet,
        r#"SELECT currency, balance, locked, balance - locked AS "available!"
           FROM accounts WHERE kind = 'wallet' AND user_id = $1 ORDER BY currency"#,
        user.user_id
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Balances { wallets }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SendRequest {
    /// Recipient's registered phone, any accepted format.
    #[schema(format = "phone")]
    pub to_phone: String,
    /// Positive, in minor units of `currency`.
    #[schema(format = "minor-units")]
    pub amount: i64,
    #[schema(format = "currency")]
    pub currency: String,
    pub note: Option<String>,
}

/// Longest note a sender may attach.
const MAX_NOTE_CHARS: usize = 140;

fn parse_send(user: &AuthUser, body: &SendRequest) -> Result<SendOrder, ApiError> {
    let to_phone = Msisdn::parse(&body.to_phone)
        .map_err(|e| ApiError::Validation(format!("to_phone: {e}")))?;
    let amount =
        Amount::new(body.amount).map_err(|e| ApiError::Validation(format!("amount: {e}")))?;
    let currency = CurrencyCode::parse(&body.currency)
        .map_err(|e| ApiError::Validation(format!("currency: {e}")))?;
    let note = body
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS || n.chars().any(char::is_control))
    {
        return Err(ApiError::Validation(format!(
            "note: at most {MAX_NOTE_CHARS} printable characters"
        )));
    }
    Ok(SendOrder {
        from_user_id: user.user_id,
        to_phone,
        amount,
        currency,
        note,
    })
}

/// Send money to another registered user in the same currency. The tiered
/// fee is charged on top; the AML rules apply. Safe to retry with `Idempotency-Key`.
#[utoipa::path(post, path = "/wallet/send", tag = "wallet", security(("bearer" = [])), request_body = SendRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body replay the first answer")),
    responses((status = 201, body = TxView),
              (status = 400, description = "validation_error", body = Problem),
              (status = 403, description = "account_suspended, kyc_required or sanctioned", body = Problem),
              (status = 404, description = "recipient not registered", body = Problem),
              (status = 409, description = "idempotency_conflict", body = Problem),
              (status = 422, description = "insufficient_funds, limit_exceeded or velocity_exceeded", body = Problem)))]
async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendRequest>,
) -> ApiResult<Response> {
    let order = parse_send(&user, &body)?;
    let fingerprint = format!(
        "POST /wallet/send|{}|{}|{}|{}",
        order.to_phone,
        order.amount.minor(),
        order.currency,
        order.note.as_deref().unwrap_or("")
    );
    run_keyed(&state, &headers, user.user_id, &fingerprint, &order).await
}

/// Runs a movement under the request's `Idempotency-Key`, if any.
pub(super) async fn run_keyed<O: Operation>(
    state: &AppState,
    headers: &HeaderMap,
    user_id: uuid::Uuid,
    fingerprint: &str,
    op: &O,
) -> ApiResult<Response> {
    let key = idempotency_key(headers, user_id, fingerprint)?;
    let reply = op.submit(state, key).await;
    Ok(movement_response(reply))
}

/// A movement's response: 201 when done, 202 when it waits on a channel.
pub fn movement_response(reply: movements::Reply) -> Response {
    reply_response(reply, |view| {
        if view.status == TxStatus::Pending.as_str() {
            StatusCode::ACCEPTED
        } else {
            StatusCode::CREATED
        }
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    #[param(format = "phone")]
    pub to_phone: String,
    #[param(format = "minor-units")]
    pub amount: i64,
    #[param(format = "currency")]
    pub currency: String,
}

/// What a transfer would cost and whom it would reach, without moving money:
/// the screen a sender confirms.
#[utoipa::path(get, path = "/wallet/send/preview", tag = "wallet", security(("bearer" = [])), params(PreviewQuery),
    responses((status = 200, body = SendPreview),
              (status = 400, description = "validation_error", body = Problem),
              (status = 404, description = "recipient not registered", body = Problem)))]
async fn preview_send(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<PreviewQuery>,
) -> ApiResult<Json<SendPreview>> {
    let request = SendRequest {
        to_phone: query.to_phone,
        amount: query.amount,
        currency: query.currency,
        note: None,
    };
    let order = parse_send(&user, &request)?;
    Ok(Json(order.preview(&state).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConvertRequest {
    /// A quote from `GET /fx/quote`: executes exactly as quoted.
    pub quote_id: Option<uuid::Uuid>,
    /// Without a quote: convert `amount` of `from_currency` at the current rate.
    #[schema(format = "currency")]
    pub from_currency: Option<String>,
    #[schema(format = "currency")]
    pub to_currency: Option<String>,
    #[schema(format = "minor-units")]
    pub amount: Option<i64>,
}

fn parse_convert(body: &ConvertRequest) -> Result<ConvertTerms, ApiError> {
    match (
        body.quote_id,
        &body.from_currency,
        &body.to_currency,
        body.amount,
    ) {
        (Some(quote_id), None, None, None) => Ok(ConvertTerms::Quoted(quote_id)),
        (None, Some(from), Some(to), Some(amount)) => Ok(ConvertTerms::Spot {
            from: CurrencyCode::parse(from)
                .map_err(|e| ApiError::Validation(format!("from_currency: {e}")))?,
            to: CurrencyCode::parse(to)
                .map_err(|e| ApiError::Validation(format!("to_currency: {e}")))?,
            amount: Amount::new(amount)
                .map_err(|e| ApiError::Validation(format!("amount: {e}")))?,
        }),
        _ => Err(ApiError::Validation(
            "give either quote_id, or from_currency, to_currency and amount".into(),
        )),
    }
}

/// Convert between two of the caller's wallets: at a quote's locked rate, or
/// at the current rate. The fee is charged in the source currency on top.
#[utoipa::path(post, path = "/wallet/convert", tag = "wallet", security(("bearer" = [])), request_body = ConvertRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = TxView),
              (status = 400, description = "validation_error", body = Problem),
              (status = 403, description = "account_suspended or sanctioned", body = Problem),
              (status = 404, description = "unknown quote", body = Problem),
              (status = 409, description = "quote_expired or idempotency_conflict", body = Problem),
              (status = 422, description = "insufficient_funds, limit_exceeded or velocity_exceeded", body = Problem)))]
async fn convert(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ConvertRequest>,
) -> ApiResult<Response> {
    let terms = parse_convert(&body)?;
    let fingerprint = format!(
        "POST /wallet/convert|{}",
        serde_json::to_string(&body).map_err(anyhow::Error::from)?
    );
    let order = ConvertOrder {
        user_id: user.user_id,
        terms,
    };
    run_keyed(&state, &headers, user.user_id, &fingerprint, &order).await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransactionPage {
    pub transactions: Vec<TxView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The caller's transactions, newest first, with cursor pagination.
#[utoipa::path(get, path = "/wallet/transactions", tag = "wallet", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = TransactionPage), (status = 400, body = Problem)))]
async fn list_transactions(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<TransactionPage>> {
    let limit = query.limit()?;
    let before = query.before()?;
    let transactions =
        transactions::list_for_user(state.read_pool(), user.user_id, before, limit).await?;
    let next_cursor = next_cursor(
        transactions.len(),
        limit,
        transactions.last().map(|t| t.seq),
    );
    Ok(Json(TransactionPage {
        transactions,
        next_cursor,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DepositRequest {
    /// KES cents, whole shillings.
    #[schema(format = "mpesa-deposit-cents")]
    pub amount: i64,
    #[schema(schema_with = kes)]
    pub currency: String,
    #[schema(schema_with = mpesa)]
    pub method: String,
    /// The Safaricom number to prompt; the caller's own by default.
    #[schema(format = "safaricom-phone")]
    pub phone: Option<String>,
}

fn kes() -> utoipa::openapi::schema::Object {
    super::formats::one_of(["KES"])
}

fn mpesa() -> utoipa::openapi::schema::Object {
    super::formats::one_of(["mpesa"])
}

/// Deposit through M-Pesa (as `/mpesa/initiate`).
#[utoipa::path(post, path = "/wallet/deposit", tag = "wallet", security(("bearer" = [])), request_body = DepositRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 202, body = crate::mpesa::deposits::Initiated), (status = 400, body = Problem),
              (status = 403, description = "account_suspended, kyc_required or sanctioned", body = Problem),
              (status = 422, description = "not_eligible (a phone other than the caller's own), limit_exceeded or velocity_exceeded", body = Problem),
              (status = 429, description = "rate_limited: a phone is prompted a few times an hour", body = Problem),
              (status = 502, description = "mpesa_unavailable", body = Problem)))]
async fn deposit(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DepositRequest>,
) -> ApiResult<Response> {
    if body.method != "mpesa" || !body.currency.eq_ignore_ascii_case("KES") {
        return Err(ApiError::Validation(
            "deposits are in KES through method `mpesa`".into(),
        ));
    }
    super::mpesa::start_deposit(&state, &user, &headers, body.amount, body.phone.as_deref()).await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WithdrawRequest {
    /// Minor units: whole KES shillings for `mpesa`; any amount for `agent`.
    #[schema(format = "minor-units")]
    pub amount: i64,
    /// `KES` for `mpesa`; any supported currency the agent holds for `agent`.
    #[schema(format = "currency")]
    pub currency: String,
    /// `mpesa` (to the caller's own number) or `agent` (cash at a counter).
    #[schema(schema_with = withdraw_methods)]
    pub method: String,
    /// Six digits; required for `agent`.
    #[schema(pattern = "^[0-9]{6}$")]
    pub agent_number: Option<String>,
}

fn withdraw_methods() -> utoipa::openapi::schema::Object {
    super::formats::one_of(["mpesa", "agent"])
}

fn parse_cash_out(
    user: &AuthUser,
    agent_number: Option<&str>,
    amount: i64,
    currency: &str,
) -> ApiResult<CashOutOrder> {
    let agent_number = agent_number
        .map(str::trim)
        .filter(|n| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ApiError::Validation("agent_number: six digits".into()))?;
    Ok(CashOutOrder {
        customer_id: user.user_id,
        agent_number: agent_number.to_owned(),
        amount: Amount::new(amount).map_err(|e| ApiError::Validation(format!("amount: {e}")))?,
        currency: CurrencyCode::parse(currency)
            .map_err(|e| ApiError::Validation(format!("currency: {e}")))?,
    })
}

/// Withdraw: to the caller's own M-Pesa number (KES; held at once and paid
/// out by M-Pesa, 202 `PENDING`; a failed payout is refunded), or as cash at
/// an agent (201 `COMPLETED`: the agent is told by SMS to hand it over;
/// the fee is shared with the agent as commission).
#[utoipa::path(post, path = "/wallet/withdraw", tag = "wallet", security(("bearer" = [])), request_body = WithdrawRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, description = "cash at an agent", body = TxView),
              (status = 202, description = "to M-Pesa, pending", body = TxView), (status = 400, body = Problem),
              (status = 403, description = "account_suspended, kyc_required or sanctioned", body = Problem),
              (status = 409, description = "idempotency_conflict", body = Problem),
              (status = 422, description = "insufficient_funds, limit_exceeded, velocity_exceeded or not_eligible (no such active agent)", body = Problem),
              (status = 502, description = "mpesa_unavailable", body = Problem)))]
async fn withdraw(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<WithdrawRequest>,
) -> ApiResult<Response> {
    match body.method.as_str() {
        "mpesa" if body.currency.eq_ignore_ascii_case("KES") => {}
        "mpesa" => return Err(ApiError::Validation("M-Pesa withdrawals are in KES".into())),
        "agent" => {
            let order = parse_cash_out(
                &user,
                body.agent_number.as_deref(),
                body.amount,
                &body.currency,
            )?;
            let fingerprint = format!(
                "POST /wallet/withdraw|agent|{}|{}|{}",
                order.agent_number,
                order.amount.minor(),
                order.currency
            );
            return run_keyed(&state, &headers, user.user_id, &fingerprint, &order).await;
        }
        _ => {
            return Err(ApiError::Validation(
                "method must be `mpesa` or `agent`".into(),
            ))
        }
    }
    let phone = Msisdn::parse(&user.phone).map_err(|e| ApiError::Internal(e.into()))?;
    let order = WithdrawOrder::new(user.user_id, &phone, body.amount)?;
    let fingerprint = format!("POST /wallet/withdraw|{}|mpesa", body.amount);
    to_mpesa(&state, &headers, &fingerprint, &order).await
}

/// Holds a withdrawal to M-Pesa under the request's `Idempotency-Key`,
/// then sends the payout once the hold is committed (a replay finds it
/// sent).
pub(super) async fn to_mpesa(
    state: &AppState,
    headers: &HeaderMap,
    fingerprint: &str,
    order: &WithdrawOrder,
) -> ApiResult<Response> {
    let key = idempotency_key(headers, order.user_id, fingerprint)?;
    let reply = movements::run(state, order, key).await;
    if let Ok(view) = &reply.outcome {
        withdrawals::submit_after_hold(state, view.tx_id);
    }
    Ok(movement_response(reply))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WithdrawPreviewQuery {
    #[param(pattern = "^[0-9]{6}$")]
    pub agent_number: String,
    #[param(format = "minor-units")]
    pub amount: i64,
    #[param(format = "currency")]
    pub currency: String,
}

/// What withdrawing cash at an agent would cost and whose counter it is,
/// without moving money: the screen a customer confirms.
#[utoipa::path(get, path = "/wallet/withdraw/preview", tag = "wallet", security(("bearer" = [])), params(WithdrawPreviewQuery),
    responses((status = 200, body = CashOutPreview), (status = 400, body = Problem),
              (status = 422, description = "not_eligible: no such active agent", body = Problem)))]
async fn preview_withdraw(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<WithdrawPreviewQuery>,
) -> ApiResult<Json<CashOutPreview>> {
    let order = parse_cash_out(
        &user,
        Some(&query.agent_number),
        query.amount,
        &query.currency,
    )?;
    Ok(Json(order.preview(&state).await?))
}
