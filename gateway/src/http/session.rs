//! Who is calling: the bearer-token extractor, the admin guard, and the
//! per-IP limiter of the unauthenticated auth routes.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chainpay_core::refusal::Refusal;
use uuid::Uuid;

use super::error::ApiError;
use super::AppState;
use crate::auth::rate_limit::{self, Admission};
use crate::jwt::Claims;

/// An authenticated, active user. Checked against PostgreSQL on every
/// request: a logged-out token, a suspended user or a deleted user stops
/// working immediately, on every instance.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub phone: String,
    pub name: String,
    pub role: String,
    pub kyc_status: String,
    pub claims: Claims,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        let claims = state.jwt.verify(token).ok_or(ApiError::Unauthorized)?;
        let row = sqlx::query!(
            r#"SELECT phone, name, role, kyc_status, suspended,
                      EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2) AS "revoked!"
               FROM users WHERE id = $1"#,
            claims.sub,
            claims.jti
        )
        .fetch_optional(&state.pool)
        .await?
        .ok_or(ApiError::Unauthorized)?;
        if row.revoked {
            return Err(ApiError::Unauthorized);
        }
        if row.suspended {
            return Err(ApiError::Refused(Refusal::AccountSuspended));
        }
        let bucket = format!("user:{}", claims.sub);
        if let Admission::Limited { retry_after_s } =
            rate_limit::admit(&state.pool, &bucket, state.settings.rate_limit_per_user).await?
        {
            return Err(ApiError::RateLimited { retry_after_s });
        }
        tracing::Span::current().record("user_id", tracing::field::display(claims.sub));
        Ok(Self {
            user_id: claims.sub,
            phone: row.phone,
            name: row.name,
            role: row.role,
            kyc_status: row.kyc_status,
            claims,
        })
    }
}

/// An authenticated user with the `admin` role; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.is_admin() {
            Ok(Self(user))
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// Admits an unauthenticated auth request against its client IP's budget.
/// The IP is the TCP peer: a proxy in front must be trusted to spread load
/// per client itself, since X-Forwarded-For can be forged.
#[derive(Debug, Clone, Copy)]
pub struct IpRateLimited;

impl FromRequestParts<AppState> for IpRateLimited {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(
                || "unknown".to_owned(),
                |ConnectInfo(addr)| addr.ip().to_string(),
            );
        let bucket = format!("ip:{ip}");
        match rate_limit::admit(&state.pool, &bucket, state.settings.rate_limit_per_ip).await? {
            Admission::Allowed => Ok(Self),
            Admission::Limited { retry_after_s } => Err(ApiError::RateLimited { retry_after_s }),
        }
    }
}

/// The caller if a bearer token was presented (and is valid), `None` for an
/// anonymous request. A presented but invalid token is still refused.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.get(AUTHORIZATION).is_none() {
            return Ok(Self(None));
        }
        Ok(Self(Some(
            AuthUser::from_request_parts(parts, state).await?,
        )))
    }
}
