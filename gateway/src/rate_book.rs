//! Setting the rate book's USD legs, with four eyes on large moves.
//!
//! A rate is a price the house converts at: a leg set far from the market
//! would let whoever converts at it take e-money the house never had. So one
//! admin alone may move a leg only within [`SOLE_ADMIN_BAND`] of its anchor,
//! the rate two admins, the feed or the seed last set. A larger move is kept
//! as a proposal until a second admin sends the same rate within
//! [`AGREE_WITHIN_MINUTES`]; it then takes effect and becomes the anchor.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use chainpay_core::fx::within_sole_admin_band;
pub use chainpay_core::fx::SOLE_ADMIN_BAND;

use crate::error::Error;

/// How long a proposed move waits for a second admin.
pub const AGREE_WITHIN_MINUTES: i32 = 15;

/// What became of one leg an admin set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegChange {
    /// Within the band: in force now; the anchor stays.
    Set,
    /// A second admin sent the rate another proposed: in force, and the anchor.
    Agreed { proposed_by: Uuid },
    /// Beyond the band: waiting for a second admin.
    Proposed,
}

/// A move waiting for a second admin.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Proposal {
    pub currency: String,
    /// The rate proposed (decimal string).
    pub usd_mid: String,
    pub proposed_by: Uuid,
    pub proposed_at: DateTime<Utc>,
    /// After this, a second admin's same rate is a new proposal of their own.
    pub expires_at: DateTime<Utc>,
}

/// Sets `currency`'s leg to `mid` as `admin` asks, on the caller's
/// transaction (the leg's row locked until it commits).
pub async fn set_leg(
    conn: &mut PgConnection,
    admin: Uuid,
    currency: &str,
    mid: Decimal,
) -> Result<LegChange, Error> {
    let known = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM currencies WHERE code = $1) AS "known!""#,
        currency
    )
    .fetch_one(&mut *conn)
    .await?;
    if !known {
        return Err(Error::Validation(format!(
            "unsupported currency {currency}"
        )));
    }
    let anchor = sqlx::query_scalar!(
        "SELECT anchor_mid FROM fx_rates WHERE currency = $1 FOR UPDATE",
        currency
    )
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    if anchor.is_some_and(|anchor| within_sole_admin_band(anchor, mid)) {
        store(conn, currency, mid, false).await?;
        return Ok(LegChange::Set);
    }
    let agreed = sqlx::query_scalar!(
        "DELETE FROM fx_rate_proposals
         WHERE currency = $1 AND usd_mid = $2 AND proposed_by <> $3
           AND proposed_at > now() - make_interval(mins => $4)
         RETURNING proposed_by",
        currency,
        mid,
        admin,
        AGREE_WITHIN_MINUTES
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(proposed_by) = agreed {
        store(conn, currency, mid, true).await?;
        return Ok(LegChange::Agreed { proposed_by });
    }
    sqlx::query!(
        "INSERT INTO fx_rate_proposals (currency, usd_mid, proposed_by) VALUES ($1, $2, $3)
         ON CONFLICT (currency) DO UPDATE
         SET usd_mid = EXCLUDED.usd_mid, proposed_by = EXCLUDED.proposed_by, proposed_at = now()",
        currency,
        mid,
        admin
    )
    .execute(&mut *conn)
    .await?;
    Ok(LegChange::Proposed)
}

/// Puts `mid` in force; `anchor`: two admins agreed on it.
async fn store(
    conn: &mut PgConnection,
    currency: &str,
    mid: Decimal,
    anchor: bool,
) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO fx_rates (currency, usd_mid, anchor_mid, source, updated_at)
         VALUES ($1, $2::numeric, CASE WHEN $3 THEN $2::numeric END, 'admin', now())
         ON CONFLICT (currency) DO UPDATE
         SET usd_mid = EXCLUDED.usd_mid, source = 'admin', updated_at = now(),
             anchor_mid = CASE WHEN $3 THEN EXCLUDED.usd_mid ELSE fx_rates.anchor_mid END",
        currency,
        mid,
        anchor
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The moves waiting for a second admin, oldest first.
pub async fn proposals(conn: &mut PgConnection) -> Result<Vec<Proposal>, Error> {
    Ok(sqlx::query!(
        r#"SELECT currency, usd_mid, proposed_by, proposed_at,
                  proposed_at + make_interval(mins => $1) AS "expires_at!"
           FROM fx_rate_proposals WHERE proposed_at > now() - make_interval(mins => $1)
           ORDER BY proposed_at"#,
        AGREE_WITHIN_MINUTES
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|row| Proposal {
        currency: row.currency,
        usd_mid: row.usd_mid.normalize().to_string(),
        proposed_by: row.proposed_by,
        proposed_at: row.proposed_at,
        expires_at: row.expires_at,
    })
    .collect())
}
