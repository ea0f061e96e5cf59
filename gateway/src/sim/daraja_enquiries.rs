//! Daraja's enquiry APIs, simulated from the simulator's own records:
//! Transaction Status (`/mpesa/transactionstatus/v1/query`) says what became
//! of a payout by its OriginatorConversationID, Account Balance
//! (`/mpesa/accountbalance/v1/query`) states the shortcode's Working Account
//! (the prompts paid, less the payouts made, plus a planted offset). Both
//! acknowledge at once and post `{"Result":{…}}` to the ResultURL shortly
//! after, as Daraja does. `POST /sim/daraja/faults` (admins only) sets the
//! B2C and STK faults and the float offset.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chainpay_core::daraja::codes::error;
use chainpay_core::daraja::queries::{AccountBalanceRequest, TransactionStatusRequest};
use chainpay_core::daraja::wire::B2cAck;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::daraja::{bad_request, daraja_error, deliver_json, refuse_non_admin, unauthorized};
use crate::state::AppState;

/// How long after the acknowledgement the result is posted.
const ANSWER_DELAY: Duration = Duration::from_millis(100);

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/mpesa/transactionstatus/v1/query",
            post(transaction_status),
        )
        .route("/mpesa/accountbalance/v1/query", post(account_balance))
        .route("/faults", post(faults))
}

fn conversation() -> String {
    format!(
        "AG_{}_{}",
        Utc::now().format("%Y%m%d"),
        hex::encode(chainpay_core::crypto::random_bytes::<10>())
    )
}

fn ack(conversation: &str) -> Response {
    Json(B2cAck {
        conversation_id: conversation.to_owned(),
        originator_conversation_id: format!("{}-{}-1", rand_digits(5), rand_digits(8)),
        response_code: "0".into(),
        response_description: "Accept the service request successfully.".into(),
    })
    .into_response()
}

fn rand_digits(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10)))
        .collect()
}

/// Cents as Daraja writes shillings: `481000.50`.
fn format_kes_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        cents.unsigned_abs() / 100,
        cents.unsigned_abs() % 100
    )
}

fn internal() -> Response {
    daraja_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        error::STILL_PROCESSING,
        "Internal Server Error",
    )
}

/// Posts `result` to `url` a moment after the acknowledgement has gone.
fn answer_later(url: String, result: Value) {
    tokio::spawn(async move {
        tokio::time::sleep(ANSWER_DELAY).await;
        deliver_json(&url, &result).await;
    });
}

/// The checks both enquiries pass first, as Daraja makes them.
async fn refuse(
    state: &AppState,
    headers: &HeaderMap,
    (initiator, credential, party_a, identifier): (&str, &str, &str, &str),
    urls: (&str, &str),
) -> Option<Response> {
    if let Some(refused) = unauthorized(state, headers).await {
        return Some(refused);
    }
    let mpesa = &state.settings.mpesa;
    if initiator != mpesa.b2c_initiator_name {
        return Some(bad_request("Initiator"));
    }
    if credential.is_empty() {
        return Some(bad_request("SecurityCredential"));
    }
    if party_a != mpesa.b2c_shortcode {
        return Some(bad_request("PartyA"));
    }
    if identifier != chainpay_core::daraja::queries::SHORTCODE_IDENTIFIER {
        return Some(bad_request("IdentifierType"));
    }
    if !urls.0.starts_with("http") || !urls.1.starts_with("http") {
        return Some(bad_request("ResultURL"));
    }
    None
}

async fn transaction_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<TransactionStatusRequest>,
) -> Response {
    let who = (
        request.initiator.as_str(),
        request.security_credential.as_str(),
        request.party_a.as_str(),
        request.identifier_type.as_str(),
    );
    let urls = (
        request.result_url.as_str(),
        request.queue_time_out_url.as_str(),
    );
    if let Some(refused) = refuse(&state, &headers, who, urls).await {
        return refused;
    }
    if request.command_id != "TransactionStatusQuery" {
        return bad_request("CommandID");
    }
    let payout = sqlx::query!(
        "SELECT status, result_code, receipt, amount FROM sim_daraja_b2c
         WHERE originator_conversation_id = $1 OR ($2 <> '' AND receipt = $2)",
        request.original_conversation_id,
        request.transaction_id
    )
    .fetch_optional(&state.pool)
    .await;
    let Ok(payout) = payout else {
        return internal();
    };
    let conversation = conversation();
    let mut result = json!({"Result": {
        "ResultType": 0, "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": rand_digits(6), "ConversationID": conversation, "TransactionID": rand_digits(10),
    }});
    let (status, receipt, amount) = match &payout {
        None => {
            result["Result"]["ResultCode"] = json!(2001);
            result["Result"]["ResultDesc"] = json!("The transaction could not be found.");
            (None, None, None)
        }
        Some(p) if p.status == "PENDING" => (Some("Pending"), None, Some(p.amount)),
        Some(p) if p.result_code == Some(0) => {
            (Some("Completed"), p.receipt.clone(), Some(p.amount))
        }
        Some(p) => (Some("Failed"), None, Some(p.amount)),
    };
    if let Some(status) = status {
        result["Result"]["ResultParameters"] = json!({"ResultParameter": [
            {"Key": "DebitPartyName", "Value": format!("{} - ChainPay", state.settings.mpesa.b2c_shortcode)},
            {"Key": "TransactionStatus", "Value": status},
            {"Key": "Amount", "Value": amount},
            {"Key": "ReceiptNo", "Value": receipt.unwrap_or_default()},
            {"Key": "FinalisedTime", "Value": Utc::now().format("%Y%m%d%H%M%S").to_string()},
        ]});
    }
    answer_later(request.result_url, result);
    ack(&conversation)
}

async fn account_balance(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<AccountBalanceRequest>,
) -> Response {
    let who = (
        request.initiator.as_str(),
        request.security_credential.as_str(),
        request.party_a.as_str(),
        request.identifier_type.as_str(),
    );
    let urls = (
        request.result_url.as_str(),
        request.queue_time_out_url.as_str(),
    );
    if let Some(refused) = refuse(&state, &headers, who, urls).await {
        return refused;
    }
    if request.command_id != "AccountBalance" {
        return bad_request("CommandID");
    }
    let balance = sqlx::query_scalar!(
        r#"SELECT ((SELECT coalesce(sum(amount), 0) FROM sim_daraja_pushes WHERE status = 'SETTLED' AND result_code = 0) * 100
                 - (SELECT coalesce(sum(amount), 0) FROM sim_daraja_b2c WHERE status = 'SETTLED' AND result_code = 0) * 100
                 + (SELECT coalesce(sum(offset_cents), 0) FROM sim_daraja_account))::bigint AS "cents!""#
    )
    .fetch_one(&state.pool)
    .await;
    let Ok(cents) = balance else {
        return internal();
    };
    let working = format_kes_cents(cents);
    let conversation = conversation();
    let result = json!({"Result": {
        "ResultType": 0, "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": rand_digits(6), "ConversationID": conversation, "TransactionID": rand_digits(10),
        "ResultParameters": {"ResultParameter": [
            {"Key": "AccountBalance", "Value": format!(
                "Working Account|KES|{working}|{working}|0.00|0.00&Utility Account|KES|0.00|0.00|0.00|0.00&Charges Paid Account|KES|0.00|0.00|0.00|0.00")},
            {"Key": "BOCompletedTime", "Value": Utc::now().format("%Y%m%d%H%M%S").to_string().parse::<i64>().unwrap_or_default()},
        ]},
    }});
    answer_later(request.result_url, result);
    ack(&conversation)
}

#[derive(Debug, Deserialize)]
struct Faults {
    /// `lose_replies`, `lose_request`, or null for none.
    b2c: Option<String>,
    /// `lose_replies` (STK Push answers lost), `query_down` (STK Query
    /// answers nothing usable), or null for none.
    #[serde(default)]
    stk: Option<String>,
    /// Added to the balance Account Balance states.
    #[serde(default)]
    float_offset_cents: i64,
}

async fn faults(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(faults): Json<Faults>,
) -> Response {
    if let Some(refused) = refuse_non_admin(&state, &headers).await {
        return refused;
    }
    let set = sqlx::query!(
        "UPDATE sim_daraja_account SET b2c_fault = $1, offset_cents = $2, stk_fault = $3",
        faults.b2c,
        faults.float_offset_cents,
        faults.stk
    )
    .execute(&state.pool)
    .await;
    match set {
        Ok(_) => Json(json!({"b2c": faults.b2c, "stk": faults.stk,
                             "float_offset_cents": faults.float_offset_cents}))
        .into_response(),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            "b2c must be lose_replies, lose_request or null; stk lose_replies, query_down or null",
        )
            .into_response(),
    }
}
