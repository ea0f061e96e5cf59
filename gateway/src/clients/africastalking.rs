//! The Africa's Talking SMS API client. The same client talks to the live
//! service, the sandbox and ChainPay's simulator; only the base URL differs.

use std::time::Duration;

use chainpay_core::africastalking::sms::{Recipient, SendResponse};

/// How to reach Africa's Talking. `Debug` hides the key.
#[derive(Clone)]
pub struct SmsConfig {
    /// `https://api.africastalking.com`, the sandbox, or the simulator.
    pub base_url: String,
    pub username: String,
    pub api_key: String,
    /// Sender id or short code, when the account has one.
    pub sender_id: Option<String>,
}

impl std::fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsConfig")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("sender_id", &self.sender_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// Not delivered to Africa's Talking at all (network, timeout, 5xx):
    /// safe to try again.
    #[error("Africa's Talking unreachable: {0}")]
    Unreachable(String),
    /// Refused as a whole (bad credentials, malformed request).
    #[error("Africa's Talking refused the request ({status}): {body}")]
    Refused { status: u16, body: String },
}

/// The SMS API client.
#[derive(Debug, Clone)]
pub struct SmsClient {
    config: SmsConfig,
    http: reqwest::Client,
}

impl SmsClient {
    pub fn new(config: SmsConfig) -> Result<Self, SmsError> {
        let http = reqwest::Client::builder()
            // A stuck send must not hold the worker; the message is retried.
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SmsError::Unreachable(e.to_string()))?;
        Ok(Self { config, http })
    }

    pub fn config(&self) -> &SmsConfig {
        &self.config
    }

    /// Sends `message` to one E.164 number.
    pub async fn send(&self, to: &str, message: &str) -> Result<Recipient, SmsError> {
        let url = format!(
            "{}/version1/messaging",
            self.config.base_url.trim_end_matches('/')
        );
        let mut form = vec![
            ("username", self.config.username.as_str()),
            ("to", to),
            ("message", message),
        ];
        if let Some(from) = &self.config.sender_id {
            form.push(("from", from.as_str()));
        }
        let response = self
            .http
            .post(url)
            .header("apiKey", &self.config.api_key)
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| SmsError::Unreachable(e.to_string()))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| SmsError::Unreachable(e.to_string()))?;
        if status.is_server_error() {
            return Err(SmsError::Unreachable(format!("HTTP {status}: {body}")));
        }
        if !status.is_success() {
            return Err(SmsError::Refused {
                status: status.as_u16(),
                body,
            });
        }
        let parsed: SendResponse = serde_json::from_str(&body).map_err(|e| SmsError::Refused {
            status: status.as_u16(),
            body: format!("{e}: {body}"),
        })?;
        parsed
            .data
            .recipients
            .into_iter()
            .next()
            .ok_or(SmsError::Refused {
                status: status.as_u16(),
                body: parsed.data.message,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let config = SmsConfig {
            base_url: "https://api.africastalking.com".into(),
            username: "chainpay".into(),
            api_key: "atsk_secret".into(),
            sender_id: None,
        };
        assert!(!format!("{config:?}").contains("atsk_secret"));
    }
}
