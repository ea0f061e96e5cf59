//! The Africa's Talking SMS API, simulated: `POST /version1/messaging`
//! checks the `apiKey` header and `username`, answers 201 with the
//! documented per-recipient body (101 Success, or 403 InvalidPhoneNumber),
//! records the message, and then posts a delivery report to the gateway's
//! `/api/v1/sms/delivery` as Africa's Talking would.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use chainpay_core::africastalking::sms::{Recipient, SendResponse, SmsMessageData};
use chainpay_core::Msisdn;
use serde::Deserialize;
use serde_json::json;

use crate::state::AppState;
use crate::state::{
    SMS_SIMULATOR_API_KEY as SIMULATOR_API_KEY, SMS_SIMULATOR_USERNAME as SIMULATOR_USERNAME,
};

/// How long the simulated network takes to report delivery.
const DELIVERY_DELAY: Duration = Duration::from_millis(200);

pub fn router() -> Router<AppState> {
    Router::new().route("/version1/messaging", post(send))
}

#[derive(Debug, Deserialize)]
struct SendForm {
    username: String,
    to: String,
    message: String,
    from: Option<String>,
}

async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SendForm>,
) -> Response {
    let key = headers.get("apiKey").and_then(|v| v.to_str().ok());
    if key != Some(SIMULATOR_API_KEY) || form.username != SIMULATOR_USERNAME {
        return (
            StatusCode::UNAUTHORIZED,
            "The supplied authentication is invalid",
        )
            .into_response();
    }
    let mut recipients = Vec::new();
    for number in form.to.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let recipient = match Msisdn::parse(number) {
            Ok(phone) => Recipient {
                status_code: 101,
                number: phone.to_string(),
                status: "Success".into(),
                cost: Some("KES 0.8000".into()),
                message_id: Some(format!("ATXid_{}", uuid::Uuid::new_v4().simple())),
            },
            Err(_) => Recipient {
                status_code: 403,
                number: number.to_owned(),
                status: "InvalidPhoneNumber".into(),
                cost: Some("0".into()),
                message_id: None,
            },
        };
        let recorded = sqlx::query!(
            "INSERT INTO sim_at_messages (message_id, username, to_phone, sender, message, status_code)
             VALUES ($1, $2, $3, $4, $5, $6)",
            recipient.message_id.clone().unwrap_or_else(|| format!("rejected-{}", uuid::Uuid::new_v4())),
            form.username,
            recipient.number,
            form.from,
            form.message,
            recipient.status_code
        )
        .execute(&state.pool)
        .await;
        if let Err(error) = recorded {
            tracing::error!(%error, "AT simulator could not record a message");
            return (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError").into_response();
        }
        if let Some(message_id) = &recipient.message_id {
            report_delivery(&state, message_id.clone(), recipient.number.clone());
        }
        recipients.push(recipient);
    }
    let accepted = recipients.iter().filter(|r| r.accepted()).count();
    let body = SendResponse {
        data: SmsMessageData {
            message: format!(
                "Sent to {accepted}/{} Total Cost: KES {:.4}",
                recipients.len(),
                0.8 * accepted as f64
            ),
            recipients,
        },
    };
    (StatusCode::CREATED, Json(body)).into_response()
}

/// Posts the delivery report a real handset network would produce.
fn report_delivery(state: &AppState, message_id: String, phone: String) {
    let Some(base) = state.self_url.get().cloned() else {
        return;
    };
    let token = state.settings.at_webhook_token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(DELIVERY_DELAY).await;
        let mut url = format!("{base}/api/v1/sms/delivery");
        if let Some(token) = token {
            url.push_str(&format!("?token={token}"));
        }
        let form = json!({"id": message_id, "status": "Success", "phoneNumber": phone, "networkCode": "63902", "retryCount": "0"});
        if let Err(error) = reqwest::Client::new().post(url).form(&form).send().await {
            tracing::warn!(%error, "AT simulator could not post a delivery report");
        }
    });
}
