//! Daraja's JSON, field for field. Safaricom mixes strings and numbers for
//! the same field across endpoints (`ResultCode` is a number in callbacks
//! and a string in STK Query; `expires_in` is a string), so codes are read
//! leniently through [`code`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codes::ResultCode;
use super::MAX_KES;

/// A callback amount that is missing, not a number, fractional or out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the callback's amount is missing or not whole shillings within M-Pesa's limits")]
pub struct UntrustedAmount;

/// Reads a code given as a number or a numeric string.
pub fn code(value: &Value) -> Option<ResultCode> {
    let code = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    code.map(ResultCode)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Seconds, as a string.
    pub expires_in: String,
}

/// Daraja's error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "requestId", default)]
    pub request_id: String,
    #[serde(rename = "errorCode")]
    pub error_code: String,
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StkPushRequest {
    #[serde(rename = "BusinessShortCode")]
    pub business_short_code: String,
    #[serde(rename = "Password")]
    pub password: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "TransactionType")]
    pub transaction_type: String,
    #[serde(rename = "Amount")]
    pub amount: i64,
    #[serde(rename = "PartyA")]
    pub party_a: String,
    #[serde(rename = "PartyB")]
    pub party_b: String,
    #[serde(rename = "PhoneNumber")]
    pub phone_number: String,
    #[serde(rename = "CallBackURL")]
    pub call_back_url: String,
    #[serde(rename = "AccountReference")]
    pub account_reference: String,
    #[serde(rename = "TransactionDesc")]
    pub transaction_desc: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StkPushAck {
    #[serde(rename = "MerchantRequestID")]
    pub merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
    #[serde(rename = "ResponseCode")]
    pub response_code: String,
    #[serde(rename = "ResponseDescription")]
    pub response_description: String,
    #[serde(rename = "CustomerMessage", default)]
    pub customer_message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StkQueryRequest {
    #[serde(rename = "BusinessShortCode")]
    pub business_short_code: String,
    #[serde(rename = "Password")]
    pub password: String,
    #[serde(rename = "Timestamp")]
    pub timestamp: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StkQueryResponse {
    #[serde(rename = "ResponseCode")]
    pub response_code: Value,
    #[serde(rename = "ResponseDescription", default)]
    pub response_description: String,
    #[serde(rename = "MerchantRequestID", default)]
    pub merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
    #[serde(rename = "ResultCode")]
    pub result_code: Value,
    #[serde(rename = "ResultDesc", default)]
    pub result_desc: String,
}

/// `{"Body":{"stkCallback":{…}}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StkCallbackEnvelope {
    #[serde(rename = "Body")]
    pub body: StkCallbackBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StkCallbackBody {
    #[serde(rename = "stkCallback")]
    pub stk_callback: StkCallback,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StkCallback {
    #[serde(rename = "MerchantRequestID")]
    pub merchant_request_id: String,
    #[serde(rename = "CheckoutRequestID")]
    pub checkout_request_id: String,
    #[serde(rename = "ResultCode")]
    pub result_code: Value,
    #[serde(rename = "ResultDesc", default)]
    pub result_desc: String,
    /// Present only on success.
    #[serde(
        rename = "CallbackMetadata",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub callback_metadata: Option<CallbackMetadata>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallbackMetadata {
    #[serde(rename = "Item")]
    pub item: Vec<MetadataItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataItem {
    #[serde(rename = "Name")]
    pub name: String,
    /// `Balance` often comes without a value.
    #[serde(rename = "Value", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl StkCallback {
    fn item(&self, name: &str) -> Option<&Value> {
        self.callback_metadata
            .as_ref()?
            .item
            .iter()
            .find(|i| i.name == name)?
            .value
            .as_ref()
    }

    /// The amount paid, in KES cents. Daraja sends whole shillings as a JSON
    /// number (sometimes written `1.0`); anything else — a string, a missing
    /// item, a fraction of a shilling, zero, or more than one payment may be
    /// — is not an amount we can trust, and never matches a deposit.
    pub fn amount_minor(&self) -> Result<i64, UntrustedAmount> {
        let value = self.item("Amount").ok_or(UntrustedAmount)?;
        let Value::Number(number) = value else {
            return Err(UntrustedAmount);
        };
        let shillings = match number.as_i64() {
            Some(whole) => whole,
            None => {
                let float = number.as_f64().ok_or(UntrustedAmount)?;
                if float.fract() != 0.0 || !(1.0..=MAX_KES as f64).contains(&float) {
                    return Err(UntrustedAmount);
                }
                float as i64
            }
        };
        if !(1..=MAX_KES).contains(&shillings) {
            return Err(UntrustedAmount);
        }
        Ok(shillings * 100)
    }

    pub fn receipt(&self) -> Option<String> {
        self.item("MpesaReceiptNumber")
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// The paying phone (a number in the JSON), as digits.
    pub fn phone(&self) -> Option<String> {
        match self.item("PhoneNumber")? {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct B2cRequest {
    #[serde(rename = "OriginatorConversationID")]
    pub originator_conversation_id: String,
    #[serde(rename = "InitiatorName")]
    pub initiator_name: String,
    #[serde(rename = "SecurityCredential")]
    pub security_credential: String,
    #[serde(rename = "CommandID")]
    pub command_id: String,
    #[serde(rename = "Amount")]
    pub amount: i64,
    #[serde(rename = "PartyA")]
    pub party_a: String,
    #[serde(rename = "PartyB")]
    pub party_b: String,
    #[serde(rename = "Remarks")]
    pub remarks: String,
    #[serde(rename = "QueueTimeOutURL")]
    pub queue_time_out_url: String,
    #[serde(rename = "ResultURL")]
    pub result_url: String,
    /// Daraja's own spelling.
    #[serde(rename = "Occassion")]
    pub occassion: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct B2cAck {
    #[serde(rename = "ConversationID")]
    pub conversation_id: String,
    #[serde(rename = "OriginatorConversationID")]
    pub originator_conversation_id: String,
    #[serde(rename = "ResponseCode")]
    pub response_code: String,
    #[serde(rename = "ResponseDescription")]
    pub response_description: String,
}

/// `{"Result":{…}}`, posted to the ResultURL (and, on a queue timeout, to
/// the QueueTimeOutURL).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct B2cResultEnvelope {
    #[serde(rename = "Result")]
    pub result: B2cResult,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct B2cResult {
    #[serde(rename = "ResultType", default)]
    pub result_type: Value,
    #[serde(rename = "ResultCode")]
    pub result_code: Value,
    #[serde(rename = "ResultDesc", default)]
    pub result_desc: String,
    #[serde(rename = "OriginatorConversationID")]
    pub originator_conversation_id: String,
    #[serde(rename = "ConversationID", default)]
    pub conversation_id: String,
    #[serde(rename = "TransactionID", default)]
    pub transaction_id: String,
    #[serde(
        rename = "ResultParameters",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub result_parameters: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_success_callback_parses_with_numbers_and_a_valueless_balance() {
        let body = r#"{"Body":{"stkCallback":{"MerchantRequestID":"29115-34620561-1","CheckoutRequestID":"ws_CO_191220191020363925","ResultCode":0,"ResultDesc":"The service request is processed successfully.","CallbackMetadata":{"Item":[{"Name":"Amount","Value":1.00},{"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"},{"Name":"Balance"},{"Name":"TransactionDate","Value":20191219102115},{"Name":"PhoneNumber","Value":254708374149}]}}}}"#;
        let callback: StkCallbackEnvelope = serde_json::from_str(body).unwrap();
        let stk = callback.body.stk_callback;
        assert_eq!(code(&stk.result_code), Some(ResultCode::SUCCESS));
        assert_eq!(stk.amount_minor(), Ok(100));
        assert_eq!(stk.receipt().as_deref(), Some("NLJ7RT61SV"));
        assert_eq!(stk.phone().as_deref(), Some("254708374149"));
    }

    #[test]
    fn a_cancelled_callback_has_no_metadata() {
        let body = r#"{"Body":{"stkCallback":{"MerchantRequestID":"1","CheckoutRequestID":"ws_CO_1","ResultCode":1032,"ResultDesc":"Request cancelled by user"}}}"#;
        let stk = serde_json::from_str::<StkCallbackEnvelope>(body)
            .unwrap()
            .body
            .stk_callback;
        assert_eq!(code(&stk.result_code), Some(ResultCode::CANCELLED));
        assert_eq!(stk.receipt(), None);
    }

    fn with_amount(amount: &str) -> StkCallback {
        let body = format!(
            r#"{{"Body":{{"stkCallback":{{"MerchantRequestID":"1","CheckoutRequestID":"ws_CO_1","ResultCode":0,"ResultDesc":"ok","CallbackMetadata":{{"Item":[{amount}{{"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"}}]}}}}}}}}"#
        );
        serde_json::from_str::<StkCallbackEnvelope>(&body)
            .unwrap()
            .body
            .stk_callback
    }

    #[test]
    fn only_whole_shillings_sent_as_a_number_are_an_amount() {
        assert_eq!(
            with_amount(r#"{"Name":"Amount","Value":250},"#).amount_minor(),
            Ok(25_000)
        );
        assert_eq!(
            with_amount(r#"{"Name":"Amount","Value":250.0},"#).amount_minor(),
            Ok(25_000)
        );
        for untrusted in [
            r#"{"Name":"Amount","Value":"250"},"#,
            r#"{"Name":"Amount","Value":250.5},"#,
            r#"{"Name":"Amount","Value":0},"#,
            r#"{"Name":"Amount","Value":-5},"#,
            r#"{"Name":"Amount","Value":250001},"#,
            r#"{"Name":"Amount","Value":1e300},"#,
            r#"{"Name":"Amount"},"#,
            "",
        ] {
            assert_eq!(
                with_amount(untrusted).amount_minor(),
                Err(UntrustedAmount),
                "{untrusted}"
            );
        }
    }

    #[test]
    fn codes_come_as_numbers_or_strings() {
        assert_eq!(code(&serde_json::json!("1037")), Some(ResultCode(1037)));
        assert_eq!(code(&serde_json::json!(0)), Some(ResultCode(0)));
        assert_eq!(code(&serde_json::json!(null)), None);
    }
}
