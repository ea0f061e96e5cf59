//! Operator endpoints for agents, treasury issuance (four eyes) and vouchers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chainpay_core::{Amount, CurrencyCode, Msisdn};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::agents::{self, AgentView};
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::session::AdminUser;
use crate::http::AppState;
use crate::treasury::{self, Issuance, Proposal};
use crate::vouchers::{self, VoucherView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(appoint_agent, list_agents))
        .routes(routes!(suspend_agent))
        .routes(routes!(reinstate_agent))
        .routes(routes!(propose_issuance, list_issuances))
        .routes(routes!(approve_issuance))
        .routes(routes!(reject_issuance))
        .routes(routes!(list_vouchers))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AppointRequest {
    /// A registered, KYC-verified customer's phone.
    #[schema(format = "phone")]
    pub phone: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentView>,
}

/// Appoint a verified customer as a cash agent: a six-digit agent number,
/// role `agent`, and a float per currency (empty until an issuance).
#[utoipa::path(post, path = "/admin/agents", tag = "admin", security(("bearer" = [])), request_body = AppointRequest,
    responses((status = 201, body = AgentView), (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, description = "already an agent", body = Problem)))]
async fn appoint_agent(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiJson(body): ApiJson<AppointRequest>,
) -> ApiResult<(StatusCode, Json<AgentView>)> {
    let phone =
        Msisdn::parse(&body.phone).map_err(|e| ApiError::Validation(format!("phone: {e}")))?;
    let agent = agents::appoint(&state, admin.0.user_id, phone.as_str()).await?;
    Ok((StatusCode::CREATED, Json(agent)))
}

/// Every agent with their float, newest first.
#[utoipa::path(get, path = "/admin/agents", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = AgentList), (status = 403, body = Problem)))]
async fn list_agents(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> ApiResult<Json<AgentList>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(AgentList {
        agents: agents::list(&mut conn).await?,
    }))
}

fn agent_number(raw: &str) -> ApiResult<&str> {
    if raw.len() == 6 && raw.bytes().all(|b| b.is_ascii_digit()) {
        Ok(raw)
    } else {
        Err(ApiError::Validation("an agent number is six digits".into()))
    }
}

/// Suspend an agent: no cash-in, cash-out or voucher cash until reinstated.
#[utoipa::path(post, path = "/admin/agents/{agent_number}/suspend", tag = "admin", security(("bearer" = [])),
    params(("agent_number" = String, Path, description = "Six digits", pattern = "^[0-9]{6}$")),
    responses((status = 200, body = AgentView), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn suspend_agent(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(number): ApiPath<String>,
) -> ApiResult<Json<AgentView>> {
    Ok(Json(
        agents::set_active(&state, admin.0.user_id, agent_number(&number)?, false).await?,
    ))
}

/// Reinstate a suspended agent.
#[utoipa::path(post, path = "/admin/agents/{agent_number}/reinstate", tag = "admin", security(("bearer" = [])),
    params(("agent_number" = String, Path, description = "Six digits", pattern = "^[0-9]{6}$")),
    responses((status = 200, body = AgentView), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn reinstate_agent(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(number): ApiPath<String>,
) -> ApiResult<Json<AgentView>> {
    Ok(Json(
        agents::set_active(&state, admin.0.user_id, agent_number(&number)?, true).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = IssuanceProposal)]
pub struct ProposeRequest {
    /// The agent's phone.
    #[schema(format = "phone")]
    pub agent_phone: String,
    /// Positive, in minor units of `currency`.
    #[schema(format = "minor-units")]
    pub amount: i64,
    #[schema(format = "currency")]
    pub currency: String,
    /// The agent's bank transfer, 3 to 64 characters; one issuance each.
    #[schema(format = "transfer-reference")]
    pub reference: String,
    #[schema(format = "note")]
    pub note: Option<String>,
}

/// Propose issuing float to an agent who paid by bank transfer. Another
/// admin must approve it before any money exists.
#[utoipa::path(post, path = "/admin/treasury/issuances", tag = "admin", security(("bearer" = [])), request_body = ProposeRequest,
    responses((status = 201, body = Issuance), (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 404, description = "no such agent", body = Problem),
              (status = 409, description = "reference used already, or the agent is suspended", body = Problem)))]
async fn propose_issuance(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiJson(body): ApiJson<ProposeRequest>,
) -> ApiResult<(StatusCode, Json<Issuance>)> {
    let agent_phone = Msisdn::parse(&body.agent_phone)
        .map_err(|e| ApiError::Validation(format!("agent_phone: {e}")))?;
    let amount =
        Amount::new(body.amount).map_err(|e| ApiError::Validation(format!("amount: {e}")))?;
    let currency = CurrencyCode::parse(&body.currency)
        .map_err(|e| ApiError::Validation(format!("currency: {e}")))?;
    // One transfer, one reference however it is typed: `tt 123` is `TT123`.
    // Bank references are ASCII: anything else (an invisible U+200B, a
    // full-width letter) would make a second issuance for one transfer look
    // like the first to the approving admin.
    let reference: String = body
        .reference
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-/._".contains(c);
    if !(3..=64).contains(&reference.len()) || !reference.chars().all(allowed) {
        return Err(ApiError::Validation(
            "reference must be 3 to 64 letters, digits, '-', '/', '.' or '_'".into(),
        ));
    }
    let note = body
        .note
        .as_deref()
        .map(|n| super::note(n, 0, 500))
        .transpose()?;
    let proposal = Proposal {
        agent_phone,
        amount,
        currency,
        reference,
        note: note.filter(|n| !n.is_empty()),
    };
    Ok((
        StatusCode::CREATED,
        Json(treasury::propose(&state, admin.0.user_id, proposal).await?),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = IssuanceDecision)]
pub struct DecisionRequest {
    /// Why (up to 500 characters); kept with the issuance.
    #[serde(default)]
    #[schema(format = "note")]
    pub note: String,
}

async fn decide(
    state: &AppState,
    admin: &AdminUser,
    id: Uuid,
    approve: bool,
    note: &str,
) -> ApiResult<Json<Issuance>> {
    let note = super::decision_note(note)?;
    Ok(Json(
        treasury::decide(state, admin.0.user_id, id, approve, note).await?,
    ))
}

/// Approve an issuance proposed by another admin: the treasury float pays
/// the agent's float, and the agent gets an SMS. Approving again answers the same.
#[utoipa::path(post, path = "/admin/treasury/issuances/{id}/approve", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Issuance id")), request_body = DecisionRequest,
    responses((status = 200, body = Issuance), (status = 400, body = Problem),
              (status = 403, description = "forbidden: the proposer cannot decide", body = Problem),
              (status = 404, body = Problem), (status = 409, description = "already decided otherwise, or the proposal lapsed (its proposer no longer an admin in good standing, or 72 hours old)", body = Problem)))]
async fn approve_issuance(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> ApiResult<Json<Issuance>> {
    decide(&state, &admin, id, true, &body.note).await
}

/// Reject an issuance proposed by another admin; nothing moves.
#[utoipa::path(post, path = "/admin/treasury/issuances/{id}/reject", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Issuance id")), request_body = DecisionRequest,
    responses((status = 200, body = Issuance), (status = 400, body = Problem),
              (status = 403, description = "forbidden: the proposer cannot decide", body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn reject_issuance(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> ApiResult<Json<Issuance>> {
    decide(&state, &admin, id, false, &body.note).await
}

/// Defines a `?status=` filter over `statuses` (empty or absent: all),
/// documented with exactly the statuses [`status_filter`] accepts.
macro_rules! status_query {
    ($name:ident, $statuses:ident: [$($status:literal),+]) => {
        pub const $statuses: &[&str] = &[$($status),+];

        #[derive(Debug, Deserialize, IntoParams)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            #[param(schema_with = $name::schema)]
            pub status: Option<String>,
        }

        impl $name {
            fn schema() -> utoipa::openapi::schema::Object {
                crate::http::formats::one_of([$($status,)+ ""])
            }
        }
    };
}

status_query!(IssuanceQuery, ISSUANCE_STATUSES: ["PENDING", "APPROVED", "REJECTED"]);
status_query!(VoucherQuery, VOUCHER_STATUSES: ["ACTIVE", "REDEEMED", "CANCELLED", "EXPIRED"]);
status_query!(SuspenseQuery, SUSPENSE_STATUSES: ["OPEN", "PROPOSED", "RESOLVED"]);
status_query!(PayoutResolutionQuery, PAYOUT_RESOLUTION_STATUSES: ["PENDING", "APPROVED", "REJECTED", "SUPERSEDED"]);
status_query!(PayoutCorrectionQuery, PAYOUT_CORRECTION_STATUSES: ["PENDING", "APPROVED", "REJECTED"]);

pub(super) fn status_filter<'a>(
    raw: &'a Option<String>,
    known: &[&str],
) -> ApiResult<Option<&'a str>> {
    match raw.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(status) if known.contains(&status) => Ok(Some(status)),
        Some(_) => Err(ApiError::Validation(format!(
            "status must be one of {}",
            known.join(", ")
        ))),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuanceList {
    pub issuances: Vec<Issuance>,
}

/// Issuances, newest first (`PENDING` ones are waiting for a second admin).
#[utoipa::path(get, path = "/admin/treasury/issuances", tag = "admin", security(("bearer" = [])), params(IssuanceQuery),
    responses((status = 200, body = IssuanceList), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn list_issuances(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<IssuanceQuery>,
) -> ApiResult<Json<IssuanceList>> {
    let status = status_filter(&query.status, ISSUANCE_STATUSES)?;
    let mut conn = state.read_pool().acquire().await?;
    Ok(Json(IssuanceList {
        issuances: treasury::list(&mut conn, status).await?,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VoucherList {
    pub vouchers: Vec<VoucherView>,
}

/// Every voucher (never a code), newest first.
#[utoipa::path(get, path = "/admin/vouchers", tag = "admin", security(("bearer" = [])), params(VoucherQuery),
    responses((status = 200, body = VoucherList), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn list_vouchers(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<VoucherQuery>,
) -> ApiResult<Json<VoucherList>> {
    let status = status_filter(&query.status, VOUCHER_STATUSES)?;
    let mut conn = state.read_pool().acquire().await?;
    Ok(Json(VoucherList {
        vouchers: vouchers::list(&mut conn, None, status).await?,
    }))
}
