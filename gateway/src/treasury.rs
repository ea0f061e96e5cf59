//! Treasury issuance, the only way e-money enters: an agent buys float with
//! a bank transfer, one admin proposes issuing it, and a *different* admin
//! approves (posting treasury float → the agent's float, with its chain
//! entry, audit row and SMS) or rejects it. The database holds the four-eyes
//! rule too (`treasury_issuances_four_eyes`). Deciding again the same way
//! answers as the first time, so a retried approval issues nothing twice.

use chainpay_core::ledger::move_entry;
use chainpay_core::notify::Sms;
use chainpay_core::status::TxStatus;
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::{Amount, CurrencyCode, Lang, Msisdn};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::four_eyes::{self, Standing};
use crate::ledger::accounts::AccountRef;
use crate::movements::book::{book, Booking};
use crate::state::AppState;

/// An issuance as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Issuance {
    pub id: Uuid,
    pub agent_number: String,
    pub agent_phone: String,
    pub agent_name: String,
    pub amount: i64,
    pub currency: String,
    /// The agent's bank transfer; one issuance per reference.
    pub reference: String,
    /// `PENDING`, `APPROVED` or `REJECTED`.
    pub status: String,
    pub proposed_by: Uuid,
    pub proposal_note: Option<String>,
    pub decided_by: Option<Uuid>,
    pub decision_note: Option<String>,
    /// The posted issuance, once approved.
    pub tx_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// A validated proposal.
pub struct Proposal {
    pub agent_phone: Msisdn,
    pub amount: Amount,
    pub currency: CurrencyCode,
    pub reference: String,
    pub note: Option<String>,
}

pub async fn propose(state: &AppState, admin: Uuid, proposal: Proposal) -> Result<Issuance, Error> {
    let mut tx = state.pool.begin().await?;
    let agent = sqlx::query!(
        r#"SELECT a.user_id, a.status FROM agents a JOIN users u ON u.id = a.user_id WHERE u.phone = $1"#,
        proposal.agent_phone.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound(Missing::Agent))?;
    if agent.status != "ACTIVE" {
        return Err(Error::Conflict("the agent is suspended".into()));
    }
    let known = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM currencies WHERE code = $1) AS "known!""#,
        proposal.currency.as_str()
    )
    .fetch_one(&mut *tx)
    .await?;
    if !known {
        return Err(Error::Validation(format!(
            "unsupported currency {}",
            proposal.currency
        )));
    }
    let id = Uuid::new_v4();
    let inserted = sqlx::query!(
        "INSERT INTO treasury_issuances (id, agent_user_id, amount, currency, reference, proposed_by, proposal_note)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (reference) WHERE status <> 'REJECTED' DO NOTHING",
        id,
        agent.user_id,
        proposal.amount.minor(),
        proposal.currency.as_str(),
        proposal.reference,
        admin,
        proposal.note
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(Error::Conflict(
            "an issuance with this reference exists already".into(),
        ));
    }
    AuditEvent::new("treasury.issuance.propose", Outcome::Success)
        .actor(admin)
        .subject(id)
        .detail(
            json!({"agent": proposal.agent_phone.as_str(), "amount": proposal.amount.minor(),
                       "currency": proposal.currency.as_str(), "reference": proposal.reference}),
        )
        .record(&mut tx)
        .await?;
    let issuance = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(issuance)
}

/// Approves (`approve`) or rejects a pending issuance as `admin`, who must
/// not be its proposer.
pub async fn decide(
    state: &AppState,
    admin: Uuid,
    id: Uuid,
    approve: bool,
    note: Option<String>,
) -> Result<Issuance, Error> {
    let mut tx = state.pool.begin().await?;
    let current = sqlx::query!(
        "SELECT status, proposed_by, decided_by, created_at FROM treasury_issuances WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound(Missing::Issuance))?;
    let standing = Standing {
        status: &current.status,
        proposed_by: current.proposed_by,
        decided_by: current.decided_by,
        party: None,
        proposer_stands: four_eyes::proposer_stands(
            &mut tx,
            current.proposed_by,
            Some(current.created_at),
        )
        .await?,
    };
    if !four_eyes::to_decide(&standing, admin, approve, "issuance")? {
        return fetch(&mut tx, id).await;
    }
    let tx_id = if approve {
        Some(issue(&mut tx, state, id, admin).await?)
    } else {
        None
    };
    sqlx::query!(
        "UPDATE treasury_issuances SET status = $2, decided_by = $3, decision_note = $4, tx_id = $5, decided_at = now()
         WHERE id = $1",
        id,
        four_eyes::status(approve),
        admin,
        note,
        tx_id
    )
    .execute(&mut *tx)
    .await?;
    if !approve {
        AuditEvent::new("treasury.issuance.reject", Outcome::Success)
            .actor(admin)
            .subject(id)
            .detail(json!({ "note": note }))
            .record(&mut tx)
            .await?;
    }
    let issuance = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(issuance)
}

/// Posts an approved issuance: the treasury float pays the agent's float.
async fn issue(
    conn: &mut PgConnection,
    state: &AppState,
    id: Uuid,
    admin: Uuid,
) -> Result<Uuid, Error> {
    let row = sqlx::query!(
        r#"SELECT i.agent_user_id, i.amount, i.currency, i.reference, a.status, u.suspended, u.kyc_status, u.sanctions_match_id IS NOT NULL AS "listed!", u.phone, u.language, c.exponent
           FROM treasury_issuances i JOIN agents a ON a.user_id = i.agent_user_id JOIN users u ON u.id = i.agent_user_id
           JOIN currencies c ON c.code = i.currency WHERE i.id = $1"#,
        id
    )
    .fetch_one(&mut *conn)
    .await?;
    // A listed agent is held to what a listed customer is: no e-money is
    // issued to them.
    if row.status != "ACTIVE" || row.suspended || row.listed || row.kyc_status != "VERIFIED" {
        return Err(Error::Conflict(
            "the agent is suspended or not in good standing; reject or wait".into(),
        ));
    }
    // Screened as any movement's party is: against the current list when
    // the agent was last screened against an older one. A hit refuses (the
    // approval's transaction, and the report the refusal names, roll back;
    // the background re-screening records the match and opens the report).
    let rules = state.rules.get(&state.pool).await?;
    let agent = crate::movements::parties::load(&mut *conn, row.agent_user_id, None).await?;
    let usd_cents = rules
        .rates
        .usd_cents(&row.currency, row.amount)
        .unwrap_or(0);
    crate::movements::parties::screen(&mut *conn, state, &rules, &agent, usd_cents).await?;
    let currency =
        CurrencyCode::parse(&row.currency).map_err(|e| Error::internal(e.to_string()))?;
    let float = AccountRef::agent_float(row.agent_user_id, &row.currency);
    let entry = move_entry(
        AccountRef::float("treasury", &row.currency),
        float.clone(),
        &currency,
        row.amount,
    )
    .map_err(|e| Error::Validation(e.to_string()))?;
    let tx_id = crate::ledger::new_tx_id();
    let booking = Booking {
        facts: TxFacts::now(tx_id, TxType::Issuance, &row.currency, (row.amount, 0), None, Some(row.agent_user_id)),
        entry,
        note: Some(format!("treasury issuance {}", row.reference)),
        usd_cents: None,
        status: TxStatus::Completed,
        audit: AuditEvent::new("treasury.issuance.approve", Outcome::Success)
            .actor(admin)
            .subject(id)
            .detail(json!({"tx_id": tx_id, "amount": row.amount, "currency": row.currency, "reference": row.reference})),
    };
    let exponent = row.exponent.max(0) as u32;
    let shown = |minor| chainpay_core::money::show(&row.currency, minor, exponent);
    book(conn, &state.keys.tx_signing, booking, |booked| {
        let text = Sms(Lang::parse(&row.language)).float_issued(
            booked.receipt(),
            &shown(row.amount),
            &row.reference,
            &shown(booked.available_of(&float)),
        );
        vec![(row.phone.clone(), text)]
    })
    .await?;
    Ok(tx_id)
}

/// Issuances, newest first, optionally of one status.
pub async fn list(conn: &mut PgConnection, status: Option<&str>) -> Result<Vec<Issuance>, Error> {
    select(conn, status, None).await
}

async fn fetch(conn: &mut PgConnection, id: Uuid) -> Result<Issuance, Error> {
    select(conn, None, Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound(Missing::Issuance))
}

async fn select(
    conn: &mut PgConnection,
    status: Option<&str>,
    id: Option<Uuid>,
) -> Result<Vec<Issuance>, Error> {
    Ok(sqlx::query_as!(
        Issuance,
        r#"SELECT i.id, a.agent_number, u.phone AS agent_phone, u.name AS agent_name, i.amount, i.currency, i.reference,
                  i.status, i.proposed_by, i.proposal_note, i.decided_by, i.decision_note, i.tx_id, i.created_at, i.decided_at
           FROM treasury_issuances i JOIN agents a ON a.user_id = i.agent_user_id JOIN users u ON u.id = i.agent_user_id
           WHERE ($1::text IS NULL OR i.status = $1) AND ($2::uuid IS NULL OR i.id = $2)
           ORDER BY i.created_at DESC LIMIT 200"#,
        status,
        id
    )
    .fetch_all(conn)
    .await?)
}
