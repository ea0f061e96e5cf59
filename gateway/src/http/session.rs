//! Who is calling: the bearer-token extractor, the admin guard, and the
//! per-IP limiter of the unauthenticated auth routes.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use super::AppState;
use crate::auth::rate_limit::{self, Admission};
use crate::auth::session;
use crate::config::RATE_WINDOW_SECONDS;

pub use crate::auth::session::AuthUser;

pub(crate) fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// An authenticated, active user (see [`crate::auth::session`]), within
/// their per-user request budget.
impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        let user = session::authenticate(state, token).await?;
        let bucket = format!("user:{}", user.user_id);
        let limit = state.settings.rate_limit_per_user;
        if let Admission::Limited { retry_after_s } =
            rate_limit::admit(&state.pool, &bucket, limit, RATE_WINDOW_SECONDS).await?
        {
            return Err(ApiError::RateLimited { retry_after_s });
        }
        tracing::Span::current().record("user_id", tracing::field::display(user.user_id));
        Ok(user)
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
                |ConnectInfo(addr)| client_key(addr.ip()),
            );
        let bucket = format!("ip:{ip}");
        let limit = state.settings.rate_limit_per_ip;
        match rate_limit::admit(&state.pool, &bucket, limit, RATE_WINDOW_SECONDS).await? {
            Admission::Allowed => Ok(Self),
            Admission::Limited { retry_after_s } => Err(ApiError::RateLimited { retry_after_s }),
        }
    }
}

/// Whom a per-IP limit counts: an IPv4 address, or an IPv6 address's /64
/// (one subscriber's network holds 2^64 addresses, each of which would
/// otherwise get a limit of its own; an IPv4 address mapped into IPv6
/// counts as itself).
fn client_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(network))
            }
        },
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

#[cfg(test)]
mod tests {
    use super::client_key;

    #[test]
    fn an_ipv6_network_is_limited_as_one_client() {
        let key = |ip: &str| client_key(ip.parse().unwrap());
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:fffe")
        );
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
    }
}
