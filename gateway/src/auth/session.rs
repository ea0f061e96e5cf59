//! Who a bearer token belongs to, decided against PostgreSQL (or what it
//! last said, while [`super::cache`] is sure nothing changed since): a
//! logged-out token, a token from before a PIN change, a PIN reset, a
//! suspension or "log out everywhere", or a deleted user stops working at
//! once, on every instance. The HTTP extractors and the simulators' admin
//! controls both go through [`authenticate`].

use chainpay_core::refusal::Refusal;
use uuid::Uuid;

use super::cache::UserRow;
use crate::error::Error;
use crate::jwt::Claims;
use crate::state::AppState;

/// An authenticated, active user.
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

/// The active user `token` belongs to.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, Error> {
    let claims = state.jwt.verify(token).ok_or(Error::Unauthorized)?;
    let row = match state.sessions.get(claims.sub, claims.jti) {
        Some(row) => row,
        None => {
            let generation = state.sessions.generation();
            let row = read(state, &claims).await?;
            if let Some(generation) = generation {
                if !row.suspended && row.token_epoch == claims.ep {
                    state
                        .sessions
                        .remember(generation, claims.sub, claims.jti, row.clone());
                }
            }
            row
        }
    };
    if row.token_epoch != claims.ep {
        return Err(Error::Unauthorized);
    }
    if row.suspended {
        return Err(Refusal::AccountSuspended.into());
    }
    Ok(AuthUser {
        user_id: claims.sub,
        phone: row.phone,
        name: row.name,
        role: row.role,
        kyc_status: row.kyc_status,
        claims,
    })
}

/// The token's user as the database has them now; a logged-out token or a
/// deleted user is `Unauthorized`.
async fn read(state: &AppState, claims: &Claims) -> Result<UserRow, Error> {
    let row = sqlx::query!(
        r#"SELECT phone, name, role, kyc_status, suspended, token_epoch,
                  EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2) AS "revoked!"
           FROM users WHERE id = $1"#,
        claims.sub,
        claims.jti
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or(Error::Unauthorized)?;
    if row.revoked {
        return Err(Error::Unauthorized);
    }
    Ok(UserRow {
        phone: row.phone,
        name: row.name,
        role: row.role,
        kyc_status: row.kyc_status,
        suspended: row.suspended,
        token_epoch: row.token_epoch,
    })
}

/// An admin's token, or `Forbidden` for anyone else's.
pub async fn authenticate_admin(state: &AppState, token: &str) -> Result<AuthUser, Error> {
    let user = authenticate(state, token).await?;
    if user.is_admin() {
        Ok(user)
    } else {
        Err(Error::Forbidden)
    }
}

/// Ends every token `user_id` holds now (a new epoch), inside the caller's
/// transaction so it takes effect with whatever caused it.
pub async fn end_all_tokens(conn: &mut sqlx::PgConnection, user_id: Uuid) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE users SET token_epoch = token_epoch + 1 WHERE id = $1",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
