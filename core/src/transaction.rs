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
    /// field or the formatting machinery: validation and sealing rebuild a
    /// million of these (formatting took 215 ms a million through `write!`
    /// and chrono, a quarter of hashing the same bytes).
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        let mut integers = itoa::Buffer::new();
        out.extend_from_slice(b"chainpay-tx-v1|");
        write_uuid(out, self.tx_id);
        out.push(b'|');
        out.extend_from_slice(self.tx_type.as_str().as_bytes());
        out.push(b'|');
        out.extend_from_slice(integers.format(self.amount_minor).as_bytes());
        out.push(b'|');
        out.extend_from_slice(integers.format(self.fee_minor).as_bytes());
        out.push(b'|');
        out.extend_from_slice(self.currency.as_bytes());
        out.push(b'|');
        for party in [self.from_user_id, self.to_user_id] {
            match party {
                Some(id) => write_uuid(out, id),
                None => out.push(b'-'),
            }
            out.push(b'|');
        }
        write_rfc3339_micros(out, self.created_at);
        if let Some(leg) = &self.conversion {
            out.push(b'|');
            out.extend_from_slice(leg.to_currency.as_bytes());
            out.push(b'|');
            out.extend_from_slice(integers.format(leg.converted_minor).as_bytes());
            out.push(b'|');
            out.extend_from_slice(leg.rate.as_bytes());
        }
    }

    pub fn sign(&self, key: &SigningKey) -> String {
        key.sign(&self.canonical_bytes())
    }
}

/// A uuid as its lower-case hyphenated form, as `Display` writes it.
fn write_uuid(out: &mut Vec<u8>, id: Uuid) {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.extend_from_slice(id.hyphenated().encode_lower(&mut text).as_bytes());
}

/// `at` as `to_rfc3339_opts(SecondsFormat::Micros, true)` writes it
/// (`2023-11-14T22:13:20.123456Z`): by hand for the years 0–9999, through
/// chrono for any other year (written with a sign) or a leap second (which
/// no stored time holds).
fn write_rfc3339_micros(out: &mut Vec<u8>, at: DateTime<Utc>) {
    use chrono::{Datelike as _, Timelike as _};
    // UTC's fields, without an offset applied per field.
    let naive = at.naive_utc();
    let (date, time) = (naive.date(), naive.time());
    let year = u32::try_from(date.year()).unwrap_or(u32::MAX);
    if year > 9999 || time.nanosecond() >= 1_000_000_000 {
        let text = at.to_rfc3339_opts(SecondsFormat::Micros, true);
        out.extend_from_slice(text.as_bytes());
        return;
    }
    let fields = [
        (year, 4, b'-'),
        (date.month(), 2, b'-'),
        (date.day(), 2, b'T'),
        (time.hour(), 2, b':'),
        (time.minute(), 2, b':'),
        (time.second(), 2, b'.'),
        (time.nanosecond() / 1_000, 6, b'Z'),
    ];
    for (value, width, separator) in fields {
        write_padded(out, value, width);
        out.push(separator);
    }
}

/// `value` in decimal, zero-padded to at least `width` digits.
fn write_padded(out: &mut Vec<u8>, value: u32, width: usize) {
    let mut integers = itoa::Buffer::new();
    let digits = integers.format(value).as_bytes();
    out.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits);
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

    proptest::proptest! {
        /// The hand-written form is chrono's, for any instant chrono holds.
        #[test]
        fn times_are_written_as_chrono_writes_them(
            seconds in -400_000_000_000i64..400_000_000_000i64,
            nanos in 0u32..2_000_000_000,
        ) {
            if let Some(at) = DateTime::from_timestamp(seconds, nanos) {
                let mut written = Vec::new();
                write_rfc3339_micros(&mut written, at);
                let chrono = at.to_rfc3339_opts(SecondsFormat::Micros, true);
                proptest::prop_assert_eq!(String::from_utf8(written).unwrap(), chrono);
            }
        }
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
