//! Phone numbers (MSISDNs) are the identity of a ChainPay user.
//!
//! Every channel accepts the forms people actually type — `+254712345678`,
//! `254712345678`, `0712345678` — and stores exactly one: E.164. A bare
//! national number is read as Kenyan, ChainPay's home market.

use std::fmt;

use phonenumber::{country, Mode};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid mobile phone number")]
pub struct PhoneError;

/// Longest input we try to parse; E.164 is at most 15 digits plus formatting.
const MAX_INPUT_LEN: usize = 32;

/// A valid phone number in E.164 form (`+254712345678`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Msisdn(String);

impl Msisdn {
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.len() > MAX_INPUT_LEN {
            return Err(PhoneError);
        }
        let compact: String = trimmed
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        if !compact
            .trim_start_matches('+')
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            return Err(PhoneError);
        }
        // `254…` without the plus is an international number whose `+` was
        // dropped (Daraja and many apps send it so); `0…` is national.
        let candidate = if compact.starts_with('+') || compact.starts_with('0') {
            compact
        } else {
            format!("+{compact}")
        };
        let number =
            phonenumber::parse(Some(country::Id::KE), &candidate).map_err(|_| PhoneError)?;
        if !phonenumber::is_valid(&number) {
            return Err(PhoneError);
        }
        let e164 = number.format().mode(Mode::E164).to_string();
        // A number typed in international form (after `+` or Kenya's
        // international prefix 000) must be stored digit for digit:
        // `phonenumber` applies Kenya's trunk-zero rule to foreign numbers
        // too (+39 0332 123456, a Varese landline, would become the mobile
        // +39332123456) and misreads national numbers with leading zeros
        // (+39 000392727 as +390392727), so such a number is refused rather
        // than guessed at.
        let typed = candidate
            .strip_prefix('+')
            .or_else(|| candidate.strip_prefix("000"));
        if typed.is_some_and(|digits| digits != &e164[1..]) {
            return Err(PhoneError);
        }
        Ok(Self(e164))
    }

    /// E.164 with the leading `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The currency a customer on this number thinks in: shillings for
    /// Kenya, naira for Nigeria, pounds for the UK, dollars otherwise.
    pub fn home_currency(&self) -> &'static str {
        match self.country_calling_code() {
            "254" => "KES",
            "234" => "NGN",
            "44" => "GBP",
            _ => "USD",
        }
    }

    /// The country calling code's digits, e.g. `254`; decides the home currency.
    pub fn country_calling_code(&self) -> &str {
        let digits = &self.0[1..];
        ["254", "255", "256", "234", "44", "1"]
            .into_iter()
            .find(|code| digits.starts_with(code))
            .unwrap_or("")
    }
}

/// A stored E.164 number as someone who must not learn it may see it: the
/// country and network prefix (`+2547`) and the last three digits, the
/// rest starred, as M-Pesa shows a payer to a till (`+2547*****001`).
/// Enough to recognise a customer one already knows, not to call them;
/// an input too short to be a number shows less.
pub fn masked(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    let tail = 3.min(chars.len() / 3);
    let head = 5.min((chars.len() - tail) / 2);
    let starred = chars.len() - tail - head;
    let shown = |part: &[char]| part.iter().collect::<String>();
    format!(
        "{}{}{}",
        shown(&chars[..head]),
        "*".repeat(starred),
        shown(&chars[head + starred..])
    )
}

impl TryFrom<String> for Msisdn {
    type Error = PhoneError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Msisdn> for String {
    fn from(value: Msisdn) -> Self {
        value.0
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_number_shows_its_prefix_and_last_three_digits_only() {
        assert_eq!(masked("+254712345678"), "+2547*****678");
        assert_eq!(masked("+447700900123"), "+4477*****123");
        assert_eq!(masked("+1234"), "+1**4");
        assert_eq!(masked("+25471"), "+2**71");
        assert_eq!(masked(""), "");
    }

    #[test]
    fn the_three_kenyan_forms_normalise_to_the_same_e164() {
        for raw in [
            "+254712345678",
            "254712345678",
            "0712345678",
            "0712 345 678",
        ] {
            assert_eq!(
                Msisdn::parse(raw).unwrap().as_str(),
                "+254712345678",
                "{raw}"
            );
        }
    }

    #[test]
    fn the_demo_numbers_are_valid() {
        assert_eq!(
            Msisdn::parse("+254700000000").unwrap().as_str(),
            "+254700000000"
        );
        assert_eq!(
            Msisdn::parse("0700000001").unwrap().as_str(),
            "+254700000001"
        );
    }

    #[test]
    fn numbers_from_other_countries_keep_their_country_code() {
        let number = Msisdn::parse("+2348031234567").unwrap();
        assert_eq!(number.as_str(), "+2348031234567");
        assert_eq!(number.country_calling_code(), "234");
    }

    #[test]
    fn garbage_and_impossible_numbers_are_rejected() {
        for raw in [
            "",
            "abc",
            "07123",
            "+254",
            "0712345678901234567890",
            "07123a5678",
            "+25471234567899",
        ] {
            assert_eq!(Msisdn::parse(raw), Err(PhoneError), "{raw}");
        }
    }

    #[test]
    fn a_number_typed_in_international_form_is_stored_digit_for_digit_or_refused() {
        // The first was found by the `typed_values` fuzz target: Kenya's
        // international prefix 000, then an Italian number `phonenumber`
        // stored as +390392727, which it then refused to read back.
        for raw in [
            "0.00390.00392727",
            "00039000392727",
            "+39000392727",
            "+39 0332 123456",
            "000390332123456",
        ] {
            assert_eq!(Msisdn::parse(raw), Err(PhoneError), "{raw}");
        }
        for (raw, e164) in [
            ("+255 754 123 456", "+255754123456"),
            ("+256 772 123456", "+256772123456"),
            ("+234 803 123 4567", "+2348031234567"),
            ("+44 7911 123456", "+447911123456"),
            ("+1 (201) 555-0123", "+12015550123"),
            ("000447911123456", "+447911123456"),
            ("254712345678", "+254712345678"),
        ] {
            let number = Msisdn::parse(raw).unwrap_or_else(|_| panic!("{raw}"));
            assert_eq!(number.as_str(), e164, "{raw}");
            assert_eq!(Msisdn::parse(e164), Ok(number), "{raw}");
        }
    }
}
