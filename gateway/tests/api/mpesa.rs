//! M-Pesa deposits and withdrawals against the Daraja simulator, over HTTP:
//! every outcome code, repeated, lost, late, forged and tampered callbacks,
//! restarts, and B2C success, failure and timeout.

use std::sync::{Arc, Mutex, OnceLock};

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

/// Prompts are answered only when a test says so, and overdue deposits are
/// queried after a second.
pub(crate) async fn mpesa_app() -> TestApp {
    spawn_with(TestOptions {
        configure: |settings| {
            settings.mpesa.sim_delay_ms = 600_000;
            settings.mpesa.pending_timeout_s = 1;
        },
        ..TestOptions::default()
    })
    .await
}

/// An app for callbacks the test writes itself: the sweep's STK Query
/// (after two minutes) never races them.
async fn callback_app() -> TestApp {
    spawn_with(TestOptions {
        configure: |settings| {
            settings.mpesa.sim_delay_ms = 600_000;
            settings.mpesa.pending_timeout_s = 120;
        },
        ..TestOptions::default()
    })
    .await
}

/// The customer pays the prompt and Safaricom's own callback is lost: STK
/// Query says paid, and the test delivers a callback of its making.
async fn paid_silently(app: &TestApp, checkout: &Value) {
    answer(app, checkout, 0, false).await;
}

async fn initiate(app: &TestApp, token: &str, amount: i64) -> Value {
    let response = app
        .post(
            "/api/v1/mpesa/initiate",
            Some(token),
            json!({"amount": amount}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "PENDING");
    body
}

/// The simulated customer answers the prompt.
async fn answer(app: &TestApp, checkout: &Value, result_code: i64, deliver: bool) {
    app.sim_answer(checkout.as_str().unwrap(), result_code, deliver)
        .await;
}

async fn status(app: &TestApp, token: &str, reference: &Value) -> Value {
    app.get_json(
        &format!("/api/v1/mpesa/status/{}", reference.as_str().unwrap()),
        token,
    )
    .await
}

async fn wait_for_status(app: &TestApp, token: &str, reference: &Value, wanted: &str) -> Value {
    eventually(
        &format!("the deposit to become {wanted}"),
        secs(20),
        async || {
            let deposit = status(app, token, reference).await;
            (deposit["status"] == wanted).then_some(deposit)
        },
    )
    .await
}

fn callback_url(app: &TestApp) -> String {
    app.url(&format!(
        "/api/v1/mpesa/callback?token={}",
        app.state.mpesa_callback_token
    ))
}

/// Delivers `callback` as Safaricom does, and checks it was acknowledged.
async fn acknowledged(app: &TestApp, callback: &Value) {
    let response = app
        .client
        .post(callback_url(app))
        .json(callback)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

fn success_callback(checkout: &Value, amount_kes: f64, receipt: &str, phone: i64) -> Value {
    json!({"Body": {"stkCallback": {
        "MerchantRequestID": "29115-34620561-1",
        "CheckoutRequestID": checkout,
        "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [
            {"Name": "Amount", "Value": amount_kes},
            {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "Balance"},
            {"Name": "TransactionDate", "Value": 20261125102115i64},
            {"Name": "PhoneNumber", "Value": phone}
        ]}
    }}})
}

#[tokio::test]
async fn a_deposit_is_credited_once_the_customer_accepts_the_prompt() {
    let app = mpesa_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let started = initiate(&app, &token, 10_000).await;
    assert!(started["checkout_request_id"]
        .as_str()
        .unwrap()
        .starts_with("ws_CO_"));
    assert_eq!(
        app.balance(&token, "KES").await,
        before,
        "nothing before Safaricom confirms"
    );
    answer(&app, &started["checkout_request_id"], 0, true).await;
    let deposit = wait_for_status(&app, &token, &started["ref"], "CONFIRMED").await;
    assert_eq!(deposit["amount"], 10_000);
    assert_eq!(deposit["mpesa_receipt"].as_str().unwrap().len(), 10);
    assert_eq!(app.balance(&token, "KES").await, before + 10_000);
    let history = app.get_json("/api/v1/mpesa/history", &token).await;
    assert_eq!(history["deposits"][0]["ref"], started["ref"]);
    let sms: String = sqlx::query_scalar(
        "SELECT message FROM sms_outbox WHERE to_phone = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(USER_PHONE)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(sms.contains("KES 100.00 deposited from M-Pesa"), "{sms}");
    app.assert_balanced().await;
}

#[tokio::test]
async fn the_simulated_customer_accepts_by_themself_after_the_configured_delay() {
    let app = spawn_with(TestOptions {
        configure: |settings| settings.mpesa.sim_delay_ms = 300,
        ..TestOptions::default()
    })
    .await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let started = app
        .post(
            "/api/v1/wallet/deposit",
            Some(&token),
            json!({"amount": 5_000, "currency": "KES", "method": "mpesa"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    wait_for_status(&app, &token, &started["ref"], "CONFIRMED").await;
}

#[tokio::test]
async fn cancelled_timed_out_underfunded_and_wrong_pin_prompts_credit_nothing() {
    let app = mpesa_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    for (code, status_wanted, desc) in [
        (1032, "FAILED", "Request cancelled by user."),
        (1037, "EXPIRED", "DS timeout user cannot be reached."),
        (
            1,
            "FAILED",
            "The balance is insufficient for the transaction.",
        ),
        (2001, "FAILED", "The initiator information is invalid."),
    ] {
        let started = initiate(&app, &token, 10_000).await;
        answer(&app, &started["checkout_request_id"], code, true).await;
        let deposit = wait_for_status(&app, &token, &started["ref"], status_wanted).await;
        assert_eq!(deposit["result_desc"], desc);
    }
    assert_eq!(app.balance(&token, "KES").await, before);
    app.assert_balanced().await;
}

#[tokio::test]
async fn the_same_callback_delivered_ten_times_at_once_credits_once() {
    let app = callback_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let started = initiate(&app, &token, 25_000).await;
    paid_silently(&app, &started["checkout_request_id"]).await;
    let callback = success_callback(
        &started["checkout_request_id"],
        250.0,
        "NLJ7RT61SV",
        254700000001,
    );
    let storm = (0..10).map(|_| app.client.post(callback_url(&app)).json(&callback).send());
    for response in futures::future::join_all(storm).await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Value>().await.unwrap()["ResultCode"], 0);
    }
    assert_eq!(
        status(&app, &token, &started["ref"]).await["status"],
        "CONFIRMED"
    );
    assert_eq!(app.balance(&token, "KES").await, before + 25_000);
    let deposits: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transactions WHERE tx_type = 'deposit'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(deposits, 1);
    // A callback for a second paid deposit that names the first one's
    // receipt (someone holding the token copied it) cannot cost the
    // customer their payment: what STK Query confirmed is credited, without
    // the copied receipt, and the callback is audited.
    let other = initiate(&app, &token, 25_000).await;
    paid_silently(&app, &other["checkout_request_id"]).await;
    let replayed = success_callback(
        &other["checkout_request_id"],
        250.0,
        "NLJ7RT61SV",
        254700000001,
    );
    acknowledged(&app, &replayed).await;
    let deposit = status(&app, &token, &other["ref"]).await;
    assert_eq!(deposit["status"], "CONFIRMED");
    assert!(deposit["mpesa_receipt"].is_null(), "{deposit}");
    assert_eq!(app.balance(&token, "KES").await, before + 50_000);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'mpesa.callback'
           AND detail -> 'disagree' ? 'receipt already booked on another deposit'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    app.assert_balanced().await;
}

/// The newest deposit of the demo customer, straight from the database.
async fn newest_deposit(app: &TestApp) -> (uuid::Uuid, String, Option<String>) {
    sqlx::query_as(
        "SELECT ref, status, checkout_request_id FROM mpesa_deposits ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// A deposit the customer cancelled, once it shows FAILED.
async fn cancelled_deposit(app: &TestApp, token: &str) -> Value {
    let started = initiate(app, token, 10_000).await;
    answer(app, &started["checkout_request_id"], 1032, true).await;
    wait_for_status(app, token, &started["ref"], "FAILED").await;
    started
}

/// A push Safaricom took, prompting the phone, whose answer was lost: the
/// deposit failed without a CheckoutRequestID. Its reference, and the
/// CheckoutRequestID the simulator gave the prompt.
async fn lost_push(app: &TestApp, token: &str, amount: i64) -> (uuid::Uuid, String) {
    app.sim_daraja_faults(json!({"stk": "lose_replies"})).await;
    let response = app
        .post(
            "/api/v1/mpesa/initiate",
            Some(token),
            json!({"amount": amount}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_GATEWAY, "mpesa_unavailable").await;
    app.sim_daraja_faults(json!({"stk": null})).await;
    let (reference, state, checkout) = newest_deposit(app).await;
    assert_eq!((state.as_str(), checkout), ("FAILED", None));
    let prompted = sqlx::query_scalar(
        "SELECT checkout_request_id FROM sim_daraja_pushes WHERE amount = $1 ORDER BY settle_at DESC LIMIT 1",
    )
    .bind(amount / 100)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    (reference, prompted)
}

#[tokio::test]
async fn a_payment_to_a_prompt_whose_answer_was_lost_is_held_for_the_operators() {
    let app = mpesa_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    // Safaricom takes the push and prompts the phone; its answer is lost.
    let (reference, prompted) = lost_push(&app, &token, 30_000).await;

    // A made-up CheckoutRequestID with the deposit's phone and amount is
    // not a payment: STK Query knows nothing of it.
    let forged = success_callback(
        &json!("ws_CO_0712202600001"),
        300.0,
        "FORGED0001",
        254700000001,
    );
    acknowledged(&app, &forged).await;
    assert_eq!(newest_deposit(&app).await.1, "FAILED");
    let asked: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rate_limits WHERE bucket = 'stk-query:ws_CO_0712202600001')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(asked, "STK Query was asked about the made-up prompt");
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM stk_paid_reports")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(kept, 0, "a prompt Safaricom never issued is not kept");

    // The customer pays the prompt: Safaricom's callback names a
    // CheckoutRequestID we never saw; STK Query confirms it.
    answer(&app, &json!(prompted), 0, true).await;
    let (held, state, checkout) = newest_deposit(&app).await;
    assert_eq!(held, reference);
    assert_eq!(
        (state.as_str(), checkout.as_deref()),
        ("SUSPENSE", Some(prompted.as_str()))
    );
    assert_eq!(
        app.balance(&token, "KES").await,
        before,
        "held, not credited"
    );
    let item: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM reconciliation_items WHERE category = 'suspense' AND subject = $1 AND status = 'OPEN'",
    )
    .bind(reference.to_string())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(item, 1, "an item for the operators to credit or return");
    let told = app.last_sms(USER_PHONE).await;
    assert!(told.contains("300") && told.contains("held"), "{told}");
    // Safaricom repeats the callback: nothing more is booked.
    let booked = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM transactions WHERE tx_type = 'deposit'")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    assert_eq!(booked().await, 1);
    let repeat: Value = sqlx::query_scalar(
        "SELECT body FROM mpesa_callbacks WHERE reference = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(&prompted)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    acknowledged(&app, &repeat).await;
    assert_eq!(booked().await, 1);

    // Another lost push, paid while STK Query is down: nothing is booked on
    // the callback's word, and nothing is lost either: the sweep asks again
    // once STK Query answers.
    let (second, prompted) = lost_push(&app, &token, 20_000).await;
    app.sim_daraja_faults(json!({"stk": "query_down"})).await;
    answer(&app, &json!(prompted), 0, true).await;
    assert_eq!(newest_deposit(&app).await.1, "FAILED");
    assert_eq!(booked().await, 1);
    app.sim_daraja_faults(json!({"stk": null})).await;
    eventually("the sweep to confirm the payment", secs(20), async || {
        let (reference, state, _) = newest_deposit(&app).await;
        (reference == second && state == "SUSPENSE").then_some(())
    })
    .await;
    assert_eq!(booked().await, 2);
    assert_eq!(
        app.balance(&token, "KES").await,
        before,
        "held, not credited"
    );
    app.assert_balanced().await;
}

/// With prompts to other phones allowed, two customers' pushes to one phone
/// for one amount both lose their answers: a payment that then arrives for
/// a CheckoutRequestID we never saw cannot say whose it is, so nothing is
/// attached or booked; it is audited and left to the operators.
#[tokio::test]
async fn a_payment_several_customers_lost_pushes_match_is_not_given_to_either() {
    let app = spawn_with(TestOptions {
        configure: |settings| {
            settings.mpesa.sim_delay_ms = 600_000;
            settings.mpesa.pending_timeout_s = 1;
            settings.mpesa.prompt_other_phones = true;
        },
        ..TestOptions::default()
    })
    .await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let other = app.new_user("+254712555001", "Other Person").await;
    app.sim_daraja_faults(json!({"stk": "lose_replies"})).await;
    for caller in [&token, &other] {
        let response = app
            .post(
                "/api/v1/mpesa/initiate",
                Some(caller),
                json!({"amount": 40_000, "phone": "0700000001"}),
            )
            .await;
        assert_problem(response, StatusCode::BAD_GATEWAY, "mpesa_unavailable").await;
    }
    app.sim_daraja_faults(json!({"stk": null})).await;
    let prompted: String = sqlx::query_scalar(
        "SELECT checkout_request_id FROM sim_daraja_pushes WHERE amount = 400 ORDER BY settle_at DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    answer(&app, &json!(prompted), 0, true).await;
    let deposits: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT status, checkout_request_id FROM mpesa_deposits WHERE amount = 40000",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        deposits,
        [("FAILED".to_owned(), None), ("FAILED".to_owned(), None)]
    );
    let booked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transactions WHERE tx_type = 'deposit'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(booked, 0);
    let refused: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'mpesa.callback' AND subject = $1
           AND detail->>'reason' = 'several customers'' unanswered prompts match this payment'",
    )
    .bind(&prompted)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(refused, 1);
    app.assert_balanced().await;
}

/// M-Pesa's records are the word: a failure callback for a deposit that
/// ended, when STK Query says the prompt was paid after all, books the
/// payment (held in suspense, as any late payment).
#[tokio::test]
async fn a_failure_callback_for_an_ended_deposit_mpesa_reports_paid_books_the_payment() {
    let app = callback_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let started = cancelled_deposit(&app, &token).await;
    let checkout = started["checkout_request_id"].as_str().unwrap();
    sqlx::query("UPDATE sim_daraja_pushes SET result_code = 0, result_desc = 'paid' WHERE checkout_request_id = $1")
        .bind(checkout)
        .execute(&app.pool)
        .await
        .unwrap();
    let failure = json!({"Body": {"stkCallback": {
        "MerchantRequestID": "29115-34620561-1", "CheckoutRequestID": checkout,
        "ResultCode": 1032, "ResultDesc": "Request cancelled by user"}}});
    acknowledged(&app, &failure).await;
    let deposit = status(&app, &token, &started["ref"]).await;
    assert_eq!(deposit["status"], "SUSPENSE", "{deposit}");
    assert_eq!(
        app.balance(&token, "KES").await,
        before,
        "held, not credited"
    );
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_late_payment_stk_query_cannot_confirm_is_never_booked_on_the_callbacks_word() {
    let app = mpesa_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let started = cancelled_deposit(&app, &token).await;
    // Someone holding the callback token reports the cancelled prompt paid
    // while STK Query is down, then sends copies past the queries allowed:
    // the report is kept for the sweep, and nothing is booked.
    app.sim_daraja_faults(json!({"stk": "query_down"})).await;
    let late = success_callback(
        &started["checkout_request_id"],
        100.0,
        "LATEDOWN01",
        254700000001,
    );
    for _ in 0..8 {
        acknowledged(&app, &late).await;
    }
    let deposit = status(&app, &token, &started["ref"]).await;
    assert_eq!(deposit["status"], "FAILED");
    let kept = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM stk_paid_reports")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    assert_eq!(kept().await, 1);
    // Once STK Query answers, the sweep asks: not paid, the report is dropped.
    app.sim_daraja_faults(json!({"stk": null})).await;
    eventually("the report to be dropped", secs(20), async || {
        (kept().await == 0).then_some(())
    })
    .await;
    let deposit = status(&app, &token, &started["ref"]).await;
    assert_eq!(deposit["status"], "FAILED");
    assert!(deposit["mpesa_receipt"].is_null());
    assert_eq!(app.balance(&token, "KES").await, before);
    let dropped: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'mpesa.paid_report' AND outcome = 'rejected'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(dropped, 1);
    app.assert_balanced().await;
}

#[tokio::test]
async fn unknown_forged_and_tampered_callbacks_credit_nothing_to_the_wallet() {
    let app = callback_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let started = initiate(&app, &token, 10_000).await;

    let unknown = success_callback(&json!("ws_CO_000000"), 100.0, "AAAAAAAAAA", 254700000001);
    acknowledged(&app, &unknown).await;

    let forged = success_callback(
        &started["checkout_request_id"],
        100.0,
        "BBBBBBBBBB",
        254700000001,
    );
    let bad_token = app
        .client
        .post(app.url("/api/v1/mpesa/callback?token=guess"))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_problem(bad_token, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let no_token = app
        .client
        .post(app.url("/api/v1/mpesa/callback"))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(&app, &token, &started["ref"]).await["status"],
        "PENDING"
    );

    // With the token (it travels in a URL and can leak), a success callback
    // for a prompt nobody paid credits nothing: STK Query says it is still
    // waiting, or that the customer cancelled it.
    let forged = |checkout: &Value, receipt: &str| {
        let callback = success_callback(checkout, 100.0, receipt, 254700000001);
        app.client.post(callback_url(&app)).json(&callback).send()
    };
    forged(&started["checkout_request_id"], "DDDDDDDDDD")
        .await
        .unwrap();
    assert_eq!(
        status(&app, &token, &started["ref"]).await["status"],
        "PENDING"
    );
    let cancelled = initiate(&app, &token, 10_000).await;
    answer(&app, &cancelled["checkout_request_id"], 1032, false).await;
    forged(&cancelled["checkout_request_id"], "EEEEEEEEEE")
        .await
        .unwrap();
    let failed = status(&app, &token, &cancelled["ref"]).await;
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["mpesa_receipt"], Value::Null);
    assert_eq!(app.balance(&token, "KES").await, before);

    // A callback claiming ten times the amount for a prompt the customer
    // paid: an STK prompt is paid for what was pushed, so the payment STK
    // Query confirmed is credited for that, never for the callback's figure.
    paid_silently(&app, &started["checkout_request_id"]).await;
    let tampered = success_callback(
        &started["checkout_request_id"],
        1_000.0,
        "CCCCCCCCCC",
        254700000001,
    );
    acknowledged(&app, &tampered).await;
    let deposit = status(&app, &token, &started["ref"]).await;
    assert_eq!(deposit["status"], "CONFIRMED");
    assert!(deposit["mpesa_receipt"].is_null(), "{deposit}");
    assert_eq!(app.balance(&token, "KES").await, before + 10_000);
    let suspense: i64 = sqlx::query_scalar(
        "SELECT balance FROM accounts WHERE kind = 'suspense' AND currency = 'KES'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(suspense, 0);
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT detail->>'reason' FROM audit_log WHERE action = 'mpesa.callback' AND outcome = 'rejected' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    // A callback without the token is counted, never stored or audited:
    // an unauthenticated caller writes nothing.
    assert_eq!(
        audited,
        [
            "unknown CheckoutRequestID",
            "STK Query says the payment was not made",
            "the callback's details disagree with the prompt STK Query confirmed"
        ]
    );
    assert!(app
        .metrics()
        .await
        .contains(r#"chainpay_rejected_webhooks_total{reason="bad_token",webhook="mpesa_stk"} 2"#));
    app.assert_balanced().await;
}

/// Two paid deposits whose callbacks arrive at once naming one receipt (a
/// token holder copying the real one's): both are acknowledged and both
/// payments credited; the receipt is recorded on one only.
#[tokio::test]
async fn two_callbacks_naming_one_receipt_at_once_are_both_settled() {
    let app = callback_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let rounds = 4;
    for round in 0..rounds {
        let receipt = format!("RACE{round:06}");
        let first = initiate(&app, &token, 10_000).await;
        let second = initiate(&app, &token, 10_000).await;
        paid_silently(&app, &first["checkout_request_id"]).await;
        paid_silently(&app, &second["checkout_request_id"]).await;
        let [one, other] = [&first, &second].map(|deposit| {
            success_callback(
                &deposit["checkout_request_id"],
                100.0,
                &receipt,
                254700000001,
            )
        });
        tokio::join!(acknowledged(&app, &one), acknowledged(&app, &other));
        let mut receipts = Vec::new();
        for deposit in [&first, &second] {
            let settled = status(&app, &token, &deposit["ref"]).await;
            assert_eq!(settled["status"], "CONFIRMED", "{settled}");
            receipts.push(settled["mpesa_receipt"].clone());
        }
        receipts.sort_by_key(Value::is_null);
        assert_eq!(receipts, [json!(receipt), Value::Null]);
    }
    assert_eq!(
        app.balance(&token, "KES").await,
        before + rounds * 2 * 10_000
    );
    app.assert_balanced().await;
}

#[tokio::test]
async fn callbacks_holding_nul_characters_are_acknowledged_kept_and_move_nothing() {
    let app = mpesa_app().await;
    let stk = success_callback(&json!("ws_CO_\u{0}1"), 100.0, "NUL\u{0}RCPT", 254700000001);
    let result = json!({"Result": {"ResultType": 0, "ResultCode": "0\u{0}", "ResultDesc": "\u{0}",
        "OriginatorConversationID": "oc\u{0}", "ResultParameters": {"k\u{0}": "v"}}});
    let token = &app.state.mpesa_callback_token;
    let urls = [
        (callback_url(&app), stk),
        (
            app.url(&format!("/api/v1/mpesa/b2c/result?token={token}")),
            result.clone(),
        ),
        (
            app.url(&format!("/api/v1/mpesa/txstatus/result?token={token}")),
            result,
        ),
    ];
    for (url, body) in urls {
        let answered = app.client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(answered.status(), StatusCode::OK, "{url}");
    }
    let kept: Vec<(String, String)> =
        sqlx::query_as("SELECT body::text, outcome FROM mpesa_callbacks")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(kept.len(), 3, "{kept:?}");
    for (body, outcome) in &kept {
        assert!(
            body.contains('\u{FFFD}') && !body.contains("\\u0000"),
            "{body}"
        );
        assert_eq!(outcome, "unreadable", "{body}");
    }
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_callback_amount_that_is_not_exactly_the_request_is_never_what_is_booked() {
    let app = callback_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    // As a string, missing, or a fraction of a shilling: none of these is an
    // amount we can trust. STK Query confirmed the prompt paid, and a prompt
    // is paid for what was pushed: that is credited, and the callback audited.
    let untrusted = [json!("100"), Value::Null, json!(100.5)];
    for (n, amount) in untrusted.into_iter().enumerate() {
        let started = initiate(&app, &token, 10_000).await;
        paid_silently(&app, &started["checkout_request_id"]).await;
        let mut callback = success_callback(
            &started["checkout_request_id"],
            100.0,
            &format!("AMOUNT000{n}"),
            254700000001,
        );
        let items = &mut callback["Body"]["stkCallback"]["CallbackMetadata"]["Item"];
        match amount {
            Value::Null => {
                items.as_array_mut().unwrap().remove(0);
            }
            amount => items[0]["Value"] = amount,
        }
        acknowledged(&app, &callback).await;
        assert_eq!(
            status(&app, &token, &started["ref"]).await["status"],
            "CONFIRMED"
        );
    }
    assert_eq!(app.balance(&token, "KES").await, before + 30_000);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'mpesa.callback' AND detail -> 'disagree' ? 'amount'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 3);
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_lost_callback_is_recovered_by_stk_query_exactly_once() {
    let app = mpesa_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let started = initiate(&app, &token, 30_000).await;
    // The customer pays but Safaricom's callback never arrives.
    answer(&app, &started["checkout_request_id"], 0, false).await;
    let deposit = wait_for_status(&app, &token, &started["ref"], "CONFIRMED").await;
    assert!(
        deposit["mpesa_receipt"].is_null(),
        "STK Query does not tell the receipt"
    );
    assert_eq!(app.balance(&token, "KES").await, before + 30_000);
    // The callback turns up late after all: nothing more is credited, but
    // its receipt is recorded (reconciliation matches it to the callback).
    let late = success_callback(
        &started["checkout_request_id"],
        300.0,
        "LATE000001",
        254700000001,
    );
    // The callback is applied before it is acknowledged.
    acknowledged(&app, &late).await;
    let outcome: String = sqlx::query_scalar(
        "SELECT outcome FROM mpesa_callbacks WHERE reference = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(started["checkout_request_id"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(outcome, "receipt recorded");
    assert_eq!(app.balance(&token, "KES").await, before + 30_000);
    let recorded = status(&app, &token, &started["ref"]).await;
    assert_eq!(recorded["mpesa_receipt"], "LATE000001");
    // A prompt nobody answered stays pending while Safaricom says it is processing.
    let waiting = initiate(&app, &token, 10_000).await;
    eventually("the sweeper to ask STK Query", secs(20), async || {
        let queried: i32 =
            sqlx::query_scalar("SELECT query_attempts FROM mpesa_deposits WHERE ref = $1::uuid")
                .bind(waiting["ref"].as_str().unwrap())
                .fetch_one(&app.pool)
                .await
                .unwrap();
        (queried >= 1).then_some(())
    })
    .await;
    let still = status(&app, &token, &waiting["ref"]).await;
    assert_eq!(still["status"], "PENDING");
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_restart_while_deposits_are_pending_loses_none() {
    let mut app = mpesa_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let first = initiate(&app, &token, 10_000).await;
    let second = initiate(&app, &token, 20_000).await;
    app.restart().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    answer(&app, &first["checkout_request_id"], 0, true).await;
    answer(&app, &second["checkout_request_id"], 0, false).await;
    wait_for_status(&app, &token, &first["ref"], "CONFIRMED").await;
    wait_for_status(&app, &token, &second["ref"], "CONFIRMED").await;
    assert_eq!(app.balance(&token, "KES").await, before + 30_000);
}

/// Ends every other connection to the database of `pool`: what a restart
/// of PostgreSQL does to the gateway's pool.
async fn end_connections(pool: &OnceLock<PgPool>) {
    let pool = pool.get().expect("the app is up before it calls Safaricom");
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(ended > 0, "the gateway had connections to end");
}

/// A Daraja-compatible host that, before acknowledging a prompt or a
/// payout, [ends every connection](end_connections) of the gateway's
/// database.
async fn daraja_dropping_connections(pool: Arc<OnceLock<PgPool>>) -> String {
    use axum::routing::{get, post};
    let token = || async { axum::Json(json!({"access_token": "double", "expires_in": "3599"})) };
    let prompts = pool.clone();
    let push = move || async move {
        end_connections(&prompts).await;
        axum::Json(json!({
            "MerchantRequestID": "29115-34620561-1",
            "CheckoutRequestID": "ws_CO_DROPPED0001",
            "ResponseCode": "0",
            "ResponseDescription": "Success. Request accepted for processing",
            "CustomerMessage": "Success. Request accepted for processing"
        }))
    };
    let pay = move |axum::Json(request): axum::Json<Value>| async move {
        end_connections(&pool).await;
        axum::Json(json!({
            "ConversationID": "AG_20261205_DROPPED0001",
            "OriginatorConversationID": request["OriginatorConversationID"],
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully."
        }))
    };
    // The customer paid the prompt.
    let query = || async {
        axum::Json(json!({
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successsfully",
            "MerchantRequestID": "29115-34620561-1",
            "CheckoutRequestID": "ws_CO_DROPPED0001",
            "ResultCode": "0",
            "ResultDesc": "The service request is processed successfully."
        }))
    };
    let routes = axum::Router::new()
        .route("/oauth/v1/generate", get(token))
        .route("/mpesa/stkpush/v1/processrequest", post(push))
        .route("/mpesa/stkpushquery/v1/query", post(query))
        .route("/mpesa/b2c/v3/paymentrequest", post(pay));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    format!("http://{address}")
}

/// Where each test's app finds its Daraja double (`configure` is a plain
/// function), one per test. Whether the gateway's first write after the
/// drop meets a dead connection depends on whether a background job found
/// one first (the pool then pings them all); `scaling` tests the retry
/// itself (`a_write_that_meets_a_lost_connection_is_made_again_on_another`).
static PROMPT_DOUBLE: Mutex<String> = Mutex::new(String::new());
static PAYOUT_DOUBLE: Mutex<String> = Mutex::new(String::new());

static FAILING_DOUBLE: Mutex<String> = Mutex::new(String::new());

/// An app whose Daraja is the double at `url`, kept in `double` for
/// `configure` to read.
async fn beside_double(
    double: &'static Mutex<String>,
    url: String,
    configure: fn(&mut chainpay_gateway::config::Settings),
) -> TestApp {
    *double.lock().unwrap() = url;
    spawn_with(TestOptions {
        configure,
        ..TestOptions::default()
    })
    .await
}

/// An app beside a [double that drops the database's connections]
/// (daraja_dropping_connections).
async fn beside_dropping_daraja(
    double: &'static Mutex<String>,
    configure: fn(&mut chainpay_gateway::config::Settings),
) -> TestApp {
    let pool = Arc::new(OnceLock::new());
    let app = beside_double(
        double,
        daraja_dropping_connections(pool.clone()).await,
        configure,
    )
    .await;
    pool.set(app.pool.clone()).unwrap();
    app
}

/// A Daraja-compatible host whose B2C endpoint answers every request with
/// a server error in Daraja's error body.
async fn daraja_failing_payouts() -> String {
    use axum::routing::{get, post};
    let token = || async { axum::Json(json!({"access_token": "double", "expires_in": "3599"})) };
    let pay = || async {
        let body = json!({"requestId": "11728-2929992-1", "errorCode": "500.003.1001",
                          "errorMessage": "Internal Server Error"});
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(body),
        )
    };
    let routes = axum::Router::new()
        .route("/oauth/v1/generate", get(token))
        .route("/mpesa/b2c/v3/paymentrequest", post(pay));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    format!("http://{address}")
}

/// A server error may come after Safaricom queued the payment: the money
/// stays held (for Transaction Status to settle), never refunded at once.
#[tokio::test]
async fn a_payout_answered_with_a_server_error_stays_held() {
    let app = beside_double(
        &FAILING_DOUBLE,
        daraja_failing_payouts().await,
        |settings| {
            settings.mpesa.base_url = Some(FAILING_DOUBLE.lock().unwrap().clone());
        },
    )
    .await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let held = withdraw(&app, &token, 50_000).await;
    let (status, note) = eventually("the payout's answer recorded", secs(10), async || {
        let (status, note): (String, Option<String>) = sqlx::query_as(
            "SELECT status, result_desc FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid",
        )
        .bind(held["tx_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        note.map(|note| (status, note))
    })
    .await;
    assert_eq!(status, "PENDING");
    assert!(note.starts_with("submission unconfirmed"), "{note}");
    assert_eq!(payout_hold(&app).await, 50_000);
    assert_eq!(app.balance(&token, "KES").await, before - 51_000);
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_prompt_acknowledged_while_the_database_drops_its_connections_is_still_credited() {
    let app = beside_dropping_daraja(&PROMPT_DOUBLE, |settings| {
        settings.mpesa.base_url = Some(PROMPT_DOUBLE.lock().unwrap().clone());
    })
    .await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    deposit_as_connections_drop(&app, &token).await;
    assert_eq!(app.balance(&token, "KES").await, before + 10_000);
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_payout_acknowledged_while_the_database_drops_its_connections_is_recorded_and_paid() {
    let app = beside_dropping_daraja(&PAYOUT_DOUBLE, |settings| {
        settings.mpesa.base_url = Some(PAYOUT_DOUBLE.lock().unwrap().clone());
    })
    .await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    // Accepted, not a failure: the payout was made and its record kept.
    let held = withdraw(&app, &token, 50_000).await;
    assert_eq!(
        conversation_of(&app, &held).await,
        "AG_20261205_DROPPED0001"
    );
    let reference: uuid::Uuid =
        sqlx::query_scalar("SELECT ref FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid")
            .bind(held["tx_id"].as_str().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let paid = json!({"Result": {"ResultType": 0, "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": reference, "ConversationID": "AG_20261205_DROPPED0001",
        "TransactionID": "DRP7654321"}});
    let url = format!(
        "/api/v1/mpesa/b2c/result?token={}",
        app.state.mpesa_callback_token
    );
    let response = app
        .client
        .post(app.url(&url))
        .json(&paid)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let path = format!("/api/v1/transactions/{}", held["tx_id"].as_str().unwrap());
    assert_eq!(app.get_json(&path, &token).await["status"], "COMPLETED");
    assert_eq!(payout_hold(&app).await, 0);
    assert_eq!(app.balance(&token, "KES").await, before - 51_000);
    app.assert_balanced().await;
}

/// A deposit whose prompt Safaricom accepts as the connections drop: it
/// is accepted, a keyed retry replays it, and the callback credits it.
async fn deposit_as_connections_drop(app: &TestApp, token: &str) {
    // The gateway's connections were all in use a moment ago, so none is
    // pinged when it is handed out again.
    let deposit = async || {
        let request = app.request(Method::POST, "/api/v1/mpesa/initiate", Some(token));
        let response = request
            .header("Idempotency-Key", "dropped-connections-1")
            .json(&json!({"amount": 10_000}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        response.json::<Value>().await.unwrap()
    };
    let started = deposit().await;
    assert_eq!(started["checkout_request_id"], "ws_CO_DROPPED0001");
    assert_eq!(
        deposit().await,
        started,
        "the key's outcome was recorded too"
    );
    let callback = success_callback(
        &started["checkout_request_id"],
        100.0,
        "DRP1234567",
        254700000001,
    );
    acknowledged(app, &callback).await;
    wait_for_status(app, token, &started["ref"], "CONFIRMED").await;
}

#[tokio::test]
async fn bad_deposit_requests_are_refused() {
    let app = mpesa_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    for body in [
        json!({"amount": 10_050}),
        json!({"amount": 0}),
        json!({"amount": 30_000_000}),
        json!({"amount": 10_000, "phone": "0732345678"}),
        json!({"amount": 10_000, "phone": "nope"}),
    ] {
        let response = app
            .post("/api/v1/mpesa/initiate", Some(&token), body.clone())
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    let deposits: i64 = sqlx::query_scalar("SELECT count(*) FROM mpesa_deposits")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(deposits, 0);
    // One OAuth token serves many concurrent requests.
    let starts = (0..5).map(|_| {
        app.post(
            "/api/v1/mpesa/initiate",
            Some(&token),
            json!({"amount": 10_000}),
        )
    });
    futures::future::join_all(starts).await;
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM sim_daraja_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(tokens, 1);
}

// --- Withdrawals (B2C) ---------------------------------------------------------

pub(crate) async fn withdraw(app: &TestApp, token: &str, amount: i64) -> Value {
    let response = app
        .post(
            "/api/v1/wallet/withdraw",
            Some(token),
            json!({"amount": amount, "currency": "KES", "method": "mpesa"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let tx: Value = response.json().await.unwrap();
    assert_eq!(tx["status"], "PENDING");
    tx
}

/// The ConversationID Safaricom gave the payout, once its acknowledgement
/// is recorded (the request is sent after the customer's answer).
pub(crate) async fn conversation_of(app: &TestApp, hold_tx: &Value) -> String {
    eventually("the payout's acknowledgement", secs(10), async || {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT conversation_id FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid",
        )
        .bind(hold_tx["tx_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap()
    })
    .await
}

async fn settle_payout(app: &TestApp, conversation: &str, body: Value) {
    app.sim_payout(conversation, body).await;
}

/// "No such transaction" from Transaction Status is also how Daraja answers
/// a query that failed (an initiator it no longer accepts): it refunds only
/// a payout Safaricom never acknowledged, after three answers to three
/// queries (one delivered twice counts once), past the query deadline, each
/// counted only while an answer that found a transaction shows the query
/// works. One Safaricom acknowledged exists in M-Pesa and stays held. With
/// no recent evidence, the gateway asks about a payout it knows was
/// completed.
#[tokio::test]
async fn no_record_answers_refund_only_a_payout_safaricom_never_acknowledged() {
    let app = spawn_with(TestOptions {
        configure: |settings| {
            settings.mpesa.sim_delay_ms = 600_000;
            // The gateway asks nothing about a pending payout on its own.
            settings.mpesa.pending_timeout_s = 7_200;
            settings.mpesa.query_deadline_s = 1;
        },
        ..TestOptions::default()
    })
    .await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let acknowledged = withdraw(&app, &token, 20_000).await;
    let unacknowledged = withdraw(&app, &token, 30_000).await;
    let reported = withdraw(&app, &token, 25_000).await;
    for held in [&acknowledged, &unacknowledged, &reported] {
        conversation_of(&app, held).await;
    }
    lose_acknowledgement(&app, &unacknowledged).await;
    // M-Pesa's success for a payout whose acknowledgement was lost settles
    // nothing (its conversation cannot be checked), but no "no record"
    // answer refunds that payout afterwards.
    lose_acknowledgement(&app, &reported).await;
    let paid = json!({"Result": {"ResultType": 0, "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": withdrawal_ref(&app, &reported).await.to_string(),
        "ConversationID": "AG_20261205_LOST", "TransactionID": "SXR0000001"}});
    let answered = app
        .client
        .post(app.url(&format!(
            "/api/v1/mpesa/b2c/result?token={}",
            app.state.mpesa_callback_token
        )))
        .json(&paid)
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    let answers = StatusAnswers::new(&app);
    let three_not_found = async |held: &Value, tag: &str| {
        for query in 0..3 {
            let deliveries = if query == 0 { 2 } else { 1 };
            let conversation = format!("AG_20261205_{tag}{query}");
            answers.not_found(held, &conversation, deliveries).await;
        }
    };
    // Nothing yet shows the query works (2001 may be a refused query):
    // "no record" answers are not counted.
    for (tag, held) in [("A", &acknowledged), ("U", &unacknowledged)] {
        three_not_found(held, tag).await;
        assert_eq!(payout_state(&app, held).await, ("PENDING".to_owned(), 0));
    }
    // An answer that finds a transaction (the acknowledged payout, still in
    // progress) shows it works: three more "no record" answers refund the
    // unacknowledged payout; the acknowledged one stays held.
    answers
        .found(&acknowledged, "AG_20261205_FOUND", "Pending")
        .await;
    three_not_found(&acknowledged, "B").await;
    three_not_found(&unacknowledged, "V").await;
    three_not_found(&reported, "R").await;
    assert_eq!(
        payout_state(&app, &reported).await,
        ("PENDING".to_owned(), 3),
        "reported paid: not refunded"
    );
    let kept: Option<String> = sqlx::query_scalar(
        "SELECT reported_paid_receipt FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid",
    )
    .bind(reported["tx_id"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(kept.as_deref(), Some("SXR0000001"), "shown to operators");
    assert_eq!(
        payout_state(&app, &acknowledged).await,
        ("PENDING".to_owned(), 3)
    );
    assert_eq!(
        payout_state(&app, &unacknowledged).await,
        ("FAILED".to_owned(), 3)
    );
    let fee = acknowledged["fee"].as_i64().unwrap();
    let reported_fee = reported["fee"].as_i64().unwrap();
    assert_eq!(
        app.balance(&token, "KES").await,
        before - 20_000 - fee - 25_000 - reported_fee
    );
    let again: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM mpesa_callbacks WHERE kind = 'txstatus_result' AND outcome = 'answered already'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(again, 5, "the second delivery of each first answer");

    // The evidence goes stale. A "no record" answer without it has the
    // gateway ask about a payout it knows was completed; once that answer
    // is in, "no record" answers count again.
    let completed = withdraw(&app, &token, 10_000).await;
    let conversation = conversation_of(&app, &completed).await;
    settle_payout(&app, &conversation, json!({"result_code": 0})).await;
    eventually("the payout completed", secs(10), async || {
        (payout_state(&app, &completed).await.0 == "COMPLETED").then_some(())
    })
    .await;
    let lost = withdraw(&app, &token, 40_000).await;
    conversation_of(&app, &lost).await;
    lose_acknowledgement(&app, &lost).await;
    sqlx::query(
        "UPDATE mpesa_status_queries SET answered_at = now() - interval '1 hour' WHERE found",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    answers.not_found(&lost, "AG_20261205_L", 1).await;
    assert_eq!(payout_state(&app, &lost).await, ("PENDING".to_owned(), 0));
    let known = withdrawal_ref(&app, &completed).await;
    eventually("the control query's answer", secs(20), async || {
        let found: Option<bool> = sqlx::query_scalar(
            "SELECT found FROM mpesa_status_queries WHERE control AND withdrawal_ref = $1",
        )
        .bind(known)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
        .flatten();
        (found == Some(true)).then_some(())
    })
    .await;
    three_not_found(&lost, "L").await;
    assert_eq!(payout_state(&app, &lost).await, ("FAILED".to_owned(), 3));
    assert_eq!(payout_state(&app, &completed).await.0, "COMPLETED");
    app.assert_balanced().await;
}

/// As if Safaricom's acknowledgement of the payout had been lost, and the
/// payout sent long ago.
async fn lose_acknowledgement(app: &TestApp, held: &Value) {
    sqlx::query(
        "UPDATE mpesa_withdrawals SET conversation_id = NULL, submitted_at = now() - interval '1 hour'
         WHERE hold_tx_id = $1::uuid",
    )
    .bind(held["tx_id"].as_str().unwrap())
    .execute(&app.pool)
    .await
    .unwrap();
}

async fn withdrawal_ref(app: &TestApp, held: &Value) -> uuid::Uuid {
    sqlx::query_scalar("SELECT ref FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid")
        .bind(held["tx_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Transaction Status answers to queries the test records as the gateway's.
struct StatusAnswers<'a> {
    app: &'a TestApp,
    url: String,
}

impl<'a> StatusAnswers<'a> {
    fn new(app: &'a TestApp) -> Self {
        let url = app.url(&format!(
            "/api/v1/mpesa/txstatus/result?token={}",
            app.state.mpesa_callback_token
        ));
        Self { app, url }
    }

    /// Records a query about `held` as `conversation` and delivers its
    /// answer `deliveries` times.
    async fn answer(&self, held: &Value, conversation: &str, answer: Value, deliveries: usize) {
        sqlx::query(
            "INSERT INTO mpesa_status_queries (conversation_id, withdrawal_ref)
             SELECT $2, ref FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid",
        )
        .bind(held["tx_id"].as_str().unwrap())
        .bind(conversation)
        .execute(&self.app.pool)
        .await
        .unwrap();
        for _ in 0..deliveries {
            let answered = self
                .app
                .client
                .post(&self.url)
                .json(&answer)
                .send()
                .await
                .unwrap();
            assert_eq!(answered.status(), StatusCode::OK);
        }
    }

    async fn not_found(&self, held: &Value, conversation: &str, deliveries: usize) {
        let answer = json!({"Result": {"ResultType": 0, "ResultCode": 2001,
            "ResultDesc": "The transaction could not be found.", "OriginatorConversationID": "1",
            "ConversationID": conversation, "TransactionID": ""}});
        self.answer(held, conversation, answer, deliveries).await;
    }

    async fn found(&self, held: &Value, conversation: &str, status: &str) {
        let answer = json!({"Result": {"ResultType": 0, "ResultCode": 0,
            "ResultDesc": "The service request is processed successfully.", "OriginatorConversationID": "1",
            "ConversationID": conversation, "TransactionID": "",
            "ResultParameters": {"ResultParameter": [{"Key": "TransactionStatus", "Value": status}]}}});
        self.answer(held, conversation, answer, 1).await;
    }
}

/// A withdrawal's status and how many "no such transaction" answers it got.
pub(crate) async fn payout_state(app: &TestApp, held: &Value) -> (String, i32) {
    sqlx::query_as(
        "SELECT status, status_no_record FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid",
    )
    .bind(held["tx_id"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

pub(crate) async fn payout_hold(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT balance FROM accounts WHERE kind = 'payout_hold' AND currency = 'KES'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_withdrawal_is_held_then_paid_out_on_success() {
    let app = mpesa_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let tx = withdraw(&app, &token, 50_000).await;
    let fee = tx["fee"].as_i64().unwrap();
    assert_eq!(fee, 1_000, "KES 500.00 ≈ USD 3.86: 2 %");
    assert_eq!(app.balance(&token, "KES").await, before - 51_000);
    assert_eq!(payout_hold(&app).await, 50_000);
    settle_payout(
        &app,
        &conversation_of(&app, &tx).await,
        json!({"result_code": 0}),
    )
    .await;
    let done = app
        .get_json(
            &format!("/api/v1/transactions/{}", tx["tx_id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(payout_hold(&app).await, 0);
    assert_eq!(app.balance(&token, "KES").await, before - 51_000);
    let admin = app.admin_token().await;
    let listing = app
        .get_json("/api/v1/admin/mpesa-transactions", &admin)
        .await;
    assert_eq!(listing["withdrawals"][0]["status"], "COMPLETED");
    assert!(listing["withdrawals"][0]["mpesa_receipt"].is_string());
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_failed_or_timed_out_payout_returns_amount_and_fee_once() {
    let app = mpesa_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let failed = withdraw(&app, &token, 20_000).await;
    let timed_out = withdraw(&app, &token, 30_000).await;
    settle_payout(
        &app,
        &conversation_of(&app, &failed).await,
        json!({"result_code": 2001}),
    )
    .await;
    settle_payout(
        &app,
        &conversation_of(&app, &timed_out).await,
        json!({"timeout": true}),
    )
    .await;
    // A queue timeout is no proof the payout will not be made: it settles
    // nothing, and the payout stays held until Transaction Status says
    // M-Pesa has it as failed (read from the callback's own outcome, which
    // a status answer arriving just after cannot change).
    let on_timeout: String =
        sqlx::query_scalar("SELECT outcome FROM mpesa_callbacks WHERE kind = 'b2c_timeout'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(on_timeout, "queue timeout; asking Transaction Status");
    eventually("both refunded in full", secs(30), async || {
        (app.balance(&token, "KES").await == before).then_some(())
    })
    .await;
    assert_eq!(payout_hold(&app).await, 0);
    for tx in [&failed, &timed_out] {
        let view = app
            .get_json(
                &format!("/api/v1/transactions/{}", tx["tx_id"].as_str().unwrap()),
                &token,
            )
            .await;
        assert_eq!(view["status"], "FAILED");
    }
    // A repeated result changes nothing.
    let result = json!({"Result": {"ResultType": 0, "ResultCode": 0, "ResultDesc": "ok",
        "OriginatorConversationID": sqlx::query_scalar::<_, uuid::Uuid>("SELECT ref FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid")
            .bind(failed["tx_id"].as_str().unwrap()).fetch_one(&app.pool).await.unwrap(),
        "ConversationID": "x", "TransactionID": "LATE"}});
    let url = app.url(&format!(
        "/api/v1/mpesa/b2c/result?token={}",
        app.state.mpesa_callback_token
    ));
    assert_eq!(
        app.client
            .post(url)
            .json(&result)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.balance(&token, "KES").await, before);
    app.assert_balanced().await;
}

#[tokio::test]
async fn withdrawals_follow_the_rules_of_any_outgoing_movement() {
    let app = mpesa_app().await;
    let poor = app.new_user("+254716000001", "Poor Person").await;
    let response = app
        .post(
            "/api/v1/wallet/withdraw",
            Some(&poor),
            json!({"amount": 10_000, "currency": "KES", "method": "mpesa"}),
        )
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
    )
    .await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let agent = app
        .post(
            "/api/v1/wallet/withdraw",
            Some(&token),
            json!({"amount": 10_000, "currency": "KES", "method": "agent"}),
        )
        .await;
    assert_problem(agent, StatusCode::BAD_REQUEST, "validation_error").await;
    let cents = app
        .post(
            "/api/v1/wallet/withdraw",
            Some(&token),
            json!({"amount": 10_050, "currency": "KES", "method": "mpesa"}),
        )
        .await;
    assert_problem(cents, StatusCode::BAD_REQUEST, "validation_error").await;
    // A PENDING customer may move USD 100 a day: KES 15,000 is about USD 116.
    app.fund("+254716000001", "KES", 2_000_000).await;
    let over = app
        .post(
            "/api/v1/wallet/withdraw",
            Some(&poor),
            json!({"amount": 1_500_000, "currency": "KES", "method": "mpesa"}),
        )
        .await;
    assert_problem(over, StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded").await;
    // A retried request with the same key holds the money once and pays out once.
    let key_send = || {
        app.request(
            reqwest::Method::POST,
            "/api/v1/wallet/withdraw",
            Some(&token),
        )
        .header("Idempotency-Key", "wd-1")
        .json(&json!({"amount": 10_000, "currency": "KES", "method": "mpesa"}))
        .send()
    };
    let first = key_send().await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let again = key_send().await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    // The payout request goes out after the answer: counted once it is acknowledged.
    conversation_of(&app, &first.json::<Value>().await.unwrap()).await;
    let payouts: i64 = sqlx::query_scalar("SELECT count(*) FROM sim_daraja_b2c")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(payouts, 1);
}

#[tokio::test]
async fn a_deposit_recorded_but_never_sent_to_safaricom_fails_instead_of_blocking_the_sweeper() {
    let app = mpesa_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    // The gateway stopped between recording the deposit and calling Daraja.
    let stuck = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO mpesa_deposits (ref, user_id, phone, amount, created_at)
         SELECT $1, id, '254700000001', 10000, now() - interval '1 minute' FROM users WHERE phone = $2",
    )
    .bind(stuck)
    .bind(USER_PHONE)
    .execute(&app.pool)
    .await
    .unwrap();
    let lost = initiate(&app, &token, 20_000).await;
    answer(&app, &lost["checkout_request_id"], 0, false).await;
    let failed = wait_for_status(&app, &token, &json!(stuck.to_string()), "FAILED").await;
    assert_eq!(
        failed["result_desc"],
        "the payment prompt was never confirmed sent"
    );
    wait_for_status(&app, &token, &lost["ref"], "CONFIRMED").await;
}

/// Daraja's STK callback for a prompt the customer cancelled.
fn cancelled_callback(checkout: &Value) -> Value {
    json!({"Body": {"stkCallback": {
        "MerchantRequestID": "29115-34620561-1",
        "CheckoutRequestID": checkout,
        "ResultCode": 1032,
        "ResultDesc": "Request cancelled by user"
    }}})
}

/// What the simulated network decided for a payout whose answer it lost,
/// as the B2C Result Daraja would have posted.
async fn lost_b2c_result(app: &TestApp, conversation: &str) -> Value {
    let (originator, code, receipt, amount, phone): (String, i32, Option<String>, i64, String) =
        sqlx::query_as(
            "SELECT originator_conversation_id, result_code, receipt, amount, phone
             FROM sim_daraja_b2c WHERE conversation_id = $1 AND status = 'SETTLED'",
        )
        .bind(conversation)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let mut result = json!({"Result": {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": if code == 0 { "The service request is processed successfully." } else { "The initiator information is invalid." },
        "OriginatorConversationID": originator,
        "ConversationID": conversation,
        "TransactionID": receipt.clone().unwrap_or_default(),
    }});
    if let Some(receipt) = receipt {
        result["Result"]["ResultParameters"] = json!({"ResultParameter": [
            {"Key": "TransactionAmount", "Value": amount},
            {"Key": "TransactionReceipt", "Value": receipt},
            {"Key": "ReceiverPartyPublicName", "Value": format!("{phone} - CHAINPAY CUSTOMER")},
            {"Key": "TransactionCompletedDateTime", "Value": "02.12.2026 10:21:15"},
        ]});
    }
    result
}

/// Every copy of every callback at once, each after a random delay of up to
/// three seconds (so they arrive out of order and interleave with the
/// gateway's own STK Query and Transaction Status recovery); every copy is
/// acknowledged.
async fn storm(app: &TestApp, callbacks: Vec<(String, Value)>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let copies = callbacks.into_iter().flat_map(|(url, body)| {
        let delays: Vec<u64> = (0..10).map(|_| rng.gen_range(0..3_000)).collect();
        delays.into_iter().map(move |delay| {
            let (client, url, body) = (app.client.clone(), url.clone(), body.clone());
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                client.post(url).json(&body).send().await.unwrap().status()
            }
        })
    });
    for status in futures::future::join_all(copies).await {
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_storm_of_repeated_late_and_stray_callbacks_settles_everything_exactly_once() {
    let app = crate::reconciliation::expiring_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    // Safaricom settles everything but the callbacks are lost: only the
    // storm (and the gateway's own queries) can tell the gateway.
    let paid = initiate(&app, &token, 11_000).await;
    let cancelled = initiate(&app, &token, 12_000).await;
    let expiring = initiate(&app, &token, 13_000).await;
    answer(&app, &paid["checkout_request_id"], 0, false).await;
    answer(&app, &cancelled["checkout_request_id"], 1032, false).await;
    let receipt: String = sqlx::query_scalar(
        "SELECT mpesa_receipt FROM sim_daraja_pushes WHERE checkout_request_id = $1",
    )
    .bind(paid["checkout_request_id"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let paid_out = withdraw(&app, &token, 20_000).await;
    let refused = withdraw(&app, &token, 30_000).await;
    let (paid_conversation, refused_conversation) = (
        conversation_of(&app, &paid_out).await,
        conversation_of(&app, &refused).await,
    );
    sqlx::query("UPDATE sim_daraja_b2c SET deliver = false")
        .execute(&app.pool)
        .await
        .unwrap();
    settle_payout(&app, &paid_conversation, json!({"result_code": 0})).await;
    settle_payout(&app, &refused_conversation, json!({"result_code": 2001})).await;
    let (stk, b2c) = (
        callback_url(&app),
        app.url(&format!(
            "/api/v1/mpesa/b2c/result?token={}",
            app.state.mpesa_callback_token
        )),
    );
    storm(
        &app,
        vec![
            (
                stk.clone(),
                success_callback(&paid["checkout_request_id"], 110.0, &receipt, 254700000001),
            ),
            (
                stk.clone(),
                cancelled_callback(&cancelled["checkout_request_id"]),
            ),
            (stk.clone(), cancelled_callback(&json!("ws_CO_UNKNOWN0000"))),
            (b2c.clone(), lost_b2c_result(&app, &paid_conversation).await),
            (
                b2c.clone(),
                lost_b2c_result(&app, &refused_conversation).await,
            ),
        ],
    )
    .await;
    wait_for_status(&app, &token, &expiring["ref"], "EXPIRED").await;
    // Late: the expired prompt's cancellation, and the settled ones again.
    storm(
        &app,
        vec![
            (
                stk.clone(),
                cancelled_callback(&expiring["checkout_request_id"]),
            ),
            (
                stk.clone(),
                success_callback(&paid["checkout_request_id"], 110.0, &receipt, 254700000001),
            ),
            (b2c.clone(), lost_b2c_result(&app, &paid_conversation).await),
            (b2c, lost_b2c_result(&app, &refused_conversation).await),
        ],
    )
    .await;

    assert_eq!(
        status(&app, &token, &paid["ref"]).await["status"],
        "CONFIRMED"
    );
    assert_eq!(
        status(&app, &token, &cancelled["ref"]).await["status"],
        "FAILED"
    );
    assert_eq!(
        status(&app, &token, &expiring["ref"]).await["status"],
        "EXPIRED"
    );
    let payouts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT w.status, (SELECT count(*) FROM transactions t WHERE t.tx_id = w.settle_tx_id)
         FROM mpesa_withdrawals w ORDER BY w.amount",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(payouts, vec![("COMPLETED".into(), 1), ("FAILED".into(), 1)]);
    let counted = |kind: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM transactions WHERE tx_type = $1")
                .bind(kind)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(counted("deposit").await, 1, "one deposit credited, once");
    let fee = paid_out["fee"].as_i64().unwrap();
    assert_eq!(
        app.balance(&token, "KES").await,
        before + 11_000 - 20_000 - fee,
        "the refused payout came back once, with its fee"
    );
    assert_eq!(payout_hold(&app).await, 0);
    let run = crate::reconciliation::run(&app).await;
    assert_eq!(run["clean"], true, "{run:#}");
    app.assert_balanced().await;
}

/// Our payout reference is no secret (the customer reads it); the
/// ConversationID Safaricom gave the request is. A result forged with a
/// leaked callback token but the wrong ConversationID (or none to compare)
/// settles nothing, so a payout M-Pesa is paying is never also refunded.
#[tokio::test]
async fn a_payout_result_naming_another_conversation_settles_nothing() {
    let app = spawn_with(TestOptions {
        configure: |settings| settings.mpesa.sim_delay_ms = 600_000,
        ..TestOptions::default()
    })
    .await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let held = withdraw(&app, &token, 20_000).await;
    let conversation = conversation_of(&app, &held).await;
    let reference: uuid::Uuid =
        sqlx::query_scalar("SELECT ref FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid")
            .bind(held["tx_id"].as_str().unwrap())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let url = app.url(&format!(
        "/api/v1/mpesa/b2c/result?token={}",
        app.state.mpesa_callback_token
    ));
    let send_result = |body: Value| app.client.post(&url).json(&body).send();
    let post_result = |body| async { send_result(body).await.unwrap() };
    let failed = |conversation: &str| {
        json!({"Result": {"ResultType": 0, "ResultCode": 2001, "ResultDesc": "The initiator information is invalid.",
            "OriginatorConversationID": reference, "ConversationID": conversation, "TransactionID": ""}})
    };
    let forged = post_result(failed("AG_FORGED")).await;
    assert_eq!(forged.status(), StatusCode::OK);
    assert_eq!(payout_state(&app, &held).await.0, "PENDING");
    let fee = held["fee"].as_i64().unwrap();
    assert_eq!(app.balance(&token, "KES").await, before - 20_000 - fee);
    let rejected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'mpesa.b2c_result' AND detail->>'reason' = 'conversation_mismatch'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(rejected, 1);

    // With no acknowledgement recorded there is nothing to compare: a
    // result, failure or success, is left to Transaction Status, which
    // asks Safaricom (a forged success would pay out a payout M-Pesa failed).
    let acknowledged = "UPDATE mpesa_withdrawals SET conversation_id = $2 WHERE ref = $1";
    for stored in [None, Some(conversation.as_str())] {
        sqlx::query(acknowledged)
            .bind(reference)
            .bind(stored)
            .execute(&app.pool)
            .await
            .unwrap();
        if stored.is_none() {
            let mut paid = failed("AG_ANY");
            paid["Result"]["ResultCode"] = json!(0);
            paid["Result"]["TransactionID"] = json!("FORGED0001");
            for unsure in [failed("AG_ANY"), paid] {
                assert_eq!(post_result(unsure).await.status(), StatusCode::OK);
                assert_eq!(payout_state(&app, &held).await.0, "PENDING");
            }
        }
    }

    let real = post_result(failed(&conversation)).await;
    assert_eq!(real.status(), StatusCode::OK);
    assert_eq!(payout_state(&app, &held).await.0, "FAILED");
    assert_eq!(app.balance(&token, "KES").await, before);

    // A success for the refunded payout, its conversation unknown: the
    // customer may have the money twice, so it is a contradiction for
    // operators, but nothing of the customer's is reserved on its word.
    sqlx::query(acknowledged)
        .bind(reference)
        .bind(None::<&str>)
        .execute(&app.pool)
        .await
        .unwrap();
    let mut paid = failed("AG_LATE");
    paid["Result"]["ResultCode"] = json!(0);
    paid["Result"]["TransactionID"] = json!("LATE000009");
    assert_eq!(post_result(paid).await.status(), StatusCode::OK);
    let found: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, reserved FROM payout_contradictions WHERE withdrawal_ref = $1",
    )
    .bind(reference)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(found, [("PAID AFTER REFUND".to_owned(), 0)]);
    assert_eq!(app.balance(&token, "KES").await, before);
    app.assert_balanced().await;
}
