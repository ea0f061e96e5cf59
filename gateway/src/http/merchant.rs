//! Paying a business (`/wallet/pay`, and the preview a customer confirms)
//! and a business's statement for its owner (`/merchant/payments`, JSON or
//! CSV).

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chainpay_core::{Amount, CurrencyCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiQuery};
use super::paging::{next_cursor, PageQuery};
use super::session::AuthUser;
use super::wallet::run_keyed;
use super::AppState;
use crate::merchants::{self, Kind, PaymentView};
use crate::movements::merchant_pay::{PayOrder, PayPreview};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pay))
        .routes(routes!(preview_pay))
        .routes(routes!(payments))
}

#[derive(Debug, Deserialize, ToSchema, IntoParams)]
pub struct PayRequest {
    /// A Buy Goods till (six digits); or give `paybill` and `account`.
    pub till: Option<String>,
    /// A Paybill number (six digits), with `account`.
    pub paybill: Option<String>,
    /// The customer's account number with the business (1 to 20 letters, digits or `-`).
    pub account: Option<String>,
    /// Minor units.
    pub amount: i64,
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
pub struct StatementQuery {
    /// From this time (RFC 3339), inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Until this time (RFC 3339), exclusive.
    pub to: Option<DateTime<Utc>>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub before: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentPage {
    pub merchant_id: uuid::Uuid,
    pub payments: Vec<PaymentView>,
    pub next_cursor: Option<String>,
}

/// The caller's business's payments, newest first, paged; with `Accept:
/// text/csv`, the same page as CSV.
#[utoipa::path(get, path = "/merchant/payments", tag = "merchant", security(("bearer" = [])), params(StatementQuery),
    responses((status = 200, body = PaymentPage, content_type = "application/json"),
              (status = 200, description = "CSV: tx_id,created_at,amount,fee,currency,account,customer_name,customer_phone,note", content_type = "text/csv"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "the caller owns no business", body = Problem)))]
async fn payments(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StatementQuery>,
) -> ApiResult<Response> {
    let page = PageQuery {
        limit: query.limit,
        before: query.before.clone(),
    };
    let (limit, before) = (page.limit()?, page.before()?);
    let mut conn = state.pool.acquire().await?;
    let merchant = merchants::owned_by(&mut conn, user.user_id)
        .await?
        .ok_or(ApiError::Forbidden)?;
    let rows = merchants::payments(
        &mut conn,
        merchant.merchant_id,
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
        merchant_id: merchant.merchant_id,
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
