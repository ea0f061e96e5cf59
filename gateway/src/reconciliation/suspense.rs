//! Money in suspense: an M-Pesa payment that arrived after its deposit had
//! expired or failed, or that did not match what was asked for, is booked
//! to suspense (never to the wallet) with an item here. One admin proposes
//! what to do — credit the customer, or refund the payer with the M-Pesa
//! reversal's reference — and a *different* admin approves it, which books
//! it: suspense → the customer's wallet (the deposit becomes CONFIRMED), or
//! suspense → the M-Pesa float (REFUNDED). The database holds the four-eyes
//! rule too (`reconciliation_items_four_eyes`).

use chainpay_core::ledger::move_entry;
use chainpay_core::notify::Sms;
use chainpay_core::status::{DepositStatus, TxStatus};
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::{CurrencyCode, Lang};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::error::{Error, Missing};
use crate::ledger::accounts::AccountRef;
use crate::movements::book::{book, Booking};
use crate::movements::parties::{self, Direction};
use crate::movements::transfer::fx_error;
use crate::rules::Rules;
use crate::state::AppState;

/// Why a payment is in suspense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It arrived after the deposit had expired or failed.
    Late,
    /// The customer may not receive money now (suspended, rejected, listed).
    Standing,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Late => "late",
            Reason::Standing => "standing",
        }
    }
}

/// What to do with money in suspense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Credit the customer's wallet.
    Credit,
    /// It was returned to the payer through M-Pesa (a reversal).
    Refund,
}

impl Resolution {
    fn as_str(self) -> &'static str {
        match self {
            Resolution::Credit => "credit",
            Resolution::Refund => "refund",
        }
    }
}

/// A suspense item as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SuspenseItem {
    pub id: i64,
    /// The deposit's ref.
    pub subject: String,
    /// Deposit, customer, amount, receipt and why it is held.
    pub detail: Value,
    /// `OPEN`, `PROPOSED` or `RESOLVED`.
    pub status: String,
    pub resolution: Option<String>,
    pub proposed_by: Option<Uuid>,
    pub proposal_note: Option<String>,
    /// Which proposal this is (raised by each): an approval names it, so a
    /// proposal sent back and replaced is never approved unseen.
    pub proposal_version: i32,
    pub resolved_by: Option<Uuid>,
    pub resolution_note: Option<String>,
    /// The transaction that resolved it.
    pub tx_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Opens the item for a deposit just booked to suspense (once per deposit).
pub async fn hold(
    conn: &mut PgConnection,
    deposit: Uuid,
    amount: i64,
    reason: Reason,
    receipt: Option<&str>,
) -> Result<(), Error> {
    sqlx::query!(
        "INSERT INTO reconciliation_items (category, subject, detail) VALUES ('suspense', $1, $2)
         ON CONFLICT (subject) WHERE category = 'suspense' DO NOTHING",
        deposit.to_string(),
        json!({"deposit": deposit, "amount": amount, "currency": "KES", "reason": reason.as_str(), "receipt": receipt})
    )
    .execute(&mut *conn)
    .await?;
    tracing::error!(%deposit, amount, reason = reason.as_str(), "M-Pesa payment held in suspense for review");
    Ok(())
}

/// Suspense items, newest first, optionally in one status.
pub async fn list(state: &AppState, status: Option<&str>) -> Result<Vec<SuspenseItem>, Error> {
    Ok(sqlx::query_as!(
        SuspenseItem,
        "SELECT id, subject, detail, status, resolution, proposed_by, proposal_note, proposal_version, resolved_by, resolution_note, tx_id,
                created_at, resolved_at
         FROM reconciliation_items WHERE category = 'suspense' AND ($1::text IS NULL OR status = $1)
         ORDER BY id DESC LIMIT 200",
        status
    )
    .fetch_all(&state.pool)
    .await?)
}

async fn fetch(conn: &mut PgConnection, id: i64) -> Result<SuspenseItem, Error> {
    sqlx::query_as!(
        SuspenseItem,
        "SELECT id, subject, detail, status, resolution, proposed_by, proposal_note, proposal_version, resolved_by, resolution_note, tx_id,
                created_at, resolved_at
         FROM reconciliation_items WHERE id = $1 AND category = 'suspense'",
        id
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound(Missing::ReconciliationItem))
}

/// A proposal: what to do, why, and for a refund the M-Pesa reversal's
/// reference.
pub struct Proposal {
    pub resolution: Resolution,
    pub note: String,
    pub mpesa_reference: Option<String>,
}

pub async fn propose(
    state: &AppState,
    admin: Uuid,
    id: i64,
    proposal: Proposal,
) -> Result<SuspenseItem, Error> {
    if proposal.resolution == Resolution::Refund && proposal.mpesa_reference.is_none() {
        return Err(Error::Validation(
            "a refund needs mpesa_reference: the receipt of the M-Pesa reversal".into(),
        ));
    }
    let mut tx = state.pool.begin().await?;
    let item = lock(&mut tx, id).await?;
    if held_deposit(&mut tx, &item).await?.user_id == admin {
        return Err(Error::SecondAdminNeeded);
    }
    if item.status != "OPEN" {
        if item.status == "PROPOSED"
            && item.proposed_by == Some(admin)
            && item.resolution.as_deref() == Some(proposal.resolution.as_str())
        {
            return Ok(item);
        }
        return Err(Error::Conflict(format!(
            "this item is already {}",
            item.status.to_lowercase()
        )));
    }
    let note = match &proposal.mpesa_reference {
        Some(reference) => format!("{} (M-Pesa reversal {reference})", proposal.note),
        None => proposal.note.clone(),
    };
    sqlx::query!(
        "UPDATE reconciliation_items SET status = 'PROPOSED', resolution = $2, proposed_by = $3, proposal_note = $4,
                mpesa_reference = $5, proposal_version = proposal_version + 1, proposed_at = now() WHERE id = $1",
        id,
        proposal.resolution.as_str(),
        admin,
        note,
        proposal.mpesa_reference
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("reconciliation_items_mpesa_reference_key") => {
            Error::Conflict("that M-Pesa reversal already refunds another payment".into())
        }
        _ => e.into(),
    })?;
    AuditEvent::new("reconciliation.suspense.propose", Outcome::Success)
        .actor(admin)
        .subject(id)
        .detail(json!({"resolution": proposal.resolution.as_str(), "note": note, "deposit": item.subject}))
        .record(&mut tx)
        .await?;
    let item = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(item)
}

async fn lock(conn: &mut PgConnection, id: i64) -> Result<SuspenseItem, Error> {
    sqlx::query!(
        "SELECT id FROM reconciliation_items WHERE id = $1 AND category = 'suspense' FOR UPDATE",
        id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound(Missing::ReconciliationItem))?;
    fetch(conn, id).await
}

/// Sends a proposal back (any admin but the deposit's customer, who would
/// hold up their own item; nothing moves).
pub async fn reject(
    state: &AppState,
    admin: Uuid,
    id: i64,
    note: Option<String>,
) -> Result<SuspenseItem, Error> {
    let mut tx = state.pool.begin().await?;
    let item = lock(&mut tx, id).await?;
    if held_deposit(&mut tx, &item).await?.user_id == admin {
        return Err(Error::SecondAdminNeeded);
    }
    if item.status != "PROPOSED" {
        return Err(Error::Conflict(format!(
            "this item is {}, not proposed",
            item.status.to_lowercase()
        )));
    }
    sqlx::query!(
        "UPDATE reconciliation_items SET status = 'OPEN', resolution = NULL, proposed_by = NULL, proposal_note = NULL,
                mpesa_reference = NULL, proposed_at = NULL WHERE id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    AuditEvent::new("reconciliation.suspense.reject", Outcome::Success)
        .actor(admin)
        .subject(id)
        .detail(json!({"note": note, "was": item.resolution, "proposed_by": item.proposed_by}))
        .record(&mut tx)
        .await?;
    let item = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(item)
}

/// Whether the proposal on (locked) item `id` still stands
/// ([`crate::four_eyes::proposer_stands`]).
async fn proposal_stands(
    conn: &mut PgConnection,
    id: i64,
    proposed_by: Option<Uuid>,
) -> Result<bool, Error> {
    let Some(proposed_by) = proposed_by else {
        return Ok(false);
    };
    let proposed_at = sqlx::query_scalar!(
        "SELECT proposed_at FROM reconciliation_items WHERE id = $1",
        id
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(crate::four_eyes::proposer_stands(conn, proposed_by, proposed_at).await?)
}

/// Approves and books proposal `version` of an item, as an admin other
/// than its proposer, while the proposal stands. Approving again answers
/// as the first time.
pub async fn approve(
    state: &AppState,
    admin: Uuid,
    id: i64,
    version: i32,
    note: Option<String>,
) -> Result<SuspenseItem, Error> {
    let mut tx = state.pool.begin().await?;
    let item = lock(&mut tx, id).await?;
    if item.proposed_by == Some(admin) {
        return Err(Error::SecondAdminNeeded);
    }
    match item.status.as_str() {
        "PROPOSED" if item.proposal_version != version => {
            return Err(Error::Conflict(
                "the proposal changed since you read it: read it again".into(),
            ))
        }
        "PROPOSED" if !proposal_stands(&mut tx, id, item.proposed_by).await? => {
            return Err(crate::four_eyes::lapsed("proposal"));
        }
        "PROPOSED" => {}
        "RESOLVED" if item.resolved_by == Some(admin) => return Ok(item),
        other => {
            return Err(Error::Conflict(format!(
                "this item is {}, not proposed",
                other.to_lowercase()
            )))
        }
    }
    let resolution = match item.resolution.as_deref() {
        Some("credit") => Resolution::Credit,
        Some("refund") => Resolution::Refund,
        other => {
            return Err(Error::internal(format!(
                "a proposed item with resolution {other:?}"
            )))
        }
    };
    let tx_id = resolve(&mut tx, state, &item, resolution, admin).await?;
    sqlx::query!(
        "UPDATE reconciliation_items SET status = 'RESOLVED', resolved_by = $2, resolution_note = $3, tx_id = $4, resolved_at = now()
         WHERE id = $1",
        id,
        admin,
        note,
        tx_id
    )
    .execute(&mut *tx)
    .await?;
    let item = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(item)
}

/// The deposit whose money an item holds, locked.
struct Held {
    reference: Uuid,
    user_id: Uuid,
    status: DepositStatus,
    receipt: Option<String>,
    phone: String,
    lang: Lang,
    /// What went to suspense.
    amount: i64,
}

async fn held_deposit(conn: &mut PgConnection, item: &SuspenseItem) -> Result<Held, Error> {
    let reference = Uuid::parse_str(&item.subject).map_err(|e| Error::internal(e.to_string()))?;
    let row = sqlx::query!(
        r#"SELECT d.user_id, d.status, d.mpesa_receipt, u.phone, u.language,
                  (SELECT p.amount FROM postings p JOIN accounts a ON a.id = p.account_id
                   WHERE p.tx_id = d.tx_id AND a.kind = 'suspense' AND a.currency = 'KES') AS held
           FROM mpesa_deposits d JOIN users u ON u.id = d.user_id WHERE d.ref = $1 FOR UPDATE OF d"#,
        reference
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Held {
        reference,
        user_id: row.user_id,
        status: DepositStatus::parse(&row.status)
            .ok_or_else(|| Error::internal("unknown deposit status"))?,
        receipt: row.mpesa_receipt,
        phone: row.phone,
        lang: Lang::parse(&row.language),
        amount: row.held.filter(|held| *held > 0).unwrap_or(0),
    })
}

/// Books the resolution: suspense → wallet (credit, after the customer
/// passes the same screening and incoming limits as a deposit) or → the
/// M-Pesa float (refund). The deposit's own customer cannot approve it.
async fn resolve(
    conn: &mut PgConnection,
    state: &AppState,
    item: &SuspenseItem,
    resolution: Resolution,
    admin: Uuid,
) -> Result<Uuid, Error> {
    let deposit = held_deposit(conn, item).await?;
    if deposit.user_id == admin {
        return Err(Error::SecondAdminNeeded);
    }
    if deposit.amount == 0 {
        return Err(Error::internal(
            "a suspense item without its suspense posting",
        ));
    }
    let next = match resolution {
        Resolution::Credit => DepositStatus::Confirmed,
        Resolution::Refund => DepositStatus::Refunded,
    };
    if !deposit.status.can_become(next) {
        return Err(Error::Conflict(format!(
            "the deposit is {}",
            deposit.status
        )));
    }
    let rules = state.rules.get(&state.pool).await?;
    if resolution == Resolution::Credit {
        let usd_cents = rules
            .rates
            .usd_cents("KES", deposit.amount)
            .map_err(fx_error)?;
        let customer = parties::load(conn, deposit.user_id, None).await?;
        if !customer.sender.can_receive() || customer.sender.party.sanctions_match_id.is_some() {
            return Err(Error::Conflict(
                "the customer may not receive money now (suspended, rejected or listed): refund instead".into(),
            ));
        }
        parties::gate(
            conn,
            state,
            &rules,
            &customer,
            usd_cents,
            Direction::Incoming,
        )
        .await?;
    }
    let tx_id = book_resolution(conn, state, &rules, (item, &deposit), resolution, admin).await?;
    let credit_tx = (resolution == Resolution::Credit).then_some(tx_id);
    sqlx::query!(
        "UPDATE mpesa_deposits SET status = $2, tx_id = coalesce($3, tx_id), settled_at = now() WHERE ref = $1",
        deposit.reference,
        next.as_str(),
        credit_tx
    )
    .execute(&mut *conn)
    .await?;
    Ok(tx_id)
}

async fn book_resolution(
    conn: &mut PgConnection,
    state: &AppState,
    rules: &Rules,
    (item, deposit): (&SuspenseItem, &Held),
    resolution: Resolution,
    admin: Uuid,
) -> Result<Uuid, Error> {
    let (reference, amount) = (deposit.reference, deposit.amount);
    let kes = CurrencyCode::parse("KES").map_err(|e| Error::internal(e.to_string()))?;
    let wallet = AccountRef::wallet(deposit.user_id, "KES");
    let (target, tx_type) = match resolution {
        Resolution::Credit => (wallet.clone(), TxType::Deposit),
        Resolution::Refund => (AccountRef::float("mpesa", "KES"), TxType::Refund),
    };
    let entry = move_entry(AccountRef::house("suspense", "KES"), target, &kes, amount)
        .map_err(|e| Error::internal(e.to_string()))?;
    let tx_id = crate::ledger::new_tx_id();
    let credited = (resolution == Resolution::Credit).then_some(deposit.user_id);
    let booking = Booking {
        facts: TxFacts::now(tx_id, tx_type, "KES", (amount, 0), None, credited),
        entry,
        note: Some(format!("suspense {} for deposit {reference}", resolution.as_str())),
        usd_cents: None,
        status: TxStatus::Completed,
        audit: AuditEvent::new("reconciliation.suspense.approve", Outcome::Success)
            .actor(admin)
            .subject(item.id)
            .detail(json!({"deposit": reference, "resolution": resolution.as_str(), "amount": amount, "tx_id": tx_id,
                           "proposed_by": item.proposed_by})),
    };
    let receipt = deposit.receipt.as_deref();
    book(conn, &state.keys.tx_signing, booking, |booked| {
        let text = match resolution {
            Resolution::Credit => Sms(deposit.lang).deposited(
                booked.receipt(),
                &rules.show("KES", amount),
                receipt,
                &rules.show("KES", booked.available_of(&wallet)),
            ),
            Resolution::Refund => {
                Sms(deposit.lang).held_payment_refunded(&rules.show("KES", amount), receipt)
            }
        };
        vec![(deposit.phone.clone(), text)]
    })
    .await?;
    Ok(tx_id)
}
