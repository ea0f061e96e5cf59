//! Changing the rate book (a currency's USD leg, or the spread), with four
//! eyes.
//!
//! A rate is a price the house converts at. One admin alone setting it off
//! the market, even a little on two legs at once (a cross rate moves by
//! both), could have an accomplice convert at it and back and take e-money
//! the house never had. So a change one admin asks for is a proposal; it
//! takes effect when a second admin sets the same value within
//! [`AGREE_WITHIN_MINUTES`].

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::Error;
use crate::four_eyes::proposer_stands;

/// How long a proposal waits for a second admin.
pub const AGREE_WITHIN_MINUTES: i32 = 15;

/// What a change of the rate book is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A currency's USD leg (units of it one US dollar buys).
    Leg(String),
    /// The total bid/ask spread.
    Spread,
}

impl Subject {
    /// How proposals and the audit name it: the currency code, or `spread`.
    pub fn key(&self) -> &str {
        match self {
            Subject::Leg(currency) => currency,
            Subject::Spread => "spread",
        }
    }
}

/// What became of one change an admin asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The second admin's: in force now.
    Agreed { proposed_by: Uuid },
    /// Waiting for a second admin to set the same value.
    Proposed,
}

/// A change waiting for a second admin.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Proposal {
    /// A currency code (its USD leg) or `spread`.
    pub subject: String,
    /// The value proposed (decimal string).
    pub value: String,
    pub proposed_by: Uuid,
    pub proposed_at: DateTime<Utc>,
    /// After this, a second admin's same value is a new proposal of theirs.
    pub expires_at: DateTime<Utc>,
}

/// Proposes `value` for `subject` as `admin`, or, when another admin
/// proposed the same value within [`AGREE_WITHIN_MINUTES`], puts it in
/// force. On the caller's transaction; changes of one subject are decided
/// one at a time.
pub async fn propose(
    conn: &mut PgConnection,
    admin: Uuid,
    subject: &Subject,
    value: Decimal,
) -> Result<Change, Error> {
    lock(conn, subject).await?;
    let agreeing = sqlx::query!(
        "SELECT proposed_by, proposed_at FROM fx_rate_proposals
         WHERE subject = $1 AND value = $2 AND proposed_by <> $3
           AND proposed_at > now() - make_interval(mins => $4)",
        subject.key(),
        value,
        admin,
        AGREE_WITHIN_MINUTES
    )
    .fetch_optional(&mut *conn)
    .await?;
    // A proposer suspended or demoted since stands behind nothing: the same
    // value is then this admin's own proposal.
    if let Some(other) = agreeing {
        if proposer_stands(&mut *conn, other.proposed_by, Some(other.proposed_at)).await? {
            sqlx::query!(
                "DELETE FROM fx_rate_proposals WHERE subject = $1",
                subject.key()
            )
            .execute(&mut *conn)
            .await?;
            apply(conn, subject, value).await?;
            return Ok(Change::Agreed {
                proposed_by: other.proposed_by,
            });
        }
    }
    sqlx::query!(
        "INSERT INTO fx_rate_proposals (subject, value, proposed_by) VALUES ($1, $2, $3)
         ON CONFLICT (subject) DO UPDATE
         SET value = EXCLUDED.value, proposed_by = EXCLUDED.proposed_by, proposed_at = now()",
        subject.key(),
        value,
        admin
    )
    .execute(&mut *conn)
    .await?;
    Ok(Change::Proposed)
}

/// Serialises the changes of `subject` (a currency may have no leg yet to
/// lock, so the lock is an advisory one), after checking a currency is one
/// ChainPay knows.
async fn lock(conn: &mut PgConnection, subject: &Subject) -> Result<(), Error> {
    if let Subject::Leg(currency) = subject {
        sqlx::query_scalar!("SELECT code FROM currencies WHERE code = $1", currency)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::Validation(format!("unsupported currency {currency}")))?;
    }
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('fx_rate_proposal:' || $1, 0))",
        subject.key()
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Puts an agreed value in force.
async fn apply(conn: &mut PgConnection, subject: &Subject, value: Decimal) -> Result<(), Error> {
    match subject {
        Subject::Leg(currency) => {
            sqlx::query!(
                "INSERT INTO fx_rates (currency, usd_mid, source, updated_at) VALUES ($1, $2, 'admin', now())
                 ON CONFLICT (currency) DO UPDATE SET usd_mid = EXCLUDED.usd_mid, source = 'admin', updated_at = now()",
                currency,
                value
            )
            .execute(conn)
            .await?;
        }
        Subject::Spread => {
            sqlx::query!("UPDATE fx_settings SET spread = $1", value)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// The changes waiting for a second admin, oldest first.
pub async fn proposals(conn: &mut PgConnection) -> Result<Vec<Proposal>, Error> {
    Ok(sqlx::query!(
        r#"SELECT subject, value, proposed_by, proposed_at,
                  proposed_at + make_interval(mins => $1) AS "expires_at!"
           FROM fx_rate_proposals WHERE proposed_at > now() - make_interval(mins => $1)
           ORDER BY proposed_at"#,
        AGREE_WITHIN_MINUTES
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|row| Proposal {
        subject: row.subject,
        value: row.value.normalize().to_string(),
        proposed_by: row.proposed_by,
        proposed_at: row.proposed_at,
        expires_at: row.expires_at,
    })
    .collect())
}
