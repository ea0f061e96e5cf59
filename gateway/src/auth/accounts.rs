//! Opening accounts and changing PINs, shared by the REST API and USSD.

use chainpay_core::compliance::Rule;
use chainpay_core::refusal::Refusal;
use chainpay_core::{Msisdn, Pin};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::lockout::{self, Lock};
use super::pins::{self, PinCheck};
use super::session;
use crate::audit::{AuditEvent, Outcome};
use crate::compliance::{sanctions, sars};
use crate::error::{ComplianceRefusal, Error};
use crate::state::AppState;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegisteredUser {
    pub user_id: Uuid,
    pub phone: String,
    pub name: String,
    pub kyc_status: String,
}

/// Opens an account after screening the name and phone against the
/// sanctions list (a hit is refused, audited and reported). `pin` must
/// already have passed the strength rules.
pub async fn register(
    state: &AppState,
    phone: &Msisdn,
    name: String,
    pin: Pin,
) -> Result<RegisteredUser, Error> {
    let pin_hash = pins::hash(pin).await?;
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
        return Err(ComplianceRefusal::new(Rule::Sanctions, finding).into());
    }
    let user_id = Uuid::new_v4();
    let inserted = sqlx::query_scalar!(
        "INSERT INTO users (id, phone, name, pin_hash, screened_list_version) VALUES ($1, $2, $3, $4, $5)
         RETURNING kyc_status",
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
            return Err(Refusal::PhoneTaken.into())
        }
        Err(e) => return Err(e.into()),
    };
    AuditEvent::new("auth.register", Outcome::Success)
        .actor(user_id)
        .subject(phone.as_str())
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(RegisteredUser {
        user_id,
        phone: phone.to_string(),
        name,
        kyc_status,
    })
}

/// A wrong PIN is `invalid_credentials`, or `account_locked` when it locked the account.
pub fn wrong_pin_error(check: PinCheck) -> Error {
    match check {
        PinCheck::Wrong { lock: Some(lock) } | PinCheck::Locked(lock) => Error::AccountLocked {
            retry_after_s: match lock {
                Lock::For { seconds } => Some(seconds),
                Lock::UntilUnlocked => None,
            },
        },
        PinCheck::Wrong { lock: None } | PinCheck::Correct => Error::InvalidCredentials,
    }
}

/// Replaces the PIN after checking the old one (which counts towards the
/// lockout). `new` must already have passed the strength rules.
pub async fn change_pin(state: &AppState, user_id: Uuid, old: Pin, new: Pin) -> Result<(), Error> {
    if old == new {
        return Err(Error::Validation(
            "the new PIN must differ from the old one".into(),
        ));
    }
    let check = pins::check(&state.pool, user_id, old).await?;
    if check != PinCheck::Correct {
        let mut conn = state.pool.acquire().await?;
        AuditEvent::new("auth.change_pin", Outcome::Failure)
            .actor(user_id)
            .detail(json!({"reason": "wrong_pin", "locked": check.locked()}))
            .record(&mut conn)
            .await?;
        return Err(wrong_pin_error(check));
    }
    let new_hash = pins::hash(new).await?;
    let mut conn = state.pool.acquire().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query!(
        "UPDATE users SET pin_hash = $2 WHERE id = $1",
        user_id,
        new_hash
    )
    .execute(&mut *tx)
    .await?;
    lockout::clear(&mut tx, user_id).await?;
    // Whoever else held a token for this account loses it with the old PIN.
    session::end_all_tokens(&mut tx, user_id).await?;
    AuditEvent::new("auth.change_pin", Outcome::Success)
        .actor(user_id)
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    state.sessions.forget(user_id);
    Ok(())
}
