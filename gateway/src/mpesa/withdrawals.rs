//! Withdrawals to M-Pesa (B2C).
//!
//! The request moves the money from the wallet into the M-Pesa payout hold
//! (plus the fee to revenue) in the same transaction that records the
//! withdrawal; the AML rules apply as to any outgoing movement. Only after
//! that commits is the B2C request sent, once. Its result settles the hold
//! exactly once under the withdrawal's row lock: success pays the hold out
//! to the M-Pesa float; failure returns amount and fee to the customer. A
//! result that never comes, or a queue timeout, is asked about through
//! Transaction Status ([`super::payout_status`]). The lifecycle is
//! [`WithdrawalStatus`]'s.

use chainpay_core::daraja::codes::ResultCode;
use chainpay_core::daraja::wire::{self, B2cResultEnvelope};
use chainpay_core::daraja::{daraja_phone, whole_shillings, MAX_KES, MIN_B2C_KES};
use chainpay_core::fees::FeeKind;
use chainpay_core::ledger::{move_entry, transfer_entry, JournalEntry, TransferAccounts};
use chainpay_core::notify::{Receipt, Sms};
use chainpay_core::status::{TxStatus, WithdrawalStatus};
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::{Amount, CurrencyCode, Lang, Msisdn};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::clients::daraja::DarajaError;
use crate::error::Error;
use crate::ledger::accounts::{self, AccountRef};
use crate::movements::book::{book, Booked, Booking};
use crate::movements::transfer::fx_error;
use crate::movements::{parties, Operation};
use crate::rules::Rules;
use crate::state::AppState;
use crate::transactions::TxView;

/// A validated withdrawal request.
#[derive(Debug, Clone)]
pub struct WithdrawOrder {
    pub user_id: Uuid,
    /// The Safaricom number paid, as Daraja wants it (`2547…`).
    pub daraja_phone: String,
    pub amount: Amount,
    /// From the business's account (the caller owns it) instead of the wallet.
    pub from_merchant: bool,
}

/// The account a withdrawal is paid from.
fn source(user_id: Uuid, from_merchant: bool) -> AccountRef<'static> {
    if from_merchant {
        AccountRef::merchant(user_id, "KES")
    } else {
        AccountRef::wallet(user_id, "KES")
    }
}

/// The accounts of a withdrawal's hold; its refund is the same entry reversed.
fn hold_accounts(
    user_id: Uuid,
    hold_tx_id: Uuid,
    from_merchant: bool,
) -> TransferAccounts<AccountRef<'static>> {
    TransferAccounts {
        source_wallet: source(user_id, from_merchant),
        target_wallet: AccountRef::payout_hold("mpesa", "KES"),
        fee_revenue: AccountRef::fee_revenue("KES", hold_tx_id),
    }
}

fn kes() -> Result<CurrencyCode, Error> {
    CurrencyCode::parse("KES").map_err(|e| Error::Internal(e.into()))
}

impl WithdrawOrder {
    pub fn new(user_id: Uuid, phone: &Msisdn, amount_minor: i64) -> Result<Self, Error> {
        let shillings = whole_shillings(amount_minor)
            .filter(|kes| (MIN_B2C_KES..=MAX_KES).contains(kes))
            .ok_or_else(|| {
                Error::Validation(format!(
                    "amount must be whole shillings from KES {MIN_B2C_KES} to KES {MAX_KES}, in cents (10000 = KES 100)"
                ))
            })?;
        let daraja_phone = daraja_phone(phone).map_err(|e| Error::Validation(e.to_string()))?;
        let amount = Amount::new(shillings * 100).map_err(|e| Error::Validation(e.to_string()))?;
        Ok(Self {
            user_id,
            daraja_phone,
            amount,
            from_merchant: false,
        })
    }

    /// The same withdrawal paid from the business the caller owns.
    pub fn from_merchant(self) -> Self {
        Self {
            from_merchant: true,
            ..self
        }
    }

    /// The fee this withdrawal would pay.
    pub fn fee(&self, rules: &Rules) -> Result<i64, Error> {
        rules
            .fees
            .fee(FeeKind::Withdraw, &rules.rates, "KES", self.amount.minor())
            .map_err(fx_error)
    }
}

impl Operation for WithdrawOrder {
    const ACTION: &'static str = "wallet.withdraw";
    const KIND: &'static str = "withdrawal";

    fn actor(&self) -> Uuid {
        self.user_id
    }

    fn currency(&self) -> &str {
        "KES"
    }

    fn describe(&self) -> Value {
        json!({"amount": self.amount.minor(), "currency": "KES", "method": "mpesa", "phone": self.daraja_phone,
               "from_merchant": self.from_merchant})
    }

    async fn execute(
        &self,
        conn: &mut PgConnection,
        state: &AppState,
        rules: &Rules,
    ) -> Result<TxView, Error> {
        if self.from_merchant {
            crate::merchants::ensure_active(conn, self.user_id).await?;
        }
        let amount = self.amount.minor();
        let fee = self.fee(rules)?;
        let usd_cents = rules.rates.usd_cents("KES", amount).map_err(fx_error)?;
        let parties = parties::load(conn, self.user_id, None).await?;
        let report = parties::aml_gate(conn, state, rules, &parties, usd_cents).await?;
        let (tx_id, reference) = (crate::ledger::new_tx_id(), Uuid::new_v4());
        let entry = transfer_entry(
            hold_accounts(self.user_id, tx_id, self.from_merchant),
            &kes()?,
            amount,
            fee,
        )
        .map_err(|e| Error::Validation(e.to_string()))?;
        let detail = json!({"amount": amount, "fee": fee, "withdrawal": reference, "phone": self.daraja_phone, "usd_cents": usd_cents,
                            "from_merchant": self.from_merchant});
        let booking = Booking {
            facts: TxFacts::now(
                tx_id,
                TxType::Withdrawal,
                "KES",
                (amount, fee),
                Some(self.user_id),
                None,
            ),
            entry,
            note: Some(format!("To M-Pesa {}", self.daraja_phone)),
            usd_cents: Some(usd_cents),
            status: TxStatus::Pending,
            audit: AuditEvent::new(Self::ACTION, Outcome::Success)
                .actor(self.user_id)
                .detail(detail.clone()),
        };
        // The confirmation goes out when M-Pesa has paid, not now.
        let booked = book(conn, &state.keys.tx_signing, booking, |_| Vec::new()).await?;
        sqlx::query!(
            "INSERT INTO mpesa_withdrawals (ref, user_id, phone, amount, fee, hold_tx_id, from_merchant) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            reference,
            self.user_id,
            self.daraja_phone,
            amount,
            fee,
            tx_id,
            self.from_merchant
        )
        .execute(&mut *conn)
        .await?;
        parties::file_report(conn, report, self.user_id, tx_id, detail).await?;
        Ok(booked.view(
            Some(parties.sender.party.phone),
            Some(format!("+{}", self.daraja_phone)),
        ))
    }
}

/// Sends the payout of a withdrawal the calling request has just held. A
/// failure is logged, not returned: the withdrawal is held and recorded,
/// and `payout_status` sends what was never sent and asks Safaricom about
/// what was sent unanswered, so the customer's answer, pending, is true.
pub fn submit_after_hold(state: &AppState, hold_tx_id: Uuid) {
    // A task of its own, from marking the request sent to recording what
    // Safaricom answered: neither a caller hanging up nor the request's
    // timeout can cut it off halfway, and the caller's answer (pending)
    // does not wait on Safaricom.
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(error) = submit(&state, hold_tx_id).await {
            tracing::error!(%hold_tx_id, %error, "B2C submission failed; left to payout recovery");
        }
    });
}

/// [`submit`] in a task of its own, awaited: a caller that stops waiting (a
/// recovery item given up, a pass abandoned) cannot cut it off between
/// Safaricom's answer and its record. (A payout accepted but recorded
/// without its ConversationID could later be refunded on "no record"
/// answers, and paid as well.)
pub async fn submit_detached(state: &AppState, hold_tx_id: Uuid) -> Result<(), Error> {
    let state = state.clone();
    tokio::spawn(async move { submit(&state, hold_tx_id).await })
        .await
        .map_err(|e| Error::internal(format!("submitting payout {hold_tx_id}: {e}")))?
}

/// Sends the B2C request for the withdrawal held by `hold_tx_id`, unless it
/// was already sent (a replayed request must not pay twice). Run it in a
/// task of its own ([`submit_after_hold`], [`submit_detached`]).
async fn submit(state: &AppState, hold_tx_id: Uuid) -> Result<(), Error> {
    // Everything that can fail for want of configuration fails before the
    // request is marked sent.
    let result_url = super::callback_url(state, "/api/v1/mpesa/b2c/result")?;
    let timeout_url = super::callback_url(state, "/api/v1/mpesa/b2c/timeout")?;
    state.daraja()?;
    let claimed = sqlx::query!(
        "UPDATE mpesa_withdrawals SET submitted_at = now() WHERE hold_tx_id = $1 AND submitted_at IS NULL AND status = $2
         RETURNING ref, phone, amount",
        hold_tx_id,
        WithdrawalStatus::Pending.as_str()
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(withdrawal) = claimed else {
        return Ok(());
    };
    let sent = state
        .daraja()?
        .b2c(
            &withdrawal.r#ref.to_string(),
            &withdrawal.phone,
            withdrawal.amount / 100,
            &result_url,
            &timeout_url,
        )
        .await;
    record_submission(state.clone(), withdrawal.r#ref, sent).await
}

/// Writes what Safaricom answered to the B2C request of withdrawal
/// `reference` (each write is safe to repeat: a refund settles once).
async fn record_submission(
    state: AppState,
    reference: Uuid,
    sent: Result<wire::B2cAck, DarajaError>,
) -> Result<(), Error> {
    let (pool, what) = (
        &state.pool,
        &format!("recording the answer to payout {reference}"),
    );
    match sent {
        Ok(ack) => {
            let conversation = &ack.conversation_id;
            crate::db::write_surely(pool, what, |mut conn| async move {
                sqlx::query!(
                    "UPDATE mpesa_withdrawals SET conversation_id = $2 WHERE ref = $1",
                    reference,
                    conversation
                )
                .execute(&mut *conn)
                .await?;
                Ok(())
            })
            .await
        }
        Err(DarajaError::Refused { code, message }) => {
            // Safaricom said no outright: nothing was paid, so refund now.
            let refused: PayoutResult = Err((ResultCode(-1), format!("{message} ({code})")));
            let (state, refused) = (&state, &refused);
            crate::db::write_surely(pool, what, |mut conn| async move {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                settle(&mut tx, state, reference, refused.clone()).await?;
                tx.commit().await?;
                Ok(())
            })
            .await
        }
        Err(DarajaError::Unreachable(error)) => {
            // Unknown whether Safaricom received it: the money stays held
            // until a result arrives or Transaction Status says what became
            // of it (`payout_status`). A result that came first keeps its
            // description.
            tracing::error!(withdrawal = %reference, %error, "B2C request unconfirmed");
            let unconfirmed = &format!("submission unconfirmed: {error}");
            let pending = WithdrawalStatus::Pending.as_str();
            crate::db::write_surely(pool, what, |mut conn| async move {
                sqlx::query!(
                    "UPDATE mpesa_withdrawals SET result_desc = $2 WHERE ref = $1 AND status = $3",
                    reference,
                    unconfirmed,
                    pending
                )
                .execute(&mut *conn)
                .await?;
                Ok(())
            })
            .await
        }
    }
}

/// A withdrawal locked for settlement.
pub(super) struct Held {
    pub(super) reference: Uuid,
    pub(super) user_id: Uuid,
    pub(super) user_phone: String,
    pub(super) lang: Lang,
    pub(super) phone: String,
    pub(super) amount: i64,
    pub(super) fee: i64,
    pub(super) hold_tx_id: Uuid,
    pub(super) from_merchant: bool,
    /// How it stands, the M-Pesa receipt recorded on it, and the payout or
    /// refund that settled it.
    pub(super) status: WithdrawalStatus,
    pub(super) receipt: Option<String>,
    pub(super) settle_tx_id: Option<Uuid>,
}

impl Held {
    /// The account the customer paid from (and is refunded to).
    pub(super) fn source(&self) -> AccountRef<'static> {
        source(self.user_id, self.from_merchant)
    }
}

/// Locks withdrawal `reference` for settling or correcting it.
pub(super) async fn lock(conn: &mut PgConnection, reference: Uuid) -> Result<Option<Held>, Error> {
    let row = sqlx::query!(
        "SELECT w.user_id, w.phone, w.amount, w.fee, w.status, w.hold_tx_id, w.from_merchant, w.mpesa_receipt,
                w.settle_tx_id, u.phone AS user_phone, u.language
         FROM mpesa_withdrawals w JOIN users u ON u.id = w.user_id WHERE w.ref = $1 FOR UPDATE OF w",
        reference
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let status = WithdrawalStatus::parse(&row.status)
        .ok_or_else(|| Error::internal(format!("unknown withdrawal status {}", row.status)))?;
    Ok(Some(Held {
        reference,
        user_id: row.user_id,
        user_phone: row.user_phone,
        lang: Lang::parse(&row.language),
        phone: row.phone,
        amount: row.amount,
        fee: row.fee,
        hold_tx_id: row.hold_tx_id,
        from_merchant: row.from_merchant,
        status,
        receipt: row.mpesa_receipt,
        settle_tx_id: row.settle_tx_id,
    }))
}

/// The outcome recorded with a callback saying a refunded payout was paid.
pub const PAID_AFTER_REFUND: &str = "PAID AFTER REFUND";
/// The outcome recorded with a callback saying a payout operators settled
/// as paid was not.
pub const FAILED_AFTER_PAID: &str = "FAILED AFTER PAID";

/// The outcome recorded with a callback saying a completed payout was paid
/// under another receipt than the one recorded.
pub const PAID_UNDER_OTHER_RECEIPT: &str = "PAID UNDER OTHER RECEIPT";

/// What M-Pesa said: paid (with its receipt), or not (code and reason).
pub(super) type PayoutResult = Result<String, (ResultCode, String)>;

/// Settles a PENDING withdrawal once, as M-Pesa's result says: a receipt
/// pays the hold out, a failure refunds it. Returns the outcome for the log.
pub(super) async fn settle(
    conn: &mut PgConnection,
    state: &AppState,
    reference: Uuid,
    result: PayoutResult,
) -> Result<String, Error> {
    settle_once(conn, state, reference, result, None).await
}

/// Settles a PENDING withdrawal once, as the operators' proposal `approved`
/// (being approved in the caller's transaction) says.
pub(super) async fn settle_approved(
    conn: &mut PgConnection,
    state: &AppState,
    reference: Uuid,
    result: PayoutResult,
    approved: Uuid,
) -> Result<String, Error> {
    settle_once(conn, state, reference, result, Some(approved)).await
}

/// Settles under the withdrawal's lock; any other proposal still waiting
/// to settle it is superseded in the same transaction.
async fn settle_once(
    conn: &mut PgConnection,
    state: &AppState,
    reference: Uuid,
    result: PayoutResult,
    approved: Option<Uuid>,
) -> Result<String, Error> {
    let Some(held) = lock(conn, reference).await? else {
        return Ok("unknown".into());
    };
    let next = if result.is_ok() {
        WithdrawalStatus::Completed
    } else {
        WithdrawalStatus::Failed
    };
    if let Some(outcome) = contradiction(conn, state, &held, &result, true).await? {
        return Ok(outcome.to_owned());
    }
    if !held.status.can_become(next) {
        return Ok(format!("already {}", held.status));
    }
    let settle_tx_id = match &result {
        Ok(_) => pay_out(conn, state, &held).await?,
        Err((_, reason)) => {
            refund(conn, state, &held, reason, hold_entry(&held)?.reversed()).await?
        }
    };
    record_settlement(conn, &held, next, &result, settle_tx_id).await?;
    mark_hold(conn, &held, next).await?;
    super::resolutions::supersede(conn, reference, approved, next).await?;
    Ok(next.as_str().to_owned())
}

/// A result that contradicts how the locked withdrawal was settled, audited
/// and kept; `None` when it does not. Nothing is booked for a
/// contradiction: reconciliation reports it until two operators correct
/// the payout or dismiss the result ([`super::corrections`]). A payout paid
/// after its refund has amount and fee reserved on the customer's account
/// meanwhile, as far as they are there.
async fn contradiction(
    conn: &mut PgConnection,
    state: &AppState,
    held: &Held,
    result: &PayoutResult,
    verified: bool,
) -> Result<Option<&'static str>, Error> {
    let (reference, recorded) = (held.reference, held.receipt.as_deref());
    let (outcome, event) = match (held.status, result) {
        // M-Pesa paid a payout we already refunded: the customer has the
        // money twice.
        (WithdrawalStatus::Failed, Ok(_)) => (PAID_AFTER_REFUND, "mpesa.paid_after_refund"),
        // M-Pesa says a payout two operators settled as paid was not: the
        // customer lost amount and fee.
        (WithdrawalStatus::Completed, Err(_)) if settled_by_operators(conn, reference).await? => {
            (FAILED_AFTER_PAID, "mpesa.failed_after_paid")
        }
        // Paid, but not under the receipt recorded (one operators read off
        // a statement, say, or M-Pesa paying twice): which transaction it
        // was needs checking. (A result without a TransactionID recorded
        // none to contradict.)
        (WithdrawalStatus::Completed, Ok(receipt))
            if !receipt.is_empty() && recorded.is_some_and(|r| !r.is_empty() && r != receipt) =>
        {
            (PAID_UNDER_OTHER_RECEIPT, "mpesa.paid_under_other_receipt")
        }
        _ => return Ok(None),
    };
    let (receipt, said) = match result {
        Ok(receipt) => (Some(receipt.as_str()), json!({"receipt": receipt})),
        Err((code, desc)) => (None, json!({"code": code.0, "desc": desc})),
    };
    tracing::error!(withdrawal = %reference, outcome, "M-Pesa's result contradicts the payout's settlement");
    // A result that could not be told from a forgery (its conversation
    // unknown) reserves nothing: operators check it against M-Pesa first.
    let reserved = if outcome == PAID_AFTER_REFUND && verified {
        super::reservations::reserve(conn, state, held).await?
    } else {
        0
    };
    AuditEvent::new(event, Outcome::Failure)
        .subject(reference)
        .detail(json!({"result": said, "recorded": recorded, "reserved": reserved, "verified": verified}))
        .record(&mut *conn)
        .await?;
    sqlx::query!(
        "INSERT INTO payout_contradictions (withdrawal_ref, kind, receipt, recorded_receipt, result, reserved)
         VALUES ($1, $2, nullif($3, ''), $4, $5, $6)",
        reference,
        outcome,
        receipt,
        recorded,
        said,
        reserved
    )
    .execute(&mut *conn)
    .await?;
    Ok(Some(outcome))
}

/// Whether operators settled the locked withdrawal as paid: approved it
/// paid, or approved taking back a refund M-Pesa paid after all. Its own
/// statement, after the lock: an approval that committed while this waited
/// for the lock is seen.
async fn settled_by_operators(conn: &mut PgConnection, reference: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM payout_resolutions WHERE withdrawal_ref = $1 AND status = 'APPROVED' AND outcome = 'PAID')
               OR EXISTS (SELECT 1 FROM payout_corrections p JOIN payout_contradictions c ON c.id = p.contradiction_id
                           WHERE p.withdrawal_ref = $1 AND p.status = 'APPROVED' AND p.action = 'CORRECT' AND c.kind = $2)
               AS "settled!""#,
        reference,
        PAID_AFTER_REFUND
    )
    .fetch_one(conn)
    .await
}

/// The hold goes to the M-Pesa float: the customer has been paid.
async fn pay_out(conn: &mut PgConnection, state: &AppState, held: &Held) -> Result<Uuid, Error> {
    let entry = move_entry(
        AccountRef::payout_hold("mpesa", "KES"),
        AccountRef::float("mpesa", "KES"),
        &kes()?,
        held.amount,
    )
    .map_err(|e| Error::Internal(e.into()))?;
    // The SMS cites what the customer can spend; the payout leaves it be.
    let balance = accounts::available(conn, &held.source())
        .await?
        .ok_or_else(|| Error::internal("the payout's account is missing"))?;
    let facts = TxFacts::now(
        crate::ledger::new_tx_id(),
        TxType::Payout,
        "KES",
        (held.amount, 0),
        None,
        None,
    );
    book_settlement(conn, state, held, facts, None, entry, |rules, booked| {
        Sms(held.lang).withdrawn(
            Receipt {
                tx_id: held.hold_tx_id,
                at: booked.movement.facts.created_at,
            },
            &rules.show("KES", held.amount),
            &format!("+{}", held.phone),
            &rules.show("KES", balance),
            &rules.show("KES", held.fee),
        )
    })
    .await
}

/// Amount and fee go back to the customer by `entry`: the hold's entry, or
/// a payout's ([`paid_entry`]), reversed.
pub(super) async fn refund(
    conn: &mut PgConnection,
    state: &AppState,
    held: &Held,
    reason: &str,
    entry: JournalEntry<AccountRef<'static>>,
) -> Result<Uuid, Error> {
    let returned = held.amount + held.fee;
    let tx_id = crate::ledger::new_tx_id();
    let facts = TxFacts::now(
        tx_id,
        TxType::Refund,
        "KES",
        (returned, 0),
        None,
        Some(held.user_id),
    );
    let wallet = held.source();
    book_settlement(conn, state, held, facts, None, entry, |rules, booked| {
        Sms(held.lang).withdrawal_failed(
            &rules.show("KES", held.amount),
            reason,
            &rules.show("KES", returned),
            &rules.show("KES", booked.available_of(&wallet)),
        )
    })
    .await
}

/// The hold's entry: amount from the customer to the payout hold, fee to
/// revenue.
fn hold_entry(held: &Held) -> Result<JournalEntry<AccountRef<'static>>, Error> {
    let accounts = hold_accounts(held.user_id, held.hold_tx_id, held.from_merchant);
    transfer_entry(accounts, &kes()?, held.amount, held.fee).map_err(|e| Error::Internal(e.into()))
}

/// A payout made, as one entry: amount from the customer to the M-Pesa
/// float, fee to revenue (the hold and its payout together).
pub(super) fn paid_entry(held: &Held) -> Result<JournalEntry<AccountRef<'static>>, Error> {
    transfer_entry(paid_accounts(held), &kes()?, held.amount, held.fee)
        .map_err(|e| Error::Internal(e.into()))
}

/// The accounts of [`paid_entry`].
pub(super) fn paid_accounts(held: &Held) -> TransferAccounts<AccountRef<'static>> {
    TransferAccounts {
        source_wallet: held.source(),
        target_wallet: AccountRef::float("mpesa", "KES"),
        fee_revenue: AccountRef::fee_revenue("KES", held.hold_tx_id),
    }
}

/// Books a settlement of `held` (or its correction) as `facts` say, with
/// the customer's SMS `text` writes from the rules and what was booked.
pub(super) async fn book_settlement<'a>(
    conn: &mut PgConnection,
    state: &AppState,
    held: &Held,
    facts: TxFacts,
    note: Option<String>,
    entry: JournalEntry<AccountRef<'a>>,
    text: impl FnOnce(&Rules, &Booked<'a>) -> String,
) -> Result<Uuid, Error> {
    let rules = state.rules.get(&state.pool).await?;
    let (tx_id, tx_type) = (facts.tx_id, facts.tx_type);
    let booking = Booking {
        facts,
        entry,
        note,
        usd_cents: None,
        status: TxStatus::Completed,
        audit: AuditEvent::new("mpesa.withdrawal", Outcome::Success)
            .actor(held.user_id)
            .subject(held.reference)
            .detail(json!({"tx_id": tx_id, "type": tx_type.as_str()})),
    };
    book(conn, &state.keys.tx_signing, booking, |booked| {
        vec![(held.user_phone.clone(), text(&rules, booked))]
    })
    .await?;
    Ok(tx_id)
}

/// The withdrawal's new status and how it settled.
pub(super) async fn record_settlement(
    conn: &mut PgConnection,
    held: &Held,
    status: WithdrawalStatus,
    result: &PayoutResult,
    settle_tx_id: Uuid,
) -> Result<(), Error> {
    let (receipt, code, desc) = match result {
        Ok(receipt) => (
            Some(receipt.clone()),
            ResultCode::SUCCESS,
            "paid out".to_owned(),
        ),
        Err((code, desc)) => (None, *code, desc.clone()),
    };
    sqlx::query!(
        "UPDATE mpesa_withdrawals SET status = $2, mpesa_receipt = nullif($3, ''), result_code = $4, result_desc = $5,
                settle_tx_id = $6, settled_at = now() WHERE ref = $1",
        held.reference,
        status.as_str(),
        receipt,
        code.0 as i32,
        desc,
        settle_tx_id
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The hold transaction's status, as the payout's: paid, or returned.
pub(super) async fn mark_hold(
    conn: &mut PgConnection,
    held: &Held,
    status: WithdrawalStatus,
) -> Result<(), Error> {
    let hold_status = if status == WithdrawalStatus::Completed {
        TxStatus::Completed
    } else {
        TxStatus::Failed
    };
    sqlx::query!(
        "UPDATE transactions SET status = $2 WHERE tx_id = $1",
        held.hold_tx_id,
        hold_status.as_str()
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A queue timeout says the request waited too long in M-Pesa's queue, not
/// that it will never be carried out: like a request that got no answer,
/// the money stays held and Transaction Status is asked what became of it
/// ([`super::payout_status`]), so a payout made late is never also refunded.
async fn queue_timed_out(
    conn: &mut sqlx::PgConnection,
    reference: Uuid,
    desc: &str,
) -> Result<String, Error> {
    let noted = sqlx::query!(
        "UPDATE mpesa_withdrawals SET result_desc = $2 WHERE ref = $1 AND status = $3",
        reference,
        format!("timed out in M-Pesa's queue: {desc}"),
        WithdrawalStatus::Pending.as_str()
    )
    .execute(&mut *conn)
    .await?;
    if noted.rows_affected() == 1 {
        return Ok("queue timeout; asking Transaction Status".to_owned());
    }
    let known = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM mpesa_withdrawals WHERE ref = $1) AS "known!""#,
        reference
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(if known { "settled already" } else { "unknown" }.to_owned())
}

/// How a result's ConversationID compares with the one Safaricom gave the
/// payout's request.
enum Conversation {
    Same,
    /// Another: not this request's result (forged, or misdirected).
    Other,
    /// None recorded: the request's acknowledgement never came.
    Unacknowledged,
}

/// Our reference is no secret (the customer reads it); Safaricom's
/// ConversationID is. So a result forged with a leaked callback token
/// cannot refund a payout M-Pesa is paying, nor pay out one M-Pesa failed
/// (the customer would lose it): one naming another conversation settles
/// nothing, and any result for a payout whose acknowledgement never came
/// (nothing to compare) is left to Transaction Status, which asks Safaricom
/// itself.
async fn conversation(
    conn: &mut sqlx::PgConnection,
    reference: Uuid,
    named: &str,
) -> Result<Conversation, Error> {
    let stored = sqlx::query_scalar!(
        "SELECT conversation_id FROM mpesa_withdrawals WHERE ref = $1",
        reference
    )
    .fetch_optional(conn)
    .await?
    .flatten();
    Ok(match stored {
        None => Conversation::Unacknowledged,
        Some(stored) if stored == named => Conversation::Same,
        Some(_) => Conversation::Other,
    })
}

/// A result for a payout whose acknowledgement never came settles nothing
/// (nothing tells it from a forgery). A success for one still pending is
/// kept on it, so that "no record" answers never refund a payout M-Pesa
/// may have paid (it waits for Transaction Status, or for operators). One
/// that contradicts how the payout was settled (paid after its refund,
/// failed after operators settled it as paid) is recorded as a
/// contradiction, nothing reserved, for operators to check against
/// M-Pesa's records.
async fn unacknowledged_result(
    conn: &mut PgConnection,
    state: &AppState,
    reference: Uuid,
    result: PayoutResult,
) -> Result<String, Error> {
    let Some(held) = lock(conn, reference).await? else {
        return Ok("unknown".into());
    };
    if held.status == WithdrawalStatus::Pending {
        if let Ok(receipt) = &result {
            sqlx::query!(
                "UPDATE mpesa_withdrawals SET reported_paid_receipt = $2 WHERE ref = $1",
                reference,
                receipt
            )
            .execute(&mut *conn)
            .await?;
        }
        return Ok("result_unacknowledged".into());
    }
    let found = contradiction(conn, state, &held, &result, false).await?;
    Ok(found.unwrap_or("result_unacknowledged").to_owned())
}

/// Applies a B2C result (or, with `timed_out`, a queue timeout).
pub async fn on_result(state: &AppState, body: Value, timed_out: bool) -> Result<String, Error> {
    let mut tx = state.pool.begin().await?;
    let outcome = match serde_json::from_value::<B2cResultEnvelope>(body.clone()) {
        Err(_) => "unreadable".to_owned(),
        Ok(envelope) => {
            let result = envelope.result;
            match Uuid::parse_str(&result.originator_conversation_id) {
                Ok(reference) if timed_out => {
                    queue_timed_out(&mut tx, reference, &result.result_desc).await?
                }
                Ok(reference) => {
                    let code = wire::code(&result.result_code).unwrap_or(ResultCode(-1));
                    match conversation(&mut tx, reference, &result.conversation_id).await? {
                        Conversation::Other => "conversation_mismatch".to_owned(),
                        // Transaction Status settles it (`payout_status`).
                        Conversation::Unacknowledged => {
                            let said = if code.is_success() {
                                Ok(result.transaction_id)
                            } else {
                                Err((code, result.result_desc))
                            };
                            unacknowledged_result(&mut tx, state, reference, said).await?
                        }
                        _ if code.is_success() => {
                            settle(&mut tx, state, reference, Ok(result.transaction_id)).await?
                        }
                        _ => {
                            settle(&mut tx, state, reference, Err((code, result.result_desc)))
                                .await?
                        }
                    }
                }
                Err(_) => "unknown".to_owned(),
            }
        }
    };
    if [
        "unknown",
        "unreadable",
        "conversation_mismatch",
        "result_unacknowledged",
    ]
    .contains(&outcome.as_str())
    {
        AuditEvent::new("mpesa.b2c_result", Outcome::Rejected)
            .detail(json!({"reason": outcome}))
            .record(&mut tx)
            .await?;
    }
    let kind = if timed_out {
        "b2c_timeout"
    } else {
        "b2c_result"
    };
    sqlx::query!(
        "INSERT INTO mpesa_callbacks (kind, reference, body, outcome) VALUES ($1, NULL, $2, $3)",
        kind,
        body,
        outcome
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// A withdrawal as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WithdrawalView {
    #[serde(rename = "ref")]
    pub reference: Uuid,
    pub status: String,
    pub amount: i64,
    pub fee: i64,
    pub phone: String,
    pub conversation_id: Option<String>,
    pub mpesa_receipt: Option<String>,
    pub result_desc: Option<String>,
    pub hold_tx_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

/// Withdrawals newest first, in one status or any.
pub async fn list(
    state: &AppState,
    status: Option<WithdrawalStatus>,
    limit: i64,
) -> sqlx::Result<Vec<WithdrawalView>> {
    sqlx::query_as!(
        WithdrawalView,
        r#"SELECT ref AS reference, status, amount, fee, phone, conversation_id, mpesa_receipt, result_desc, hold_tx_id, created_at, settled_at
           FROM mpesa_withdrawals WHERE ($1::text IS NULL OR status = $1) ORDER BY created_at DESC LIMIT $2"#,
        status.map(WithdrawalStatus::as_str),
        limit
    )
    .fetch_all(&state.pool)
    .await
}
