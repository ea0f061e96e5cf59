//! STK Push deposits: `PENDING → CONFIRMED | FAILED | EXPIRED`, plus
//! `SUSPENSE` for money that arrived after the deposit had expired or
//! failed, or for a customer who may not receive money now (held for an
//! operator's four-eyes decision in [`suspense`], never credited to the
//! wallet automatically). A deposit
//! with no definitive answer `MPESA_QUERY_DEADLINE_S` after it was made
//! expires. The lifecycle itself is [`DepositStatus`]'s.
//!
//! The deposit row is written before Safaricom is called. Its settlement —
//! from a callback or from STK Query when the callback is lost — happens
//! under the row's lock and only while it is `PENDING`, so a wallet is
//! credited once however many times, and by whichever path, the answer comes.
//! A callback settles only what STK Query confirms ([`confirmed`]); one for
//! a CheckoutRequestID we never saw may pay a push whose answer was lost
//! ([`unanswered`]).

use chainpay_core::daraja::codes::ResultCode;
use chainpay_core::daraja::wire::{self, StkCallback, StkCallbackEnvelope, UntrustedAmount};
use chainpay_core::daraja::{daraja_phone, whole_shillings, MAX_KES};
use chainpay_core::ledger::move_entry;
use chainpay_core::notify::Sms;
use chainpay_core::refusal::Refusal;
use chainpay_core::status::{DepositStatus, TxStatus};
use chainpay_core::transaction::{TxFacts, TxType};
use chainpay_core::{CurrencyCode, Lang, Msisdn};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::auth::rate_limit::{admit, Admission};
use crate::clients::daraja::{DarajaError, StkStatus};
use crate::compliance::sars;
use crate::error::Error;
use crate::idempotency::IdempotencyKey;
use crate::ledger::accounts::AccountRef;
use crate::movements::book::{book, Booking};
use crate::movements::parties::{self, Direction};
use crate::movements::transfer::fx_error;
use crate::movements::{self, Attempted, Reply};
use crate::reconciliation::suspense::{self, Reason};
use crate::state::AppState;

use super::unanswered;

/// Seconds between STK Queries of one deposit.
const QUERY_SPACING_S: f64 = 10.0;
/// STK Queries callbacks about one CheckoutRequestID may cause a minute.
const QUERIES_PER_CHECKOUT_MINUTE: u32 = 6;
/// STK Queries all callbacks together may cause a minute.
const QUERIES_PER_MINUTE: u32 = 300;
/// Deposits the sweeper settles per pass.
const SWEEP_BATCH: usize = 20;

/// `/mpesa/initiate`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Initiated {
    #[serde(rename = "ref")]
    pub reference: Uuid,
    pub status: String,
    pub checkout_request_id: String,
}

/// A deposit as its owner and operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DepositView {
    #[serde(rename = "ref")]
    pub reference: Uuid,
    pub status: String,
    /// KES cents.
    pub amount: i64,
    pub phone: String,
    pub mpesa_receipt: Option<String>,
    pub checkout_request_id: Option<String>,
    pub result_desc: Option<String>,
    /// The ChainPay transaction that credited it.
    pub tx_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

/// A validated deposit request.
pub struct DepositOrder {
    pub user_id: Uuid,
    /// The number prompted, as Daraja wants it (`2547…`).
    pub daraja_phone: String,
    pub amount_minor: i64,
}

impl DepositOrder {
    pub fn new(user_id: Uuid, phone: &Msisdn, amount_minor: i64) -> Result<Self, Error> {
        whole_shillings(amount_minor)
            .filter(|kes| *kes <= MAX_KES)
            .ok_or_else(|| Error::Validation(format!("amount must be whole shillings from KES 1 to KES {MAX_KES}, in cents (10000 = KES 100)")))?;
        let daraja_phone = daraja_phone(phone).map_err(|e| Error::Validation(e.to_string()))?;
        Ok(Self {
            user_id,
            daraja_phone,
            amount_minor,
        })
    }
}

/// Records the deposit, then prompts the phone. With a key, the key is
/// claimed in the transaction that records the deposit, before Safaricom
/// is called: a copy of the request replays the first one's answer (or is
/// told it is still in flight) and never prompts the phone again.
pub async fn initiate(
    state: &AppState,
    order: &DepositOrder,
    key: Option<&IdempotencyKey>,
) -> Reply<Initiated> {
    match start(state, order, key).await {
        Ok(reply) => reply,
        Err(error) => Reply::fresh(Err(error)),
    }
}

async fn start(
    state: &AppState,
    order: &DepositOrder,
    key: Option<&IdempotencyKey>,
) -> Result<Reply<Initiated>, Error> {
    let client = state.daraja()?;
    let callback = super::callback_url(state, "/api/v1/mpesa/callback")?;
    // A retry replays without counting as another prompt.
    if let Some(key) = key {
        if key.prior::<Initiated>(&state.pool).await?.is_some() {
            return movements::replay(state, key).await;
        }
    }
    // Prompts are rate limited per phone prompted, whoever asks.
    let bucket = format!("stk:{}", order.daraja_phone);
    let per_hour = state.settings.mpesa.prompts_per_phone_hour;
    if let Admission::Limited { retry_after_s } =
        admit(&state.pool, &bucket, per_hour, 3600).await?
    {
        return Ok(Reply::fresh(Err(Error::RateLimited { retry_after_s })));
    }
    let reference = match record(state, order, key).await {
        Ok(Some(reference)) => reference,
        Ok(None) => {
            let key =
                key.ok_or_else(|| Error::internal("a deposit was refused a key it did not have"))?;
            return movements::replay(state, key).await;
        }
        Err(Error::Internal(cause)) => return Err(Error::Internal(cause)),
        Err(refusal) => {
            let attempted = Attempted {
                action: "mpesa.initiate",
                kind: "deposit",
                currency: "KES",
                actor: order.user_id,
                detail: json!({"amount": order.amount_minor, "phone": order.daraja_phone}),
            };
            movements::record_refusal(state, attempted, key, &refusal).await?;
            return Ok(Reply::fresh(Err(refusal)));
        }
    };
    let pushed = client
        .stk_push(
            &order.daraja_phone,
            order.amount_minor / 100,
            &callback,
            "ChainPay",
            "Wallet deposit",
        )
        .await;
    // Safaricom has been asked: what it said must be written, or a callback
    // would find no deposit to credit. A task of its own, so a caller who
    // hangs up (or the request's timeout) cannot cancel it halfway.
    let answer = match pushed {
        Ok(ack) => Answered::Prompted(ack),
        Err(error) => Answered::Failed(error),
    };
    let recording = tokio::spawn(record_answer(
        state.clone(),
        reference,
        answer,
        key.cloned(),
    ));
    let outcome = recording
        .await
        .map_err(|e| Error::internal(format!("recording Safaricom's answer: {e}")))??;
    Ok(Reply::fresh(outcome))
}

/// What Safaricom answered to the prompt.
enum Answered {
    Prompted(wire::StkPushAck),
    Failed(DarajaError),
}

/// Writes what Safaricom answered and the key's outcome
/// [surely](crate::db::write_surely): each is safe to repeat (the deposit's
/// row is set by its reference, a key's outcome only while it has none).
/// `Ok` holds the customer's answer.
async fn record_answer(
    state: AppState,
    reference: Uuid,
    answer: Answered,
    key: Option<IdempotencyKey>,
) -> Result<Result<Initiated, Error>, Error> {
    let outcome = match &answer {
        Answered::Prompted(ack) => Ok(Initiated {
            reference,
            status: DepositStatus::Pending.as_str().into(),
            checkout_request_id: ack.checkout_request_id.clone(),
        }),
        Answered::Failed(error) => {
            tracing::warn!(%reference, error = %error, "STK Push failed");
            Err(match error {
                DarajaError::Refused { .. } => Refusal::MpesaRefused.into(),
                DarajaError::Unreachable(_) => Refusal::MpesaUnreachable.into(),
            })
        }
    };
    let what = format!("recording the answer to deposit {reference}");
    let (answer, key, told) = (&answer, &key, outcome.as_ref());
    crate::db::write_surely(&state.pool, &what, |mut conn| async move {
        let mut tx = conn.begin().await?;
        write_answer(&mut tx, reference, answer).await?;
        if let Some(key) = key {
            key.finish(&mut *tx, told).await?;
        }
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(outcome)
}

/// The deposit as Safaricom left it: pending against its CheckoutRequestID,
/// or failed (without one there is nothing to query; a payment for a push
/// that got no answer is still looked for: [`unanswered`]).
async fn write_answer(
    conn: &mut PgConnection,
    reference: Uuid,
    answer: &Answered,
) -> sqlx::Result<()> {
    match answer {
        Answered::Prompted(ack) => {
            // A callback for this prompt may be attaching it to an
            // unanswered deposit right now: one waits for the other.
            unanswered::lock_checkout(&mut *conn, &ack.checkout_request_id).await?;
            sqlx::query!(
                "UPDATE mpesa_deposits SET checkout_request_id = $2, merchant_request_id = $3, prompt_unanswered_until = NULL
                 WHERE ref = $1 AND checkout_request_id IS NULL
                   AND NOT EXISTS (SELECT 1 FROM mpesa_deposits WHERE checkout_request_id = $2)",
                reference,
                ack.checkout_request_id,
                ack.merchant_request_id
            )
            .execute(conn)
            .await
            .map(drop)
        }
        Answered::Failed(error) => sqlx::query!(
            "UPDATE mpesa_deposits SET status = $2, result_desc = $3, settled_at = now(),
                    prompt_unanswered_until = CASE WHEN $4 THEN prompt_unanswered_until END
             WHERE ref = $1 AND status = 'PENDING'",
            reference,
            DepositStatus::Failed.as_str(),
            error.to_string(),
            unanswered::may_have_prompted(error)
        )
        .execute(conn)
        .await
        .map(drop),
    }
}

/// The deposit row, its audit row and the key's claim, committed before
/// Safaricom is called, once the customer passes the same screening and
/// tier limits as any movement (a suspended, rejected or sanctioned customer
/// cannot deposit; a KYC-pending one only within their tier). `None`: the
/// key was claimed by an earlier request.
async fn record(
    state: &AppState,
    order: &DepositOrder,
    key: Option<&IdempotencyKey>,
) -> Result<Option<Uuid>, Error> {
    let reference = Uuid::new_v4();
    let rules = state.rules.get(&state.pool).await?;
    let usd_cents = rules
        .rates
        .usd_cents("KES", order.amount_minor)
        .map_err(fx_error)?;
    let mut tx = state.pool.begin().await?;
    if let Some(key) = key {
        if !key.claim(&mut tx).await? {
            return Ok(None);
        }
    }
    let customer = parties::load(&mut tx, order.user_id, None).await?;
    if customer.sender.suspended {
        return Err(Refusal::AccountSuspended.into());
    }
    let own_phone = customer.sender.party.phone.trim_start_matches('+') == order.daraja_phone;
    if !own_phone && !state.settings.mpesa.prompt_other_phones {
        return Err(Refusal::PromptOwnPhoneOnly.into());
    }
    let report = parties::gate(
        &mut tx,
        state,
        &rules,
        &customer,
        usd_cents,
        Direction::Incoming,
    )
    .await?;
    if let Some(rule) = report {
        let finding =
            json!({"deposit": reference, "amount": order.amount_minor, "usd_cents": usd_cents});
        sars::open_or_append(&mut tx, Some(order.user_id), rule.as_str(), None, finding).await?;
    }
    sqlx::query!(
        "INSERT INTO mpesa_deposits (ref, user_id, phone, amount, prompt_unanswered_until)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        reference,
        order.user_id,
        order.daraja_phone,
        order.amount_minor,
        unanswered::WINDOW_S
    )
    .execute(&mut *tx)
    .await?;
    AuditEvent::new("mpesa.initiate", Outcome::Success)
        .actor(order.user_id)
        .subject(reference)
        .detail(json!({"amount": order.amount_minor, "phone": order.daraja_phone}))
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(Some(reference))
}

/// The locked deposit being settled.
struct Pending {
    reference: Uuid,
    user_id: Uuid,
    phone: String,
    amount: i64,
}

/// What Safaricom said about a deposit.
pub(super) enum Answer {
    /// Paid. A callback reports the amount, receipt and phone; STK Query
    /// reports none of them (`amount: None`).
    Paid {
        amount: Option<Result<i64, UntrustedAmount>>,
        receipt: Option<String>,
        phone: Option<String>,
    },
    Unpaid {
        code: ResultCode,
        desc: String,
    },
}

impl Answer {
    fn from_callback(stk: &StkCallback) -> Self {
        match wire::code(&stk.result_code) {
            Some(code) if code.is_success() => Answer::Paid {
                amount: Some(stk.amount_minor()),
                receipt: stk.receipt(),
                phone: stk.phone(),
            },
            Some(code) => Answer::Unpaid {
                code,
                desc: stk.result_desc.clone(),
            },
            None => Answer::Unpaid {
                code: ResultCode(-1),
                desc: "no ResultCode in the callback".into(),
            },
        }
    }
}

/// Settles a locked PENDING deposit (or, `late`, books a payment for an
/// expired or failed one to suspense); returns its new status.
async fn settle(
    conn: &mut PgConnection,
    state: &AppState,
    deposit: &Pending,
    answer: Answer,
    late: bool,
) -> Result<DepositStatus, Error> {
    match answer {
        Answer::Unpaid { code, desc } => {
            let status = if code.is_expiry() {
                DepositStatus::Expired
            } else {
                DepositStatus::Failed
            };
            sqlx::query!(
                "UPDATE mpesa_deposits SET status = $2, result_code = $3, result_desc = $4, settled_at = now() WHERE ref = $1",
                deposit.reference,
                status.as_str(),
                code.0 as i32,
                desc
            )
            .execute(&mut *conn)
            .await?;
            Ok(status)
        }
        Answer::Paid { receipt, .. } => credit(conn, state, deposit, receipt, late).await,
    }
}

/// The statuses of a deposit whose money was booked, as text.
fn booked_statuses() -> Vec<String> {
    DepositStatus::ALL
        .iter()
        .filter(|s| s.booked())
        .map(|s| s.as_str().to_owned())
        .collect()
}

/// Whether a deposit already booked money under this receipt. Takes the
/// receipt's lock, held to commit: two callbacks naming one receipt for two
/// deposits are decided one after the other, so the second sees the first's
/// booking instead of failing on the unique receipt index.
async fn receipt_booked(conn: &mut PgConnection, receipt: &str) -> Result<bool, Error> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('mpesa-receipt:' || $1, 0))",
        receipt
    )
    .execute(&mut *conn)
    .await?;
    let booked = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM mpesa_deposits WHERE mpesa_receipt = $1 AND status = ANY($2)) AS "seen!""#,
        receipt,
        &booked_statuses()
    )
    .fetch_one(conn)
    .await?;
    Ok(booked)
}

/// A paid callback STK Query confirmed, whose own details are kept only
/// when they agree with the prompt: an STK prompt is paid from the phone
/// prompted, for the amount pushed, and M-Pesa gives every payment its own
/// receipt. Details that disagree (or name a receipt already booked on
/// another deposit) are not this payment's: someone holding the callback
/// token wrote them. The payment M-Pesa confirmed is then booked without
/// them, for what was asked, and the callback is audited; reconciliation
/// reports it against the deposit.
async fn trusted_details(
    conn: &mut PgConnection,
    (stk, deposit): (&StkCallback, &Pending),
    answer: Answer,
) -> Result<Answer, Error> {
    let Answer::Paid {
        amount,
        receipt,
        phone,
    } = &answer
    else {
        return Ok(answer);
    };
    let foreign_receipt = match receipt {
        Some(receipt) => receipt_booked(conn, receipt).await?,
        None => false,
    };
    let disagreement = [
        (
            amount.is_some_and(|paid| paid != Ok(deposit.amount)),
            "amount",
        ),
        (
            phone
                .as_deref()
                .is_some_and(|paid_by| paid_by != deposit.phone),
            "phone",
        ),
        (foreign_receipt, "receipt already booked on another deposit"),
    ];
    let reasons: Vec<&str> = disagreement
        .iter()
        .filter_map(|(differs, what)| differs.then_some(*what))
        .collect();
    if reasons.is_empty() {
        return Ok(answer);
    }
    AuditEvent::new("mpesa.callback", Outcome::Rejected)
        .subject(&stk.checkout_request_id)
        .detail(
            json!({"reason": "the callback's details disagree with the prompt STK Query confirmed",
                       "disagree": reasons, "receipt": receipt, "phone": phone,
                       "amount": amount.map(|a| a.ok())}),
        )
        .record(&mut *conn)
        .await?;
    Ok(Answer::Paid {
        amount: None,
        receipt: None,
        phone: None,
    })
}

/// Why money that arrived is held rather than credited, if it is: a
/// customer who may not receive money now (suspended, rejected or listed
/// since the prompt was sent; they are not told), or a payment that came
/// after its deposit ended.
fn held_because(can_receive: bool, late: bool) -> Option<Reason> {
    match (can_receive, late) {
        (false, _) => Some(Reason::Standing),
        (true, true) => Some(Reason::Late),
        (true, false) => None,
    }
}

/// Books a payment STK Query confirmed, for what was asked (an STK prompt
/// is paid for the amount pushed), with the callback's receipt when it
/// could be trusted: to the wallet when it is on time, otherwise to
/// suspense with an item for the operators (and a report when the customer
/// may not receive it).
async fn credit(
    conn: &mut PgConnection,
    state: &AppState,
    deposit: &Pending,
    receipt: Option<String>,
    late: bool,
) -> Result<DepositStatus, Error> {
    let (lang, can_receive) = customer_standing(conn, deposit.user_id).await?;
    let held = held_because(can_receive, late);
    let (status, target) = match held {
        None => (
            DepositStatus::Confirmed,
            AccountRef::wallet(deposit.user_id, "KES"),
        ),
        Some(_) => (
            DepositStatus::Suspense,
            AccountRef::house("suspense", "KES"),
        ),
    };
    let tx_id = crate::ledger::new_tx_id();
    let booking = deposit_booking(deposit, receipt.as_deref(), tx_id, status, target.clone())?;
    let rules = state.rules.get(&state.pool).await?;
    let (to, amount) = (
        format!("+{}", deposit.phone),
        rules.show("KES", deposit.amount),
    );
    book(conn, &state.keys.tx_signing, booking, |booked| match held {
        None => vec![(
            to.clone(),
            Sms(lang).deposited(
                booked.receipt(),
                &amount,
                receipt.as_deref(),
                &rules.show("KES", booked.available_of(&target)),
            ),
        )],
        Some(Reason::Standing) => Vec::new(),
        Some(_) => vec![(
            to.clone(),
            Sms(lang).payment_held(&amount, receipt.as_deref()),
        )],
    })
    .await?;
    sqlx::query!(
        "UPDATE mpesa_deposits SET status = $2, mpesa_receipt = $3, result_code = 0, tx_id = $4, settled_at = now() WHERE ref = $1",
        deposit.reference,
        status.as_str(),
        receipt,
        tx_id
    )
    .execute(&mut *conn)
    .await?;
    if let Some(reason) = held {
        hold(conn, deposit, receipt.as_deref(), reason, tx_id).await?;
    }
    Ok(status)
}

/// The suspense item for money held, and a report when the customer may
/// not receive it.
async fn hold(
    conn: &mut PgConnection,
    deposit: &Pending,
    receipt: Option<&str>,
    reason: Reason,
    tx_id: Uuid,
) -> Result<(), Error> {
    suspense::hold(conn, deposit.reference, deposit.amount, reason, receipt).await?;
    if matches!(reason, Reason::Standing) {
        let finding = json!({"deposit": deposit.reference, "amount": deposit.amount,
                             "phone": deposit.phone, "receipt": receipt});
        sars::open_or_append(
            conn,
            Some(deposit.user_id),
            "mpesa_mismatch",
            Some(tx_id),
            finding,
        )
        .await?;
    }
    Ok(())
}

/// The M-Pesa float pays `target` (the wallet, or suspense).
fn deposit_booking<'a>(
    deposit: &Pending,
    receipt: Option<&str>,
    tx_id: Uuid,
    status: DepositStatus,
    target: AccountRef<'a>,
) -> Result<Booking<'a>, Error> {
    let kes = CurrencyCode::parse("KES").map_err(|e| Error::Internal(e.into()))?;
    let amount = deposit.amount;
    let entry = move_entry(AccountRef::float("mpesa", "KES"), target, &kes, amount)
        .map_err(|e| Error::Internal(e.into()))?;
    let credited = (status == DepositStatus::Confirmed).then_some(deposit.user_id);
    Ok(Booking {
        facts: TxFacts::now(tx_id, TxType::Deposit, "KES", (amount, 0), None, credited),
        entry,
        note: receipt.map(|r| format!("M-Pesa {r}")),
        usd_cents: None,
        status: TxStatus::Completed,
        audit: AuditEvent::new("mpesa.deposit", Outcome::Success)
            .actor(deposit.user_id)
            .subject(deposit.reference)
            .detail(json!({"status": status.as_str(), "amount": amount, "receipt": receipt, "tx_id": tx_id})),
    })
}

/// The customer's language, and whether money may still be paid to them.
async fn customer_standing(conn: &mut PgConnection, user_id: Uuid) -> Result<(Lang, bool), Error> {
    let row = sqlx::query!(
        r#"SELECT language, NOT suspended AND kyc_status <> 'REJECTED' AND sanctions_match_id IS NULL AS "can_receive!"
           FROM users WHERE id = $1"#,
        user_id
    )
    .fetch_one(conn)
    .await?;
    Ok((Lang::parse(&row.language), row.can_receive))
}

async fn record_callback(
    conn: &mut PgConnection,
    kind: &str,
    reference: Option<String>,
    body: &Value,
    outcome: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO mpesa_callbacks (kind, reference, body, outcome) VALUES ($1, $2, $3, $4)",
        kind,
        reference,
        body,
        outcome
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies a Daraja STK callback. Returns what happened, for the log.
pub async fn on_callback(state: &AppState, body: Value) -> Result<String, Error> {
    let Ok(envelope) = serde_json::from_value::<StkCallbackEnvelope>(body.clone()) else {
        let mut tx = state.pool.begin().await?;
        record_callback(&mut tx, "stk", None, &body, "unreadable").await?;
        AuditEvent::new("mpesa.callback", Outcome::Rejected)
            .detail(json!({"reason": "unreadable"}))
            .record(&mut tx)
            .await?;
        tx.commit().await?;
        return Ok("unreadable".into());
    };
    let stk = envelope.body.stk_callback;
    let received = Utc::now();
    // Asked before the deposit's row is locked: the question may take
    // seconds, and a row lock held that long (a pooled connection with it)
    // would have a burst of callbacks wait on Safaricom.
    let known = can_change(state, &stk.checkout_request_id).await?;
    let ask = match known {
        Some(can_change) => can_change,
        None => unanswered::may_pay_one(state, &stk).await?,
    };
    let confirmation = match ask {
        true => confirmed(state, &stk.checkout_request_id).await,
        false => Confirmation::Unknown,
    };
    let received = (&stk, received);
    let mut tx = state.pool.begin().await?;
    let outcome = match known {
        Some(_) => apply_callback(&mut tx, state, received, confirmation).await?,
        None => match unanswered::attach(&mut tx, received, &confirmation).await? {
            unanswered::Attached::Yes => {
                apply_callback(&mut tx, state, received, confirmation).await?
            }
            unanswered::Attached::No(outcome) => outcome,
        },
    };
    record_callback(
        &mut tx,
        "stk",
        Some(stk.checkout_request_id.clone()),
        &body,
        &outcome,
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Whether a payment reported for the deposit with this CheckoutRequestID
/// could still be booked (it is pending, or ended without money less than
/// a day ago), so that STK Query is worth asking; `None` when there is no
/// such deposit (read without a lock: [`apply_callback`] checks again).
async fn can_change(state: &AppState, checkout: &str) -> Result<Option<bool>, Error> {
    let row = sqlx::query!(
        r#"SELECT status, created_at > now() - make_interval(secs => $2) AS "recent!"
           FROM mpesa_deposits WHERE checkout_request_id = $1"#,
        checkout,
        LATE_QUERY_WINDOW_S
    )
    .fetch_optional(&state.pool)
    .await?;
    Ok(row.map(|row| {
        DepositStatus::parse(&row.status).is_some_and(|s| {
            s == DepositStatus::Pending || (row.recent && s.can_become(DepositStatus::Suspense))
        })
    }))
}

/// Settles the deposit a readable callback is about, if it is still pending,
/// as STK Query's `confirmation` (asked before the lock) allows.
pub(super) async fn apply_callback(
    conn: &mut PgConnection,
    state: &AppState,
    (stk, received): (&StkCallback, DateTime<Utc>),
    confirmation: Confirmation,
) -> Result<String, Error> {
    let deposit = sqlx::query!(
        r#"SELECT ref, user_id, phone, amount, status, mpesa_receipt,
                  created_at > $3::timestamptz - make_interval(secs => $2) AS "recent!"
           FROM mpesa_deposits WHERE checkout_request_id = $1 FOR UPDATE"#,
        stk.checkout_request_id,
        LATE_QUERY_WINDOW_S,
        received
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = deposit else {
        return unknown_checkout(conn, &stk.checkout_request_id).await;
    };
    let current = DepositStatus::parse(&row.status)
        .ok_or_else(|| Error::internal(format!("unknown deposit status {}", row.status)))?;
    let answer = Answer::from_callback(stk);
    // A payment for a deposit that already expired or failed is real money:
    // it is booked, to suspense. Anything else about a settled deposit is
    // a repeat.
    let late = current != DepositStatus::Pending;
    if let Answer::Paid {
        receipt: Some(receipt),
        amount,
        phone,
    } = &answer
    {
        if current.booked() && row.mpesa_receipt.is_none() {
            // Booked on STK Query's word, which names no receipt: the
            // callback that follows supplies it, if it is the prompt's.
            let agrees = *amount == Some(Ok(row.amount))
                && phone.as_deref().is_none_or(|paid_by| paid_by == row.phone);
            if !agrees {
                return Ok("receipt not recorded: the callback disagrees with the prompt".into());
            }
            return fill_receipt(conn, row.r#ref, receipt).await;
        }
    }
    // Paid as the callback says, or as STK Query says whatever the callback.
    let paid = matches!(answer, Answer::Paid { .. }) || matches!(confirmation, Confirmation::Paid);
    // Safaricom's callbacks come within minutes: one about a deposit that
    // ended over a day ago changes nothing.
    if late && !(paid && row.recent && current.can_become(DepositStatus::Suspense)) {
        return Ok(format!("already {}", row.status));
    }
    let pending = Pending {
        reference: row.r#ref,
        user_id: row.user_id,
        phone: row.phone,
        amount: row.amount,
    };
    let answer = match confirmation {
        Confirmation::Paid if matches!(answer, Answer::Paid { .. }) => {
            trusted_details(conn, (stk, &pending), answer).await?
        }
        // M-Pesa's records are the word: a failure report for a payment
        // made is booked as the payment, without the report's details.
        Confirmation::Paid => Answer::Paid {
            amount: None,
            receipt: None,
            phone: None,
        },
        Confirmation::Unpaid(unpaid) => {
            if paid {
                AuditEvent::new("mpesa.callback", Outcome::Rejected)
                    .subject(&stk.checkout_request_id)
                    .detail(json!({"reason": "STK Query says the payment was not made"}))
                    .record(&mut *conn)
                    .await?;
            }
            if late {
                return Ok(format!("already {}; not paid by STK Query", row.status));
            }
            unpaid
        }
        // Money reported for a deposit that already ended is booked only
        // once STK Query confirms it: the report waits for the sweep to ask
        // again (a pending deposit is asked about anyway).
        Confirmation::Unknown | Confirmation::NoSuchPrompt if late => {
            return super::paid_reports::keep(conn, row.r#ref, stk).await;
        }
        Confirmation::Unknown | Confirmation::NoSuchPrompt => return Ok(AWAITING_QUERY.to_owned()),
    };
    let status = settle(conn, state, &pending, answer, late).await?;
    Ok(status.as_str().to_owned())
}

/// A callback about a CheckoutRequestID no deposit has: audited, and its
/// outcome.
pub(super) async fn unknown_checkout(
    conn: &mut PgConnection,
    checkout: &str,
) -> Result<String, Error> {
    AuditEvent::new("mpesa.callback", Outcome::Rejected)
        .subject(checkout)
        .detail(json!({"reason": "unknown CheckoutRequestID"}))
        .record(conn)
        .await?;
    Ok("unknown".to_owned())
}

/// A callback's outcome while STK Query gives no definitive answer: the
/// deposit stays as it was, and the sweep asks again.
pub(super) const AWAITING_QUERY: &str = "awaiting STK Query";

/// What M-Pesa's own records say of the payment a callback reports on.
pub(super) enum Confirmation {
    Paid,
    /// Not paid: the answer to settle the deposit with.
    Unpaid(Answer),
    /// No definitive answer now, or not asked (too many copies of a
    /// callback): nothing is booked on the callback's word.
    Unknown,
    /// Safaricom never issued the CheckoutRequestID: a made-up report.
    NoSuchPrompt,
}

/// Asks STK Query (over our own OAuth credentials) how the prompt a
/// callback reports on ended. The callback's token is only a shared secret
/// in a URL: one that leaked must not let its holder report their own
/// unpaid prompt as paid and be credited, nor fail someone else's prompt
/// before they pay (their payment would wait in suspense). So a callback
/// only settles what Safaricom confirms; its own details (receipt, amount,
/// phone) are used only when both say the payment was made.
pub(super) async fn confirmed(state: &AppState, checkout: &str) -> Confirmation {
    let Ok(daraja) = state.daraja() else {
        return Confirmation::Unknown;
    };
    // Each callback asks once; copies of one (Safaricom's retries, or a
    // flood from someone holding the token) ask a few times a minute at
    // most, callbacks all together a few a second, and the rest leave the
    // deposit to the sweep's queries.
    let buckets = [
        (format!("stk-query:{checkout}"), QUERIES_PER_CHECKOUT_MINUTE),
        ("stk-query:callbacks".to_owned(), QUERIES_PER_MINUTE),
    ];
    for (bucket, per_minute) in &buckets {
        match admit(&state.pool, bucket, *per_minute, 60).await {
            Ok(Admission::Allowed) => {}
            Ok(Admission::Limited { .. }) | Err(_) => return Confirmation::Unknown,
        }
    }
    match daraja.stk_query(checkout).await {
        Ok(StkStatus::Final { result_code, .. }) if result_code.is_success() => Confirmation::Paid,
        Ok(StkStatus::Final {
            result_code,
            result_desc,
        }) => Confirmation::Unpaid(Answer::Unpaid {
            code: result_code,
            desc: result_desc,
        }),
        Err(error) if error.no_such_checkout() => Confirmation::NoSuchPrompt,
        Ok(StkStatus::Pending) | Err(_) => Confirmation::Unknown,
    }
}

/// Records the receipt of a deposit booked without one, unless that receipt
/// is already booked on another deposit (reconciliation then reports it).
async fn fill_receipt(
    conn: &mut PgConnection,
    reference: Uuid,
    receipt: &str,
) -> Result<String, Error> {
    if receipt_booked(&mut *conn, receipt).await? {
        return Ok("receipt already booked elsewhere".into());
    }
    sqlx::query!(
        "UPDATE mpesa_deposits SET mpesa_receipt = $2 WHERE ref = $1 AND mpesa_receipt IS NULL",
        reference,
        receipt
    )
    .execute(conn)
    .await?;
    Ok("receipt recorded".into())
}

/// Asks STK Query about deposits whose callback is overdue and settles them
/// on a definitive answer. Returns how many were looked at.
pub async fn sweep(state: &AppState) -> Result<usize, Error> {
    let mut looked = 0;
    while looked < SWEEP_BATCH && crate::bounded::item(sweep_one(state)).await? {
        looked += 1;
    }
    Ok(looked)
}

/// How long a deposit that expired without an answer is still asked about:
/// a payment made at the last moment is found and held in suspense.
pub(super) const LATE_QUERY_WINDOW_S: f64 = 86_400.0;
/// Seconds between STK Queries of a deposit that expired without an answer.
const LATE_QUERY_SPACING_S: f64 = 60.0;

/// A deposit due for an STK Query.
struct Due {
    pending: Pending,
    checkout: Option<String>,
    /// It expired without an answer: a payment goes to suspense.
    late: bool,
    past_deadline: bool,
}

/// The oldest deposit due for an STK Query, locked: a PENDING one whose
/// callback is overdue, or one that expired at the deadline with no answer.
async fn next_due(conn: &mut PgConnection, state: &AppState) -> Result<Option<Due>, Error> {
    let timeout_s = state.settings.mpesa.pending_timeout_s as f64;
    let row = sqlx::query!(
        r#"SELECT ref, user_id, phone, amount, checkout_request_id, status,
                  created_at < now() - make_interval(secs => $4) AS "past_deadline!"
           FROM mpesa_deposits
           WHERE (status = 'PENDING' AND created_at < now() - make_interval(secs => $1)
                  AND (last_query_at IS NULL OR last_query_at < now() - make_interval(secs => $2)))
              OR (status = 'EXPIRED' AND result_code IS NULL AND checkout_request_id IS NOT NULL
                  AND created_at > now() - make_interval(secs => $3)
                  AND (last_query_at IS NULL OR last_query_at < now() - make_interval(secs => $5)))
           ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED"#,
        timeout_s,
        QUERY_SPACING_S.min(timeout_s),
        LATE_QUERY_WINDOW_S,
        state.settings.mpesa.query_deadline_s as f64,
        LATE_QUERY_SPACING_S.min(timeout_s * 10.0)
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| Due {
        late: row.status != DepositStatus::Pending.as_str(),
        past_deadline: row.past_deadline,
        checkout: row.checkout_request_id,
        pending: Pending {
            reference: row.r#ref,
            user_id: row.user_id,
            phone: row.phone,
            amount: row.amount,
        },
    }))
}

/// Asks STK Query about the next due deposit and acts on the answer.
/// `false` when nothing is due.
async fn sweep_one(state: &AppState) -> Result<bool, Error> {
    let mut tx = state.pool.begin().await?;
    let Some(due) = next_due(&mut tx, state).await? else {
        return Ok(false);
    };
    let reference = due.pending.reference;
    let Some(checkout) = &due.checkout else {
        // Recorded, but the prompt was never confirmed sent (the gateway
        // stopped in between): there is nothing to ask Safaricom about.
        mark(
            &mut tx,
            reference,
            DepositStatus::Failed,
            None,
            "the payment prompt was never confirmed sent",
        )
        .await?;
        tx.commit().await?;
        return Ok(true);
    };
    match state.daraja()?.stk_query(checkout).await {
        Ok(StkStatus::Final { result_code, .. }) if result_code.is_success() => {
            let paid = Answer::Paid {
                amount: None,
                receipt: None,
                phone: None,
            };
            settle(&mut tx, state, &due.pending, paid, due.late).await?;
        }
        // An expired deposit stays expired; its answer stops the asking.
        Ok(StkStatus::Final {
            result_code,
            result_desc,
        }) if due.late => {
            mark(
                &mut tx,
                reference,
                DepositStatus::Expired,
                Some(result_code),
                &result_desc,
            )
            .await?;
        }
        Ok(StkStatus::Final {
            result_code,
            result_desc,
        }) => {
            let unpaid = Answer::Unpaid {
                code: result_code,
                desc: result_desc,
            };
            settle(&mut tx, state, &due.pending, unpaid, false).await?;
        }
        // No definitive answer in time: the deposit ends. A payment that
        // still arrives (or that a later query finds) goes to suspense.
        Ok(StkStatus::Pending) | Err(_) if !due.late && due.past_deadline => {
            let deadline = state.settings.mpesa.query_deadline_s;
            let why = format!("no definitive answer from M-Pesa within {deadline} s");
            mark(&mut tx, reference, DepositStatus::Expired, None, &why).await?;
        }
        Ok(StkStatus::Pending) | Err(_) => asked_again_later(&mut tx, reference).await?,
    }
    tx.commit().await?;
    Ok(true)
}

async fn asked_again_later(conn: &mut PgConnection, reference: Uuid) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE mpesa_deposits SET query_attempts = query_attempts + 1, last_query_at = now() WHERE ref = $1",
        reference
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes an unpaid deposit's status and reason (and ResultCode, if any).
async fn mark(
    conn: &mut PgConnection,
    reference: Uuid,
    status: DepositStatus,
    code: Option<ResultCode>,
    desc: &str,
) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE mpesa_deposits SET status = $2, result_code = $3, result_desc = $4, last_query_at = now(),
                settled_at = coalesce(settled_at, now()) WHERE ref = $1",
        reference,
        status.as_str(),
        code.map(|c| c.0 as i32),
        desc
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One of the user's deposits (`None` for another user's).
pub async fn find(
    state: &AppState,
    user_id: Option<Uuid>,
    reference: Uuid,
) -> sqlx::Result<Option<DepositView>> {
    sqlx::query_as!(
        DepositView,
        r#"SELECT ref AS reference, status, amount, phone, mpesa_receipt, checkout_request_id, result_desc, tx_id, created_at, settled_at
           FROM mpesa_deposits WHERE ref = $1 AND ($2::uuid IS NULL OR user_id = $2)"#,
        reference,
        user_id
    )
    .fetch_optional(&state.pool)
    .await
}

/// Deposits newest first: one user's, or everyone's (`None`), in one
/// status or any.
pub async fn history(
    state: &AppState,
    user_id: Option<Uuid>,
    status: Option<DepositStatus>,
    limit: i64,
) -> sqlx::Result<Vec<DepositView>> {
    sqlx::query_as!(
        DepositView,
        r#"SELECT ref AS reference, status, amount, phone, mpesa_receipt, checkout_request_id, result_desc, tx_id, created_at, settled_at
           FROM mpesa_deposits WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2)
           ORDER BY created_at DESC LIMIT $3"#,
        user_id,
        status.map(DepositStatus::as_str),
        limit
    )
    .fetch_all(&state.pool)
    .await
}
