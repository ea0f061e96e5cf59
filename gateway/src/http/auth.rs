//! Registration, login, logout and PIN changes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chainpay_core::crypto::pin_hash;
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
use crate::auth::lockout::{self, Attempt};
use crate::compliance::sanctions;
use crate::compliance::{sars, Refusal};
use crate::config::JWT_TTL_SECONDS;
use chainpay_core::compliance::Rule;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(change_pin))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// `+254712345678`, `254712345678` or `0712345678`.
    pub phone: String,
    pub name: String,
    /// Exactly 4 digits, not an easily guessed pattern.
    pub pin: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisteredUser {
    pub user_id: Uuid,
    pub phone: String,
    pub name: String,
    pub kyc_status: String,
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
    pin.check_strength()
        .map_err(|e| ApiError::WeakPin(e.to_string()))?;
    Ok(pin)
}

/// A wrong PIN is `invalid_credentials`, or `account_locked` when it was the last try.
fn wrong_pin_error(locked: bool) -> ApiError {
    if locked {
        ApiError::AccountLocked {
            retry_after_s: crate::config::LOCKOUT_MINUTES * 60,
        }
    } else {
        ApiError::InvalidCredentials
    }
}

/// Argon2id off the async runtime: it is slow on purpose.
pub async fn hash_pin(pin: Pin) -> ApiResult<String> {
    Ok(
        tokio::task::spawn_blocking(move || pin_hash::hash_pin(&pin))
            .await
            .map_err(anyhow::Error::from)?,
    )
}

pub async fn verify_pin(pin: Pin, stored_phc: String) -> ApiResult<bool> {
    Ok(
        tokio::task::spawn_blocking(move || pin_hash::verify_pin(&pin, &stored_phc))
            .await
            .map_err(anyhow::Error::from)?,
    )
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
    let pin_hash = hash_pin(pin).await?;
    let rules = state.rules.get(&state.pool).await?;
    let mut tx = state.pool.begin().await?;
    let (list_version, hit) = sanctions::screen_person(
        &mut tx,
        &state.sanctions,
        rules.sanctions_threshold,
        &name,
        phone.as_str(),
    )
    .await?;
    if let Some(hit) = hit {
        let finding = json!({"phone": phone.as_str(), "name": name, "listed_id": hit.listed_id,
                             "listed_name": hit.listed_name, "score": hit.score, "matched_on": hit.matched_on});
        sars::open_or_append(
            &mut tx,
            None,
            Rule::Sanctions.as_str(),
            None,
            finding.clone(),
        )
        .await?;
        AuditEvent::new("auth.register", Outcome::Rejected)
            .subject(phone.as_str())
            .detail(json!({"reason": "sanctioned", "rule": Rule::Sanctions.as_str(), "finding": finding}))
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        return Err(ApiError::Compliance(Box::new(Refusal::new(
            Rule::Sanctions,
            finding,
        ))));
    }
    let user_id = Uuid::new_v4();
    let inserted = sqlx::query_scalar!(
        "INSERT INTO users (id, phone, name, pin_hash, screened_list_version) VALUES ($1, $2, $3, $4, $5) RETURNING kyc_status",
        user_id,
        phone.as_str(),
        name,
        pin_hash,
        list_version
    )
    .fetch_one(&mut *tx)
    .await;
    let kyc_status = match inserted {
        Ok(status) => status,
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("users_phone_key") => {
            return Err(ApiError::PhoneTaken)
        }
        Err(e) => return Err(e.into()),
    };
    AuditEvent::new("auth.register", Outcome::Success)
        .actor(user_id)
        .subject(phone.as_str())
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisteredUser {
            user_id,
            phone: phone.to_string(),
            name,
            kyc_status,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub phone: String,
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
/// row lock the account for five minutes.
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
    let mut conn = state.pool.acquire().await?;
    let user = sqlx::query!(
        "SELECT id, name, role, pin_hash, suspended FROM users WHERE phone = $1",
        phone.as_str()
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(user) = user else {
        tokio::task::spawn_blocking(move || pin_hash::burn_verification_time(&pin))
            .await
            .map_err(anyhow::Error::from)?;
        AuditEvent::new("auth.login", Outcome::Failure)
            .subject(phone.as_str())
            .detail(json!({"reason": "unknown_phone"}))
            .record(&mut conn)
            .await?;
        return Err(ApiError::InvalidCredentials);
    };

    let locks_if_wrong = match lockout::begin_attempt(&mut conn, user.id).await? {
        Attempt::Locked { retry_after_s } => {
            AuditEvent::new("auth.login", Outcome::Rejected)
                .actor(user.id)
                .detail(json!({"reason": "locked"}))
                .record(&mut conn)
                .await?;
            return Err(ApiError::AccountLocked { retry_after_s });
        }
        Attempt::Proceed { locks_if_wrong } => locks_if_wrong,
    };
    if !verify_pin(pin, user.pin_hash).await? {
        AuditEvent::new("auth.login", Outcome::Failure)
            .actor(user.id)
            .detail(json!({"reason": "wrong_pin", "locked": locks_if_wrong}))
            .record(&mut conn)
            .await?;
        return Err(wrong_pin_error(locks_if_wrong));
    }
    lockout::forgive(&mut conn, user.id).await?;
    if user.suspended {
        AuditEvent::new("auth.login", Outcome::Rejected)
            .actor(user.id)
            .detail(json!({"reason": "suspended"}))
            .record(&mut conn)
            .await?;
        return Err(ApiError::AccountSuspended("this account is suspended"));
    }
    let (access_token, _) = state.jwt.issue(user.id, &user.role)?;
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
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePinRequest {
    pub old_pin: String,
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
    if old_pin == new_pin {
        return Err(ApiError::Validation(
            "the new PIN must differ from the old one".into(),
        ));
    }
    let mut conn = state.pool.acquire().await?;
    let locks_if_wrong = match lockout::begin_attempt(&mut conn, user.user_id).await? {
        Attempt::Locked { retry_after_s } => return Err(ApiError::AccountLocked { retry_after_s }),
        Attempt::Proceed { locks_if_wrong } => locks_if_wrong,
    };
    let stored = sqlx::query_scalar!("SELECT pin_hash FROM users WHERE id = $1", user.user_id)
        .fetch_one(&mut *conn)
        .await?;
    if !verify_pin(old_pin, stored).await? {
        AuditEvent::new("auth.change_pin", Outcome::Failure)
            .actor(user.user_id)
            .detail(json!({"reason": "wrong_pin", "locked": locks_if_wrong}))
            .record(&mut conn)
            .await?;
        return Err(wrong_pin_error(locks_if_wrong));
    }
    let new_hash = hash_pin(new_pin).await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query!(
        "UPDATE users SET pin_hash = $2, failed_pin_attempts = 0, locked_until = NULL WHERE id = $1",
        user.user_id,
        new_hash
    )
    .execute(&mut *tx)
    .await?;
    AuditEvent::new("auth.change_pin", Outcome::Success)
        .actor(user.user_id)
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
