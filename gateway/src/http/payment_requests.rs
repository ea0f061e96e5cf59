//! Request to pay over REST: a business (its owner or a key with
//! `payment-requests:write`) asks a customer to pay and follows the
//! request; the customer lists what is waiting and pays or declines.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use chainpay_core::{Amount, CurrencyCode, Msisdn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiPath};
use super::merchant::MerchantAuth;
use super::session::AuthUser;
use super::wallet::run_keyed;
use super::AppState;
use crate::merchants::requests::{self, NewRequest, RequestView};
use crate::movements::merchant_pay::PayOrder;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(merchant_view))
        .routes(routes!(waiting))
        .routes(routes!(approve))
        .routes(routes!(decline))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = NewPaymentRequest)]
pub struct CreateRequest {
    /// The customer's registered number, E.164 (`+2547…`).
    #[schema(format = "phone")]
    pub customer_phone: String,
    /// Minor units.
    #[schema(format = "minor-units")]
    pub amount: i64,
    #[schema(format = "currency")]
    pub currency: String,
    /// The business's own reference, 1 to 40 letters, digits, `-` or `_`;
    /// one request per reference (a retry with the same terms answers 200
    /// with the first).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,40}$")]
    pub reference: String,
    /// Seconds the request waits, 60 to 86400 (default 3600).
    #[schema(minimum = 60, maximum = 86400)]
    pub expires_in_s: Option<u32>,
}

fn parse(body: &CreateRequest) -> ApiResult<NewRequest> {
    let expires_in_s = body.expires_in_s.unwrap_or(requests::DEFAULT_EXPIRY_S);
    if !(requests::MIN_EXPIRY_S..=requests::MAX_EXPIRY_S).contains(&expires_in_s) {
        return Err(ApiError::Validation(format!(
            "expires_in_s: {} to {}",
            requests::MIN_EXPIRY_S,
            requests::MAX_EXPIRY_S
        )));
    }
    if !requests::valid_reference(&body.reference) {
        return Err(ApiError::Validation(
            "reference: 1 to 40 letters, digits, - or _".into(),
        ));
    }
    Ok(NewRequest {
        customer_phone: Msisdn::parse(&body.customer_phone)
            .map_err(|e| ApiError::Validation(format!("customer_phone: {e}")))?,
        amount: Amount::new(body.amount)
            .map_err(|e| ApiError::Validation(format!("amount: {e}")))?,
        currency: CurrencyCode::parse(&body.currency)
            .map_err(|e| ApiError::Validation(format!("currency: {e}")))?,
        reference: body.reference.clone(),
        expires_in_s,
    })
}

/// Ask a customer to pay. They get an SMS and answer in USSD or the app;
/// the business hears `payment_request.paid|declined|expired`. The owner's
/// token or a key with `payment-requests:write`.
#[utoipa::path(post, path = "/merchant/payment-requests", tag = "merchant", security(("bearer" = [])), request_body = CreateRequest,
    responses((status = 201, body = RequestView), (status = 200, description = "the request made earlier with this reference and these terms", body = RequestView),
              (status = 400, description = "validation_error, including a request to the business's own owner", body = Problem), (status = 401, body = Problem),
              (status = 403, description = "the caller owns no business, or the key lacks payment-requests:write", body = Problem),
              (status = 404, description = "no customer who can be asked to pay has that number (unknown, blocked and admin numbers answer alike)", body = Problem),
              (status = 409, description = "the reference was used for other terms, the customer has too many requests waiting, the business asked them ten times in the last day, the business made 1,000 requests in the last day, the business is suspended, or its owner's account is under review", body = Problem),
              (status = 429, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    MerchantAuth(caller): MerchantAuth,
    ApiJson(body): ApiJson<CreateRequest>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    caller.require("payment-requests:write")?;
    let (created, view) = requests::create(&state, &caller, parse(&body)?).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// One of the business's requests, with its status and, once paid, the
/// payment. The owner's token or a key with `payment-requests:write`.
#[utoipa::path(get, path = "/merchant/payment-requests/{id}", tag = "merchant", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The request_id")),
    responses((status = 200, body = RequestView), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
async fn merchant_view(
    State(state): State<AppState>,
    MerchantAuth(caller): MerchantAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<RequestView>> {
    caller.require("payment-requests:write")?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        requests::of_merchant(&mut conn, caller.merchant_id, id).await?,
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WaitingList {
    pub requests: Vec<RequestView>,
}

/// The caller's payment requests still waiting, oldest first.
#[utoipa::path(get, path = "/payment-requests", tag = "wallet", security(("bearer" = [])),
    responses((status = 200, body = WaitingList), (status = 401, body = Problem)))]
async fn waiting(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<WaitingList>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(WaitingList {
        requests: requests::pending_for(&mut conn, user.user_id).await?,
    }))
}

/// Pay one of the caller's requests (at most once, however often it is
/// approved). `Idempotency-Key` makes a retry answer as the first did.
#[utoipa::path(post, path = "/payment-requests/{id}/approve", tag = "wallet", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The request_id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = crate::transactions::TxView), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "account_suspended, kyc_required or sanctioned", body = Problem),
              (status = 404, description = "not one of the caller's requests", body = Problem),
              (status = 409, description = "request_not_pending: already paid, declined or expired; or idempotency_conflict", body = Problem),
              (status = 422, description = "insufficient_funds, limit_exceeded, velocity_exceeded or not_eligible (the business is no longer active)", body = Problem),
              (status = 429, body = Problem)))]
async fn approve(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let order = PayOrder::for_request(&state, user.user_id, id).await?;
    let fingerprint = format!("POST /payment-requests/{id}/approve");
    run_keyed(&state, &headers, user.user_id, &fingerprint, &order).await
}

/// Decline one of the caller's requests; nothing is paid.
#[utoipa::path(post, path = "/payment-requests/{id}/decline", tag = "wallet", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The request_id")),
    responses((status = 200, body = RequestView), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, description = "not one of the caller's requests", body = Problem),
              (status = 409, description = "request_not_pending: already paid, declined or expired", body = Problem)))]
async fn decline(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<RequestView>> {
    Ok(Json(requests::decline(&state, user.user_id, id).await?))
}
