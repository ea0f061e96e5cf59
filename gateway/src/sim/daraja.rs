//! Safaricom Daraja, simulated: OAuth, STK Push, STK Query and B2C with
//! Daraja's paths, field names, error bodies and callbacks.
//!
//! The simulated customer accepts a prompt after `MPESA_SIM_DELAY_MS` and
//! the simulator posts the standard callback; `POST /sim/daraja/stk/{id}`
//! settles a prompt now with any ResultCode, and `deliver: false` drops the
//! callback as a lost one would be, so only STK Query can tell the outcome.
//! B2C payouts succeed after the same delay unless settled through
//! `POST /sim/daraja/b2c/{ConversationID}`. Transaction Status and Account
//! Balance answer from the simulator's own records ([`super::daraja_enquiries`]),
//! and `POST /sim/daraja/faults` loses B2C replies or requests, loses STK
//! Push answers (the prompt still reaches the phone) or takes STK Query
//! down, and plants a float offset, so recovery and reconciliation can be
//! shown.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chainpay_core::daraja::codes::{error, ResultCode};
use chainpay_core::daraja::wire::{
    B2cAck, B2cRequest, ErrorBody, StkPushAck, StkPushRequest, StkQueryRequest,
};
use chainpay_core::daraja::{password, timestamp, MAX_KES, MIN_B2C_KES};
use chrono::Utc;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/v1/generate", get(oauth))
        .route("/mpesa/stkpush/v1/processrequest", post(stk_push))
        .route("/mpesa/stkpushquery/v1/query", post(stk_query))
        .route("/mpesa/b2c/v3/paymentrequest", post(b2c))
        .route("/stk/{checkout_request_id}", post(control_stk))
        .route("/b2c/{conversation_id}", post(control_b2c))
        .merge(super::daraja_enquiries::router())
}

pub(super) fn daraja_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        request_id: format!(
            "{}-{}",
            rand::thread_rng().gen_range(10000..99999),
            rand::thread_rng().gen_range(1000000..9999999)
        ),
        error_code: code.into(),
        error_message: message.into(),
    };
    (status, Json(body)).into_response()
}

pub(super) fn bad_request(field: &str) -> Response {
    daraja_error(
        StatusCode::BAD_REQUEST,
        error::BAD_REQUEST,
        &format!("Bad Request - Invalid {field}"),
    )
}

fn digits(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10)))
        .collect()
}

pub(super) fn receipt() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..10)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

pub(super) fn description(code: i64) -> &'static str {
    ResultCode(code).description()
}

#[derive(Debug, Deserialize)]
struct GrantType {
    grant_type: Option<String>,
}

async fn oauth(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<GrantType>,
) -> Response {
    if query.grant_type.as_deref() != Some("client_credentials") {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            error::INVALID_GRANT_TYPE,
            "Invalid grant type passed",
        );
    }
    let settings = &state.settings.mpesa;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        settings.consumer_key, settings.consumer_secret
    ));
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if given != format!("Basic {expected}") {
        return daraja_error(
            StatusCode::BAD_REQUEST,
            error::INVALID_CREDENTIALS,
            "Invalid Authentication passed",
        );
    }
    let token: String = hex::encode(chainpay_core::crypto::random_bytes::<16>());
    let stored = sqlx::query!(
        "INSERT INTO sim_daraja_tokens (token, expires_at) VALUES ($1, now() + interval '3599 seconds')",
        token
    )
    .execute(&state.pool)
    .await;
    if stored.is_err() {
        return daraja_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            error::STILL_PROCESSING,
            "Internal Server Error",
        );
    }
    Json(json!({"access_token": token, "expires_in": "3599"})).into_response()
}

/// `None` when the bearer token is one we issued and still valid.
pub(super) async fn unauthorized(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let valid = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM sim_daraja_tokens WHERE token = $1 AND expires_at > now()) AS "valid!""#,
        token
    )
    .fetch_one(&state.pool)
    .await
    .unwrap_or(false);
    (!valid).then(|| {
        daraja_error(
            StatusCode::UNAUTHORIZED,
            error::INVALID_ACCESS_TOKEN,
            "Invalid Access Token",
        )
    })
}

/// `None` when shortcode, timestamp and password agree with our passkey.
fn bad_password(state: &AppState, shortcode: &str, stamp: &str, given: &str) -> Option<Response> {
    if shortcode != state.settings.mpesa.shortcode {
        return Some(bad_request("BusinessShortCode"));
    }
    if stamp.len() != 14 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return Some(bad_request("Timestamp"));
    }
    (password(shortcode, &state.settings.mpesa.passkey, stamp) != given)
        .then(|| bad_request("Password"))
}

/// The checks every STK request passes first: a valid token, then a
/// password that agrees with the shortcode, timestamp and our passkey.
async fn refuse_stk(
    state: &AppState,
    headers: &HeaderMap,
    (shortcode, stamp, password): (&str, &str, &str),
) -> Option<Response> {
    match unauthorized(state, headers).await {
        Some(refused) => Some(refused),
        None => bad_password(state, shortcode, stamp, password),
    }
}

fn is_daraja_phone(phone: &str) -> bool {
    phone.len() == 12
        && (phone.starts_with("2547") || phone.starts_with("2541"))
        && phone.bytes().all(|b| b.is_ascii_digit())
}

async fn stk_push(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<StkPushRequest>,
) -> Response {
    let stamp = (
        request.business_short_code.as_str(),
        request.timestamp.as_str(),
        request.password.as_str(),
    );
    if let Some(refused) = refuse_stk(&state, &headers, stamp).await {
        return refused;
    }
    if request.transaction_type != "CustomerPayBillOnline"
        && request.transaction_type != "CustomerBuyGoodsOnline"
    {
        return bad_request("TransactionType");
    }
    if !(1..=MAX_KES).contains(&request.amount) {
        return bad_request("Amount");
    }
    if !is_daraja_phone(&request.phone_number) || request.party_a != request.phone_number {
        return bad_request("PhoneNumber");
    }
    if !request.call_back_url.starts_with("http") {
        return bad_request("CallBackURL");
    }
    if request.account_reference.is_empty() || request.account_reference.chars().count() > 12 {
        return bad_request("AccountReference");
    }
    if request.transaction_desc.chars().count() > 13 {
        return bad_request("TransactionDesc");
    }
    let now = Utc::now();
    let checkout = format!("ws_CO_{}{}", now.format("%d%m%Y%H%M%S"), digits(9));
    let merchant = format!("{}-{}-1", digits(5), digits(8));
    let stored = sqlx::query!(
        "INSERT INTO sim_daraja_pushes (checkout_request_id, merchant_request_id, shortcode, phone, amount, callback_url, settle_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))",
        checkout,
        merchant,
        request.business_short_code,
        request.phone_number,
        request.amount,
        request.call_back_url,
        state.settings.mpesa.sim_delay_ms as f64 / 1000.0
    )
    .execute(&state.pool)
    .await;
    if stored.is_err() {
        return daraja_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            error::STILL_PROCESSING,
            "Internal Server Error",
        );
    }
    if stk_fault(&state).await.as_deref() == Some("lose_replies") {
        // The prompt is on its way to the phone; the answer is lost.
        return gateway_timeout();
    }
    Json(StkPushAck {
        merchant_request_id: merchant,
        checkout_request_id: checkout,
        response_code: "0".into(),
        response_description: "Success. Request accepted for processing".into(),
        customer_message: "Success. Request accepted for processing".into(),
    })
    .into_response()
}

async fn stk_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<StkQueryRequest>,
) -> Response {
    let stamp = (
        request.business_short_code.as_str(),
        request.timestamp.as_str(),
        request.password.as_str(),
    );
    if let Some(refused) = refuse_stk(&state, &headers, stamp).await {
        return refused;
    }
    if stk_fault(&state).await.as_deref() == Some("query_down") {
        return (StatusCode::SERVICE_UNAVAILABLE, "upstream connect error").into_response();
    }
    let push = sqlx::query!(
        "SELECT merchant_request_id, status, result_code, result_desc FROM sim_daraja_pushes WHERE checkout_request_id = $1",
        request.checkout_request_id
    )
    .fetch_optional(&state.pool)
    .await;
    match push {
        Ok(Some(push)) if push.status == "PENDING" => daraja_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            error::STILL_PROCESSING,
            "The transaction is being processed",
        ),
        Ok(Some(push)) => Json(json!({
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successsfully",
            "MerchantRequestID": push.merchant_request_id,
            "CheckoutRequestID": request.checkout_request_id,
            "ResultCode": push.result_code.unwrap_or(0).to_string(),
            "ResultDesc": push.result_desc.unwrap_or_default(),
        }))
        .into_response(),
        Ok(None) => bad_request("CheckoutRequestID"),
        Err(_) => daraja_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            error::STILL_PROCESSING,
            "Internal Server Error",
        ),
    }
}

async fn b2c(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<B2cRequest>,
) -> Response {
    if let Some(refused) = unauthorized(&state, &headers).await {
        return refused;
    }
    if request.initiator_name != state.settings.mpesa.b2c_initiator_name {
        return bad_request("InitiatorName");
    }
    if request.security_credential.is_empty() {
        return bad_request("SecurityCredential");
    }
    if !(MIN_B2C_KES..=MAX_KES).contains(&request.amount) {
        return bad_request("Amount");
    }
    if !is_daraja_phone(&request.party_b) {
        return bad_request("PartyB");
    }
    if !request.result_url.starts_with("http") || !request.queue_time_out_url.starts_with("http") {
        return bad_request("ResultURL");
    }
    let fault = sqlx::query_scalar!("SELECT b2c_fault FROM sim_daraja_account")
        .fetch_optional(&state.pool)
        .await
        .ok()
        .flatten()
        .flatten();
    if fault.as_deref() == Some("lose_request") {
        return gateway_timeout();
    }
    let conversation = format!(
        "AG_{}_{}",
        Utc::now().format("%Y%m%d"),
        hex::encode(chainpay_core::crypto::random_bytes::<10>())
    );
    let stored = sqlx::query!(
        "INSERT INTO sim_daraja_b2c (conversation_id, originator_conversation_id, phone, amount, result_url, timeout_url, settle_at, deliver)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7), $8)",
        conversation,
        request.originator_conversation_id,
        request.party_b,
        request.amount,
        request.result_url,
        request.queue_time_out_url,
        state.settings.mpesa.sim_delay_ms as f64 / 1000.0,
        fault.is_none()
    )
    .execute(&state.pool)
    .await;
    if stored.is_err() {
        return bad_request("OriginatorConversationID");
    }
    if fault.is_some() {
        // Received and to be paid, but the acknowledgement is lost.
        return gateway_timeout();
    }
    Json(B2cAck {
        conversation_id: conversation,
        originator_conversation_id: request.originator_conversation_id,
        response_code: "0".into(),
        response_description: "Accept the service request successfully.".into(),
    })
    .into_response()
}

/// The STK fault set through `POST /sim/daraja/faults`, if any.
async fn stk_fault(state: &AppState) -> Option<String> {
    sqlx::query_scalar!("SELECT stk_fault FROM sim_daraja_account")
        .fetch_optional(&state.pool)
        .await
        .ok()
        .flatten()
        .flatten()
}

/// What a caller sees when a request or its answer is lost in the network.
fn gateway_timeout() -> Response {
    (StatusCode::GATEWAY_TIMEOUT, "upstream request timeout").into_response()
}

/// Settles a pending prompt with `code`; posts the callback when `deliver`.
/// Returns false when there was nothing pending.
pub async fn settle_push(
    state: &AppState,
    checkout: &str,
    code: i64,
    deliver: bool,
) -> anyhow::Result<bool> {
    let settled = sqlx::query!(
        "UPDATE sim_daraja_pushes SET status = 'SETTLED', result_code = $2, result_desc = $3, mpesa_receipt = $4
         WHERE checkout_request_id = $1 AND status = 'PENDING'
         RETURNING merchant_request_id, phone, amount, callback_url, mpesa_receipt",
        checkout,
        code as i32,
        description(code),
        (code == 0).then(receipt)
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(push) = settled else {
        return Ok(false);
    };
    if !deliver {
        return Ok(true);
    }
    let mut callback = json!({"Body": {"stkCallback": {
        "MerchantRequestID": push.merchant_request_id,
        "CheckoutRequestID": checkout,
        "ResultCode": code,
        "ResultDesc": description(code),
    }}});
    if code == 0 {
        let phone: i64 = push.phone.parse().unwrap_or_default();
        let date: i64 = timestamp(Utc::now()).parse().unwrap_or_default();
        callback["Body"]["stkCallback"]["CallbackMetadata"] = json!({"Item": [
            {"Name": "Amount", "Value": push.amount as f64},
            {"Name": "MpesaReceiptNumber", "Value": push.mpesa_receipt},
            {"Name": "Balance"},
            {"Name": "TransactionDate", "Value": date},
            {"Name": "PhoneNumber", "Value": phone},
        ]});
    }
    deliver_json(&push.callback_url, &callback).await;
    Ok(true)
}

/// Settles a pending payout: success (`code` 0), a failure code, or a
/// queue timeout posted to the QueueTimeOutURL.
pub async fn settle_b2c(
    state: &AppState,
    conversation: &str,
    code: i64,
    timed_out: bool,
) -> anyhow::Result<bool> {
    let paid = code == 0 && !timed_out;
    let settled = sqlx::query!(
        "UPDATE sim_daraja_b2c SET status = 'SETTLED', result_code = $2, receipt = $3
         WHERE conversation_id = $1 AND status = 'PENDING'
         RETURNING originator_conversation_id, phone, amount, result_url, timeout_url, deliver, receipt",
        conversation,
        if timed_out { 1 } else { code as i32 },
        paid.then(receipt)
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(payout) = settled else {
        return Ok(false);
    };
    if !payout.deliver {
        return Ok(true);
    }
    let (url, code, desc) = if timed_out {
        (
            payout.timeout_url,
            1,
            "The service request has timed out.".to_owned(),
        )
    } else {
        (payout.result_url, code, description(code).to_owned())
    };
    let mut result = json!({"Result": {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": desc,
        "OriginatorConversationID": payout.originator_conversation_id,
        "ConversationID": conversation,
        "TransactionID": payout.receipt.clone().unwrap_or_default(),
    }});
    if paid {
        result["Result"]["ResultParameters"] = json!({"ResultParameter": [
            {"Key": "TransactionAmount", "Value": payout.amount},
            {"Key": "TransactionReceipt", "Value": result["Result"]["TransactionID"].clone()},
            {"Key": "ReceiverPartyPublicName", "Value": format!("{} - CHAINPAY CUSTOMER", payout.phone)},
            {"Key": "TransactionCompletedDateTime", "Value": Utc::now().format("%d.%m.%Y %H:%M:%S").to_string()},
        ]});
    }
    deliver_json(&url, &result).await;
    Ok(true)
}

pub(super) async fn deliver_json(url: &str, body: &Value) {
    let sent = reqwest::Client::new().post(url).json(body).send().await;
    if let Err(error) = sent {
        tracing::warn!(%error, "Daraja simulator could not deliver a callback");
    }
}

/// Settles whatever the simulated customers and network have had time for.
pub async fn settle_due(state: &AppState) -> anyhow::Result<()> {
    let pushes = sqlx::query_scalar!(
        "SELECT checkout_request_id FROM sim_daraja_pushes WHERE status = 'PENDING' AND settle_at <= now() ORDER BY settle_at LIMIT 50"
    )
    .fetch_all(&state.pool)
    .await?;
    for checkout in pushes {
        settle_push(state, &checkout, 0, true).await?;
    }
    let payouts = sqlx::query_scalar!(
        "SELECT conversation_id FROM sim_daraja_b2c WHERE status = 'PENDING' AND settle_at <= now() ORDER BY settle_at LIMIT 50"
    )
    .fetch_all(&state.pool)
    .await?;
    for conversation in payouts {
        settle_b2c(state, &conversation, 0, false).await?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct StkControl {
    result_code: i64,
    #[serde(default = "yes")]
    deliver: bool,
}

fn yes() -> bool {
    true
}

/// Simulator controls settle money, so only an admin may use them: behind a
/// reverse proxy every caller looks like loopback, so the caller's address
/// proves nothing.
pub(super) async fn refuse_non_admin(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match crate::auth::session::authenticate_admin(state, token).await {
        Ok(_) => None,
        Err(crate::error::Error::Internal(_)) => {
            Some((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())
        }
        Err(crate::error::Error::Forbidden) => {
            Some((StatusCode::FORBIDDEN, "simulator controls are for admins").into_response())
        }
        Err(_) => Some(
            (
                StatusCode::UNAUTHORIZED,
                "an admin's bearer token is required",
            )
                .into_response(),
        ),
    }
}

async fn control_stk(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(checkout): Path<String>,
    Json(control): Json<StkControl>,
) -> Response {
    if let Some(refused) = refuse_non_admin(&state, &headers).await {
        return refused;
    }
    match settle_push(&state, &checkout, control.result_code, control.deliver).await {
        Ok(true) => Json(json!({"settled": true})).into_response(),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({"settled": false, "reason": "no pending prompt with that id"})),
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct B2cControl {
    #[serde(default)]
    result_code: i64,
    #[serde(default)]
    timeout: bool,
}

async fn control_b2c(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(conversation): Path<String>,
    Json(control): Json<B2cControl>,
) -> Response {
    if let Some(refused) = refuse_non_admin(&state, &headers).await {
        return refused;
    }
    match settle_b2c(&state, &conversation, control.result_code, control.timeout).await {
        Ok(true) => Json(json!({"settled": true})).into_response(),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({"settled": false, "reason": "no pending payout with that id"})),
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
