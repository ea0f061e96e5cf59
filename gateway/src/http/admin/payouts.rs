//! The four-eyes settlement of payouts M-Pesa never answered for
//! ([`crate::mpesa::resolutions`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::agents::{status_filter, PayoutResolutionQuery, PAYOUT_RESOLUTION_STATUSES};
use super::reconciliation::DecisionRequest;
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::session::AdminUser;
use crate::http::AppState;
use crate::mpesa::resolutions::{self, Finding, PayoutResolution};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(propose))
        .routes(routes!(list))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

/// What M-Pesa's records show about a payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PayoutOutcome {
    /// Paid to the customer (give its `receipt`).
    Paid,
    /// Never paid: amount and fee go back to the customer.
    NotPaid,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PayoutResolutionRequest {
    pub outcome: PayoutOutcome,
    /// For `PAID`, the payout's M-Pesa receipt (as M-Pesa's statement shows
    /// it); absent for `NOT_PAID`.
    #[schema(format = "mpesa-receipt")]
    pub receipt: Option<String>,
    /// Where the finding comes from (3 to 500 characters), e.g. the M-Pesa
    /// statement looked at.
    #[schema(format = "reason-note")]
    pub note: String,
}

/// Propose settling a payout M-Pesa never answered for (pending an hour
/// after it was sent, and asked about), as M-Pesa's own records show;
/// another admin approves.
#[utoipa::path(post, path = "/admin/mpesa/withdrawals/{ref}/resolutions", tag = "admin", security(("bearer" = [])),
    params(("ref" = Uuid, Path, description = "The withdrawal's `ref`")), request_body = PayoutResolutionRequest,
    responses((status = 201, body = PayoutResolution), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "forbidden: not an admin, or the payout's own customer", body = Problem),
              (status = 404, description = "no such withdrawal", body = Problem),
              (status = 409, description = "settled already, still being recovered, a proposal waiting already, or the receipt belongs to another M-Pesa transaction", body = Problem)))]
async fn propose(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(reference): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PayoutResolutionRequest>,
) -> ApiResult<(StatusCode, Json<PayoutResolution>)> {
    let note = super::note(&body.note, 3, 500)?;
    let needs_receipt = || {
        ApiError::Validation(
            "receipt: a paid payout needs its M-Pesa receipt, 8 to 20 letters and digits".into(),
        )
    };
    let finding = match (body.outcome, body.receipt.as_deref()) {
        (PayoutOutcome::Paid, Some(receipt)) => Finding::Paid {
            receipt: super::mpesa_receipt(receipt, 8..=20).ok_or_else(needs_receipt)?,
        },
        (PayoutOutcome::Paid, None) => return Err(needs_receipt()),
        (PayoutOutcome::NotPaid, None) => Finding::NotPaid,
        (PayoutOutcome::NotPaid, Some(_)) => {
            return Err(ApiError::Validation(
                "receipt: a payout M-Pesa did not pay has no receipt".into(),
            ))
        }
    };
    let proposal = resolutions::propose(&state, admin.0.user_id, reference, finding, note).await?;
    Ok((StatusCode::CREATED, Json(proposal)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PayoutResolutionList {
    pub resolutions: Vec<PayoutResolution>,
}

/// Proposals to settle payouts, newest first (`PENDING` ones wait for a
/// second admin).
#[utoipa::path(get, path = "/admin/mpesa/resolutions", tag = "admin", security(("bearer" = [])),
    params(PayoutResolutionQuery),
    responses((status = 200, body = PayoutResolutionList), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<PayoutResolutionQuery>,
) -> ApiResult<Json<PayoutResolutionList>> {
    let status = status_filter(&query.status, PAYOUT_RESOLUTION_STATUSES)?;
    let mut conn = state.read_pool().acquire().await?;
    Ok(Json(PayoutResolutionList {
        resolutions: resolutions::list(&mut conn, status).await?,
    }))
}

async fn decide(
    state: &AppState,
    admin: &AdminUser,
    id: Uuid,
    approve: bool,
    note: &str,
) -> ApiResult<Json<PayoutResolution>> {
    let note = super::decision_note(note)?;
    Ok(Json(
        resolutions::decide(state, admin.0.user_id, id, approve, note).await?,
    ))
}

/// Approve another admin's proposal: the payout settles as it says (paid:
/// the hold goes to the M-Pesa float; not paid: amount and fee go back to
/// the customer, with an SMS). Approving again answers the same.
#[utoipa::path(post, path = "/admin/mpesa/resolutions/{id}/approve", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Proposal id")), request_body = DecisionRequest,
    responses((status = 200, body = PayoutResolution), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "forbidden: the proposer and the payout's own customer cannot decide", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "already decided otherwise, the payout was settled meanwhile, or the proposal lapsed (its proposer no longer an admin in good standing, or 72 hours old)", body = Problem)))]
async fn approve(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> ApiResult<Json<PayoutResolution>> {
    decide(&state, &admin, id, true, &body.note).await
}

/// Reject another admin's proposal; nothing moves, and a new one may be made.
#[utoipa::path(post, path = "/admin/mpesa/resolutions/{id}/reject", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Proposal id")), request_body = DecisionRequest,
    responses((status = 200, body = PayoutResolution), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "forbidden: the proposer and the payout's own customer cannot decide", body = Problem),
              (status = 404, body = Problem), (status = 409, description = "already decided otherwise", body = Problem)))]
async fn reject(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> ApiResult<Json<PayoutResolution>> {
    decide(&state, &admin, id, false, &body.note).await
}
