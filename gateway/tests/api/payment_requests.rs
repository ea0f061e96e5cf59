//! Request to pay, end to end: a business asks with an API key, the
//! customer gets an SMS and pays over USSD (once, even when two phones
//! approve at the same moment) or declines over REST, an unanswered request
//! expires, and the business hears each outcome by a signed webhook. Also
//! a business withdrawing its takings to M-Pesa.

use crate::merchants::{merchant_balance, new_key, receiver, register, webhook_app, OWNER};
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn ask(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.post("/api/v1/merchant/payment-requests", Some(key), body)
        .await
}

async fn asked(app: &TestApp, key: &str, reference: &str, amount: i64) -> Value {
    let response = ask(
        app,
        key,
        json!({"customer_phone": USER_PHONE, "amount": amount, "currency": "KES", "reference": reference}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// A USSD session at the PIN screen of the customer's first pending request.
async fn at_pin_screen(app: &TestApp) -> Session<'_> {
    let (mut s, _) = Session::dial(app, USER_PHONE).await;
    let list = s.keys(&["10", "3"]).await;
    assert!(list.contains("1. CHAI CORNER KES 300.00"), "{list}");
    let screen = s.press("1").await;
    assert!(
        screen.contains("CHAI CORNER asks you to pay KES 300.00, ref INV-1"),
        "{screen}"
    );
    assert!(s.press("1").await.contains("Enter PIN"));
    s
}

#[tokio::test]
async fn a_request_approved_twice_at_once_over_ussd_is_paid_once_and_the_business_is_told() {
    let app = webhook_app().await;
    register(&app, OWNER, "Chai Corner", "till").await;
    let owner = app.token(OWNER, "5831").await;
    let (url, hooks) = receiver(0).await;
    let endpoint = app
        .post(
            "/api/v1/merchant/webhooks",
            Some(&owner),
            json!({"url": url, "events": ["payment_request.paid"]}),
        )
        .await;
    assert_eq!(endpoint.status(), StatusCode::CREATED);
    let key = new_key(&app, &owner, json!(["payment-requests:write"])).await;
    let key = key["key"].as_str().unwrap();
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&customer, "KES").await;

    let request = asked(&app, key, "INV-1", 30_000).await;
    assert_eq!(request["status"], "PENDING");
    assert_eq!(request["merchant_name"], "Chai Corner");
    let sms = app.last_sms(USER_PHONE).await;
    assert!(
        sms.contains("CHAI CORNER asks you to pay KES 300.00, ref INV-1"),
        "{sms}"
    );
    let again = ask(
        &app,
        key,
        json!({"customer_phone": USER_PHONE, "amount": 30_000, "currency": "KES", "reference": "INV-1"}),
    )
    .await;
    assert_eq!(again.status(), StatusCode::OK, "a retry finds the first");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["request_id"], request["request_id"]);
    let other_terms = ask(
        &app,
        key,
        json!({"customer_phone": USER_PHONE, "amount": 99_000, "currency": "KES", "reference": "INV-1"}),
    )
    .await;
    assert_problem(other_terms, StatusCode::CONFLICT, "conflict").await;

    let (mut first, mut second) = (at_pin_screen(&app).await, at_pin_screen(&app).await);
    let (a, b) = tokio::join!(first.press(DEMO_PIN), second.press(DEMO_PIN));
    let paid = [&a, &b]
        .iter()
        .filter(|s| s.contains("paid to CHAI CORNER"))
        .count();
    assert_eq!(paid, 1, "exactly one approval pays: {a} / {b}");
    assert!(
        [&a, &b]
            .iter()
            .any(|s| s.contains("already paid, declined or has expired")),
        "{a} / {b}"
    );
    assert_eq!(app.balance(&customer, "KES").await, before - 30_000);
    assert_eq!(merchant_balance(&app, OWNER, "KES").await, 30_000 - 300);

    let id = request["request_id"].as_str().unwrap();
    let status = app
        .get_json(&format!("/api/v1/merchant/payment-requests/{id}"), key)
        .await;
    assert_eq!(status["status"], "PAID");
    assert!(status["payment_id"].is_string());
    let late = app
        .post(
            &format!("/api/v1/payment-requests/{id}/approve"),
            Some(&customer),
            json!({}),
        )
        .await;
    assert_problem(late, StatusCode::CONFLICT, "request_not_pending").await;

    let seen = eventually("the paid webhook", secs(15), async || {
        hooks.seen.lock().unwrap().first().cloned()
    })
    .await;
    let event: Value = serde_json::from_str(&seen.1).unwrap();
    assert_eq!(event["type"], "payment_request.paid");
    assert_eq!(event["data"]["reference"], "INV-1");
    assert_eq!(event["data"]["payment_id"], status["payment_id"]);
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_declined_or_expired_request_cannot_be_paid_and_a_retried_approval_pays_once() {
    let app = webhook_app().await;
    register(&app, OWNER, "Chai Corner", "till").await;
    let owner = app.token(OWNER, "5831").await;
    let (url, hooks) = receiver(0).await;
    let events = json!(["payment_request.declined", "payment_request.expired"]);
    let endpoint = app
        .post(
            "/api/v1/merchant/webhooks",
            Some(&owner),
            json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(endpoint.status(), StatusCode::CREATED);
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let declined = asked(&app, &owner, "A-1", 1_000).await;
    let expiring = asked(&app, &owner, "A-2", 2_000).await;
    let paid = asked(&app, &owner, "A-3", 3_000).await;
    let third = ask(
        &app,
        &owner,
        json!({"customer_phone": USER_PHONE, "amount": 1, "currency": "KES", "reference": "A-4"}),
    )
    .await;
    assert_problem(third, StatusCode::CONFLICT, "conflict").await;

    let waiting = app.get_json("/api/v1/payment-requests", &customer).await;
    assert_eq!(waiting["requests"].as_array().unwrap().len(), 3);
    let path = |r: &Value, verb: &str| {
        format!(
            "/api/v1/payment-requests/{}/{verb}",
            r["request_id"].as_str().unwrap()
        )
    };
    let no = app
        .post(&path(&declined, "decline"), Some(&customer), json!({}))
        .await;
    assert_eq!(no.status(), StatusCode::OK);
    let pay_declined = app
        .post(&path(&declined, "approve"), Some(&customer), json!({}))
        .await;
    assert_problem(pay_declined, StatusCode::CONFLICT, "request_not_pending").await;
    // Declining frees room; a feature phone declines the next one.
    asked(&app, &owner, "A-5", 5_000).await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    let list = s.keys(&["10", "3"]).await;
    assert!(list.contains("3. CHAI CORNER KES 50.00"), "{list}");
    let declined_on_phone = s.keys(&["3", "2"]).await;
    assert!(
        declined_on_phone.contains("Request declined"),
        "{declined_on_phone}"
    );

    sqlx::query("UPDATE payment_requests SET expires_at = now() - interval '1 second' WHERE reference = 'A-2'")
        .execute(&app.pool)
        .await
        .unwrap();
    let status_path = format!(
        "/api/v1/merchant/payment-requests/{}",
        expiring["request_id"].as_str().unwrap()
    );
    eventually("the request to expire", secs(15), async || {
        let view = app.get_json(&status_path, &owner).await;
        (view["status"] == "EXPIRED").then_some(())
    })
    .await;

    let before = app.balance(&customer, "KES").await;
    let approve = |key: &'static str| {
        app.request(
            reqwest::Method::POST,
            &path(&paid, "approve"),
            Some(&customer),
        )
        .header("Idempotency-Key", key)
        .json(&json!({}))
        .send()
    };
    let (one, two) = (approve("k-1").await.unwrap(), approve("k-1").await.unwrap());
    assert_eq!(
        (one.status(), two.status()),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    let (one, two): (Value, Value) = (one.json().await.unwrap(), two.json().await.unwrap());
    assert_eq!(one["tx_id"], two["tx_id"], "the retry answers as the first");
    assert_eq!(app.balance(&customer, "KES").await, before - 3_000);

    let types = eventually("both webhooks", secs(15), async || {
        let seen = hooks.seen.lock().unwrap().clone();
        let types: Vec<String> = seen
            .iter()
            .map(|(_, body)| {
                serde_json::from_str::<Value>(body).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        (types.len() >= 3).then_some(types)
    })
    .await;
    assert!(
        types.contains(&"payment_request.declined".to_owned()),
        "{types:?}"
    );
    assert!(
        types.contains(&"payment_request.expired".to_owned()),
        "{types:?}"
    );
    app.assert_balanced().await;
}

#[tokio::test]
async fn requests_are_validated_and_bounded() {
    let app = spawn_app().await;
    register(&app, OWNER, "Chai Corner", "till").await;
    let owner = app.token(OWNER, "5831").await;
    let body = |phone: &str, reference: &str, expires: i64| json!({"customer_phone": phone, "amount": 500, "currency": "KES", "reference": reference, "expires_in_s": expires});
    for (bad, code) in [
        (body(USER_PHONE, "R-1", 10), "validation_error"),
        (body(USER_PHONE, "no spaces", 600), "validation_error"),
        (body("0712", "R-1", 600), "validation_error"),
    ] {
        assert_problem(ask(&app, &owner, bad).await, StatusCode::BAD_REQUEST, code).await;
    }
    let unknown = ask(&app, &owner, body("+254799999999", "R-1", 600)).await;
    let unknown = assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    // A blocked customer or an admin answers exactly as an unknown number:
    // a business never learns that an account is suspended or listed.
    let admin = ask(&app, &owner, body(ADMIN_PHONE, "R-1", 600)).await;
    let admin = assert_problem(admin, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(admin["detail"], unknown["detail"]);
    let suspend = "UPDATE users SET suspended = $2 WHERE phone = $1";
    for blocked in [true, false] {
        sqlx::query(suspend)
            .bind(USER_PHONE)
            .bind(blocked)
            .execute(&app.pool)
            .await
            .unwrap();
        if blocked {
            let response = ask(&app, &owner, body(USER_PHONE, "R-1", 600)).await;
            let problem = assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
            assert_eq!(problem["detail"], unknown["detail"]);
        }
    }
    let own = ask(&app, &owner, body(OWNER, "R-1", 600)).await;
    assert_problem(own, StatusCode::BAD_REQUEST, "validation_error").await;
    let read_only = new_key(&app, &owner, json!(["payments:read"])).await;
    let out_of_scope = ask(
        &app,
        read_only["key"].as_str().unwrap(),
        body(USER_PHONE, "R-1", 600),
    )
    .await;
    assert_problem(out_of_scope, StatusCode::FORBIDDEN, "forbidden").await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let not_owner = ask(&app, &customer, body(ADMIN_PHONE, "R-1", 600)).await;
    assert_problem(not_owner, StatusCode::FORBIDDEN, "forbidden").await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_requests")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "no refusal wrote a request");

    // Declining frees a waiting place, but a business asks one customer
    // (each time an SMS) at most ten times a day.
    for n in 0..12 {
        let response = ask(&app, &owner, body(USER_PHONE, &format!("D-{n}"), 600)).await;
        if n >= 10 {
            let problem = assert_problem(response, StatusCode::CONFLICT, "conflict").await;
            assert!(problem["detail"]
                .as_str()
                .unwrap()
                .contains("ask again tomorrow"));
            continue;
        }
        assert_eq!(response.status(), StatusCode::CREATED, "request {n}");
        let request: Value = response.json().await.unwrap();
        let decline = format!(
            "/api/v1/payment-requests/{}/decline",
            request["request_id"].as_str().unwrap()
        );
        let declined = app.post(&decline, Some(&customer), json!({})).await;
        assert_eq!(declined.status(), StatusCode::OK, "decline {n}");
    }
    let texted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sms_outbox WHERE to_phone = $1 AND message LIKE '%asks you to pay%'",
    )
    .bind(USER_PHONE)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(texted, 10);

    // An owner whose KYC was rejected: their till takes no payment, so
    // their business asks for none.
    app.verified_user("+254711330004", "Another Customer", 0)
        .await;
    let kyc = "UPDATE users SET kyc_status = $2 WHERE phone = $1";
    for status in ["REJECTED", "VERIFIED"] {
        sqlx::query(kyc)
            .bind(OWNER)
            .bind(status)
            .execute(&app.pool)
            .await
            .unwrap();
        if status == "REJECTED" {
            let refused = ask(&app, &owner, body("+254711330004", "K-1", 600)).await;
            let problem = assert_problem(refused, StatusCode::CONFLICT, "conflict").await;
            assert!(
                problem["detail"].as_str().unwrap().contains("under review"),
                "{problem}"
            );
        }
    }

    // And of all its customers, a thousand a day: a key it lost cannot
    // text the whole customer base in the platform's name.
    sqlx::query(
        "INSERT INTO payment_requests (id, merchant_id, customer_id, amount, currency, reference, expires_at, status, decided_at)
         SELECT gen_random_uuid(), m.id, u.id, 500, 'KES', 'BULK-' || n, now() + interval '1 hour', 'DECLINED', now()
         FROM merchants m, users u, generate_series(1, 990) AS n WHERE u.phone = $1",
    )
    .bind(ADMIN_PHONE)
    .execute(&app.pool)
    .await
    .unwrap();
    let over = ask(&app, &owner, body("+254711330004", "B-1", 600)).await;
    let problem = assert_problem(over, StatusCode::CONFLICT, "conflict").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("1000 requests"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_business_withdraws_its_takings_to_the_owners_mpesa() {
    let app = spawn_app().await;
    let till = register(&app, OWNER, "Chai Corner", "till").await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    crate::merchants::pay_till(&app, &customer, &till, 50_000).await;
    let owner = app.token(OWNER, "5831").await;
    let wallet_before = app.balance(&owner, "KES").await;
    let takings = merchant_balance(&app, OWNER, "KES").await;
    assert_eq!(takings, 50_000 - 500);

    let too_much = app
        .post(
            "/api/v1/merchant/withdrawals",
            Some(&owner),
            json!({"amount": 60_000}),
        )
        .await;
    assert_problem(
        too_much,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
    )
    .await;
    let stranger = app
        .post(
            "/api/v1/merchant/withdrawals",
            Some(&customer),
            json!({"amount": 10_000}),
        )
        .await;
    assert_problem(stranger, StatusCode::FORBIDDEN, "forbidden").await;

    let held = app
        .post(
            "/api/v1/merchant/withdrawals",
            Some(&owner),
            json!({"amount": 20_000}),
        )
        .await;
    assert_eq!(held.status(), StatusCode::ACCEPTED);
    let held: Value = held.json().await.unwrap();
    let fee = held["fee"].as_i64().unwrap();
    assert!(fee > 0);
    assert_eq!(
        merchant_balance(&app, OWNER, "KES").await,
        takings - 20_000 - fee
    );
    let path = format!("/api/v1/transactions/{}", held["tx_id"].as_str().unwrap());
    eventually("M-Pesa to pay the owner", secs(30), async || {
        let tx = app.get_json(&path, &owner).await;
        (tx["status"] == "COMPLETED").then_some(())
    })
    .await;
    assert_eq!(
        merchant_balance(&app, OWNER, "KES").await,
        takings - 20_000 - fee
    );
    assert_eq!(
        app.balance(&owner, "KES").await,
        wallet_before,
        "the wallet is untouched"
    );
    assert!(app.last_sms(OWNER).await.contains("KES 200.00"));
    app.assert_balanced().await;
}
