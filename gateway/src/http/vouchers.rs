//! Vouchers: buy one (the code comes back here and by SMS), redeem one,
//! list and cancel one's own, and the public key their signed form is
//! checked against.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chainpay_core::{Amount, CurrencyCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{idempotency_key, ApiJson, ApiPath};
use super::session::AuthUser;
use super::wallet::movement_response;
use super::AppState;
use crate::movements;
use crate::transactions::TxView;
use crate::vouchers::{self, Created, Redeemer, VoucherOrder, VoucherView, DEFAULT_DAYS, MAX_DAYS};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(redeem))
        .routes(routes!(cancel))
        .routes(routes!(authority))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = NewVoucher)]
pub struct CreateRequest {
    /// Positive, in minor units of `currency`; the fee is charged on top.
    #[schema(format = "minor-units")]
    pub amount: i64,
    #[schema(format = "currency")]
    pub currency: String,
    /// 1 to 90; 30 when absent. Unredeemed, it returns to you then.
    #[schema(minimum = 1, maximum = 90)]
    pub expires_in_days: Option<i64>,
}

/// Buy a voucher: amount and fee leave the wallet; the code (16 digits)
/// comes back here and by SMS. Whoever has the code can redeem it once.
#[utoipa::path(post, path = "/vouchers", tag = "vouchers", security(("bearer" = [])), request_body = CreateRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a retry returns the same voucher")),
    responses((status = 201, body = Created), (status = 400, body = Problem),
              (status = 403, description = "account_suspended, kyc_required or sanctioned", body = Problem),
              (status = 409, description = "idempotency_conflict", body = Problem),
              (status = 422, description = "insufficient_funds, limit_exceeded or velocity_exceeded", body = Problem)))]
async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateRequest>,
) -> ApiResult<Response> {
    let days = body.expires_in_days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::Validation(format!(
            "expires_in_days: 1 to {MAX_DAYS}"
        )));
    }
    let order = VoucherOrder {
        user_id: user.user_id,
        amount: Amount::new(body.amount)
            .map_err(|e| ApiError::Validation(format!("amount: {e}")))?,
        currency: CurrencyCode::parse(&body.currency)
            .map_err(|e| ApiError::Validation(format!("currency: {e}")))?,
        days,
    };
    let fingerprint = format!(
        "POST /vouchers|{}|{}|{days}",
        order.amount.minor(),
        order.currency
    );
    let key = idempotency_key(&headers, user.user_id, &fingerprint)?;
    let reply = movements::run(&state, &order, key).await;
    let view = reply.outcome?;
    let created = vouchers::created(&state, user.user_id, view.tx_id).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VoucherList {
    pub vouchers: Vec<VoucherView>,
}

/// The caller's vouchers, newest first (codes are not shown again here).
#[utoipa::path(get, path = "/vouchers", tag = "vouchers", security(("bearer" = [])),
    responses((status = 200, body = VoucherList), (status = 401, body = Problem)))]
async fn list(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<VoucherList>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(VoucherList {
        vouchers: vouchers::list(&mut conn, Some(user.user_id), None).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RedeemRequest {
    /// The 16 digits; spaces and dashes are ignored.
    #[schema(format = "voucher-code")]
    pub code: String,
}

/// Redeems for the caller into `to`, under the request's key.
pub async fn redeem_as(
    state: &AppState,
    user: &AuthUser,
    headers: &HeaderMap,
    body: &RedeemRequest,
    to: Redeemer,
    route: &str,
) -> ApiResult<Response> {
    // The key's fingerprint holds the code's keyed digest, never the code
    // (nor an unkeyed hash of it, which a copy of the database could invert).
    let fingerprint = format!("{route}|{}", vouchers::fingerprint(state, &body.code));
    let key = idempotency_key(headers, user.user_id, &fingerprint)?;
    let reply = vouchers::redeem(state, user.user_id, &body.code, to, key).await?;
    Ok(movement_response(reply))
}

/// Redeem a voucher into the caller's wallet, once. Wrong codes count:
/// five a day, then redeeming pauses for 24 hours.
#[utoipa::path(post, path = "/vouchers/redeem", tag = "vouchers", security(("bearer" = [])), request_body = RedeemRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = TxView), (status = 400, description = "validation_error: not 16 digits with a valid check digit", body = Problem),
              (status = 403, description = "account_suspended, kyc_required or sanctioned", body = Problem),
              (status = 409, description = "voucher_invalid: already redeemed, cancelled or expired, or its buyer suspended", body = Problem),
              (status = 422, description = "voucher_invalid: no voucher has this code; limit_exceeded", body = Problem),
              (status = 429, description = "rate_limited: too many wrong codes", body = Problem)))]
async fn redeem(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RedeemRequest>,
) -> ApiResult<Response> {
    redeem_as(
        &state,
        &user,
        &headers,
        &body,
        Redeemer::Wallet,
        "POST /vouchers/redeem",
    )
    .await
}

/// Cancel one of the caller's active vouchers: its amount comes back (the
/// fee stays).
#[utoipa::path(post, path = "/vouchers/{id}/cancel", tag = "vouchers", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Voucher id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = TxView), (status = 404, body = Problem),
              (status = 409, description = "voucher_invalid: already redeemed, cancelled or expired", body = Problem)))]
async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let key = idempotency_key(
        &headers,
        user.user_id,
        &format!("POST /vouchers/{id}/cancel"),
    )?;
    Ok(movement_response(
        vouchers::cancel(&state, user.user_id, id, key).await,
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VoucherAuthority {
    /// Ed25519 public key (hex) the signed form is checked against.
    pub public_key: String,
}

/// The key a voucher's signed form verifies against, offline.
#[utoipa::path(get, path = "/vouchers/authority", tag = "vouchers",
    responses((status = 200, body = VoucherAuthority)))]
async fn authority(State(state): State<AppState>) -> Json<VoucherAuthority> {
    Json(VoucherAuthority {
        public_key: state.keys.voucher_signing.public_hex(),
    })
}
