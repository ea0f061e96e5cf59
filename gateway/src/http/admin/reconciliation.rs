//! Reconciliation runs (on demand, and the stored history of every run) and
//! the four-eyes resolution of M-Pesa money held in suspense.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::agents::{status_filter, SuspenseQuery, SUSPENSE_STATUSES};
use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::paging::{next_cursor, PageQuery};
use crate::http::session::AdminUser;
use crate::http::AppState;
use crate::reconciliation::suspense::{self, Proposal, Resolution, SuspenseItem};
use crate::reconciliation::{self, float, Run, RunSummary, Trigger};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_run, list_runs))
        .routes(routes!(get_run))
        .routes(routes!(list_suspense))
        .routes(routes!(propose))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

/// Run every check now (ledger, chain, audit chain, M-Pesa deposits,
/// callbacks and withdrawals, the M-Pesa float against Account Balance,
/// stuck SMS) and store the run. Takes up to ~10 s while Daraja answers.
#[utoipa::path(post, path = "/admin/reconciliation/runs", tag = "admin", security(("bearer" = [])),
    responses((status = 201, body = Run), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, description = "a run is in progress", body = Problem)))]
async fn start_run(
    State(state): State<AppState>,
    admin: AdminUser,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let balance = float::ask(&state);
    let run = reconciliation::run(
        &state.pool,
        &state.keys.master,
        Trigger::Api,
        Some(admin.0.user_id),
        balance,
        Some(&state.metrics),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(run)))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
    pub next_cursor: Option<String>,
}

/// Runs newest first, scheduled and on demand.
#[utoipa::path(get, path = "/admin/reconciliation/runs", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = RunList), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
async fn list_runs(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<RunList>> {
    let limit = page.limit()?;
    let runs = reconciliation::list(state.read_pool(), Some(page.before()?), limit).await?;
    let next_cursor = next_cursor(runs.len(), limit, runs.last().map(|r| r.id));
    Ok(Json(RunList { runs, next_cursor }))
}

/// One run with every item it found.
#[utoipa::path(get, path = "/admin/reconciliation/runs/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Run id")),
    responses((status = 200, body = Run), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_run(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Run>> {
    Ok(Json(reconciliation::find(&state.pool, id).await?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SuspenseList {
    pub items: Vec<SuspenseItem>,
}

/// M-Pesa money held in suspense (late or mismatched payments), newest first.
#[utoipa::path(get, path = "/admin/reconciliation/suspense", tag = "admin", security(("bearer" = [])),
    params(SuspenseQuery),
    responses((status = 200, body = SuspenseList), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
async fn list_suspense(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<SuspenseQuery>,
) -> ApiResult<Json<SuspenseList>> {
    let status = status_filter(&query.status, SUSPENSE_STATUSES)?;
    Ok(Json(SuspenseList {
        items: suspense::list(&state, status).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ResolutionProposal)]
pub struct ProposeRequest {
    pub resolution: Resolution,
    /// Why (3 to 500 characters), e.g. how the customer was verified.
    #[schema(format = "reason-note")]
    pub note: String,
    /// For a refund: the receipt of the M-Pesa reversal that returned the money.
    #[schema(pattern = "^\\s*[A-Za-z0-9]{0,20}\\s*$")]
    pub mpesa_reference: Option<String>,
}

/// Propose what to do with money in suspense; another admin approves it.
#[utoipa::path(post, path = "/admin/reconciliation/items/{id}/propose", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Suspense item id")), request_body = ProposeRequest,
    responses((status = 200, body = SuspenseItem), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, description = "already proposed or resolved", body = Problem)))]
async fn propose(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ProposeRequest>,
) -> ApiResult<Json<SuspenseItem>> {
    let note = super::note(&body.note, 3, 500)?;
    let mpesa_reference = match body.mpesa_reference.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(reference) => Some(super::mpesa_receipt(reference, 1..=20).ok_or_else(|| {
            ApiError::Validation(
                "mpesa_reference must be an M-Pesa receipt: letters and digits".into(),
            )
        })?),
    };
    let proposal = Proposal {
        resolution: body.resolution,
        note,
        mpesa_reference,
    };
    Ok(Json(
        suspense::propose(&state, admin.0.user_id, id, proposal).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ResolutionDecision)]
pub struct DecisionRequest {
    /// Why (up to 500 characters).
    #[serde(default)]
    #[schema(format = "note")]
    pub note: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = SuspenseApproval)]
pub struct ApproveRequest {
    /// The `proposal_version` of the proposal read: a proposal sent back
    /// and replaced since is refused (409), never booked unseen.
    pub proposal_version: i32,
    /// Why (up to 500 characters).
    #[serde(default)]
    #[schema(format = "note")]
    pub note: String,
}

/// Approve another admin's proposal: it is booked (credit: suspense → the
/// customer's wallet, with an SMS; refund: suspense → the M-Pesa float).
#[utoipa::path(post, path = "/admin/reconciliation/items/{id}/approve", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Suspense item id")), request_body = ApproveRequest,
    responses((status = 200, body = SuspenseItem), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, description = "forbidden: the proposer cannot approve", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "not proposed, another proposal than the one named, or the proposal lapsed (its proposer no longer an admin in good standing, or 72 hours old)", body = Problem)))]
async fn approve(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> ApiResult<Json<SuspenseItem>> {
    let note = super::decision_note(&body.note)?;
    let version = body.proposal_version;
    Ok(Json(
        suspense::approve(&state, admin.0.user_id, id, version, note).await?,
    ))
}

/// Send a proposal back to open; nothing moves.
#[utoipa::path(post, path = "/admin/reconciliation/items/{id}/reject", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Suspense item id")), request_body = DecisionRequest,
    responses((status = 200, body = SuspenseItem), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn reject(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DecisionRequest>,
) -> ApiResult<Json<SuspenseItem>> {
    let note = super::decision_note(&body.note)?;
    Ok(Json(
        suspense::reject(&state, admin.0.user_id, id, note).await?,
    ))
}
