//! The Daraja HTTP client.
//!
//! The OAuth token is cached until a minute before it expires and refreshed
//! by one caller at a time (the others wait for it under the lock). Only
//! requests that are safe to repeat are retried: the token fetch and STK
//! Query. An STK Push or a B2C request is never retried blindly, because a
//! lost answer may hide a prompt already on the customer's phone or money
//! already on its way; the caller records the request first and recovers
//! through STK Query or the B2C result.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

use chainpay_core::daraja::codes::{self, ResultCode};
use chainpay_core::daraja::queries::{
    AccountBalanceRequest, TransactionStatusRequest, SHORTCODE_IDENTIFIER,
};
use chainpay_core::daraja::wire::{
    self, B2cAck, B2cRequest, ErrorBody, StkPushAck, StkPushRequest, StkQueryRequest,
    StkQueryResponse, TokenResponse,
};
use chainpay_core::daraja::{password, timestamp};

/// What the client needs to know. `Debug` hides the secrets.
#[derive(Clone)]
pub struct DarajaConfig {
    pub base_url: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    /// Paybill or till receiving STK payments.
    pub shortcode: String,
    pub passkey: String,
    /// Shortcode paying out B2C.
    pub b2c_shortcode: String,
    pub b2c_initiator_name: String,
    /// The initiator password encrypted with Safaricom's certificate, base64.
    pub b2c_security_credential: String,
}

impl std::fmt::Debug for DarajaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DarajaConfig")
            .field("base_url", &self.base_url)
            .field("shortcode", &self.shortcode)
            .field("b2c_shortcode", &self.b2c_shortcode)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DarajaError {
    /// Daraja answered with its error body.
    #[error("M-Pesa refused the request: {message} ({code})")]
    Refused { code: String, message: String },
    /// No usable answer (network, timeout, unexpected body).
    #[error("M-Pesa is unreachable: {0}")]
    Unreachable(String),
}

impl DarajaError {
    /// Whether STK Query refused the CheckoutRequestID itself: Safaricom
    /// never issued it (Daraja's `400.002.02` "Invalid CheckoutRequestID").
    pub fn no_such_checkout(&self) -> bool {
        matches!(self, DarajaError::Refused { code, message }
            if code == codes::error::BAD_REQUEST && message.contains("CheckoutRequestID"))
    }
}

/// The answer of an STK Query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StkStatus {
    /// The customer has not answered yet (or Safaricom is still working).
    Pending,
    /// Final: 0 is success, anything else a failure code.
    Final {
        result_code: ResultCode,
        result_desc: String,
    },
}

struct CachedToken {
    token: String,
    valid_until: Instant,
}

pub struct DarajaClient {
    config: DarajaConfig,
    http: reqwest::Client,
    token: Mutex<Option<CachedToken>>,
}

/// Retries of a safe request after a transport failure.
const SAFE_RETRIES: u32 = 2;
/// A token is renewed this long before Safaricom says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

impl DarajaClient {
    pub fn new(config: DarajaConfig) -> Result<Self, DarajaError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| DarajaError::Unreachable(e.to_string()))?;
        Ok(Self {
            config,
            http,
            token: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &DarajaConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// A valid access token, fetched when the cached one is near expiry.
    pub async fn access_token(&self) -> Result<String, DarajaError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.valid_until > Instant::now()) {
            return Ok(token.token.clone());
        }
        let mut attempt = 0;
        let response: TokenResponse = loop {
            let sent = self
                .http
                .get(self.url("/oauth/v1/generate?grant_type=client_credentials"))
                .basic_auth(
                    &self.config.consumer_key,
                    Some(&self.config.consumer_secret),
                )
                .send()
                .await;
            match sent {
                Ok(response) => break decode(response).await?,
                Err(error) if attempt < SAFE_RETRIES => {
                    attempt += 1;
                    tracing::warn!(%error, attempt, "Daraja token request failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(error) => return Err(DarajaError::Unreachable(error.to_string())),
            }
        };
        let lifetime = Duration::from_secs(response.expires_in.trim().parse().unwrap_or(3599));
        *cached = Some(CachedToken {
            token: response.access_token.clone(),
            valid_until: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        });
        Ok(response.access_token)
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, DarajaError> {
        decode(self.send(path, body).await?).await
    }

    /// [`post`](Self::post) for a request that moves money (a payout, or a
    /// prompt the customer may pay): a server error may come after the
    /// request was queued, so only a 4xx answer is a refusal; a 5xx,
    /// whatever its body, is no answer at all.
    async fn post_payment<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, DarajaError> {
        let response = self.send(path, body).await?;
        let status = response.status();
        if status.is_server_error() {
            let body = response.text().await.unwrap_or_default();
            return Err(DarajaError::Unreachable(format!("HTTP {status}: {body}")));
        }
        decode(response).await
    }

    async fn send<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<reqwest::Response, DarajaError> {
        let token = self.access_token().await?;
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| DarajaError::Unreachable(e.to_string()))
    }

    fn stamp(&self) -> (String, String) {
        let stamp = timestamp(Utc::now());
        let password = password(&self.config.shortcode, &self.config.passkey, &stamp);
        (stamp, password)
    }

    /// Prompts the customer's phone to pay `amount_kes` whole shillings.
    pub async fn stk_push(
        &self,
        phone: &str,
        amount_kes: i64,
        callback_url: &str,
        account_reference: &str,
        description: &str,
    ) -> Result<StkPushAck, DarajaError> {
        let (stamp, password) = self.stamp();
        let request = StkPushRequest {
            business_short_code: self.config.shortcode.clone(),
            password,
            timestamp: stamp,
            transaction_type: "CustomerPayBillOnline".into(),
            amount: amount_kes,
            party_a: phone.to_owned(),
            party_b: self.config.shortcode.clone(),
            phone_number: phone.to_owned(),
            call_back_url: callback_url.to_owned(),
            account_reference: account_reference.chars().take(12).collect(),
            transaction_desc: description.chars().take(13).collect(),
        };
        self.post_payment("/mpesa/stkpush/v1/processrequest", &request)
            .await
    }

    /// Asks what became of an STK Push; safe to repeat.
    pub async fn stk_query(&self, checkout_request_id: &str) -> Result<StkStatus, DarajaError> {
        let mut attempt = 0;
        loop {
            let (stamp, password) = self.stamp();
            let request = StkQueryRequest {
                business_short_code: self.config.shortcode.clone(),
                password,
                timestamp: stamp,
                checkout_request_id: checkout_request_id.to_owned(),
            };
            match self
                .post::<_, StkQueryResponse>("/mpesa/stkpushquery/v1/query", &request)
                .await
            {
                Ok(answer) => {
                    let result_code = wire::code(&answer.result_code).ok_or_else(|| {
                        DarajaError::Unreachable("STK Query answered without a ResultCode".into())
                    })?;
                    return Ok(StkStatus::Final {
                        result_code,
                        result_desc: answer.result_desc,
                    });
                }
                Err(DarajaError::Refused { code, .. })
                    if code == codes::error::STILL_PROCESSING =>
                {
                    return Ok(StkStatus::Pending)
                }
                Err(DarajaError::Unreachable(error)) if attempt < SAFE_RETRIES => {
                    attempt += 1;
                    tracing::warn!(%error, attempt, "STK Query failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Pays `amount_kes` whole shillings to `phone` (B2C).
    pub async fn b2c(
        &self,
        originator_conversation_id: &str,
        phone: &str,
        amount_kes: i64,
        result_url: &str,
        timeout_url: &str,
    ) -> Result<B2cAck, DarajaError> {
        let request = B2cRequest {
            originator_conversation_id: originator_conversation_id.to_owned(),
            initiator_name: self.config.b2c_initiator_name.clone(),
            security_credential: self.config.b2c_security_credential.clone(),
            command_id: "BusinessPayment".into(),
            amount: amount_kes,
            party_a: self.config.b2c_shortcode.clone(),
            party_b: phone.to_owned(),
            remarks: "ChainPay withdrawal".into(),
            queue_time_out_url: timeout_url.to_owned(),
            result_url: result_url.to_owned(),
            occassion: "Withdrawal".into(),
        };
        self.post_payment("/mpesa/b2c/v3/paymentrequest", &request)
            .await
    }

    /// Asks what became of a payout sent as `originator_conversation_id`;
    /// the answer arrives at `result_url`. Safe to repeat.
    pub async fn transaction_status(
        &self,
        originator_conversation_id: &str,
        result_url: &str,
        timeout_url: &str,
    ) -> Result<B2cAck, DarajaError> {
        let request = TransactionStatusRequest {
            initiator: self.config.b2c_initiator_name.clone(),
            security_credential: self.config.b2c_security_credential.clone(),
            command_id: "TransactionStatusQuery".into(),
            transaction_id: String::new(),
            original_conversation_id: originator_conversation_id.to_owned(),
            party_a: self.config.b2c_shortcode.clone(),
            identifier_type: SHORTCODE_IDENTIFIER.into(),
            result_url: result_url.to_owned(),
            queue_time_out_url: timeout_url.to_owned(),
            remarks: "ChainPay payout check".into(),
            occasion: "Reconciliation".into(),
        };
        self.post("/mpesa/transactionstatus/v1/query", &request)
            .await
    }

    /// Asks for the payout shortcode's balances; the answer arrives at
    /// `result_url`. Safe to repeat.
    pub async fn account_balance(
        &self,
        result_url: &str,
        timeout_url: &str,
    ) -> Result<B2cAck, DarajaError> {
        let request = AccountBalanceRequest {
            initiator: self.config.b2c_initiator_name.clone(),
            security_credential: self.config.b2c_security_credential.clone(),
            command_id: "AccountBalance".into(),
            party_a: self.config.b2c_shortcode.clone(),
            identifier_type: SHORTCODE_IDENTIFIER.into(),
            remarks: "ChainPay float check".into(),
            queue_time_out_url: timeout_url.to_owned(),
            result_url: result_url.to_owned(),
        };
        self.post("/mpesa/accountbalance/v1/query", &request).await
    }
}

/// A successful body, or Daraja's error body turned into a clear error.
async fn decode<R: DeserializeOwned>(response: reqwest::Response) -> Result<R, DarajaError> {
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| DarajaError::Unreachable(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_str(&body)
            .map_err(|e| DarajaError::Unreachable(format!("unexpected answer ({e}): {body}")));
    }
    match serde_json::from_str::<ErrorBody>(&body) {
        Ok(error) => Err(DarajaError::Refused {
            code: error.error_code,
            message: error.error_message,
        }),
        Err(_) if status.is_server_error() => {
            Err(DarajaError::Unreachable(format!("HTTP {status}: {body}")))
        }
        Err(_) => Err(DarajaError::Refused {
            code: status.as_u16().to_string(),
            message: body,
        }),
    }
}
