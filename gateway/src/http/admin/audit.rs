//! Operator endpoints for the audit log and its hash chain.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit::chain::{self, Verification};
use crate::http::error::{ApiResult, Problem};
use crate::http::extract::ApiQuery;
use crate::http::paging::{next_cursor, PageQuery};
use crate::http::session::AdminUser;
use crate::http::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit_log))
        .routes(routes!(verify_audit_log))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<Uuid>,
    /// e.g. `auth.login`, `wallet.send`, `admin.suspend`.
    pub action: String,
    /// `success`, `failure` or `rejected`.
    pub outcome: String,
    pub subject: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
    pub request_id: Option<String>,
    /// The entry's link in the hash chain, once sealed.
    pub entry_hash: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[param(format = "page-size")]
    pub limit: Option<i64>,
    #[param(format = "cursor")]
    pub before: Option<String>,
    /// Only entries by this actor.
    pub user_id: Option<Uuid>,
    /// Only this action, e.g. `wallet.send`.
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// The audit log, newest first, with filters.
#[utoipa::path(get, path = "/admin/audit-log", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem), (status = 403, body = Problem)))]
/// Suspicious-activity reports about the calling admin, and their reviews,
/// are left out (no tipping off; another admin reviews them).
async fn list_audit_log(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let page = PageQuery {
        limit: query.limit,
        before: query.before,
    };
    let (limit, before) = (page.limit()?, page.before()?);
    let entries = sqlx::query_as!(
        AuditEntry,
        r#"SELECT a.id, a.at, a.actor_user_id, a.action, a.outcome, a.subject, a.detail, a.request_id,
                  c.entry_hash AS "entry_hash?"
           FROM audit_log a LEFT JOIN audit_chain c ON c.audit_id = a.id
           WHERE a.id < $1
             AND ($2::uuid IS NULL OR a.actor_user_id = $2)
             AND ($3::text IS NULL OR a.action = $3)
             AND ($4::timestamptz IS NULL OR a.at >= $4)
             AND ($5::timestamptz IS NULL OR a.at < $5)
             AND NOT (a.action = 'compliance.sar' AND a.actor_user_id IS NOT DISTINCT FROM $7)
             AND NOT (a.action = 'admin.sar_review'
                      AND a.subject IN (SELECT id::text FROM sars WHERE user_id = $7))
           ORDER BY a.id DESC LIMIT $6"#,
        before,
        query.user_id,
        query.action,
        query.from,
        query.to,
        limit,
        admin.0.user_id
    )
    .fetch_all(state.read_pool())
    .await?;
    let next_cursor = next_cursor(entries.len(), limit, entries.last().map(|e| e.id));
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}

/// Recompute the audit log's hash chain and name the first broken entry.
#[utoipa::path(get, path = "/admin/audit-log/verify", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Verification), (status = 403, body = Problem)))]
async fn verify_audit_log(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> ApiResult<Json<Verification>> {
    Ok(Json(chain::verify(&state.pool).await?))
}
