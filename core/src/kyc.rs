//! Identity documents: the kinds ChainPay accepts and the shape of their
//! numbers, checked before anything is stored. Storage seals the number
//! (AES-256-GCM); everything shown of it is [`masked`].

/// A document a customer can prove their identity with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentType {
    NationalId,
    Passport,
    AlienId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KycError {
    #[error("document_type must be national_id, passport or alien_id")]
    UnknownType,
    #[error("document_number does not look like a {0}")]
    BadNumber(&'static str),
}

impl DocumentType {
    /// In the order USSD lists them.
    pub const ALL: [DocumentType; 3] = [
        DocumentType::NationalId,
        DocumentType::Passport,
        DocumentType::AlienId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentType::NationalId => "national_id",
            DocumentType::Passport => "passport",
            DocumentType::AlienId => "alien_id",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw.trim())
    }

    fn describe(self) -> &'static str {
        match self {
            DocumentType::NationalId => "national ID number (6 to 9 digits)",
            DocumentType::Passport => "passport number (1 or 2 letters and 6 to 8 digits)",
            DocumentType::AlienId => "alien ID number (6 to 9 digits)",
        }
    }
}

/// The number as stored: spaces and dashes dropped, letters upper-cased,
/// checked against the document's shape.
pub fn normalise_number(kind: DocumentType, raw: &str) -> Result<String, KycError> {
    let number: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let digits = |s: &str, range: std::ops::RangeInclusive<usize>| {
        range.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let ok = match kind {
        DocumentType::NationalId | DocumentType::AlienId => digits(&number, 6..=9),
        DocumentType::Passport => {
            let letters = number.bytes().take_while(u8::is_ascii_uppercase).count();
            (1..=2).contains(&letters) && digits(&number[letters..], 6..=8)
        }
    };
    if ok {
        Ok(number)
    } else {
        Err(KycError::BadNumber(kind.describe()))
    }
}

/// The last three characters, what lists show of a number.
pub fn hint(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    chars[chars.len().saturating_sub(3)..].iter().collect()
}

/// `*****678`: a number shown without revealing it.
pub fn masked(hint: &str, len: usize) -> String {
    format!(
        "{}{hint}",
        "*".repeat(len.saturating_sub(hint.chars().count()).max(3))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised_and_checked_per_document() {
        assert_eq!(
            normalise_number(DocumentType::NationalId, " 27 345-678 "),
            Ok("27345678".into())
        );
        assert_eq!(
            normalise_number(DocumentType::Passport, "ak1234567"),
            Ok("AK1234567".into())
        );
        for (kind, bad) in [
            (DocumentType::NationalId, "12345"),
            (DocumentType::NationalId, "1234567890"),
            (DocumentType::NationalId, "12a45678"),
            (DocumentType::Passport, "1234567"),
            (DocumentType::Passport, "ABC123456"),
            (DocumentType::AlienId, ""),
        ] {
            assert!(normalise_number(kind, bad).is_err(), "{kind:?} {bad}");
        }
        assert_eq!(
            DocumentType::parse("passport"),
            Some(DocumentType::Passport)
        );
        assert_eq!(DocumentType::parse("driving_licence"), None);
    }

    #[test]
    fn only_the_last_three_characters_are_ever_shown() {
        assert_eq!(hint("27345678"), "678");
        assert_eq!(masked("678", 8), "*****678");
        assert_eq!(masked("678", 2), "***678");
    }
}
