//! The mini statement: a customer's last few movements as short lines, for
//! USSD screens and SMS replies (`25/11 -KES 255.00 to BARAKA`), worded by
//! core's [`chainpay_core::statement`] in the customer's language.

use chainpay_core::money::show;
use chainpay_core::statement::{first_name, Entry, Line};
use chainpay_core::Lang;
use sqlx::PgConnection;
use uuid::Uuid;

/// Movements shown.
pub const MINI_STATEMENT_ROWS: i64 = 5;

/// One movement of the statement, as read.
struct Row {
    tx_type: String,
    amount: i64,
    fee: i64,
    currency: String,
    from_user_id: Option<Uuid>,
    created_at: chrono::DateTime<chrono::Utc>,
    to_currency: Option<String>,
    converted_amount: Option<i64>,
    exponent: i16,
    to_exponent: Option<i16>,
    from_name: Option<String>,
    to_name: Option<String>,
    merchant_name: Option<String>,
}

pub async fn mini(conn: &mut PgConnection, user_id: Uuid, lang: Lang) -> sqlx::Result<Vec<String>> {
    let rows = sqlx::query_as!(
        Row,
        r#"
        WITH page AS (
            (SELECT seq FROM transactions WHERE from_user_id = $1 ORDER BY seq DESC LIMIT $2)
            UNION
            (SELECT seq FROM transactions WHERE to_user_id = $1 ORDER BY seq DESC LIMIT $2)
            ORDER BY seq DESC LIMIT $2
        )
        SELECT t.tx_type, t.amount, t.fee, t.currency, t.from_user_id, t.created_at,
               t.to_currency, t.converted_amount, c.exponent, tc.exponent AS "to_exponent?",
               fu.name AS "from_name?", tu.name AS "to_name?", m.name AS "merchant_name?"
        FROM page JOIN transactions t ON t.seq = page.seq
        JOIN currencies c ON c.code = t.currency
        LEFT JOIN currencies tc ON tc.code = t.to_currency
        LEFT JOIN users fu ON fu.id = t.from_user_id
        LEFT JOIN users tu ON tu.id = t.to_user_id
        LEFT JOIN merchant_refunds mr ON mr.tx_id = t.tx_id
        LEFT JOIN merchant_payments mp ON mp.tx_id = coalesce(mr.payment_tx_id, t.tx_id)
        LEFT JOIN merchants m ON m.id = mp.merchant_id
        ORDER BY t.seq DESC
        "#,
        user_id,
        MINI_STATEMENT_ROWS
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let at = row.created_at;
            entry(row, user_id).map(|entry| Line { at, entry }.render(lang))
        })
        .collect())
}

/// What one movement was from the owner's side; `None` for movements of an
/// agent's float rather than their wallet (the agent summary shows those).
fn entry(row: Row, user_id: Uuid) -> Option<Entry> {
    let shown = |minor| show(&row.currency, minor, row.exponent.max(0) as u32);
    let name = |name: Option<String>| first_name(&name.unwrap_or_default());
    let outgoing = row.from_user_id == Some(user_id);
    Some(match (row.tx_type.as_str(), outgoing) {
        ("cash_in", true) | ("cash_out", false) | ("issuance", _) => return None,
        ("conversion", _) => Entry::Converted {
            paid: shown(row.amount + row.fee),
            got: show(
                &row.to_currency.unwrap_or_default(),
                row.converted_amount.unwrap_or(0),
                row.to_exponent.unwrap_or(2).max(0) as u32,
            ),
        },
        ("deposit" | "funding", _) => Entry::Deposit {
            amount: shown(row.amount),
        },
        ("withdrawal", _) => Entry::Withdrawal {
            amount: shown(row.amount + row.fee),
        },
        ("reversal", true) => Entry::ReversedOut {
            amount: shown(row.amount),
        },
        ("reversal", false) => Entry::ReversedIn {
            amount: shown(row.amount),
        },
        ("cash_in", false) => Entry::CashIn {
            amount: shown(row.amount),
            agent: name(row.from_name),
        },
        ("cash_out", true) => Entry::CashOut {
            amount: shown(row.amount + row.fee),
            agent: name(row.to_name),
        },
        ("voucher", _) => Entry::VoucherBought {
            amount: shown(row.amount + row.fee),
        },
        ("redemption", false) => Entry::VoucherRedeemed {
            amount: shown(row.amount),
        },
        ("merchant_payment", true) => Entry::PaidMerchant {
            amount: shown(row.amount),
            merchant: row.merchant_name.unwrap_or_default(),
        },
        ("merchant_refund", false) => Entry::MerchantRefund {
            amount: shown(row.amount),
            merchant: row.merchant_name.unwrap_or_default(),
        },
        ("merchant_payment" | "merchant_refund", _) => return None,
        ("voucher_refund", _) => Entry::VoucherReturned {
            amount: shown(row.amount),
        },
        (_, true) => Entry::Sent {
            amount: shown(row.amount + row.fee),
            to: name(row.to_name),
        },
        (_, false) => Entry::Received {
            amount: shown(row.amount),
            from: name(row.from_name),
        },
    })
}
