//! SMS through Africa's Talking: a transactional outbox written with each
//! movement, the worker that sends it, delivery reports, and the inbound
//! commands customers text in (`BAL`, `MINI`, `HELP`).

pub mod commands;
pub mod outbox;
pub mod worker;

use chainpay_core::africastalking::sms::{SmsClient, SmsConfig};

use crate::config::Settings;

/// The username and key the built-in simulator accepts.
pub const SIMULATOR_USERNAME: &str = "sandbox";
pub const SIMULATOR_API_KEY: &str = "chainpay-simulator";

/// The SMS client for these settings: Africa's Talking when credentials are
/// configured, otherwise the simulator on this gateway's own listener.
pub fn client(settings: &Settings, self_url: &str) -> anyhow::Result<SmsClient> {
    let config = match &settings.africastalking {
        Some(at) => SmsConfig {
            base_url: at.base_url.clone(),
            username: at.username.clone(),
            api_key: at.api_key.clone(),
            sender_id: at.sender_id.clone(),
        },
        None => SmsConfig {
            base_url: format!("{self_url}/sim/at"),
            username: SIMULATOR_USERNAME.to_owned(),
            api_key: SIMULATOR_API_KEY.to_owned(),
            sender_id: None,
        },
    };
    Ok(SmsClient::new(config)?)
}
