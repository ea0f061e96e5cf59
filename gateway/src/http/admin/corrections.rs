//! The four-eyes correction of payouts M-Pesa's results contradict
//! ([`crate::mpesa::corrections`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::agents::{status_filter, PayoutCorrectionQuery, PAYOUT_CORRECTION_STATUSES};
use super::reconciliation::DecisionRequest;
use crate::http::error::{ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::session::AdminUser;
use crate::http::AppState;
use crate::mpesa::corrections::{self, Action, Contradiction, PayoutCorrection};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(contradictions))
        .routes(routes!(propose))
        .routes(routes!(list))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContradictionList {
    /// The oldest 500 open.
    pub contradictions: Vec<Contradiction>,
    /// How many are open in all.
    pub open: i64,
}

/// M-Pesa results that contradict how a payout was settled and that no
/// approved correction has settled yet, the oldest 500 first, and how many
/// there are.
#[utoipa::path(get, path = "/admin/mpesa/contradictions", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = ContradictionList), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn contradictions(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> ApiResult<Json<ContradictionList>> {
    let mut conn = state.pool.acquire().await?;
    let open = corrections::open(&mut conn).await?;
    Ok(Json(ContradictionList {
        contradictions: open.listed,
        open: open.count,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PayoutCorrectionRequest {
    pub action: Action,
    /// What was checked (3 to 500 characters), e.g. the M-Pesa statement
    /// looked at.
    #[schema(format = "reason-note")]
    pub note: String,
}

/// Propose settling a contradiction: `CORRECT` the payout as M-Pesa's
/// result says (paid after refund: take back amount and fee, reserved on
/// the customer's account since the result came as far as they were there,
/// and topped up now from what came in since; failed after paid: give them
/// back; another receipt: record it), or `DISMISS` the result (M-Pesa's
/// statement bears the settlement out; a reservation is released). Another
/// admin approves.
#[utoipa::path(post, path = "/admin/mpesa/contradictions/{id}/corrections", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "The contradiction's id")), request_body = PayoutCorrectionRequest,
    responses((status = 201, body = PayoutCorrection), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "forbidden: not an admin, or the payout's own customer", body = Problem),
              (status = 404, description = "no such contradiction", body = Problem),
              (status = 409, description = "settled already, a correction waiting already, the payout moved on since, or M-Pesa's receipt is missing or another transaction's", body = Problem)))]
async fn propose(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<PayoutCorrectionRequest>,
) -> ApiResult<(StatusCode, Json<PayoutCorrection>)> {
    let note = super::note(&body.note, 3, 500)?;
    let proposal = corrections::propose(&state, admin.0.user_id, id, body.action, note).await?;
    Ok((StatusCode::CREATED, Json(proposal)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PayoutCorrectionList {
    pub corrections: Vec<PayoutCorrection>,
}

/// Proposals to settle contradictions, newest first (`PENDING` ones wait
/// for a second admin).
#[utoipa::path(get, path = "/admin/mpesa/corrections", tag = "admin", security(("bearer" = [])),
    params(PayoutCorrectionQuery),
    responses((status = 200, body = PayoutCorrectionList), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<PayoutCorrectionQuery>,
) -> ApiResult<Json<PayoutCorrectionList>> {
    let status = status_filter(&query.status, PAYOUT_CORRECTION_STATUSES)?;
    let mut conn = state.read_pool().acquire().await?;
    Ok(Json(PayoutCorrectionList {
        corrections: corrections::list(&mut conn, status).await?,
    }))
}

async fn decide(
    state: &AppState,
    admin: &AdminUser,
    id: Uuid,
    approve: bool,
    note: &str,
) -> ApiResult<Json<PayoutCorrection>> {
    let note = super::decision_note(note)?;
    Ok(Json(
        corrections::decide(state, admin.0.user_id, id, approve, note).await?,
    ))
}

/// Approve another admin's proposal: the correction is made (with an SMS
/// to the customer when money moves) and the contradiction settled.
/// Approving again answers the same.
#[utoipa::path(post, path = "/admin/mpesa/corrections/{id}/approve", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Proposal id")), request_body = DecisionRequest,
    responses((status = 200, body = PayoutCorrection), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "forbidden: the proposer and the payout's own customer cannot decide", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "already decided otherwise, the proposal lapsed (its proposer no longer an admin in good standing, or 72 hours old), the contradiction settled meanwhile, the payout moved on since the proposal, or M-Pesa's receipt is missing or another transaction's", body = Problem),
              (status = 422, description = "insufficient_funds: the customer no longer holds the amount and fee to take back", body = Problem)))]
async fn approve(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> ApiResult<Json<PayoutCorrection>> {
    decide(&state, &admin, id, true, &body.note).await
}

/// Reject another admin's proposal; nothing changes, and a new one may be
/// made.
#[utoipa::path(post, path = "/admin/mpesa/corrections/{id}/reject", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Proposal id")), request_body = DecisionRequest,
    responses((status = 200, body = PayoutCorrection), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "forbidden: the proposer and the payout's own customer cannot decide", body = Problem),
              (status = 404, body = Problem), (status = 409, description = "already decided otherwise", body = Problem)))]
async fn reject(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> ApiResult<Json<PayoutCorrection>> {
    decide(&state, &admin, id, false, &body.note).await
}
