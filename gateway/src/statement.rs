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

pub async fn mini(conn: &mut PgConnection, user_id: Uuid, lang: Lang) -> sqlx::Result<Vec<String>> {
    let rows = sqlx::query!(
        r#"
        WITH page AS (
            (SELECT seq FROM transactions WHERE from_user_id = $1 ORDER BY seq DESC LIMIT $2)
            UNION
            (SELECT seq FROM transactions WHERE to_user_id = $1 ORDER BY seq DESC LIMIT $2)
            ORDER BY seq DESC LIMIT $2
        )
        SELECT t.tx_type, t.amount, t.fee, t.currency, t.from_user_id, t.to_user_id, t.created_at,
               t.to_currency, t.converted_amount, c.exponent, tc.exponent AS "to_exponent?",
               fu.name AS "from_name?", tu.name AS "to_name?"
        FROM page JOIN transactions t ON t.seq = page.seq
        JOIN currencies c ON c.code = t.currency
        LEFT JOIN currencies tc ON tc.code = t.to_currency
        LEFT JOIN users fu ON fu.id = t.from_user_id
        LEFT JOIN users tu ON tu.id = t.to_user_id
        ORDER BY t.seq DESC
        "#,
        user_id,
        MINI_STATEMENT_ROWS
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let shown = |minor| show(&row.currency, minor, row.exponent.max(0) as u32);
            let name = |name: Option<String>| first_name(&name.unwrap_or_default());
            let outgoing = row.from_user_id == Some(user_id);
            let entry = match (row.tx_type.as_str(), outgoing) {
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
                (_, true) => Entry::Sent {
                    amount: shown(row.amount + row.fee),
                    to: name(row.to_name),
                },
                (_, false) => Entry::Received {
                    amount: shown(row.amount),
                    from: name(row.from_name),
                },
            };
            Line {
                at: row.created_at,
                entry,
            }
            .render(lang)
        })
        .collect())
}
