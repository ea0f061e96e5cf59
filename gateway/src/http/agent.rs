//! The agent's counter: cash-in for a customer, the float summary, and
//! vouchers redeemed for cash. Only an active agent may call these.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use chainpay_core::{Amount, CurrencyCode, Msisdn};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{idempotency_key, ApiJson, ApiQuery};
use super::session::AuthUser;
use super::vouchers::RedeemRequest;
use super::wallet::movement_response;
use super::AppState;
use crate::agents::{self, Summary};
use crate::movements;
use crate::movements::cash_in::{CashInOrder, CashInPreview};
use crate::transactions::TxView;
use crate::vouchers::Redeemer;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cash_in))
        .routes(routes!(preview_cash_in))
        .routes(routes!(summary))
        .routes(routes!(redeem_for_cash))
}

#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CashInRequest {
    /// The registered customer handing over cash.
    #[schema(format = "phone")]
    #[param(format = "phone")]
    pub customer_phone: String,
    /// Positive, in minor units of `currency`; at least USD 5.00 in value.
    #[schema(format = "minor-units")]
    #[param(format = "minor-units")]
    pub amount: i64,
    #[schema(format = "currency")]
    #[param(format = "currency")]
    pub currency: String,
}

fn parse_cash_in(agent: &AuthUser, body: &CashInRequest) -> ApiResult<CashInOrder> {
    Ok(CashInOrder {
        agent_user_id: agent.user_id,
        customer_phone: Msisdn::parse(&body.customer_phone)
            .map_err(|e| ApiError::Validation(format!("customer_phone: {e}")))?,
        amount: Amount::new(body.amount)
            .map_err(|e| ApiError::Validation(format!("amount: {e}")))?,
        currency: CurrencyCode::parse(&body.currency)
            .map_err(|e| ApiError::Validation(format!("currency: {e}")))?,
    })
}

/// Pay a customer's cash into their wallet from the agent's float. Free to
/// the customer; the agent earns a commission. Both get an SMS.
#[utoipa::path(post, path = "/agent/cash-in", tag = "agent", security(("bearer" = [])), request_body = CashInRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = TxView), (status = 400, description = "validation_error (below the minimum, say)", body = Problem),
              (status = 403, description = "forbidden (not an active agent), account_suspended, kyc_required or sanctioned", body = Problem),
              (status = 404, description = "customer not registered", body = Problem),
              (status = 409, description = "idempotency_conflict", body = Problem),
              (status = 422, description = "insufficient_funds (the float), limit_exceeded or velocity_exceeded", body = Problem)))]
async fn cash_in(
    State(state): State<AppState>,
    agent: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CashInRequest>,
) -> ApiResult<Response> {
    let order = parse_cash_in(&agent, &body)?;
    let fingerprint = format!(
        "POST /agent/cash-in|{}|{}|{}",
        order.customer_phone,
        order.amount.minor(),
        order.currency
    );
    let key = idempotency_key(&headers, agent.user_id, &fingerprint)?;
    Ok(movement_response(movements::run(&state, &order, key).await))
}

/// Whose wallet a cash-in would reach and the commission, without moving money.
#[utoipa::path(get, path = "/agent/cash-in/preview", tag = "agent", security(("bearer" = [])), params(CashInRequest),
    responses((status = 200, body = CashInPreview), (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn preview_cash_in(
    State(state): State<AppState>,
    agent: AuthUser,
    ApiQuery(query): ApiQuery<CashInRequest>,
) -> ApiResult<Json<CashInPreview>> {
    Ok(Json(parse_cash_in(&agent, &query)?.preview(&state).await?))
}

/// The agent's float per currency, today's cash-ins and cash-outs, and the
/// commission earned today.
#[utoipa::path(get, path = "/agent/summary", tag = "agent", security(("bearer" = [])),
    responses((status = 200, body = Summary), (status = 403, description = "not an active agent", body = Problem)))]
async fn summary(State(state): State<AppState>, agent: AuthUser) -> ApiResult<Json<Summary>> {
    let mut conn = state.pool.acquire().await?;
    let agent = agents::active_by_user(&mut conn, agent.user_id).await?;
    Ok(Json(agents::summary(&mut conn, &agent).await?))
}

/// Redeem a voucher the bearer presents, for cash: its amount goes to the
/// agent's float and the agent hands over the cash.
#[utoipa::path(post, path = "/agent/vouchers/redeem", tag = "agent", security(("bearer" = [])), request_body = RedeemRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = TxView), (status = 400, body = Problem),
              (status = 403, description = "not an active agent, or sanctioned", body = Problem),
              (status = 409, description = "voucher_invalid (spent, or its buyer suspended) or idempotency_conflict", body = Problem),
              (status = 422, description = "voucher_invalid (no such code)", body = Problem),
              (status = 429, description = "rate_limited: too many wrong codes", body = Problem)))]
async fn redeem_for_cash(
    State(state): State<AppState>,
    agent: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RedeemRequest>,
) -> ApiResult<Response> {
    super::vouchers::redeem_as(
        &state,
        &agent,
        &headers,
        &body,
        Redeemer::AgentCash,
        "POST /agent/vouchers/redeem",
    )
    .await
}
