//! Operator endpoints for users: search, suspension, KYC status.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use chainpay_core::notify::Sms;
use chainpay_core::Lang;

use crate::audit::{AuditEvent, Outcome};
use crate::auth::{lockout, session};
use crate::http::error::{ApiError, ApiResult, Missing, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::session::AdminUser;
use crate::http::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(suspend_user))
        .routes(routes!(unsuspend_user))
        .routes(routes!(set_kyc))
        .routes(routes!(unlock_user))
        .routes(routes!(get_user))
        .routes(routes!(reset_pin))
        .routes(routes!(kyc_documents))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserSummary {
    pub user_id: Uuid,
    pub phone: String,
    pub name: String,
    pub role: String,
    pub kyc_status: String,
    pub suspended: bool,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserSummary>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Part of a name or phone number.
    pub q: Option<String>,
    /// At most 200 (default 50).
    #[param(format = "page-size")]
    pub limit: Option<i64>,
}

/// Find users by name or phone (newest first).
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("bearer" = [])), params(UserQuery),
    responses((status = 200, body = UserList), (status = 403, body = Problem)))]
async fn list_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<UserQuery>,
) -> ApiResult<Json<UserList>> {
    let limit = crate::http::paging::page_size(query.limit)?;
    let needle = query.q.unwrap_or_default();
    // Escape LIKE wildcards so a search for "50%" means the text "50%".
    let pattern = format!(
        "%{}%",
        needle
            .trim()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let users = sqlx::query_as!(
        UserSummary,
        r#"SELECT id AS user_id, phone, name, role, kyc_status, suspended, locked_until, created_at, last_login_at
           FROM users WHERE phone ILIKE $1 OR name ILIKE $1
           ORDER BY created_at DESC LIMIT $2"#,
        pattern,
        limit
    )
    .fetch_all(state.read_pool())
    .await?;
    Ok(Json(UserList { users }))
}

/// Sets `suspended` on a user and audits it; an admin cannot suspend themself.
async fn set_suspended(
    state: &AppState,
    admin: &AdminUser,
    user_id: Uuid,
    suspended: bool,
) -> ApiResult<Json<UserSummary>> {
    if suspended && user_id == admin.0.user_id {
        return Err(ApiError::Validation(
            "you cannot suspend your own account".into(),
        ));
    }
    let mut tx = state.pool.begin().await?;
    let user = sqlx::query_as!(
        UserSummary,
        r#"UPDATE users SET suspended = $2 WHERE id = $1
           RETURNING id AS user_id, phone, name, role, kyc_status, suspended, locked_until, created_at, last_login_at"#,
        user_id,
        suspended
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound(Missing::User))?;
    if suspended {
        session::end_all_tokens(&mut tx, user_id).await?;
    }
    let action = if suspended {
        "admin.suspend"
    } else {
        "admin.unsuspend"
    };
    AuditEvent::new(action, Outcome::Success)
        .actor(admin.0.user_id)
        .subject(user_id)
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    state.sessions.forget(user_id);
    Ok(Json(user))
}

/// Suspend a user: their tokens stop working at once and they cannot log in.
#[utoipa::path(post, path = "/admin/users/{id}/suspend", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = UserSummary), (status = 404, body = Problem)))]
async fn suspend_user(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<UserSummary>> {
    set_suspended(&state, &admin, id, true).await
}

/// Lift a suspension.
#[utoipa::path(post, path = "/admin/users/{id}/unsuspend", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = UserSummary), (status = 404, body = Problem)))]
async fn unsuspend_user(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<UserSummary>> {
    set_suspended(&state, &admin, id, false).await
}

/// What an operator may set a customer's KYC to.
const KYC_STATUSES: [&str; 3] = ["PENDING", "VERIFIED", "REJECTED"];

fn kyc_statuses() -> utoipa::openapi::schema::Object {
    crate::http::formats::one_of(KYC_STATUSES)
}

/// The same, or empty for every document.
fn kyc_filter() -> utoipa::openapi::schema::Object {
    crate::http::formats::one_of(KYC_STATUSES.into_iter().chain([""]))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct KycRequest {
    /// `PENDING`, `VERIFIED` or `REJECTED`.
    #[schema(schema_with = kyc_statuses)]
    pub status: String,
    /// What was checked, or why the documents were refused (at most 500
    /// characters); kept in the audit log.
    #[serde(default)]
    #[schema(format = "note")]
    pub note: Option<String>,
}

/// Record the outcome of identity verification.
#[utoipa::path(post, path = "/admin/users/{id}/kyc", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")), request_body = KycRequest,
    responses((status = 200, body = UserSummary), (status = 400, body = Problem),
              (status = 403, description = "an admin's own KYC is another admin's call", body = Problem),
              (status = 404, body = Problem),
              (status = 409, description = "the customer's document already verifies another account", body = Problem)))]
async fn set_kyc(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(user_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<KycRequest>,
) -> ApiResult<Json<UserSummary>> {
    let status = body.status.trim().to_ascii_uppercase();
    if !KYC_STATUSES.contains(&status.as_str()) {
        return Err(ApiError::Validation(
            "status must be PENDING, VERIFIED or REJECTED".into(),
        ));
    }
    let note = body
        .note
        .as_deref()
        .map(|n| super::note(n, 0, 500))
        .transpose()?;
    // An admin's own KYC (and so their own limits) is another admin's call.
    if user_id == admin.0.user_id {
        return Err(ApiError::SecondAdminNeeded);
    }
    let mut tx = state.pool.begin().await?;
    let previous = sqlx::query_scalar!(
        "SELECT kyc_status FROM users WHERE id = $1 FOR NO KEY UPDATE",
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound(Missing::User))?;
    let user = sqlx::query_as!(
        UserSummary,
        r#"UPDATE users SET kyc_status = $2 WHERE id = $1
           RETURNING id AS user_id, phone, name, role, kyc_status, suspended, locked_until, created_at, last_login_at"#,
        user_id,
        status
    )
    .fetch_one(&mut *tx)
    .await?;
    AuditEvent::new("admin.kyc", Outcome::Success)
        .actor(admin.0.user_id)
        .subject(user_id)
        .detail(json!({"from": previous, "to": status, "note": note}))
        .record(&mut tx)
        .await?;
    crate::kyc::review(&mut tx, user_id, admin.0.user_id, &status, note.as_deref()).await?;
    if status != previous && status != "PENDING" {
        let lang = sqlx::query_scalar!("SELECT language FROM users WHERE id = $1", user_id)
            .fetch_one(&mut *tx)
            .await?;
        let text = Sms(Lang::parse(&lang)).kyc_reviewed(status == "VERIFIED", note.as_deref());
        crate::sms::outbox::queue(&mut tx, &user.phone, &text, None).await?;
    }
    tx.commit().await?;
    state.sessions.forget(user_id);
    Ok(Json(user))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UnlockRequest {
    /// Why the account is unlocked (the customer was verified, say); kept in the audit log.
    #[schema(format = "required-note")]
    pub note: String,
}

/// Lift a wrong-PIN lockout, including one that lasts until an admin acts.
/// The count and the escalation start over.
#[utoipa::path(post, path = "/admin/users/{id}/unlock", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")), request_body = UnlockRequest,
    responses((status = 200, body = UserSummary), (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn unlock_user(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(user_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UnlockRequest>,
) -> ApiResult<Json<UserSummary>> {
    let note = super::note(&body.note, 1, 500)?;
    let mut tx = state.pool.begin().await?;
    if !lockout::lift(&mut tx, user_id).await? {
        return Err(ApiError::NotFound(Missing::User));
    }
    let user = sqlx::query_as!(
        UserSummary,
        r#"SELECT id AS user_id, phone, name, role, kyc_status, suspended, locked_until, created_at, last_login_at
           FROM users WHERE id = $1"#,
        user_id
    )
    .fetch_one(&mut *tx)
    .await?;
    AuditEvent::new("admin.unlock", Outcome::Success)
        .actor(admin.0.user_id)
        .subject(user_id)
        .detail(json!({ "note": note }))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(Json(user))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserWallet {
    pub currency: String,
    pub balance: i64,
    pub locked: i64,
}

/// A user as an operator's page shows them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserDetail {
    pub user: UserSummary,
    pub language: String,
    pub failed_pin_attempts: i32,
    pub wallets: Vec<UserWallet>,
    /// The newest 20, newest first.
    pub transactions: Vec<crate::transactions::TxView>,
    /// Identity documents submitted, newest first (numbers masked).
    pub documents: Vec<crate::kyc::DocumentView>,
}

/// One user: profile, wallets and recent transactions.
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = UserDetail), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiPath(user_id): ApiPath<Uuid>,
) -> ApiResult<Json<UserDetail>> {
    let row = sqlx::query!(
        r#"SELECT id, phone, name, role, kyc_status, suspended, locked_until, created_at, last_login_at,
                  language, failed_pin_attempts FROM users WHERE id = $1"#,
        user_id
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or(ApiError::NotFound(Missing::User))?;
    let wallets = sqlx::query_as!(
        UserWallet,
        "SELECT currency, balance, locked FROM accounts WHERE kind = 'wallet' AND user_id = $1 ORDER BY currency",
        user_id
    )
    .fetch_all(&state.pool)
    .await?;
    let transactions =
        crate::transactions::list_for_user(&state.pool, user_id, i64::MAX, 20).await?;
    let mut conn = state.pool.acquire().await?;
    let documents = crate::kyc::list(&mut conn, Some(user_id), None).await?;
    Ok(Json(UserDetail {
        user: UserSummary {
            user_id: row.id,
            phone: row.phone,
            name: row.name,
            role: row.role,
            kyc_status: row.kyc_status,
            suspended: row.suspended,
            locked_until: row.locked_until,
            created_at: row.created_at,
            last_login_at: row.last_login_at,
        },
        language: row.language,
        failed_pin_attempts: row.failed_pin_attempts,
        wallets,
        transactions,
        documents,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PinResetRequest {
    /// How the customer was verified (a call-back, a branch visit); kept in the audit log.
    #[serde(default)]
    #[schema(format = "note")]
    pub note: Option<String>,
}

/// Send the customer a one-time code by SMS; they set a new PIN with it
/// through USSD *My account → Forgot PIN* within 15 minutes. Their tokens
/// end and the lockout clears when they do.
#[utoipa::path(post, path = "/admin/users/{id}/pin-reset", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")), request_body = PinResetRequest,
    responses((status = 202, description = "the code is on its way"), (status = 400, body = Problem),
              (status = 403, description = "forbidden: not an admin, or the account is an admin's", body = Problem),
              (status = 404, body = Problem)))]
async fn reset_pin(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiPath(user_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<PinResetRequest>,
) -> ApiResult<axum::http::StatusCode> {
    let note = body
        .note
        .as_deref()
        .map(|n| super::note(n, 0, 500))
        .transpose()?;
    crate::auth::reset::issue(&state, admin.0.user_id, user_id, note.as_deref()).await?;
    Ok(axum::http::StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentQuery {
    /// `PENDING`, `VERIFIED` or `REJECTED`.
    #[param(schema_with = kyc_filter)]
    pub status: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentList {
    pub documents: Vec<crate::kyc::DocumentView>,
}

/// Identity documents to review, newest first (numbers masked). Review one
/// with `POST /admin/users/{id}/kyc {status, note}`.
#[utoipa::path(get, path = "/admin/kyc/documents", tag = "admin", security(("bearer" = [])), params(DocumentQuery),
    responses((status = 200, body = DocumentList), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn kyc_documents(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<DocumentQuery>,
) -> ApiResult<Json<DocumentList>> {
    // Exactly as documented: empty for all, else a listed status.
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    if status.is_some_and(|s| !KYC_STATUSES.contains(&s)) {
        return Err(ApiError::Validation(
            "status must be PENDING, VERIFIED or REJECTED".into(),
        ));
    }
    let mut conn = state.pool.acquire().await?;
    Ok(Json(DocumentList {
        documents: crate::kyc::list(&mut conn, None, status).await?,
    }))
}
