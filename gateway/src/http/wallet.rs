//! The caller's wallets: balances, sending money, history.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chainpay_core::{Amount, CurrencyCode, Msisdn};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiQuery};
use super::session::AuthUser;
use super::AppState;
use crate::idempotency::IdempotencyKey;
use crate::transactions::{self, TxView};
use crate::transfers::{self, SendOrder};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(balances))
        .routes(routes!(send))
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
    pub to_phone: String,
    /// Positive, in minor units of `currency`.
    pub amount: i64,
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
        from_phone: user.phone.clone(),
        to_phone,
        amount,
        currency,
        note,
    })
}

/// Send money to another registered user in the same currency. A fee from
/// the fee schedule is charged on top. Safe to retry with `Idempotency-Key`.
#[utoipa::path(post, path = "/wallet/send", tag = "wallet", security(("bearer" = [])), request_body = SendRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body replay the first answer")),
    responses((status = 201, body = TxView),
              (status = 400, description = "validation_error", body = Problem),
              (status = 403, description = "account_suspended or kyc_required", body = Problem),
              (status = 404, description = "recipient not registered", body = Problem),
              (status = 409, description = "idempotency_conflict", body = Problem),
              (status = 422, description = "insufficient_funds", body = Problem)))]
async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendRequest>,
) -> ApiResult<Response> {
    let order = parse_send(&user, &body)?;
    if user.kyc_status == "REJECTED" {
        return Err(ApiError::KycRequired(
            "your identity verification was rejected; contact support",
        ));
    }
    let fingerprint = format!(
        "POST /wallet/send|{}|{}|{}|{}",
        order.to_phone,
        order.amount.minor(),
        order.currency,
        order.note.as_deref().unwrap_or("")
    );
    let key = IdempotencyKey::from_headers(&headers, user.user_id, &fingerprint)?;
    let reply = transfers::send(&state, order, key).await?;
    Ok(replayable(reply.status, reply.body, reply.replayed))
}

/// A saved or fresh JSON reply; replays carry `Idempotent-Replayed: true`
/// and keep the problem+json content type of a saved refusal.
pub fn replayable(status: StatusCode, body: serde_json::Value, replayed: bool) -> Response {
    let is_problem = !status.is_success();
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    if is_problem {
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/problem+json"),
        );
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub before: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransactionPage {
    pub transactions: Vec<TxView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

const MAX_PAGE: i64 = 200;

/// The caller's transactions, newest first, with cursor pagination.
#[utoipa::path(get, path = "/wallet/transactions", tag = "wallet", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = TransactionPage), (status = 400, body = Problem)))]
async fn list_transactions(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<TransactionPage>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Validation(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let before = match query.before.as_deref() {
        None | Some("") => i64::MAX,
        Some(cursor) => cursor
            .parse::<i64>()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| {
                ApiError::Validation("before is not a cursor this API returned".into())
            })?,
    };
    let transactions =
        transactions::list_for_user(&state.pool, user.user_id, before, limit).await?;
    let next_cursor = (transactions.len() as i64 == limit)
        .then(|| transactions.last().map(|t| t.seq.to_string()))
        .flatten();
    Ok(Json(TransactionPage {
        transactions,
        next_cursor,
    }))
}
