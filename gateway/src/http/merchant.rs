//! Paying a business (`/wallet/pay`, and the preview a customer confirms)
//! and the merchant API: the statement (`/merchant/payments`, JSON or CSV),
//! refunds, and the owner's API keys. The merchant API takes the owner's
//! own token (every scope) or one of the business's keys
//! (`Authorization: Bearer cpk_…`, its scopes, rate limited per key).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chainpay_core::{Amount, CurrencyCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::paging::{next_cursor, PageQuery};
use super::session::{bearer_token, AuthUser};
use super::wallet::{run_keyed, to_mpesa};
use super::AppState;
use crate::auth::rate_limit::{self, Admission};
use crate::config::RATE_WINDOW_SECONDS;
use crate::merchants::detail::{self, EndpointView};
use crate::merchants::keys::{self, KeyView, MerchantCaller, NewKey};
use crate::merchants::webhooks::{self, DeliveryView, NewWebhook};
use crate::merchants::{self, BusinessView, Kind, PaymentView};
use crate::movements::merchant_pay::{PayOrder, PayPreview};
use crate::movements::merchant_refund::RefundOrder;
use crate::mpesa::withdrawals::WithdrawOrder;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(business))
        .routes(routes!(pay))
        .routes(routes!(preview_pay))
        .routes(routes!(payments))
        .routes(routes!(refund))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
        .routes(routes!(register_webhook, list_webhooks))
        .routes(routes!(remove_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
        .routes(routes!(withdraw))
}

/// A caller of the merchant API: the owner, or a live key of the business.
pub struct MerchantAuth(pub MerchantCaller);

impl FromRequestParts<AppState> for MerchantAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        if token.starts_with("cpk_") {
            // Wrong, revoked and malformed keys all get the same 401.
            let caller = keys::authenticate(state, token)
                .await?
                .ok_or(ApiError::Unauthorized)?;
            let bucket = format!("key:{}", caller.key_id.unwrap_or_default());
            let limit = state.settings.rate_limit_per_user;
            if let Admission::Limited { retry_after_s } =
                rate_limit::admit(&state.pool, &bucket, limit, RATE_WINDOW_SECONDS).await?
            {
                return Err(ApiError::RateLimited { retry_after_s });
            }
            return Ok(Self(caller));
        }
        let user = AuthUser::from_request_parts(parts, state).await?;
        let mut conn = state.pool.acquire().await?;
        let merchant = merchants::owned_by(&mut conn, user.user_id)
            .await?
            .ok_or(ApiError::Forbidden)?;
        Ok(Self(MerchantCaller::owner(
            merchant.merchant_id,
            user.user_id,
        )))
    }
}

/// The caller's business: its number, status and, per currency, what its
/// account holds, has reserved and can pay out. The owner's token, or a key
/// with `payments:read`.
#[utoipa::path(get, path = "/merchant", tag = "merchant", security(("bearer" = [])),
    responses((status = 200, body = BusinessView), (status = 401, body = Problem),
              (status = 403, description = "the caller owns no business, or the key lacks payments:read", body = Problem),
              (status = 429, body = Problem)))]
async fn business(
    State(state): State<AppState>,
    MerchantAuth(caller): MerchantAuth,
) -> ApiResult<Json<BusinessView>> {
    caller.require("payments:read")?;
    // Balances are read where money moves: the primary, never a replica.
    let mut conn = state.pool.acquire().await?;
    let business = merchants::view(&mut conn, caller.merchant_id).await?;
    Ok(Json(business.into()))
}

#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PayRequest {
    /// A Buy Goods till (six digits); or give `paybill` and `account`.
    #[schema(pattern = "^[0-9]{6}$")]
    #[param(pattern = "^[0-9]{6}$")]
    pub till: Option<String>,
    /// A Paybill number (six digits), with `account`.
    #[schema(pattern = "^[0-9]{6}$")]
    #[param(pattern = "^[0-9]{6}$")]
    pub paybill: Option<String>,
    /// The customer's account number with the business (1 to 20 letters, digits or `-`).
    pub account: Option<String>,
    /// Minor units.
    #[schema(format = "minor-units")]
    #[param(format = "minor-units")]
    pub amount: i64,
    #[schema(format = "currency")]
    #[param(format = "currency")]
    pub currency: String,
    /// Up to 100 characters, kept with the payment.
    pub note: Option<String>,
}

fn six_digits(raw: &str, field: &str) -> ApiResult<String> {
    let raw = raw.trim();
    if raw.len() == 6 && raw.bytes().all(|b| b.is_ascii_digit()) {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::Validation(format!("{field}: six digits")))
    }
}

fn parse_pay(user: &AuthUser, body: &PayRequest) -> ApiResult<PayOrder> {
    let (kind, number, account) = match (&body.till, &body.paybill) {
        (Some(till), None) if body.account.is_none() => {
            (Kind::Till, six_digits(till, "till")?, None)
        }
        (None, Some(paybill)) => {
            let account = body.account.as_deref().map(str::trim).unwrap_or_default();
            let valid = (1..=20).contains(&account.len())
                && account
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                return Err(ApiError::Validation(
                    "account: 1 to 20 letters, digits or -".into(),
                ));
            }
            (
                Kind::Paybill,
                six_digits(paybill, "paybill")?,
                Some(account.to_uppercase()),
            )
        }
        _ => {
            return Err(ApiError::Validation(
                "give either `till`, or `paybill` and `account`".into(),
            ))
        }
    };
    let note = body
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if note.is_some_and(|n| n.chars().count() > 100 || n.chars().any(char::is_control)) {
        return Err(ApiError::Validation(
            "note: up to 100 printable characters".into(),
        ));
    }
    Ok(PayOrder {
        customer_id: user.user_id,
        kind,
        number,
        account,
        amount: Amount::new(body.amount)
            .map_err(|e| ApiError::Validation(format!("amount: {e}")))?,
        currency: CurrencyCode::parse(&body.currency)
            .map_err(|e| ApiError::Validation(format!("currency: {e}")))?,
        note: note.map(str::to_owned),
        request: None,
    })
}

/// Pay a business by till, or by paybill and account number. The customer
/// pays no fee (the merchant does); both get an SMS. `Idempotency-Key`
/// makes a retry answer as the first request did.
#[utoipa::path(post, path = "/wallet/pay", tag = "wallet", security(("bearer" = [])), request_body = PayRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = crate::transactions::TxView), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "account_suspended, kyc_required or sanctioned", body = Problem),
              (status = 409, description = "idempotency_conflict", body = Problem),
              (status = 422, description = "insufficient_funds, limit_exceeded, velocity_exceeded or not_eligible (no such active business)", body = Problem),
              (status = 429, body = Problem)))]
async fn pay(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PayRequest>,
) -> ApiResult<Response> {
    let order = parse_pay(&user, &body)?;
    let fingerprint = format!(
        "POST /wallet/pay|{}|{}|{}|{}|{}|{}",
        order.kind.as_str(),
        order.number,
        order.account.as_deref().unwrap_or(""),
        order.amount.minor(),
        order.currency,
        order.note.as_deref().unwrap_or("")
    );
    run_keyed(&state, &headers, user.user_id, &fingerprint, &order).await
}

/// Whose till or paybill it is, without moving money: the screen a
/// customer confirms.
#[utoipa::path(get, path = "/wallet/pay/preview", tag = "wallet", security(("bearer" = [])), params(PayRequest),
    responses((status = 200, body = PayPreview), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 422, description = "not_eligible: no such active business", body = Problem)))]
async fn preview_pay(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<PayRequest>,
) -> ApiResult<Json<PayPreview>> {
    Ok(Json(parse_pay(&user, &query)?.preview(&state).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementQuery {
    /// From this time (RFC 3339), inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Until this time (RFC 3339), exclusive.
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1 to 200 (default 50).
    #[param(format = "page-size")]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(format = "cursor")]
    pub before: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentPage {
    pub merchant_id: uuid::Uuid,
    pub payments: Vec<PaymentView>,
    pub next_cursor: Option<String>,
}

/// The business's payments, newest first, paged; with `Accept: text/csv`,
/// the same page as CSV. The owner's token, or a key with `payments:read`.
#[utoipa::path(get, path = "/merchant/payments", tag = "merchant", security(("bearer" = [])), params(StatementQuery),
    responses((status = 200, body = PaymentPage, content_type = "application/json"),
              (status = 200, description = "CSV: tx_id,created_at,amount,fee,currency,account,customer_name,customer_phone,note", content_type = "text/csv"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "the caller owns no business, or the key lacks payments:read", body = Problem),
              (status = 429, body = Problem)))]
async fn payments(
    State(state): State<AppState>,
    MerchantAuth(caller): MerchantAuth,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StatementQuery>,
) -> ApiResult<Response> {
    caller.require("payments:read")?;
    let page = PageQuery {
        limit: query.limit,
        before: query.before.clone(),
    };
    let (limit, before) = (page.limit()?, page.before()?);
    let mut conn = state.read_pool().acquire().await?;
    let rows = merchants::payments(
        &mut conn,
        caller.merchant_id,
        (query.from, query.to),
        before,
        limit,
    )
    .await?;
    let next_cursor = next_cursor(rows.len(), limit, rows.last().map(|(seq, _)| *seq));
    let payments: Vec<PaymentView> = rows.into_iter().map(|(_, p)| p).collect();
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    if wants_csv {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv(&payments),
        )
            .into_response());
    }
    Ok(Json(PaymentPage {
        merchant_id: caller.merchant_id,
        payments,
        next_cursor,
    })
    .into_response())
}

/// RFC 4180 CSV; a field that a spreadsheet would read as a formula is
/// prefixed with `'` (CSV injection).
fn csv(payments: &[PaymentView]) -> String {
    fn field(raw: &str) -> String {
        let safe = if raw.starts_with(['=', '+', '-', '@']) {
            format!("'{raw}")
        } else {
            raw.to_owned()
        };
        format!("\"{}\"", safe.replace('"', "\"\""))
    }
    let mut out = String::from(
        "tx_id,created_at,amount,fee,currency,account,customer_name,customer_phone,note\r\n",
    );
    for p in payments {
        let line = [
            p.tx_id.to_string(),
            p.created_at.to_rfc3339(),
            p.amount.to_string(),
            p.fee.to_string(),
            p.currency.clone(),
            p.account.clone().unwrap_or_default(),
            p.customer_name.clone(),
            p.customer_phone.clone(),
            p.note.clone().unwrap_or_default(),
        ]
        .iter()
        .map(|f| field(f))
        .collect::<Vec<_>>()
        .join(",");
        out.push_str(&line);
        out.push_str("\r\n");
    }
    out
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefundRequest {
    /// The payment's `tx_id`.
    pub payment_id: uuid::Uuid,
    /// Minor units; the rest of the payment when absent.
    #[schema(format = "minor-units")]
    pub amount: Option<i64>,
}

/// Refund a payment in full or in part, within the refund window and never
/// more than is left of it. The owner's token, or a key with
/// `refunds:write`; `Idempotency-Key` makes a retry answer as the first.
#[utoipa::path(post, path = "/merchant/refunds", tag = "merchant", security(("bearer" = [])), request_body = RefundRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = crate::transactions::TxView), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "forbidden (the key lacks refunds:write) or sanctioned (the owner or the customer is listed)", body = Problem), (status = 404, description = "not one of this business's payments", body = Problem),
              (status = 409, description = "more than is left, or past the refund window", body = Problem),
              (status = 422, description = "insufficient_funds: the business's account cannot cover it", body = Problem),
              (status = 429, body = Problem)))]
async fn refund(
    State(state): State<AppState>,
    MerchantAuth(caller): MerchantAuth,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RefundRequest>,
) -> ApiResult<Response> {
    caller.require("refunds:write")?;
    let owner = caller.owner_id;
    let order = RefundOrder::new(&state, caller, body.payment_id, body.amount).await?;
    let fingerprint = format!(
        "POST /merchant/refunds|{}|{:?}",
        body.payment_id, body.amount
    );
    run_keyed(&state, &headers, owner, &fingerprint, &order).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyRequest {
    /// What the key is for (1 to 40 characters), e.g. `shop website`.
    #[schema(format = "key-name")]
    pub name: String,
    /// Any of `payments:read`, `refunds:write`, `payment-requests:write`.
    #[schema(schema_with = scope_list)]
    pub scopes: Vec<String>,
}

fn scope_list() -> utoipa::openapi::schema::Array {
    super::formats::some_of(keys::SCOPES.iter().copied())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// Create an API key for the caller's business (the owner's own token
/// only). The key is in this answer and never again.
#[utoipa::path(post, path = "/merchant/api-keys", tag = "merchant", security(("bearer" = [])), request_body = KeyRequest,
    responses((status = 201, body = NewKey), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "the caller owns no business", body = Problem),
              (status = 409, description = "too many live keys", body = Problem),
              (status = 429, description = "the business created 50 keys and endpoints today", body = Problem)))]
async fn create_key(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<KeyRequest>,
) -> ApiResult<(StatusCode, Json<NewKey>)> {
    let name = body.name.trim();
    if !(1..=40).contains(&name.chars().count()) || name.chars().any(char::is_control) {
        return Err(ApiError::Validation(
            "name: 1 to 40 printable characters".into(),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(keys::create(&state, user.user_id, name, body.scopes).await?),
    ))
}

/// The business's keys, by prefix, with their last use.
#[utoipa::path(get, path = "/merchant/api-keys", tag = "merchant", security(("bearer" = [])),
    responses((status = 200, body = KeyList), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_keys(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<KeyList>> {
    Ok(Json(KeyList {
        keys: keys::list(&state, user.user_id).await?,
    }))
}

/// Revoke a key: it stops working at once, on every instance.
#[utoipa::path(delete, path = "/merchant/api-keys/{key_id}", tag = "merchant", security(("bearer" = [])),
    params(("key_id" = uuid::Uuid, Path, description = "The key's id")),
    responses((status = 204, description = "Revoked"), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn revoke_key(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(key_id): ApiPath<uuid::Uuid>,
) -> ApiResult<StatusCode> {
    keys::revoke(&state, user.user_id, key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookRequest {
    /// `https://…` on a public address (plain http and private addresses
    /// only with `CHAINPAY_WEBHOOK_ALLOW_PRIVATE=1`); at most 2,000 characters.
    #[schema(max_length = 2000)]
    pub url: String,
    /// Any of `payment.received`, `refund.completed`, `payment_request.paid`,
    /// `payment_request.declined`, `payment_request.expired`.
    #[schema(schema_with = event_list)]
    pub events: Vec<String>,
}

fn event_list() -> utoipa::openapi::schema::Array {
    super::formats::some_of(webhooks::EVENTS.iter().copied())
}

/// Register a webhook endpoint (the owner's own token only). Requests are
/// signed by the Standard Webhooks rules with the `whsec_…` secret in this
/// answer, shown once.
#[utoipa::path(post, path = "/merchant/webhooks", tag = "merchant", security(("bearer" = [])), request_body = WebhookRequest,
    responses((status = 201, body = NewWebhook), (status = 400, description = "a URL that is not https, does not resolve, or points at a private address", body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, description = "too many endpoints", body = Problem),
              (status = 429, description = "the business created 50 keys and endpoints today", body = Problem)))]
async fn register_webhook(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<WebhookRequest>,
) -> ApiResult<(StatusCode, Json<NewWebhook>)> {
    let created = webhooks::register(&state, user.user_id, &body.url, body.events).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointList {
    pub endpoints: Vec<EndpointView>,
}

/// The business's webhook endpoints (never their secrets), with delivery
/// counts. The owner's own token only.
#[utoipa::path(get, path = "/merchant/webhooks", tag = "merchant", security(("bearer" = [])),
    responses((status = 200, body = EndpointList), (status = 401, body = Problem),
              (status = 403, description = "the caller owns no business", body = Problem)))]
async fn list_webhooks(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<EndpointList>> {
    let mut conn = state.pool.acquire().await?;
    let merchant = merchants::owned_by(&mut conn, user.user_id)
        .await?
        .ok_or(ApiError::Forbidden)?;
    Ok(Json(EndpointList {
        endpoints: detail::endpoints(&mut conn, merchant.merchant_id).await?,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}

/// Remove a webhook endpoint (the owner's own token only): nothing more is
/// sent to it, and deliveries still waiting are given up. Removing it again
/// answers the same.
#[utoipa::path(delete, path = "/merchant/webhooks/{id}", tag = "merchant", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The endpoint's webhook_id")),
    responses((status = 204, description = "removed"), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "the caller owns no business", body = Problem), (status = 404, body = Problem)))]
async fn remove_webhook(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> ApiResult<StatusCode> {
    webhooks::remove(&state, user.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's delivery log, newest first.
#[utoipa::path(get, path = "/merchant/webhooks/{id}/deliveries", tag = "merchant", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The endpoint's webhook_id")),
    responses((status = 200, body = DeliveryList), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn list_deliveries(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> ApiResult<Json<DeliveryList>> {
    Ok(Json(DeliveryList {
        deliveries: webhooks::deliveries(&state, user.user_id, id).await?,
    }))
}

/// Send a delivery again with the same event id: now, or once the endpoint
/// is no longer held (after a failure it waits as long as it has been
/// failing).
#[utoipa::path(post, path = "/merchant/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "merchant", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The endpoint's webhook_id"), ("delivery_id" = i64, Path, description = "The delivery")),
    responses((status = 200, body = DeliveryView), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn redeliver(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, delivery_id)): ApiPath<(uuid::Uuid, i64)>,
) -> ApiResult<Json<DeliveryView>> {
    Ok(Json(
        webhooks::redeliver(&state, user.user_id, id, delivery_id).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MerchantWithdrawRequest {
    /// KES cents, whole shillings (10000 = KES 100).
    #[schema(format = "mpesa-payout-cents")]
    pub amount: i64,
}

/// Withdraw from the business's KES account to the owner's own M-Pesa
/// number (B2C), as a customer withdraws from a wallet: held at once
/// (202 `PENDING`), paid by M-Pesa, refunded if the payout fails. The
/// owner's own token only.
#[utoipa::path(post, path = "/merchant/withdrawals", tag = "merchant", security(("bearer" = [])), request_body = MerchantWithdrawRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 202, description = "held, to be paid by M-Pesa", body = crate::transactions::TxView),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "the caller owns no business; account_suspended, kyc_required or sanctioned", body = Problem),
              (status = 409, description = "the business is suspended; idempotency_conflict", body = Problem),
              (status = 422, description = "insufficient_funds, limit_exceeded or velocity_exceeded", body = Problem),
              (status = 502, description = "mpesa_unavailable", body = Problem)))]
async fn withdraw(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MerchantWithdrawRequest>,
) -> ApiResult<Response> {
    let phone =
        chainpay_core::Msisdn::parse(&user.phone).map_err(|e| ApiError::Internal(e.into()))?;
    let order = WithdrawOrder::new(user.user_id, &phone, body.amount)?.from_merchant();
    let fingerprint = format!("POST /merchant/withdrawals|{}", body.amount);
    to_mpesa(&state, &headers, &fingerprint, &order).await
}
