//! M-Pesa through Safaricom Daraja: STK Push deposits ([`deposits`]) and
//! B2C withdrawals ([`withdrawals`]). Money moves exactly once whatever the
//! callbacks do: arrive late, twice, never, or forged.

pub mod deposits;
pub mod withdrawals;

use std::sync::OnceLock;

use chainpay_core::daraja::client::{DarajaClient, DarajaConfig};
use chainpay_core::daraja::{PRODUCTION_URL, SANDBOX_URL};

use crate::config::MpesaEnv;
use crate::http::error::ApiError;
use crate::http::AppState;

/// The Daraja client of this instance, and the callback secret.
pub struct MpesaService {
    client: OnceLock<DarajaClient>,
    /// Required as `?token=` on every Daraja callback.
    pub callback_token: String,
}

impl MpesaService {
    pub fn new(callback_token: String) -> Self {
        Self {
            client: OnceLock::new(),
            callback_token,
        }
    }
}

fn self_url(state: &AppState) -> Result<&str, ApiError> {
    state
        .self_url
        .get()
        .map(String::as_str)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the listener is not bound yet")))
}

/// The Daraja client: Safaricom's sandbox or production, or the simulator
/// on this gateway's own listener.
pub fn client(state: &AppState) -> Result<&DarajaClient, ApiError> {
    if let Some(client) = state.mpesa.client.get() {
        return Ok(client);
    }
    let settings = &state.settings.mpesa;
    let base_url = match settings.env {
        MpesaEnv::Sandbox => SANDBOX_URL.to_owned(),
        MpesaEnv::Production => PRODUCTION_URL.to_owned(),
        MpesaEnv::Simulator => format!("{}/sim/daraja", self_url(state)?),
    };
    let client = DarajaClient::new(DarajaConfig {
        base_url,
        consumer_key: settings.consumer_key.clone(),
        consumer_secret: settings.consumer_secret.clone(),
        shortcode: settings.shortcode.clone(),
        passkey: settings.passkey.clone(),
        b2c_shortcode: settings.b2c_shortcode.clone(),
        b2c_initiator_name: settings.b2c_initiator_name.clone(),
        b2c_security_credential: settings.b2c_security_credential.clone(),
    })
    .map_err(|e| ApiError::Internal(e.into()))?;
    let _ = state.mpesa.client.set(client);
    state
        .mpesa
        .client
        .get()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("Daraja client unavailable")))
}

/// Where Daraja reaches this gateway: `MPESA_CALLBACK_URL`'s origin, or
/// this instance's own listener.
fn public_base(state: &AppState) -> Result<String, ApiError> {
    match &state.settings.mpesa.callback_url {
        Some(url) => Ok(url
            .trim_end_matches('/')
            .trim_end_matches("/api/v1/mpesa/callback")
            .to_owned()),
        None => Ok(self_url(state)?.to_owned()),
    }
}

/// A Daraja callback URL on this gateway, with the shared token.
pub fn callback_url(state: &AppState, path: &str) -> Result<String, ApiError> {
    Ok(format!(
        "{}{path}?token={}",
        public_base(state)?,
        state.mpesa.callback_token
    ))
}

/// Whether a callback carries our token.
pub fn token_matches(state: &AppState, given: Option<&str>) -> bool {
    crate::secrets::same_secret(given, &state.mpesa.callback_token)
}
