//! Registration, login, logout and PIN changes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chainpay_core::refusal::Refusal;
use chainpay_core::{Msisdn, Pin};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::ApiJson;
use super::session::{AuthUser, IpRateLimited};
use super::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::accounts::{self, RegisteredUser};
use crate::auth::pins::{self, PinCheck};
use crate::auth::session;
use crate::config::JWT_TTL_SECONDS;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(change_pin))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// `+254712345678`, `254712345678` or `0712345678`.
    #[schema(format = "phone")]
    pub phone: String,
    /// 1 to 100 characters, no control characters; runs of spaces become one.
    #[schema(
        pattern = r"^[^\S\x1c-\x1f]*[^\s\x00-\x1f\x7f-\x9f](?:(?:[^\x00-\x1f\x7f-\x9f]|[^\S\x1c-\x1f]){0,98}[^\s\x00-\x1f\x7f-\x9f])?[^\S\x1c-\x1f]*$"
    )]
    pub name: String,
    /// Exactly 4 digits, not an easily guessed pattern.
    #[schema(format = "pin")]
    pub pin: String,
}

/// A display name: trimmed, 1–100 characters, no control characters.
pub fn parse_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::Validation(
            "name must be 1 to 100 characters".into(),
        ));
    }
    Ok(name)
}

fn parse_phone(raw: &str) -> Result<Msisdn, ApiError> {
    Msisdn::parse(raw).map_err(|e| ApiError::Validation(e.to_string()))
}

fn parse_pin(raw: &str) -> Result<Pin, ApiError> {
    Pin::parse(raw).map_err(|e| ApiError::Validation(e.to_string()))
}

fn parse_new_pin(raw: &str) -> Result<Pin, ApiError> {
    let pin = parse_pin(raw)?;
    pin.check_strength().map_err(|_| ApiError::WeakPin)?;
    Ok(pin)
}

/// Create an account. New users start with KYC `PENDING`; names and phones
/// on the sanctions list are refused (and reported).
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = RegisteredUser),
              (status = 400, description = "validation_error or weak_pin", body = Problem),
              (status = 403, description = "sanctioned", body = Problem),
              (status = 409, description = "phone_taken", body = Problem)))]
async fn register(
    State(state): State<AppState>,
    _limit: IpRateLimited,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<RegisteredUser>)> {
    let phone = parse_phone(&body.phone)?;
    let name = parse_name(&body.name)?;
    let pin = parse_new_pin(&body.pin)?;
    let registered = accounts::register(&state, &phone, name, pin).await?;
    Ok((StatusCode::CREATED, Json(registered)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(format = "phone")]
    pub phone: String,
    #[schema(format = "pin")]
    pub pin: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginUser {
    pub user_id: Uuid,
    pub phone: String,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub user: LoginUser,
}

/// Exchange phone and PIN for a one-hour bearer token. Five wrong PINs in a
/// row lock the account for five minutes, the next five for an hour, the
/// five after that until an admin unlocks it; the owner is told by SMS.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse),
              (status = 401, description = "invalid_credentials", body = Problem),
              (status = 403, description = "account_suspended", body = Problem),
              (status = 423, description = "account_locked", body = Problem)))]
async fn login(
    State(state): State<AppState>,
    _limit: IpRateLimited,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let phone = parse_phone(&body.phone).map_err(|_| ApiError::InvalidCredentials)?;
    let pin = parse_pin(&body.pin).map_err(|_| ApiError::InvalidCredentials)?;
    let user = sqlx::query!(
        "SELECT id, name, role, suspended, token_epoch FROM users WHERE phone = $1",
        phone.as_str()
    )
    .fetch_optional(&state.pool)
    .await?;
    // No pooled connection is held while a PIN is hashed (see `pins::check`).
    let Some(user) = user else {
        pins::burn(pin).await?;
        let mut conn = state.pool.acquire().await?;
        AuditEvent::new("auth.login", Outcome::Failure)
            .subject(phone.as_str())
            .detail(json!({"reason": "unknown_phone"}))
            .record(&mut conn)
            .await?;
        return Err(ApiError::InvalidCredentials);
    };

    let check = pins::check(&state.pool, user.id, pin).await?;
    let mut conn = state.pool.acquire().await?;
    if check != PinCheck::Correct {
        let (outcome, reason) = match check {
            PinCheck::Locked(_) => (Outcome::Rejected, "locked"),
            _ => (Outcome::Failure, "wrong_pin"),
        };
        AuditEvent::new("auth.login", outcome)
            .actor(user.id)
            .detail(json!({"reason": reason, "locked": check.locked()}))
            .record(&mut conn)
            .await?;
        return Err(accounts::wrong_pin_error(check));
    }
    if user.suspended {
        AuditEvent::new("auth.login", Outcome::Rejected)
            .actor(user.id)
            .detail(json!({"reason": "suspended"}))
            .record(&mut conn)
            .await?;
        return Err(ApiError::Refused(Refusal::AccountSuspended));
    }
    let (access_token, _) = state.jwt.issue(user.id, &user.role, user.token_epoch)?;
    sqlx::query!(
        "UPDATE users SET last_login_at = now() WHERE id = $1",
        user.id
    )
    .execute(&mut *conn)
    .await?;
    AuditEvent::new("auth.login", Outcome::Success)
        .actor(user.id)
        .record(&mut conn)
        .await?;
    Ok(Json(LoginResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: JWT_TTL_SECONDS,
        user: LoginUser {
            user_id: user.id,
            phone: phone.to_string(),
            name: user.name,
            role: user.role,
        },
    }))
}

/// Revoke the presented token (on every instance, immediately).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "token revoked"), (status = 401, body = Problem)))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> ApiResult<StatusCode> {
    let expires_at =
        chrono::DateTime::from_timestamp(user.claims.exp, 0).unwrap_or_else(chrono::Utc::now);
    let mut tx = state.pool.begin().await?;
    sqlx::query!(
        "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        user.claims.jti,
        user.user_id,
        expires_at
    )
    .execute(&mut *tx)
    .await?;
    AuditEvent::new("auth.logout", Outcome::Success)
        .actor(user.user_id)
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    state.sessions.forget(user.user_id);
    Ok(StatusCode::NO_CONTENT)
}

/// End every token of the caller, on every device and every instance, at once.
#[utoipa::path(post, path = "/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "every token of the caller ended"), (status = 401, body = Problem)))]
async fn logout_all(State(state): State<AppState>, user: AuthUser) -> ApiResult<StatusCode> {
    let mut tx = state.pool.begin().await?;
    session::end_all_tokens(&mut tx, user.user_id).await?;
    AuditEvent::new("auth.logout_all", Outcome::Success)
        .actor(user.user_id)
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    state.sessions.forget(user.user_id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePinRequest {
    #[schema(format = "pin")]
    pub old_pin: String,
    #[schema(format = "pin")]
    pub new_pin: String,
}

/// Change the PIN. A wrong old PIN counts towards the lockout.
#[utoipa::path(post, path = "/auth/change-pin", tag = "auth", security(("bearer" = [])), request_body = ChangePinRequest,
    responses((status = 204, description = "PIN changed"),
              (status = 400, description = "validation_error or weak_pin", body = Problem),
              (status = 401, description = "invalid_credentials", body = Problem),
              (status = 423, description = "account_locked", body = Problem)))]
async fn change_pin(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<ChangePinRequest>,
) -> ApiResult<StatusCode> {
    let old_pin = parse_pin(&body.old_pin).map_err(|_| ApiError::InvalidCredentials)?;
    let new_pin = parse_new_pin(&body.new_pin)?;
    accounts::change_pin(&state, user.user_id, old_pin, new_pin).await?;
    Ok(StatusCode::NO_CONTENT)
}
