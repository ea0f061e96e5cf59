//! HS256 access tokens with a one-hour life.
//!
//! A token only says who the caller is; whether it still works (logged out,
//! logged out everywhere, PIN changed, suspended user, changed role) is
//! decided per request from PostgreSQL.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::JWT_TTL_SECONDS;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub role: String,
    /// The user's token epoch when it was issued: a token from an earlier
    /// epoch no longer works.
    #[serde(default)]
    pub ep: i32,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        // Only HS256: a token claiming `none` or any other algorithm is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "sub", "jti"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(&self, user_id: Uuid, role: &str, epoch: i32) -> anyhow::Result<(String, Claims)> {
        let iat = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            jti: Uuid::new_v4(),
            iat,
            exp: iat + JWT_TTL_SECONDS,
            role: role.to_owned(),
            ep: epoch,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// The claims of a genuine, unexpired token; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn keys() -> JwtKeys {
        JwtKeys::new(&[42; 32])
    }

    #[test]
    fn an_issued_token_verifies_and_expires_in_one_hour() {
        let (token, claims) = keys().issue(Uuid::new_v4(), "user", 0).unwrap();
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(keys().verify(&token).unwrap().jti, claims.jti);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let (token, _) = JwtKeys::new(&[1; 32])
            .issue(Uuid::new_v4(), "admin", 0)
            .unwrap();
        assert!(keys().verify(&token).is_none());
    }

    #[test]
    fn an_unsigned_alg_none_token_is_refused() {
        let (token, _) = keys().issue(Uuid::new_v4(), "user", 0).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys().verify(&format!("{header}.{payload}.")).is_none());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            iat: now - 7200,
            exp: now - 3600,
            role: "user".into(),
            ep: 0,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[42; 32]),
        )
        .unwrap();
        assert!(keys().verify(&token).is_none());
    }
}
