//! What a committed transaction record is, and the canonical bytes that are
//! signed (and, later, hashed into the chain).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::signing::SigningKey;

/// Why money moved. Stored as the lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxType {
    Transfer,
    Conversion,
    Deposit,
    Withdrawal,
    Reversal,
    /// Funding from the treasury float (demo seed, operator top-ups).
    Funding,
    /// A held withdrawal paid out to its channel's float.
    Payout,
    /// A held withdrawal that did not go through, returned to the customer.
    Refund,
    /// An agent's float paid into a customer's wallet against cash.
    CashIn,
    /// A customer's wallet paid into an agent's float against cash.
    CashOut,
    /// E-money created by the treasury into an agent's float (four eyes).
    Issuance,
    /// A voucher bought: the wallet pays the voucher liability.
    Voucher,
    /// A voucher redeemed: the liability pays the redeemer.
    Redemption,
    /// A voucher cancelled or expired: the liability pays the issuer back.
    VoucherRefund,
    /// A customer paid a merchant's till or paybill.
    MerchantPayment,
    /// A merchant returned (part of) a payment to the customer.
    MerchantRefund,
}

impl TxType {
    pub fn as_str(self) -> &'static str {
        match self {
            TxType::Transfer => "transfer",
            TxType::Conversion => "conversion",
            TxType::Deposit => "deposit",
            TxType::Withdrawal => "withdrawal",
            TxType::Reversal => "reversal",
            TxType::Funding => "funding",
            TxType::Payout => "payout",
            TxType::Refund => "refund",
            TxType::CashIn => "cash_in",
            TxType::CashOut => "cash_out",
            TxType::Issuance => "issuance",
            TxType::Voucher => "voucher",
            TxType::Redemption => "redemption",
            TxType::VoucherRefund => "voucher_refund",
            TxType::MerchantPayment => "merchant_payment",
            TxType::MerchantRefund => "merchant_refund",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            TxType::Transfer,
            TxType::Conversion,
            TxType::Deposit,
            TxType::Withdrawal,
            TxType::Reversal,
            TxType::Funding,
            TxType::Payout,
            TxType::Refund,
            TxType::CashIn,
            TxType::CashOut,
            TxType::Issuance,
            TxType::Voucher,
            TxType::Redemption,
            TxType::VoucherRefund,
            TxType::MerchantPayment,
            TxType::MerchantRefund,
        ]
        .into_iter()
        .find(|t| t.as_str() == raw)
    }
}

/// The immutable facts of a transaction. Status is deliberately absent: it
/// may advance (e.g. a payout settling) without invalidating the signature.
#[derive(Debug, Clone)]
pub struct TxFacts {
    pub tx_id: Uuid,
    pub tx_type: TxType,
    pub amount_minor: i64,
    pub fee_minor: i64,
    pub currency: String,
    pub from_user_id: Option<Uuid>,
    pub to_user_id: Option<Uuid>,
    /// Microsecond precision, as PostgreSQL stores it, so the bytes rebuilt
    /// from a stored row equal the bytes that were signed.
    pub created_at: DateTime<Utc>,
    /// The second leg of a conversion.
    pub conversion: Option<ConversionLeg>,
}

/// What a conversion paid out, in the target currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionLeg {
    pub to_currency: String,
    pub converted_minor: i64,
    /// The applied rate as a normalised decimal string (`128.52875`).
    pub rate: String,
}

impl TxFacts {
    /// A single-currency movement happening now.
    pub fn now(
        tx_id: Uuid,
        tx_type: TxType,
        currency: &str,
        (amount_minor, fee_minor): (i64, i64),
        from_user_id: Option<Uuid>,
        to_user_id: Option<Uuid>,
    ) -> Self {
        Self {
            tx_id,
            tx_type,
            amount_minor,
            fee_minor,
            currency: currency.to_owned(),
            from_user_id,
            to_user_id,
            created_at: now_micros(),
            conversion: None,
        }
    }

    /// `chainpay-tx-v1|<tx_id>|<type>|<amount>|<fee>|<currency>|<from>|<to>|<created_at>`
    /// with `-` for a missing party and RFC 3339 UTC time in microseconds;
    /// a conversion appends `|<to_currency>|<converted_amount>|<rate>`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_canonical(&mut out);
        out
    }

    /// Appends [`Self::canonical_bytes`] to `out`, without a string per
    /// field: validation rebuilds a million of these.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        // Writing into a Vec<u8> cannot fail.
        let _ = write!(
            out,
            "chainpay-tx-v1|{}|{}|{}|{}|{}|",
            self.tx_id,
            self.tx_type.as_str(),
            self.amount_minor,
            self.fee_minor,
            self.currency,
        );
        for party in [self.from_user_id, self.to_user_id] {
            match party {
                Some(id) => {
                    let _ = write!(out, "{id}|");
                }
                None => out.extend_from_slice(b"-|"),
            }
        }
        let created_at = self.created_at.to_rfc3339_opts(SecondsFormat::Micros, true);
        out.extend_from_slice(created_at.as_bytes());
        if let Some(leg) = &self.conversion {
            let _ = write!(
                out,
                "|{}|{}|{}",
                leg.to_currency, leg.converted_minor, leg.rate
            );
        }
    }

    pub fn sign(&self, key: &SigningKey) -> String {
        key.sign(&self.canonical_bytes())
    }
}

/// The short reference customers see on screens and SMS: the first ten hex
/// digits of the transaction id, upper case (`215F8C51F7`).
pub fn reference(tx_id: Uuid) -> String {
    tx_id.simple().to_string()[..10].to_ascii_uppercase()
}

/// The current time truncated to microseconds (PostgreSQL's precision).
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> TxFacts {
        TxFacts {
            tx_id: Uuid::nil(),
            tx_type: TxType::Transfer,
            amount_minor: 10_000,
            fee_minor: 100,
            currency: "KES".into(),
            from_user_id: Some(Uuid::nil()),
            to_user_id: None,
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            conversion: None,
        }
    }

    #[test]
    fn canonical_bytes_are_stable_and_name_every_fact() {
        let text = String::from_utf8(facts().canonical_bytes()).unwrap();
        assert_eq!(
            text,
            "chainpay-tx-v1|00000000-0000-0000-0000-000000000000|transfer|10000|100|KES|00000000-0000-0000-0000-000000000000|-|2023-11-14T22:13:20.123456Z"
        );
    }

    #[test]
    fn a_conversion_signs_its_second_leg_too() {
        let mut conversion = facts();
        conversion.tx_type = TxType::Conversion;
        conversion.conversion = Some(ConversionLeg {
            to_currency: "USD".into(),
            converted_minor: 77,
            rate: "0.0076640926".into(),
        });
        let text = String::from_utf8(conversion.canonical_bytes()).unwrap();
        assert!(text.ends_with("|USD|77|0.0076640926"), "{text}");
        let key = SigningKey::from_bytes([1; 32]);
        let signature = conversion.sign(&key);
        conversion.conversion.as_mut().unwrap().converted_minor = 78;
        assert!(!key.verify(&conversion.canonical_bytes(), &signature));
    }

    #[test]
    fn changing_any_amount_breaks_the_signature() {
        let key = SigningKey::from_bytes([1; 32]);
        let signature = facts().sign(&key);
        let mut altered = facts();
        altered.amount_minor += 1;
        assert!(!key.verify(&altered.canonical_bytes(), &signature));
        assert!(key.verify(&facts().canonical_bytes(), &signature));
    }
}
