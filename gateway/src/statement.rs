//! The mini statement: a customer's last few movements as short lines, for
//! USSD screens and SMS replies (`25/11 -KES 255.00 to BARAKA JUMA`).

use chainpay_core::ussd::money;
use sqlx::PgConnection;
use uuid::Uuid;

/// Movements shown.
pub const MINI_STATEMENT_ROWS: i64 = 5;

pub async fn mini(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Vec<String>> {
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
            let date = row.created_at.format("%d/%m");
            let shown = |minor| money(&row.currency, minor, row.exponent.max(0) as u32);
            let first = |name: Option<String>| {
                name.unwrap_or_default()
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_uppercase()
            };
            let outgoing = row.from_user_id == Some(user_id);
            match (row.tx_type.as_str(), outgoing) {
                ("conversion", _) => {
                    let to = row.to_currency.unwrap_or_default();
                    let got = money(
                        &to,
                        row.converted_amount.unwrap_or(0),
                        row.to_exponent.unwrap_or(2).max(0) as u32,
                    );
                    format!("{date} {} to {got}", shown(row.amount + row.fee))
                }
                ("deposit", _) | ("funding", _) => format!("{date} +{} deposit", shown(row.amount)),
                ("withdrawal", _) => format!("{date} -{} withdrawal", shown(row.amount + row.fee)),
                (kind, true) => format!(
                    "{date} -{} {} {}",
                    shown(row.amount + row.fee),
                    if kind == "reversal" { "reversed" } else { "to" },
                    first(row.to_name)
                ),
                (kind, false) => format!(
                    "{date} +{} {} {}",
                    shown(row.amount),
                    if kind == "reversal" {
                        "reversal"
                    } else {
                        "from"
                    },
                    first(row.from_name)
                ),
            }
        })
        .collect())
}
