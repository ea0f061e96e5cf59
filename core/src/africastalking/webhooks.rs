//! The forms Africa's Talking posts to us — a USSD step, an SMS a customer
//! texted to the short code, a delivery report — and what makes each one
//! acceptable. The gateway's webhooks decode these forms and act only on
//! what [`UssdForm::step`], [`InboundSms::sender`] and
//! [`DeliveryReport::message_id`] accept; the fuzz target `at_forms` feeds
//! them arbitrary bodies.

use serde::Deserialize;

use crate::phone::Msisdn;

/// Longest `sessionId` accepted.
pub const MAX_SESSION_ID_CHARS: usize = 100;
/// Longest `text` accepted: far beyond any real session.
pub const MAX_TEXT_CHARS: usize = 1000;
/// Longest inbound message `id` accepted.
pub const MAX_MESSAGE_ID_CHARS: usize = 200;

/// Why a form is refused; the text is the problem's detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormError(pub String);

/// One USSD request (`POST /ussd`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[allow(non_snake_case)]
pub struct UssdForm {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 100, pattern = r"\S")
    )]
    pub sessionId: String,
    pub serviceCode: Option<String>,
    #[cfg_attr(feature = "openapi", schema(format = "phone"))]
    pub phoneNumber: String,
    pub networkCode: Option<String>,
    /// Every input of the session joined by `*`; empty on dial.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
    pub text: String,
}

/// A USSD request the menu may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UssdStep {
    /// Trimmed, 1 to [`MAX_SESSION_ID_CHARS`] characters.
    pub session_id: String,
    pub phone: Msisdn,
    /// Every input of the session so far, this request's last; none on dial.
    pub inputs: Vec<String>,
}

impl UssdForm {
    pub fn step(&self) -> Result<UssdStep, FormError> {
        let session_id = self.sessionId.trim();
        if session_id.is_empty()
            || session_id.chars().count() > MAX_SESSION_ID_CHARS
            || self.text.chars().count() > MAX_TEXT_CHARS
        {
            return Err(FormError(format!(
                "sessionId must be 1 to {MAX_SESSION_ID_CHARS} characters and text at most {MAX_TEXT_CHARS}"
            )));
        }
        let phone =
            Msisdn::parse(&self.phoneNumber).map_err(|e| FormError(format!("phoneNumber: {e}")))?;
        let inputs = if self.text.is_empty() {
            Vec::new()
        } else {
            self.text.split('*').map(str::to_owned).collect()
        };
        Ok(UssdStep {
            session_id: session_id.to_owned(),
            phone,
            inputs,
        })
    }
}

/// An SMS a customer texted to the short code (`POST /sms/inbound`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[allow(non_snake_case)]
pub struct InboundSms {
    #[cfg_attr(feature = "openapi", schema(format = "phone"))]
    pub from: String,
    pub to: String,
    pub text: String,
    pub date: Option<String>,
    /// Africa's Talking's id; a retried callback repeats it.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 200, pattern = r"\S")
    )]
    pub id: String,
    pub linkId: Option<String>,
}

impl InboundSms {
    /// Who texted, and the message's id (trimmed), when both are acceptable.
    pub fn sender(&self) -> Result<(Msisdn, &str), FormError> {
        let from = Msisdn::parse(&self.from).map_err(|e| FormError(format!("from: {e}")))?;
        let id = self.id.trim();
        if id.is_empty() || self.id.chars().count() > MAX_MESSAGE_ID_CHARS {
            return Err(FormError(format!(
                "id must be 1 to {MAX_MESSAGE_ID_CHARS} characters"
            )));
        }
        Ok((from, id))
    }
}

/// A delivery report for a message we sent (`POST /sms/delivery`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[allow(non_snake_case)]
pub struct DeliveryReport {
    /// The messageId Africa's Talking returned when it accepted the message.
    pub id: String,
    /// `Sent`, `Submitted`, `Buffered`, or final `Success`, `Failed`, `Rejected`.
    pub status: String,
    pub phoneNumber: Option<String>,
    pub networkCode: Option<String>,
    pub failureReason: Option<String>,
    pub retryCount: Option<String>,
}

impl DeliveryReport {
    /// The id to look up, or `None` for a report Africa's Talking cannot
    /// have sent: an id that is empty, overlong or not one we could have
    /// issued, or NUL (which PostgreSQL text cannot store) in what is kept
    /// of it. Such a report is acknowledged and ignored, like any unknown id.
    pub fn message_id(&self) -> Option<&str> {
        let id = self.id.as_str();
        let kept = [
            Some(id),
            Some(self.status.as_str()),
            self.failureReason.as_deref(),
        ];
        let plausible = !id.is_empty()
            && id.chars().count() <= MAX_MESSAGE_ID_CHARS
            && kept.into_iter().flatten().all(|text| !text.contains('\0'));
        plausible.then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ussd(session: &str, phone: &str, text: &str) -> UssdForm {
        UssdForm {
            sessionId: session.into(),
            serviceCode: None,
            phoneNumber: phone.into(),
            networkCode: None,
            text: text.into(),
        }
    }

    #[test]
    fn a_ussd_step_splits_the_session_inputs_and_refuses_bad_forms() {
        let step = ussd(" ATUid_1 ", "0712345678", "1*0722000000*250")
            .step()
            .unwrap();
        assert_eq!(step.session_id, "ATUid_1");
        assert_eq!(step.phone.as_str(), "+254712345678");
        assert_eq!(step.inputs, ["1", "0722000000", "250"]);
        assert!(ussd("s", "+254712345678", "")
            .step()
            .unwrap()
            .inputs
            .is_empty());
        assert!(ussd("   ", "+254712345678", "").step().is_err());
        assert!(ussd("s", "not a phone", "").step().is_err());
        assert!(ussd("s", "+254712345678", &"1*".repeat(600))
            .step()
            .is_err());
    }

    #[test]
    fn a_delivery_report_id_we_cannot_have_issued_is_ignored() {
        let report = |id: &str| DeliveryReport {
            id: id.into(),
            status: "Success".into(),
            phoneNumber: None,
            networkCode: None,
            failureReason: None,
            retryCount: None,
        };
        assert_eq!(report("ATXid_1").message_id(), Some("ATXid_1"));
        assert_eq!(report("").message_id(), None);
        assert_eq!(report("a\0b").message_id(), None);
        assert_eq!(report(&"x".repeat(201)).message_id(), None);
        let mut failed = report("ATXid_2");
        failed.failureReason = Some("Rejected\0".into());
        assert_eq!(failed.message_id(), None);
    }
}
