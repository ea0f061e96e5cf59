//! Africa's Talking's SMS API on the wire: `POST {base}/version1/messaging`
//! with form `username, to, message, from?` and header `apiKey`; success is
//! HTTP 201 with a per-recipient status. The client that sends it lives in
//! the gateway (`sms::client`); the simulator answers with these shapes.

use serde::{Deserialize, Serialize};

/// One recipient's fate, as Africa's Talking reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    #[serde(rename = "statusCode")]
    pub status_code: i32,
    pub number: String,
    pub status: String,
    #[serde(default)]
    pub cost: Option<String>,
    #[serde(rename = "messageId", default)]
    pub message_id: Option<String>,
}

impl Recipient {
    /// 100 Processed, 101 Sent, 102 Queued: Africa's Talking has it.
    pub fn accepted(&self) -> bool {
        (100..=102).contains(&self.status_code)
    }

    /// 5xx codes are the gateway's trouble and worth another try; the 4xx
    /// codes (blacklisted, invalid number, no balance...) are final.
    pub fn retryable(&self) -> bool {
        (500..=599).contains(&self.status_code)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SmsMessageData {
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Recipients")]
    pub recipients: Vec<Recipient>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendResponse {
    #[serde(rename = "SMSMessageData")]
    pub data: SmsMessageData,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_success_body_parses() {
        let body = r#"{"SMSMessageData":{"Message":"Sent to 1/1 Total Cost: KES 0.8000","Recipients":[{"statusCode":101,"number":"+254711XXXYYY","status":"Success","cost":"KES 0.8000","messageId":"ATPid_SampleTxnId123"}]}}"#;
        let parsed: SendResponse = serde_json::from_str(body).unwrap();
        let recipient = &parsed.data.recipients[0];
        assert!(recipient.accepted());
        assert_eq!(
            recipient.message_id.as_deref(),
            Some("ATPid_SampleTxnId123")
        );
    }

    #[test]
    fn status_codes_split_into_accepted_final_and_retryable() {
        let with = |status_code| Recipient {
            status_code,
            number: "+254700000001".into(),
            status: String::new(),
            cost: None,
            message_id: None,
        };
        assert!(with(102).accepted());
        assert!(!with(403).accepted() && !with(403).retryable());
        assert!(with(502).retryable());
    }
}
