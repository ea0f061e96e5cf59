//! Africa's Talking's SMS endpoint, standing in for the real one outside the
//! gateway: the gateway sends to it exactly as to the real service (only
//! the base URL differs). It answers as the real one does, remembers when
//! each message arrived and, when asked to, posts each message's delivery
//! report back to the gateway a little later, as a handset network would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Form, Json, Router};
use chainpay_core::africastalking::sms::{Recipient, SendResponse, SmsMessageData};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// How long the network takes to report a delivery.
const DELIVERY_DELAY: Duration = Duration::from_millis(200);

/// Every message accepted: when, to whom, what.
type Received = Arc<Mutex<Vec<(Instant, String, String)>>>;

#[derive(Clone)]
pub struct Inbox {
    pub base: String,
    received: Received,
}

#[derive(Clone)]
struct Stand {
    username: &'static str,
    api_key: &'static str,
    received: Received,
    /// The gateway's delivery report URL (token included), if reports are posted.
    reports_to: Option<String>,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct SendForm {
    username: String,
    to: String,
    message: String,
}

impl Inbox {
    /// Listens on a free port for `username`'s requests signed with `api_key`.
    pub async fn start(
        username: &'static str,
        api_key: &'static str,
        reports_to: Option<String>,
    ) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let stand = Stand {
            username,
            api_key,
            received: received.clone(),
            reports_to,
            client: reqwest::Client::new(),
        };
        let app = Router::new()
            .route("/version1/messaging", axum::routing::post(accept))
            .with_state(stand);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, received }
    }

    /// How many messages arrived.
    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// When each `(to, message)` arrived, in order.
    pub fn by_message(&self) -> HashMap<(String, String), Vec<Instant>> {
        let mut by_message: HashMap<_, Vec<Instant>> = HashMap::new();
        for (at, to, message) in self.received.lock().unwrap().iter() {
            by_message
                .entry((to.clone(), message.clone()))
                .or_default()
                .push(*at);
        }
        by_message
    }
}

async fn accept(
    State(stand): State<Stand>,
    headers: HeaderMap,
    Form(form): Form<SendForm>,
) -> (StatusCode, Json<Value>) {
    if headers.get("apiKey").and_then(|v| v.to_str().ok()) != Some(stand.api_key)
        || form.username != stand.username
    {
        return (StatusCode::UNAUTHORIZED, Json(Value::Null));
    }
    let recipients: Vec<Recipient> = form
        .to
        .split(',')
        .map(|number| {
            let recipient = Recipient {
                status_code: 101,
                number: number.to_owned(),
                status: "Success".into(),
                cost: Some("KES 0.8000".into()),
                message_id: Some(format!("ATXid_{}", Uuid::new_v4().simple())),
            };
            stand.received.lock().unwrap().push((
                Instant::now(),
                number.to_owned(),
                form.message.clone(),
            ));
            report_delivery(&stand, &recipient);
            recipient
        })
        .collect();
    let body = SendResponse {
        data: SmsMessageData {
            message: format!(
                "Sent to {}/{} Total Cost: KES 0.8000",
                recipients.len(),
                recipients.len()
            ),
            recipients,
        },
    };
    (
        StatusCode::CREATED,
        Json(serde_json::to_value(body).unwrap()),
    )
}

/// Posts the delivery report Africa's Talking would, after the network's delay.
fn report_delivery(stand: &Stand, recipient: &Recipient) {
    let (Some(url), Some(id)) = (stand.reports_to.clone(), recipient.message_id.clone()) else {
        return;
    };
    let (client, phone) = (stand.client.clone(), recipient.number.clone());
    tokio::spawn(async move {
        tokio::time::sleep(DELIVERY_DELAY).await;
        let form = json!({"id": id, "status": "Success", "phoneNumber": phone,
                          "networkCode": "63902", "retryCount": "0"});
        let _ = client.post(url).form(&form).send().await;
    });
}
