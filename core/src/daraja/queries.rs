//! Daraja's two enquiry APIs, both asynchronous (an acknowledgement now, a
//! `{"Result":{…}}` to the ResultURL later, in the B2C result's shape):
//! Transaction Status (`/mpesa/transactionstatus/v1/query`), which tells
//! what became of a payout whose submission or result was lost, and
//! Account Balance (`/mpesa/accountbalance/v1/query`), which states the
//! shortcode's balances for the float check.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codes::ResultCode;
use super::wire::{self, B2cResult};

/// `IdentifierType` 4: an organisation shortcode.
pub const SHORTCODE_IDENTIFIER: &str = "4";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionStatusRequest {
    #[serde(rename = "Initiator")]
    pub initiator: String,
    #[serde(rename = "SecurityCredential")]
    pub security_credential: String,
    /// Always `TransactionStatusQuery`.
    #[serde(rename = "CommandID")]
    pub command_id: String,
    /// The M-Pesa receipt when known; empty when asking by our own id.
    #[serde(rename = "TransactionID")]
    pub transaction_id: String,
    /// The OriginatorConversationID the payout was sent with.
    #[serde(rename = "OriginalConversationID")]
    pub original_conversation_id: String,
    #[serde(rename = "PartyA")]
    pub party_a: String,
    #[serde(rename = "IdentifierType")]
    pub identifier_type: String,
    #[serde(rename = "ResultURL")]
    pub result_url: String,
    #[serde(rename = "QueueTimeOutURL")]
    pub queue_time_out_url: String,
    #[serde(rename = "Remarks")]
    pub remarks: String,
    #[serde(rename = "Occasion")]
    pub occasion: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountBalanceRequest {
    #[serde(rename = "Initiator")]
    pub initiator: String,
    #[serde(rename = "SecurityCredential")]
    pub security_credential: String,
    /// Always `AccountBalance`.
    #[serde(rename = "CommandID")]
    pub command_id: String,
    #[serde(rename = "PartyA")]
    pub party_a: String,
    #[serde(rename = "IdentifierType")]
    pub identifier_type: String,
    #[serde(rename = "Remarks")]
    pub remarks: String,
    #[serde(rename = "QueueTimeOutURL")]
    pub queue_time_out_url: String,
    #[serde(rename = "ResultURL")]
    pub result_url: String,
}

/// A `ResultParameters.ResultParameter[]` value by its `Key`.
pub fn parameter<'a>(result: &'a B2cResult, key: &str) -> Option<&'a Value> {
    result
        .result_parameters
        .as_ref()?
        .get("ResultParameter")?
        .as_array()?
        .iter()
        .find(|p| p.get("Key").and_then(Value::as_str) == Some(key))?
        .get("Value")
}

/// What a Transaction Status result says of a payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayoutStatus {
    /// Paid, with its M-Pesa receipt.
    Completed { receipt: String },
    /// M-Pesa has it as failed (or cancelled, declined, reversed).
    NotPaid { code: ResultCode, desc: String },
    /// The query itself failed: M-Pesa found no such transaction. Not proof
    /// on its own (the payout may not be visible yet); asked again, it is.
    NoRecord { code: ResultCode, desc: String },
    /// Still being processed: ask again later.
    Unknown,
}

/// Reads a Transaction Status result. A query that succeeded
/// (`ResultCode` 0) states `TransactionStatus` (`Completed`, `Failed`, …)
/// and the `ReceiptNo`; a query that failed means M-Pesa has no record of
/// the payout (yet).
pub fn payout_status(result: &B2cResult) -> PayoutStatus {
    let code = wire::code(&result.result_code).unwrap_or(ResultCode(-1));
    if !code.is_success() {
        return PayoutStatus::NoRecord {
            code,
            desc: result.result_desc.clone(),
        };
    }
    let text = |key: &str| {
        parameter(result, key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match text("TransactionStatus").as_deref() {
        Some("Completed") => match text("ReceiptNo") {
            Some(receipt) if !receipt.is_empty() => PayoutStatus::Completed { receipt },
            _ => PayoutStatus::Unknown,
        },
        Some("Failed" | "Cancelled" | "Declined" | "Expired" | "Reversed") => {
            PayoutStatus::NotPaid {
                code: ResultCode(-1),
                desc: format!(
                    "M-Pesa reports the payout {}",
                    text("TransactionStatus").unwrap_or_default()
                ),
            }
        }
        _ => PayoutStatus::Unknown,
    }
}

/// The Working Account's balance in KES cents, from Account Balance's
/// `AccountBalance` parameter: accounts joined by `&`, each
/// `name|currency|current|available|reserved|uncleared`.
pub fn working_account_cents(result: &B2cResult) -> Option<i64> {
    let text = parameter(result, "AccountBalance")?.as_str()?;
    let working = text
        .split('&')
        .find(|a| a.trim_start().starts_with("Working Account"))?;
    let amount = working.split('|').nth(2)?.trim();
    let (negative, amount) = match amount.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, amount),
    };
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || whole.len() > 15 {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let cents: i64 = format!("{fraction:0<2}")[..2].parse().ok()?;
    let value = whole * 100 + cents;
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(body: &str) -> B2cResult {
        serde_json::from_str::<wire::B2cResultEnvelope>(body)
            .unwrap()
            .result
    }

    #[test]
    fn a_completed_payout_reads_as_completed_with_its_receipt() {
        let paid = result(
            r#"{"Result":{"ResultType":0,"ResultCode":0,"ResultDesc":"The service request is processed successfully.","OriginatorConversationID":"1236-7134259-1","ConversationID":"AG_20210709_1234409f86436c583e3f","TransactionID":"SEI0000000","ResultParameters":{"ResultParameter":[{"Key":"DebitPartyName","Value":"600310 - Safaricom333"},{"Key":"TransactionStatus","Value":"Completed"},{"Key":"Amount","Value":300},{"Key":"ReceiptNo","Value":"SEI1A2B3C4"}]}}}"#,
        );
        assert_eq!(
            payout_status(&paid),
            PayoutStatus::Completed {
                receipt: "SEI1A2B3C4".into()
            }
        );
        let missing = result(
            r#"{"Result":{"ResultType":0,"ResultCode":2001,"ResultDesc":"The initiator information is invalid.","OriginatorConversationID":"x","ConversationID":"y","TransactionID":""}}"#,
        );
        assert!(matches!(
            payout_status(&missing),
            PayoutStatus::NoRecord { .. }
        ));
        let failed = result(
            r#"{"Result":{"ResultType":0,"ResultCode":0,"ResultDesc":"ok","OriginatorConversationID":"x","ConversationID":"y","TransactionID":"z","ResultParameters":{"ResultParameter":[{"Key":"TransactionStatus","Value":"Failed"}]}}}"#,
        );
        assert!(matches!(
            payout_status(&failed),
            PayoutStatus::NotPaid { .. }
        ));
    }

    #[test]
    fn the_working_account_balance_is_read_in_cents() {
        let balance = result(
            r#"{"Result":{"ResultType":0,"ResultCode":0,"ResultDesc":"ok","OriginatorConversationID":"a","ConversationID":"b","TransactionID":"c","ResultParameters":{"ResultParameter":[{"Key":"AccountBalance","Value":"Working Account|KES|481000.50|481000.50|0.00|0.00&Utility Account|KES|228037.00|228037.00|0.00|0.00"},{"Key":"BOCompletedTime","Value":20200109125710}]}}}"#,
        );
        assert_eq!(working_account_cents(&balance), Some(48_100_050));
        let reading = |amount: &str| {
            working_account_cents(&result(&format!(
                r#"{{"Result":{{"ResultCode":0,"OriginatorConversationID":"a","ResultParameters":{{"ResultParameter":[{{"Key":"AccountBalance","Value":"Working Account|KES|{amount}|0|0|0"}}]}}}}}}"#
            )))
        };
        assert_eq!(reading("-12.5"), Some(-1_250));
        assert_eq!(reading("7"), Some(700));
        for garbage in [
            "+5",
            "1.-5",
            "1.",
            ".5",
            "--1",
            "1e3",
            "",
            "99999999999999999",
        ] {
            assert_eq!(reading(garbage), None, "{garbage}");
        }
    }
}
