//! SMS wording, M-Pesa style: the reference first, then what happened, the
//! counterparty, the time (East Africa Time), the new balance and the fee.
//! Each message ends with the full transaction id, the receipt a customer
//! can check against the chain (`GET /api/v1/blockchain/proof/{tx_id}`).

use chrono::{DateTime, FixedOffset, Utc};
use uuid::Uuid;

use crate::transaction::reference;

/// Kenya time: UTC+3, no daylight saving.
fn eat(at: DateTime<Utc>) -> String {
    let offset = FixedOffset::east_opt(3 * 3600)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
    at.with_timezone(&offset)
        .format("%-d/%-m/%y at %-I:%M %p")
        .to_string()
}

/// An amount already formatted with its currency (`KES 250.00`).
pub type Shown = str;

pub struct Party<'a> {
    pub name: &'a str,
    pub phone: &'a str,
}

pub fn sent(
    tx_id: Uuid,
    at: DateTime<Utc>,
    amount: &Shown,
    to: Party,
    balance: &Shown,
    fee: &Shown,
) -> String {
    format!(
        "{} Confirmed. {amount} sent to {} {} on {}. New balance is {balance}. Fee {fee}. Receipt {tx_id}",
        reference(tx_id),
        to.name.to_uppercase(),
        to.phone,
        eat(at)
    )
}

pub fn received(
    tx_id: Uuid,
    at: DateTime<Utc>,
    amount: &Shown,
    from: Party,
    balance: &Shown,
) -> String {
    format!(
        "{} Confirmed. You have received {amount} from {} {} on {}. New balance is {balance}. Receipt {tx_id}",
        reference(tx_id),
        from.name.to_uppercase(),
        from.phone,
        eat(at)
    )
}

pub fn converted(
    tx_id: Uuid,
    at: DateTime<Utc>,
    amount: &Shown,
    got: &Shown,
    rate: &str,
    balance: &Shown,
    fee: &Shown,
) -> String {
    format!(
        "{} Confirmed. {amount} converted to {got} at {rate} on {}. New balance is {balance}. Fee {fee}. Receipt {tx_id}",
        reference(tx_id),
        eat(at)
    )
}

pub fn deposited(
    tx_id: Uuid,
    at: DateTime<Utc>,
    amount: &Shown,
    mpesa_receipt: &str,
    balance: &Shown,
) -> String {
    format!(
        "{} Confirmed. {amount} deposited from M-Pesa ({mpesa_receipt}) on {}. New balance is {balance}. Receipt {tx_id}",
        reference(tx_id),
        eat(at)
    )
}

pub fn withdrawn(
    tx_id: Uuid,
    at: DateTime<Utc>,
    amount: &Shown,
    to_phone: &str,
    balance: &Shown,
    fee: &Shown,
) -> String {
    format!(
        "{} Confirmed. {amount} withdrawn to M-Pesa {to_phone} on {}. New balance is {balance}. Fee {fee}. Receipt {tx_id}",
        reference(tx_id),
        eat(at)
    )
}

pub fn reversed(
    tx_id: Uuid,
    at: DateTime<Utc>,
    original: Uuid,
    amount: &Shown,
    credited: bool,
    balance: &Shown,
) -> String {
    let what = if credited {
        "returned to you"
    } else {
        "taken back from you"
    };
    format!(
        "{} Confirmed. Transaction {} was reversed on {}: {amount} {what}. New balance is {balance}. Receipt {tx_id}",
        reference(tx_id),
        reference(original),
        eat(at)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_like_mpesa_and_carry_the_receipt() {
        let tx_id = Uuid::parse_str("215f8c51-f7b1-4401-bcb4-2ceae6a0a31b").unwrap();
        let at = DateTime::from_timestamp(1_764_082_268, 0).unwrap(); // 2025-11-25 14:51:08 UTC
        let text = sent(
            tx_id,
            at,
            "KES 250.00",
            Party {
                name: "Baraka Juma",
                phone: "+254712345678",
            },
            "KES 745.00",
            "KES 5.00",
        );
        assert_eq!(
            text,
            "215F8C51F7 Confirmed. KES 250.00 sent to BARAKA JUMA +254712345678 on 25/11/25 at 5:51 PM. \
             New balance is KES 745.00. Fee KES 5.00. Receipt 215f8c51-f7b1-4401-bcb4-2ceae6a0a31b"
        );
    }
}
