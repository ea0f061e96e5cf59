//! Merchants over HTTP: an admin registers a till and a paybill for verified
//! customers; customers pay them (no fee to the customer, the merchant's
//! capped percentage in the same entry), idempotently, with an SMS each
//! naming the business; the owner reads the statement as JSON and CSV.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const OWNER: &str = "+254711300001";
const PAYBILL_OWNER: &str = "+254711300002";

async fn register(app: &TestApp, owner: &str, name: &str, kind: &str) -> Value {
    app.verified_user(owner, name, 0).await;
    let admin = app.admin_token().await;
    let response = app
        .post(
            "/api/v1/admin/merchants",
            Some(&admin),
            json!({"name": name, "owner_phone": owner, "kind": kind}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn merchant_balance(app: &TestApp, owner: &str, currency: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT a.balance FROM accounts a JOIN users u ON u.id = a.user_id WHERE a.kind = 'merchant' AND u.phone = $1 AND a.currency = $2",
    )
    .bind(owner)
    .bind(currency)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_customer_pays_a_till_and_the_merchant_receives_it_less_its_fee() {
    let app = spawn_app().await;
    let till = register(&app, OWNER, "Mama Mboga Greens", "till").await;
    let number = till["number"].as_str().unwrap().to_owned();
    assert_eq!(number.len(), 6);
    assert_eq!(till["kind"], "till");
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;

    let preview = app
        .get_json(
            &format!("/api/v1/wallet/pay/preview?till={number}&amount=25000&currency=KES"),
            &token,
        )
        .await;
    assert_eq!(preview["merchant_name"], "Mama Mboga Greens");
    assert_eq!(preview["fee"], 0);

    let paid = app
        .request(Method::POST, "/api/v1/wallet/pay", Some(&token))
        .header("Idempotency-Key", "till-1")
        .json(&json!({"till": number, "amount": 25_000, "currency": "KES", "note": "sukuma wiki"}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::CREATED);
    let paid: Value = paid.json().await.unwrap();
    assert_eq!(paid["fee"], 0, "the customer pays no fee");
    let again = app
        .request(Method::POST, "/api/v1/wallet/pay", Some(&token))
        .header("Idempotency-Key", "till-1")
        .json(&json!({"till": number, "amount": 25_000, "currency": "KES", "note": "sukuma wiki"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        app.balance(&token, "KES").await,
        before - 25_000,
        "paid once"
    );
    assert_eq!(
        merchant_balance(&app, OWNER, "KES").await,
        25_000 - 250,
        "1 % to the house"
    );
    assert!(app
        .last_sms(USER_PHONE)
        .await
        .contains("paid to MAMA MBOGA GREENS"));
    assert!(app
        .last_sms(OWNER)
        .await
        .contains("KES 250.00 received from"));

    // The customer's mini statement names the business.
    let (mut session, _) = Session::dial(&app, USER_PHONE).await;
    let statement = session.keys(&["6", DEMO_PIN]).await;
    assert!(statement.contains("Mama Mboga Greens"), "{statement}");
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_paybill_needs_an_account_and_large_payments_are_capped() {
    let app = spawn_app().await;
    app.lift_limits().await;
    let paybill = register(&app, PAYBILL_OWNER, "Kisumu Water", "paybill").await;
    let number = paybill["number"].as_str().unwrap();
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let missing = app
        .post(
            "/api/v1/wallet/pay",
            Some(&token),
            json!({"paybill": number, "amount": 1_000, "currency": "KES"}),
        )
        .await;
    assert_problem(missing, StatusCode::BAD_REQUEST, "validation_error").await;
    let both = app
        .post("/api/v1/wallet/pay", Some(&token), json!({"paybill": number, "till": number, "account": "A1", "amount": 1_000, "currency": "KES"}))
        .await;
    assert_problem(both, StatusCode::BAD_REQUEST, "validation_error").await;
    let as_till = app
        .post(
            "/api/v1/wallet/pay",
            Some(&token),
            json!({"till": number, "amount": 1_000, "currency": "KES"}),
        )
        .await;
    assert_problem(as_till, StatusCode::UNPROCESSABLE_ENTITY, "not_eligible").await;

    // KES 100,000.00: 1 % would be KES 1,000.00, but the fee stops at USD 2.00.
    let paid = app
        .post("/api/v1/wallet/pay", Some(&token), json!({"paybill": number, "account": "meter-4471", "amount": 10_000_000, "currency": "KES"}))
        .await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    let fee: i64 =
        sqlx::query_scalar("SELECT fee FROM merchant_payments ORDER BY created_at DESC LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(fee > 0 && fee < 100_000, "capped: {fee}");
    assert_eq!(
        merchant_balance(&app, PAYBILL_OWNER, "KES").await,
        10_000_000 - fee
    );
    assert!(app
        .last_sms(USER_PHONE)
        .await
        .contains("for account METER-4471"));
    app.assert_balanced().await;
}

#[tokio::test]
async fn unknown_suspended_and_own_businesses_cannot_be_paid() {
    let app = spawn_app().await;
    let till = register(&app, OWNER, "Duka La Juma", "till").await;
    let number = till["number"].as_str().unwrap();
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let unknown = app
        .post(
            "/api/v1/wallet/pay",
            Some(&token),
            json!({"till": "000000", "amount": 1_000, "currency": "KES"}),
        )
        .await;
    assert_problem(unknown, StatusCode::UNPROCESSABLE_ENTITY, "not_eligible").await;
    let owner = app.token(OWNER, "5831").await;
    app.fund(OWNER, "KES", 10_000).await;
    let own = app
        .post(
            "/api/v1/wallet/pay",
            Some(&owner),
            json!({"till": number, "amount": 1_000, "currency": "KES"}),
        )
        .await;
    assert_problem(own, StatusCode::BAD_REQUEST, "validation_error").await;

    let admin = app.admin_token().await;
    let id = till["merchant_id"].as_str().unwrap();
    let suspended = app
        .post(
            &format!("/api/v1/admin/merchants/{id}/suspend"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(suspended.status(), StatusCode::OK);
    let refused = app
        .post(
            "/api/v1/wallet/pay",
            Some(&token),
            json!({"till": number, "amount": 1_000, "currency": "KES"}),
        )
        .await;
    assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "not_eligible").await;
    let reinstated = app
        .post(
            &format!("/api/v1/admin/merchants/{id}/reinstate"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(reinstated.status(), StatusCode::OK);
    let paid = app
        .post(
            "/api/v1/wallet/pay",
            Some(&token),
            json!({"till": number, "amount": 1_000, "currency": "KES"}),
        )
        .await;
    assert_eq!(paid.status(), StatusCode::CREATED);

    let twice = app
        .post(
            "/api/v1/admin/merchants",
            Some(&admin),
            json!({"name": "Second Shop", "owner_phone": OWNER, "kind": "till"}),
        )
        .await;
    assert_problem(twice, StatusCode::CONFLICT, "conflict").await;
    let by_customer = app
        .post(
            "/api/v1/admin/merchants",
            Some(&token),
            json!({"name": "Mine", "owner_phone": USER_PHONE, "kind": "till"}),
        )
        .await;
    assert_problem(by_customer, StatusCode::FORBIDDEN, "forbidden").await;
    let listed = app.get_json("/api/v1/admin/merchants", &admin).await;
    assert_eq!(listed["merchants"][0]["number"], till["number"]);
}

#[tokio::test]
async fn the_owner_reads_the_statement_as_json_and_csv() {
    let app = spawn_app().await;
    let till = register(&app, OWNER, "Chai Corner", "till").await;
    let number = till["number"].as_str().unwrap();
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    for (amount, note) in [(5_000, "=cmd|' /C calc'!A0"), (7_000, "two teas")] {
        let paid = app
            .post(
                "/api/v1/wallet/pay",
                Some(&token),
                json!({"till": number, "amount": amount, "currency": "KES", "note": note}),
            )
            .await;
        assert_eq!(paid.status(), StatusCode::CREATED);
    }
    let owner = app.token(OWNER, "5831").await;
    let page = app
        .get_json("/api/v1/merchant/payments?limit=1", &owner)
        .await;
    assert_eq!(page["payments"].as_array().unwrap().len(), 1);
    assert_eq!(page["payments"][0]["amount"], 7_000);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = app
        .get_json(
            &format!("/api/v1/merchant/payments?limit=1&before={cursor}"),
            &owner,
        )
        .await;
    assert_eq!(next["payments"][0]["amount"], 5_000);

    let csv = app
        .request(Method::GET, "/api/v1/merchant/payments", Some(&owner))
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = csv.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 3, "{body}");
    assert!(lines[0].starts_with("tx_id,created_at,amount"));
    assert!(body.contains("\"'=cmd"), "a formula is defused: {body}");
    let stranger = app.get("/api/v1/merchant/payments", &token).await;
    assert_problem(stranger, StatusCode::FORBIDDEN, "forbidden").await;
    let bad = app
        .get("/api/v1/merchant/payments?from=yesterday", &owner)
        .await;
    assert_problem(bad, StatusCode::BAD_REQUEST, "validation_error").await;
}

#[tokio::test]
async fn a_feature_phone_pays_a_till_and_a_paybill_seeing_the_name_before_the_pin() {
    let app = spawn_app().await;
    let till = register(&app, OWNER, "Mama Mboga Greens", "till").await;
    let paybill = register(&app, PAYBILL_OWNER, "Kisumu Water", "paybill").await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;

    let (mut s, home) = Session::dial(&app, USER_PHONE).await;
    assert!(home.contains("10. Pay merchant"), "{home}");
    assert!(s.keys(&["10", "1"]).await.contains("Enter till number"));
    let refused = s.keys(&["000000", "50"]).await;
    assert!(
        refused.contains("no active business has that number"),
        "{refused}"
    );
    let confirm = s.keys(&[till["number"].as_str().unwrap(), "250"]).await;
    assert!(
        confirm.contains("Pay KES 250.00 to MAMA MBOGA GREENS"),
        "{confirm}"
    );
    assert!(confirm.contains("No fee"), "{confirm}");
    let done = s.press(DEMO_PIN).await;
    assert!(
        done.starts_with("END") && done.contains("paid to MAMA MBOGA GREENS"),
        "{done}"
    );

    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    let account = s
        .keys(&["10", "2", paybill["number"].as_str().unwrap()])
        .await;
    assert!(account.contains("Enter account number"), "{account}");
    let confirm = s.keys(&["acc-77", "100"]).await;
    assert!(
        confirm.contains("KISUMU WATER") && confirm.contains("account ACC-77"),
        "{confirm}"
    );
    assert!(s.press(DEMO_PIN).await.contains("Confirmed"));

    assert_eq!(app.balance(&token, "KES").await, before - 25_000 - 10_000);
    assert_eq!(merchant_balance(&app, OWNER, "KES").await, 25_000 - 250);
    assert_eq!(
        merchant_balance(&app, PAYBILL_OWNER, "KES").await,
        10_000 - 100
    );
    let account: Option<String> =
        sqlx::query_scalar("SELECT account FROM merchant_payments WHERE amount = 10000")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(account.as_deref(), Some("ACC-77"));
    app.assert_balanced().await;
}
