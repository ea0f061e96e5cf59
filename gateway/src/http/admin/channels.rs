//! Operator endpoints for reversals and the SMS outbox.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chainpay_core::status::{DepositStatus, ReversalStatus, WithdrawalStatus};
use chainpay_core::Msisdn;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::http::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::session::AdminUser;
use crate::http::AppState;
use crate::reversals::{self, Decided, ReversalView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_reversals))
        .routes(routes!(approve_reversal))
        .routes(routes!(reject_reversal))
        .routes(routes!(sms_outbox))
        .routes(routes!(mpesa_transactions))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MpesaTransactions {
    pub deposits: Vec<crate::mpesa::deposits::DepositView>,
    pub withdrawals: Vec<crate::mpesa::withdrawals::WithdrawalView>,
}

fn reversal_statuses() -> utoipa::openapi::schema::Object {
    crate::http::formats::status_of(ReversalStatus::ALL, ReversalStatus::as_str)
}

/// A deposit's or a payout's status (empty: every one).
fn mpesa_statuses() -> utoipa::openapi::schema::Object {
    let mut names: Vec<&'static str> = DepositStatus::ALL.iter().map(|s| s.as_str()).collect();
    for payout in WithdrawalStatus::ALL {
        if !names.contains(&payout.as_str()) {
            names.push(payout.as_str());
        }
    }
    names.push("");
    crate::http::formats::one_of(names)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MpesaQuery {
    /// A deposit status (`PENDING`, `CONFIRMED`, `FAILED`, `EXPIRED`,
    /// `DUPLICATE`, `SUSPENSE`) and/or a withdrawal status (`PENDING`,
    /// `COMPLETED`, `FAILED`); each list is filtered by the status it knows.
    #[param(schema_with = mpesa_statuses)]
    pub status: Option<String>,
}

/// Every M-Pesa deposit and withdrawal, newest first (up to 200 of each).
#[utoipa::path(get, path = "/admin/mpesa-transactions", tag = "admin", security(("bearer" = [])), params(MpesaQuery),
    responses((status = 200, body = MpesaTransactions), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn mpesa_transactions(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<MpesaQuery>,
) -> ApiResult<Json<MpesaTransactions>> {
    let raw = query.status.as_deref().filter(|s| !s.is_empty());
    let (deposit, withdrawal) = match raw {
        None => (None, None),
        Some(raw) => {
            let (d, w) = (DepositStatus::parse(raw), WithdrawalStatus::parse(raw));
            if d.is_none() && w.is_none() {
                return Err(ApiError::Validation(format!(
                    "{raw} is not an M-Pesa status"
                )));
            }
            (Some(d), Some(w))
        }
    };
    // A status one list does not know leaves that list empty.
    let deposits = match deposit {
        Some(None) => Vec::new(),
        other => crate::mpesa::deposits::history(&state, None, other.flatten(), 200).await?,
    };
    let withdrawals = match withdrawal {
        Some(None) => Vec::new(),
        other => crate::mpesa::withdrawals::list(&state, other.flatten(), 200).await?,
    };
    Ok(Json(MpesaTransactions {
        deposits,
        withdrawals,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReversalQuery {
    /// `PENDING`, `APPROVED` or `REJECTED`; all when absent.
    #[param(schema_with = reversal_statuses)]
    pub status: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReversalList {
    pub reversals: Vec<ReversalView>,
}

/// Reversal requests, newest first.
#[utoipa::path(get, path = "/admin/reversals", tag = "admin", security(("bearer" = [])), params(ReversalQuery),
    responses((status = 200, body = ReversalList), (status = 403, body = Problem)))]
async fn list_reversals(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<ReversalQuery>,
) -> ApiResult<Json<ReversalList>> {
    let status = match query.status.as_deref() {
        None => None,
        Some(raw) => Some(ReversalStatus::parse(raw).ok_or_else(|| {
            ApiError::Validation("status must be PENDING, APPROVED or REJECTED".into())
        })?),
    };
    Ok(Json(ReversalList {
        reversals: reversals::list(state.read_pool(), status, None).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Decision {
    #[serde(default)]
    #[schema(format = "note")]
    pub note: String,
}

/// Approve. The first admin's approval is recorded (202, still `PENDING`);
/// a second, other admin's books it (200, `APPROVED`): the recipient pays
/// the amount back (the fee stays earned).
#[utoipa::path(post, path = "/admin/reversals/{id}/approve", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Reversal id")), request_body = Decision,
    responses((status = 200, description = "the second approval: booked", body = ReversalView),
              (status = 202, description = "the first approval: a second admin must approve too", body = ReversalView),
              (status = 403, description = "the caller asked for the reversal or is a party to it: another admin decides", body = Problem),
              (status = 404, body = Problem),
              (status = 422, description = "insufficient_funds or not_eligible (already decided)", body = Problem)))]
async fn approve_reversal(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Decision>,
) -> ApiResult<(StatusCode, Json<ReversalView>)> {
    let note = super::note(&body.note, 0, 500)?;
    let (decided, view) = reversals::decide(&state, admin.0.user_id, id, true, &note).await?;
    let status = match decided {
        Decided::FirstApproval => StatusCode::ACCEPTED,
        Decided::Done => StatusCode::OK,
    };
    Ok((status, Json(view)))
}

/// Reject: nothing moves; the customer is told by SMS.
#[utoipa::path(post, path = "/admin/reversals/{id}/reject", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Reversal id")), request_body = Decision,
    responses((status = 200, body = ReversalView),
              (status = 403, description = "the caller asked for the reversal or is a party to it: another admin decides", body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn reject_reversal(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Decision>,
) -> ApiResult<Json<ReversalView>> {
    let note = super::note(&body.note, 0, 500)?;
    let (_, view) = reversals::decide(&state, admin.0.user_id, id, false, &note).await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// Only messages to this phone (any accepted format).
    #[param(format = "phone")]
    pub to: Option<String>,
    /// At most 200 (default 50).
    #[param(format = "page-size")]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutboxMessage {
    pub id: i64,
    pub to: String,
    pub message: String,
    /// `QUEUED`, `SENT`, `DELIVERED`, `FAILED` or `REJECTED`.
    pub status: String,
    pub attempts: i32,
    pub at_message_id: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Outbox {
    pub messages: Vec<OutboxMessage>,
}

/// SMS sent (or being sent) to customers, newest first, with delivery status.
#[utoipa::path(get, path = "/admin/sms-outbox", tag = "admin", security(("bearer" = [])), params(OutboxQuery),
    responses((status = 200, body = Outbox), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn sms_outbox(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<OutboxQuery>,
) -> ApiResult<Json<Outbox>> {
    let to = match query.to.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(raw) => Some(
            Msisdn::parse(raw)
                .map_err(|e| ApiError::Validation(format!("to: {e}")))?
                .to_string(),
        ),
        None => None,
    };
    let limit = crate::http::paging::page_size(query.limit)?;
    let messages = sqlx::query_as!(
        OutboxMessage,
        r#"SELECT id, to_phone AS "to", message, status, attempts, at_message_id, failure_reason, created_at, sent_at, delivered_at
           FROM sms_outbox WHERE ($1::text IS NULL OR to_phone = $1) ORDER BY id DESC LIMIT $2"#,
        to,
        limit
    )
    .fetch_all(state.read_pool())
    .await?;
    Ok(Json(Outbox { messages }))
}
