//! The M-Pesa checks: deposits against their callbacks and credits,
//! callbacks against deposits, withdrawals against their settlements and
//! the payout hold; and the SMS outbox, for messages that never left.

use std::collections::BTreeSet;

use chainpay_core::daraja::wire::StkCallbackEnvelope;
use chainpay_core::status::{DepositStatus, WithdrawalStatus};
use serde_json::{json, Value};
use sqlx::{Connection, PgPool};

use super::{Check, Finding};
use crate::error::Error;

/// A withdrawal still unsettled after this long is a finding (and, once
/// sent that long ago, operators may settle it).
const WITHDRAWAL_STUCK_S: f64 = crate::mpesa::resolutions::STUCK_AFTER_S;
/// An SMS still queued after this long is stuck.
const SMS_STUCK_S: f64 = 900.0;

/// What one success callback for a deposit said.
struct Paid {
    receipt: Option<String>,
    amount: Option<i64>,
    phone: Option<String>,
}

fn paid(body: &Value) -> Option<Paid> {
    let envelope = serde_json::from_value::<StkCallbackEnvelope>(body.clone()).ok()?;
    let stk = envelope.body.stk_callback;
    Some(Paid {
        receipt: stk.receipt(),
        amount: stk.amount_minor().ok(),
        phone: stk.phone(),
    })
}

/// Every CONFIRMED deposit has one credit to its customer's wallet and one
/// success callback (delivered once or many times) with the same receipt,
/// amount and phone. A deposit confirmed through STK Query, whose callback
/// was lost, has no receipt and no callback: its credit must equal what was
/// asked for.
pub async fn deposits(pool: &PgPool) -> Result<(Vec<Finding>, Value), Error> {
    let rows = sqlx::query!(
        r#"SELECT d.ref, d.amount, d.phone, d.mpesa_receipt,
                  coalesce((SELECT sum(p.amount) FROM postings p JOIN accounts a ON a.id = p.account_id
                            WHERE p.tx_id = d.tx_id AND a.kind = 'wallet' AND a.user_id = d.user_id AND a.currency = 'KES'), 0)::bigint
                      AS "credited!",
                  coalesce((SELECT array_agg(c.body ORDER BY c.id) FROM mpesa_callbacks c
                            WHERE c.kind = 'stk' AND c.reference = d.checkout_request_id
                              AND c.body -> 'Body' -> 'stkCallback' ->> 'ResultCode' = '0'), '{}') AS "callbacks!: Vec<Value>",
                  EXISTS (SELECT 1 FROM reconciliation_items i WHERE i.category = 'suspense' AND i.subject = d.ref::text
                          AND i.status = 'RESOLVED') AS "resolved!"
           FROM mpesa_deposits d WHERE d.status = $1 ORDER BY d.created_at"#,
        DepositStatus::Confirmed.as_str()
    )
    .fetch_all(pool)
    .await?;
    let mut findings = Vec::new();
    let mut by_query = 0;
    for row in &rows {
        let calls: Vec<Paid> = row.callbacks.iter().filter_map(paid).collect();
        let receipts: BTreeSet<Option<&str>> = calls.iter().map(|c| c.receipt.as_deref()).collect();
        let problem = match (calls.first(), receipts.len()) {
            (None, _) if row.mpesa_receipt.is_none() => {
                by_query += 1;
                (row.credited != row.amount)
                    .then(|| format!("credited {} but {} was asked for", row.credited, row.amount))
            }
            (None, _) => Some("credited with a receipt but no success callback".to_owned()),
            (Some(_), n) if n > 1 => Some(format!("{n} different receipts for one payment")),
            // A payment an operator credited from suspense may have come
            // from another phone; it was checked then.
            (Some(call), _) => {
                let phone = (!row.resolved).then_some(row.phone.as_str());
                mismatch(call, row.mpesa_receipt.as_deref(), phone, row.credited)
            }
        };
        if let Some(problem) = problem {
            findings.push(Finding::new(
                Check::MpesaDeposit,
                row.r#ref,
                json!({"deposit": row.r#ref, "problem": problem, "amount": row.amount, "credited": row.credited,
                       "receipt": row.mpesa_receipt, "success_callbacks": row.callbacks.len()}),
            ));
        }
    }
    let looked = json!({"confirmed": rows.len(), "confirmed_by_query": by_query});
    Ok((findings, looked))
}

fn mismatch(
    call: &Paid,
    receipt: Option<&str>,
    phone: Option<&str>,
    credited: i64,
) -> Option<String> {
    if call.receipt.as_deref() != receipt {
        return Some(format!(
            "callback receipt {:?} but the deposit has {receipt:?}",
            call.receipt
        ));
    }
    if call.amount != Some(credited) {
        return Some(format!(
            "callback amount {:?} but {credited} was credited",
            call.amount
        ));
    }
    if let (Some(paid_by), Some(prompted)) = (call.phone.as_deref(), phone) {
        if paid_by != prompted {
            return Some(format!(
                "paid from {paid_by} but the prompt went to {prompted}"
            ));
        }
    }
    None
}

/// Every success callback belongs to a deposit whose money was booked
/// (CONFIRMED, SUSPENSE or later REFUNDED) or that repeats a receipt booked
/// on another deposit (DUPLICATE).
pub async fn callbacks(pool: &PgPool) -> Result<(Vec<Finding>, Value), Error> {
    let accounted: Vec<String> = [
        DepositStatus::Confirmed,
        DepositStatus::Suspense,
        DepositStatus::Refunded,
        DepositStatus::Duplicate,
    ]
    .iter()
    .map(|s| s.as_str().to_owned())
    .collect();
    let rows = sqlx::query!(
        r#"SELECT c.id, c.reference, c.outcome, c.received_at, d.status AS "status?", count(*) OVER () AS "looked!"
           FROM mpesa_callbacks c LEFT JOIN mpesa_deposits d ON d.checkout_request_id = c.reference
           WHERE c.kind = 'stk' AND c.body -> 'Body' -> 'stkCallback' ->> 'ResultCode' = '0'
           ORDER BY c.id"#
    )
    .fetch_all(pool)
    .await?;
    let looked = rows.first().map_or(0, |r| r.looked);
    let findings = rows
        .into_iter()
        .filter(|row| !row.status.as_ref().is_some_and(|s| accounted.contains(s)))
        .map(|row| {
            let problem = match &row.status {
                None => "a success callback for no deposit we asked for".to_owned(),
                Some(status) => format!("a success callback but the deposit is {status}"),
            };
            Finding::new(
                Check::MpesaCallback,
                format!("callback {}", row.id),
                json!({"callback": row.id, "checkout_request_id": row.reference, "outcome": row.outcome,
                       "received_at": row.received_at, "deposit_status": row.status, "problem": problem}),
            )
        })
        .collect();
    Ok((findings, json!({"success_callbacks": looked})))
}

/// Every withdrawal is settled once: paid out (a payout transaction, the
/// hold COMPLETED) or refunded (a refund, the hold FAILED); one still
/// pending after an hour is a finding; and the payout hold holds exactly
/// what pending withdrawals hold (a double settlement shows here).
pub async fn withdrawals(pool: &PgPool) -> Result<(Vec<Finding>, Value), Error> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query_as!(
        Payout,
        r#"SELECT w.ref AS reference, w.status, w.amount, w.settle_tx_id, t.tx_type AS "settle_type?", h.status AS hold_status,
                  w.mpesa_receipt AS receipt, w.reported_paid_receipt,
                  w.status = 'PENDING' AND w.created_at < now() - make_interval(secs => $1) AS "stuck!"
           FROM mpesa_withdrawals w JOIN transactions h ON h.tx_id = w.hold_tx_id
           LEFT JOIN transactions t ON t.tx_id = w.settle_tx_id
           ORDER BY w.created_at"#,
        WITHDRAWAL_STUCK_S
    )
    .fetch_all(&mut *tx)
    .await?;
    let hold = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(balance), 0)::bigint AS "held!" FROM accounts
           WHERE kind = 'payout_hold' AND channel = 'mpesa' AND currency = 'KES'"#
    )
    .fetch_one(&mut *tx)
    .await?;
    let contradicted = crate::mpesa::corrections::open(&mut tx).await?;
    tx.commit().await?;
    // The run keeps a check's first findings as items: the book-wide ones
    // (the hold, contradictions, shared receipts) come before the payouts'
    // own, which an outage can make numerous.
    let mut findings = Vec::new();
    let pending: i64 = rows
        .iter()
        .filter(|row| row.status == WithdrawalStatus::Pending.as_str())
        .map(|row| row.amount)
        .sum();
    if hold != pending {
        findings.push(Finding::new(
            Check::MpesaWithdrawal,
            "payout hold",
            json!({"problem": "the payout hold does not equal what pending withdrawals hold",
                   "hold_balance": hold, "pending_withdrawals": pending}),
        ));
    }
    findings.extend(contradicted.listed.into_iter().map(|c| {
        Finding::new(
            Check::MpesaWithdrawal,
            format!("contradiction {}", c.id),
            json!({"contradiction": c.id, "withdrawal": c.withdrawal, "kind": c.kind, "found_at": c.found_at,
                   "pending_correction": c.pending_correction, "problem": c.problem}),
        )
    }));
    findings.extend(shared_receipts(&rows));
    findings.extend(rows.iter().filter_map(Payout::finding));
    Ok((
        findings,
        // Findings name the oldest 500 contradictions; the count is all.
        json!({"withdrawals": rows.len(), "pending_amount": pending,
               "open_contradictions": contradicted.count}),
    ))
}

/// A withdrawal and how it was settled.
struct Payout {
    reference: uuid::Uuid,
    status: String,
    amount: i64,
    settle_tx_id: Option<uuid::Uuid>,
    settle_type: Option<String>,
    hold_status: String,
    receipt: Option<String>,
    /// A success M-Pesa reported on a result whose conversation was never
    /// acknowledged: operators settling the payout must see it.
    reported_paid_receipt: Option<String>,
    stuck: bool,
}

/// One M-Pesa receipt recorded on several payouts: at most one of them was
/// paid under it (operators may have settled one with another's receipt,
/// which that payout's own result later brought).
fn shared_receipts(rows: &[Payout]) -> Vec<Finding> {
    let mut by_receipt: std::collections::BTreeMap<&str, Vec<uuid::Uuid>> = Default::default();
    for row in rows {
        if let Some(receipt) = row.receipt.as_deref().filter(|r| !r.is_empty()) {
            by_receipt.entry(receipt).or_default().push(row.reference);
        }
    }
    by_receipt
        .into_iter()
        .filter(|(_, payouts)| payouts.len() > 1)
        .map(|(receipt, payouts)| {
            Finding::new(
                Check::MpesaWithdrawal,
                format!("receipt {receipt}"),
                json!({"receipt": receipt, "withdrawals": payouts,
                       "problem": "one M-Pesa receipt recorded on several payouts: at most one was paid under it"}),
            )
        })
        .collect()
}

impl Payout {
    fn finding(&self) -> Option<Finding> {
        let settle = self.settle_type.as_deref();
        let problem = match WithdrawalStatus::parse(&self.status) {
            // Paid out from the hold, or taken back after its refund by two
            // operators (a withdrawal of its own; the hold stays returned).
            Some(WithdrawalStatus::Completed)
                if !matches!(
                    (settle, self.hold_status.as_str()),
                    (Some("payout"), "COMPLETED") | (Some("withdrawal"), "FAILED")
                ) =>
            {
                "completed without exactly one payout"
            }
            Some(WithdrawalStatus::Failed)
                if settle != Some("refund") || self.hold_status != "FAILED" =>
            {
                "failed without exactly one refund"
            }
            Some(WithdrawalStatus::Pending) if self.settle_tx_id.is_some() => "pending but settled",
            Some(WithdrawalStatus::Pending) if self.stuck => "unsettled for over an hour",
            None => "unknown status",
            _ => return None,
        };
        Some(Finding::new(
            Check::MpesaWithdrawal,
            self.reference,
            json!({"withdrawal": self.reference, "status": self.status, "settle_tx_id": self.settle_tx_id,
                   "settle_type": self.settle_type, "hold_status": self.hold_status, "problem": problem,
                   "reported_paid_receipt": self.reported_paid_receipt}),
        ))
    }
}

/// Messages still queued a quarter of an hour after they were written.
pub async fn stuck_sms(pool: &PgPool) -> Result<(Vec<Finding>, Value), Error> {
    let rows = sqlx::query!(
        r#"SELECT id, to_phone, attempts, created_at, count(*) OVER () AS "stuck!"
           FROM sms_outbox WHERE queued AND created_at < now() - make_interval(secs => $1)
           ORDER BY id LIMIT $2"#,
        SMS_STUCK_S,
        super::MAX_FINDINGS_PER_CHECK as i64
    )
    .fetch_all(pool)
    .await?;
    let stuck = rows.first().map_or(0, |r| r.stuck);
    let findings = rows
        .into_iter()
        .map(|row| {
            Finding::new(
                Check::Sms,
                format!("sms {}", row.id),
                json!({"sms": row.id, "to": chainpay_core::phone::masked(&row.to_phone), "attempts": row.attempts, "queued_since": row.created_at,
                       "problem": "queued for over 15 minutes"}),
            )
        })
        .collect();
    Ok((findings, json!({"stuck": stuck})))
}
