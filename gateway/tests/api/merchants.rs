//! Merchants over HTTP: an admin registers a till and a paybill for verified
//! customers; customers pay them (no fee to the customer, the merchant's
//! capped percentage in the same entry), idempotently, with an SMS each
//! naming the business; the owner reads the statement as JSON and CSV.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub(crate) const OWNER: &str = "+254711300001";
const PAYBILL_OWNER: &str = "+254711300002";

pub(crate) async fn register(app: &TestApp, owner: &str, name: &str, kind: &str) -> Value {
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

pub(crate) async fn merchant_balance(app: &TestApp, owner: &str, currency: &str) -> i64 {
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
    let told = app.last_sms(OWNER).await;
    assert!(told.contains("KES 250.00 received from"), "{told}");
    assert!(
        told.contains("+2547*****001") && !told.contains(USER_PHONE),
        "{told}"
    );

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
    // An owner whose KYC is rejected cannot pay out: their business takes
    // nothing either, until they are verified again.
    let kyc = |status: &'static str| {
        sqlx::query("UPDATE users SET kyc_status = $1 WHERE phone = $2")
            .bind(status)
            .bind(OWNER)
            .execute(&app.pool)
    };
    kyc("REJECTED").await.unwrap();
    let unverified = app
        .post(
            "/api/v1/wallet/pay",
            Some(&token),
            json!({"till": number, "amount": 1_000, "currency": "KES"}),
        )
        .await;
    assert_problem(unverified, StatusCode::UNPROCESSABLE_ENTITY, "not_eligible").await;
    kyc("VERIFIED").await.unwrap();
    let paid = app
        .post(
            "/api/v1/wallet/pay",
            Some(&token),
            json!({"till": number, "amount": 1_000, "currency": "KES"}),
        )
        .await;
    assert_eq!(paid.status(), StatusCode::CREATED);

    // A suspended business moves no money: its owner cannot refund.
    let suspended_again = app
        .post(
            &format!("/api/v1/admin/merchants/{id}/suspend"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(suspended_again.status(), StatusCode::OK);
    let payment: uuid::Uuid = sqlx::query_scalar("SELECT tx_id FROM merchant_payments LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let owner_token = app.token(OWNER, "5831").await;
    let frozen = app
        .post(
            "/api/v1/merchant/refunds",
            Some(&owner_token),
            json!({"payment_id": payment}),
        )
        .await;
    assert_problem(frozen, StatusCode::CONFLICT, "conflict").await;
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
    // The payer is recognisable, but their number is not handed out.
    assert_eq!(page["payments"][0]["customer_phone"], "+2547*****001");
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
    assert!(
        !body.contains(USER_PHONE) && body.contains("+2547*****001"),
        "{body}"
    );
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

/// The statuses of requests sent at once, in order.
async fn at_once(
    requests: impl Iterator<Item = impl std::future::Future<Output = reqwest::Response>>,
) -> Vec<StatusCode> {
    let answered = futures::future::join_all(requests).await;
    answered.iter().map(|r| r.status()).collect()
}

fn counted(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

pub(crate) async fn pay_till(app: &TestApp, token: &str, till: &Value, amount: i64) -> Value {
    let paid = app
        .post(
            "/api/v1/wallet/pay",
            Some(token),
            json!({"till": till["number"], "amount": amount, "currency": "KES"}),
        )
        .await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    paid.json().await.unwrap()
}

pub(crate) async fn new_key(app: &TestApp, owner: &str, scopes: Value) -> Value {
    let created = app
        .post(
            "/api/v1/merchant/api-keys",
            Some(owner),
            json!({"name": "shop website", "scopes": scopes}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    created.json().await.unwrap()
}

/// Keys asked for at once never pass the cap on live ones, and a business
/// creating and revoking keys is stopped after fifty creations a day.
#[tokio::test]
async fn key_caps_hold_under_concurrency_and_creations_are_bounded_a_day() {
    let app = spawn_app().await;
    register(&app, OWNER, "Chai Corner", "till").await;
    let owner = app.token(OWNER, "5831").await;
    let create = || {
        app.post(
            "/api/v1/merchant/api-keys",
            Some(&owner),
            json!({"name": "site", "scopes": ["payments:read"]}),
        )
    };
    let statuses = at_once((0..25).map(|_| create())).await;
    assert_eq!(counted(&statuses, StatusCode::CREATED), 20, "{statuses:?}");
    assert_eq!(counted(&statuses, StatusCode::CONFLICT), 5, "{statuses:?}");
    let mut made = 25;
    loop {
        sqlx::query("UPDATE merchant_api_keys SET revoked_at = now()")
            .execute(&app.pool)
            .await
            .unwrap();
        let answer = create().await;
        made += 1;
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_problem(answer, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
            break;
        }
        assert_eq!(answer.status(), StatusCode::CREATED);
        assert!(made <= 60, "creations were never bounded");
    }
    let (total, texts): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM merchant_api_keys),
                (SELECT count(*) FROM sms_outbox WHERE to_phone = $1 AND message LIKE '%key%')",
    )
    .bind(OWNER)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(total, 50);
    assert_eq!(texts, 50);
}

#[tokio::test]
async fn a_key_works_within_its_scopes_and_stops_the_moment_it_is_revoked() {
    let app = spawn_app().await;
    let till = register(&app, OWNER, "Chai Corner", "till").await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    pay_till(&app, &customer, &till, 5_000).await;
    let owner = app.token(OWNER, "5831").await;
    let created = new_key(&app, &owner, json!(["payments:read"])).await;
    let key = created["key"].as_str().unwrap().to_owned();
    // The owner hears of every key made for the business.
    let told = app.last_sms(OWNER).await;
    let prefix = created["prefix"].as_str().unwrap();
    assert!(
        told.contains(&format!("new API key cpk_{prefix}")) && told.contains("payments:read"),
        "{told}"
    );
    assert!(key.starts_with(&format!("cpk_{}_", created["prefix"].as_str().unwrap())));
    let digest: Vec<u8> = sqlx::query_scalar("SELECT key_digest FROM merchant_api_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(digest.len(), 32, "only a digest is kept");
    assert_ne!(digest, key.as_bytes());

    let page = app.get_json("/api/v1/merchant/payments", &key).await;
    assert_eq!(page["payments"][0]["amount"], 5_000);
    let listed = app.get_json("/api/v1/merchant/api-keys", &owner).await;
    assert_eq!(listed["keys"][0]["prefix"], created["prefix"]);
    assert!(listed["keys"][0]["last_used_at"].is_string());
    assert!(listed["keys"][0].get("key").is_none());

    let payment = page["payments"][0]["tx_id"].clone();
    let out_of_scope = app
        .post(
            "/api/v1/merchant/refunds",
            Some(&key),
            json!({"payment_id": payment}),
        )
        .await;
    assert_problem(out_of_scope, StatusCode::FORBIDDEN, "forbidden").await;
    let keys_need_the_owner = app
        .post(
            "/api/v1/merchant/api-keys",
            Some(&key),
            json!({"name": "x", "scopes": ["payments:read"]}),
        )
        .await;
    assert_problem(
        keys_need_the_owner,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let unknown_scope = app
        .post(
            "/api/v1/merchant/api-keys",
            Some(&owner),
            json!({"name": "x", "scopes": ["everything"]}),
        )
        .await;
    assert_problem(unknown_scope, StatusCode::BAD_REQUEST, "validation_error").await;
    // Change the secret's last character (to one it is not already).
    let last = if key.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &key[..key.len() - 1]);
    assert_problem(
        app.get("/api/v1/merchant/payments", &forged).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    let revoked = app
        .request(
            Method::DELETE,
            &format!(
                "/api/v1/merchant/api-keys/{}",
                created["key_id"].as_str().unwrap()
            ),
            Some(&owner),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let other = app.second_instance(|_| {}).await;
    assert_problem(
        app.get("/api/v1/merchant/payments", &key).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_problem(
        other.get("/api/v1/merchant/payments", &key).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn a_refund_never_exceeds_what_is_left_of_the_payment() {
    let app = spawn_app().await;
    let till = register(&app, OWNER, "Chai Corner", "till").await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let start = app.balance(&customer, "KES").await;
    let paid = pay_till(&app, &customer, &till, 10_000).await;
    let owner = app.token(OWNER, "5831").await;
    let refund = |amount: Option<i64>| json!({"payment_id": paid["tx_id"], "amount": amount});

    let first = app
        .post(
            "/api/v1/merchant/refunds",
            Some(&owner),
            refund(Some(4_000)),
        )
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["to_phone"], "+2547*****001", "{first}");
    assert_eq!(app.balance(&customer, "KES").await, start - 6_000);
    assert!(app
        .last_sms(USER_PHONE)
        .await
        .contains("CHAI CORNER refunded you KES 40.00"));
    let over = app
        .post(
            "/api/v1/merchant/refunds",
            Some(&owner),
            refund(Some(6_001)),
        )
        .await;
    assert_problem(over, StatusCode::CONFLICT, "conflict").await;
    // The merchant kept KES 99.00 of KES 100.00 (its fee is not returned), so
    // the rest (KES 60.00) needs more money in its account first.
    let short = app
        .post("/api/v1/merchant/refunds", Some(&owner), refund(None))
        .await;
    assert_problem(
        short,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
    )
    .await;
    app.verified_user("+254711300009", "Otieno Ouma", 0).await;
    app.fund("+254711300009", "KES", 5_000).await;
    let other = app.token("+254711300009", "5831").await;
    pay_till(&app, &other, &till, 2_000).await;

    // With a key and a retried Idempotency-Key, the rest is refunded once.
    let key = new_key(&app, &owner, json!(["refunds:write"])).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        let rest = app
            .request(Method::POST, "/api/v1/merchant/refunds", Some(&key))
            .header("Idempotency-Key", "refund-rest")
            .json(&refund(None))
            .send()
            .await
            .unwrap();
        assert_eq!(rest.status(), StatusCode::CREATED);
    }
    assert_eq!(
        app.balance(&customer, "KES").await,
        start,
        "refunded in full, once"
    );
    let again = app
        .post("/api/v1/merchant/refunds", Some(&owner), refund(Some(1)))
        .await;
    assert_problem(again, StatusCode::CONFLICT, "conflict").await;
    let refunds: i64 = sqlx::query_scalar("SELECT count(*) FROM merchant_refunds")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(refunds, 2);
    let not_ours = app
        .post(
            "/api/v1/merchant/refunds",
            Some(&owner),
            json!({"payment_id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_problem(not_ours, StatusCode::NOT_FOUND, "not_found").await;

    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    let statement = s.keys(&["6", DEMO_PIN]).await;
    assert!(statement.contains("refund from Chai Corner"), "{statement}");
    app.assert_balanced().await;
}

/// Refunds of one payment sent at once, without keys: the payment's row
/// lock orders them, so together they never exceed it.
#[tokio::test]
async fn refunds_sent_at_once_never_exceed_the_payment() {
    let app = spawn_app().await;
    let till = register(&app, OWNER, "Chai Corner", "till").await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let start = app.balance(&customer, "KES").await;
    let paid = pay_till(&app, &customer, &till, 10_000).await;
    let owner = app.token(OWNER, "5831").await;
    let refunds = (0..10).map(|_| {
        app.post(
            "/api/v1/merchant/refunds",
            Some(&owner),
            json!({"payment_id": paid["tx_id"], "amount": 4_000}),
        )
    });
    let statuses = at_once(refunds).await;
    assert_eq!(counted(&statuses, StatusCode::CREATED), 2, "{statuses:?}");
    assert_eq!(counted(&statuses, StatusCode::CONFLICT), 8, "{statuses:?}");
    assert_eq!(app.balance(&customer, "KES").await, start - 2_000);
    app.assert_balanced().await;
}

/// A webhook receiver started by the test: it records every request and
/// answers 500 to the first `fail_first` of them, each after `slow`.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) seen: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    fail_first: usize,
    slow: std::time::Duration,
}

/// A refund screens both sides, as a payment does: once the customer is
/// listed, the business cannot pay the money out to them.
#[tokio::test]
async fn a_listed_customer_is_not_refunded() {
    let app = spawn_app().await;
    let till = register(&app, OWNER, "Chai Corner", "till").await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let paid = pay_till(&app, &customer, &till, 10_000).await;
    let owner = app.token(OWNER, "5831").await;
    let admin = app.admin_token().await;
    let listed = app
        .post(
            "/api/v1/admin/sanctions",
            Some(&admin),
            json!({"name": "USER, Demo", "source": "UN consolidated list"}),
        )
        .await;
    assert_eq!(listed.status(), StatusCode::CREATED);
    let refused = app
        .post(
            "/api/v1/merchant/refunds",
            Some(&owner),
            json!({"payment_id": paid["tx_id"]}),
        )
        .await;
    assert_problem(refused, StatusCode::FORBIDDEN, "sanctioned").await;
    let refunds: i64 = sqlx::query_scalar("SELECT count(*) FROM merchant_refunds")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(refunds, 0);
    app.assert_balanced().await;
}

pub(crate) async fn receiver(fail_first: usize) -> (String, Receiver) {
    slow_receiver(fail_first, std::time::Duration::ZERO).await
}

pub(crate) async fn slow_receiver(
    fail_first: usize,
    slow: std::time::Duration,
) -> (String, Receiver) {
    async fn hook(
        axum::extract::State(r): axum::extract::State<Receiver>,
        headers: axum::http::HeaderMap,
        body: String,
    ) -> StatusCode {
        let failed = {
            let mut seen = r.seen.lock().unwrap();
            seen.push((headers, body));
            seen.len() <= r.fail_first
        };
        tokio::time::sleep(r.slow).await;
        if failed {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::NO_CONTENT
        }
    }
    let r = Receiver {
        seen: Default::default(),
        fail_first,
        slow,
    };
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, r)
}

/// Verifies a request by the Standard Webhooks rules: the signature over
/// `id.timestamp.body` under the secret, and a timestamp within five
/// minutes of `now`.
fn verifies(secret: &str, headers: &axum::http::HeaderMap, body: &str, now: i64) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now - ts).abs() > 300 {
        return false;
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

pub(crate) async fn webhook_app() -> TestApp {
    spawn_with(TestOptions {
        configure: |settings| {
            settings.webhook_allow_private = true;
            settings.webhook_first_retry_ms = 50;
        },
        ..TestOptions::default()
    })
    .await
}

#[tokio::test]
async fn webhooks_arrive_signed_and_a_failing_receiver_gets_the_same_event_until_it_succeeds() {
    let app = webhook_app().await;
    let till = register(&app, OWNER, "Chai Corner", "till").await;
    let owner = app.token(OWNER, "5831").await;
    let (url, hooks) = receiver(5).await;
    let endpoint = app
        .post(
            "/api/v1/merchant/webhooks",
            Some(&owner),
            json!({"url": url, "events": ["payment.received", "refund.completed"]}),
        )
        .await;
    assert_eq!(endpoint.status(), StatusCode::CREATED);
    let endpoint: Value = endpoint.json().await.unwrap();
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));

    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let paid = pay_till(&app, &customer, &till, 12_000).await;
    let seen = eventually("six tries of the payment webhook", secs(60), async || {
        let seen = hooks.seen.lock().unwrap().clone();
        (seen.len() >= 6).then_some(seen)
    })
    .await;
    let ids: Vec<String> = seen
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert!(
        ids.iter().all(|id| id == &ids[0] && id.starts_with("msg_")),
        "one event, one id: {ids:?}"
    );
    let (headers, body) = seen.last().unwrap().clone();
    let now = chrono::Utc::now().timestamp();
    assert!(
        verifies(&secret, &headers, &body, now),
        "the signature verifies"
    );
    assert!(
        !verifies(&secret, &headers, &body.replace("12000", "99000"), now),
        "a tampered body fails"
    );
    assert!(
        !verifies(&secret, &headers, &body, now + 600),
        "an old timestamp fails"
    );
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["type"], "payment.received");
    assert_eq!(event["data"]["payment_id"], paid["tx_id"]);
    assert_eq!(event["data"]["amount"], 12_000);
    assert_eq!(event["data"]["customer_phone"], "+2547*****001");

    let log_path = format!(
        "/api/v1/merchant/webhooks/{}/deliveries",
        endpoint["webhook_id"].as_str().unwrap()
    );
    let log = eventually("the delivery to be recorded", secs(10), async || {
        let log = app.get_json(&log_path, &owner).await;
        (log["deliveries"][0]["status"] == "DELIVERED").then_some(log)
    })
    .await;
    assert_eq!(log["deliveries"][0]["attempts"], 6);
    assert_eq!(log["deliveries"][0]["event_id"], ids[0].as_str());
    let after_success = hooks.seen.lock().unwrap().len();
    assert_eq!(after_success, 6, "nothing more once it succeeded");

    // A refund is its own event; a redelivery repeats an event's id.
    let refund = app
        .post(
            "/api/v1/merchant/refunds",
            Some(&owner),
            json!({"payment_id": paid["tx_id"], "amount": 2_000}),
        )
        .await;
    assert_eq!(refund.status(), StatusCode::CREATED);
    let refunded = eventually("the refund webhook", secs(10), async || {
        let seen = hooks.seen.lock().unwrap().clone();
        (seen.len() > after_success).then(|| seen.last().unwrap().clone())
    })
    .await;
    let event: Value = serde_json::from_str(&refunded.1).unwrap();
    assert_eq!(event["type"], "refund.completed");
    assert_ne!(refunded.0["webhook-id"], headers["webhook-id"]);
    let delivery = log["deliveries"][0]["delivery_id"].as_i64().unwrap();
    let again = app
        .post(
            &format!("{log_path}/{delivery}/redeliver"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    let repeated = eventually("the redelivery", secs(10), async || {
        let seen = hooks.seen.lock().unwrap().clone();
        (seen.len() > after_success + 1).then(|| seen.last().unwrap().clone())
    })
    .await;
    assert_eq!(repeated.0["webhook-id"].to_str().unwrap(), ids[0]);
}

#[tokio::test]
async fn a_webhook_url_on_a_private_address_is_refused_unless_allowed() {
    let app = spawn_app().await;
    register(&app, OWNER, "Chai Corner", "till").await;
    let owner = app.token(OWNER, "5831").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
        "https://user:pw@127.0.0.1/",
        "ftp://example.com/",
        "not a url",
    ] {
        let refused = app
            .post(
                "/api/v1/merchant/webhooks",
                Some(&owner),
                json!({"url": url, "events": ["payment.received"]}),
            )
            .await;
        assert_problem(refused, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    let unknown_event = app
        .post(
            "/api/v1/merchant/webhooks",
            Some(&owner),
            json!({"url": "https://8.8.8.8/hook", "events": ["everything"]}),
        )
        .await;
    assert_problem(unknown_event, StatusCode::BAD_REQUEST, "validation_error").await;
    let long = format!("https://8.8.8.8/{}", "a".repeat(2_000));
    let too_long = app
        .post(
            "/api/v1/merchant/webhooks",
            Some(&owner),
            json!({"url": long, "events": ["payment.received"]}),
        )
        .await;
    assert_problem(too_long, StatusCode::BAD_REQUEST, "validation_error").await;
    // Someone without a business learns nothing of how a name resolves.
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let probing = app
        .post(
            "/api/v1/merchant/webhooks",
            Some(&customer),
            json!({"url": "https://10.0.0.8/hook", "events": ["payment.received"]}),
        )
        .await;
    assert_problem(probing, StatusCode::FORBIDDEN, "forbidden").await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM merchant_webhooks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing refused is stored");
}

/// An endpoint that keeps failing is held for as long as it has been
/// failing (one that does not answer gets fewer and fewer tries, and its
/// deliveries wait, new ones too); one the owner removes gets nothing
/// more, and what waited for it is given up.
#[tokio::test]
async fn a_failing_endpoint_holds_back_its_backlog_and_a_removed_one_gets_nothing() {
    let app = webhook_app().await;
    let till = register(&app, OWNER, "Chai Corner", "till").await;
    let owner = app.token(OWNER, "5831").await;
    let (url, hooks) = receiver(usize::MAX).await;
    let endpoint = app
        .post(
            "/api/v1/merchant/webhooks",
            Some(&owner),
            json!({"url": url, "events": ["payment.received"]}),
        )
        .await;
    let endpoint: Value = endpoint.json().await.unwrap();
    let webhook_id = endpoint["webhook_id"].as_str().unwrap().to_owned();
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    pay_till(&app, &customer, &till, 1_000).await;
    eventually("a first failed try", secs(10), async || {
        (!hooks.seen.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    // Failing for an hour now: its next failure holds it for that hour.
    sqlx::query("UPDATE merchant_webhooks SET failing_since = now() - interval '1 hour'")
        .execute(&app.pool)
        .await
        .unwrap();
    let held_for: f64 = eventually("the endpoint held", secs(10), async || {
        let minutes: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM held_until - now())::float8 / 60 FROM merchant_webhooks",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        minutes.filter(|m| *m > 50.0)
    })
    .await;
    assert!(held_for <= 61.0, "held for {held_for} minutes");
    let tried = hooks.seen.lock().unwrap().len();
    pay_till(&app, &customer, &till, 2_000).await;
    let watched = std::time::Instant::now();
    while watched.elapsed() < secs(2) {
        assert_eq!(hooks.seen.lock().unwrap().len(), tried, "tried while held");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let path = format!("/api/v1/merchant/webhooks/{webhook_id}");
    let stranger = app.verified_user("+254711330003", "Not The Owner", 0).await;
    let refused = app
        .request(Method::DELETE, &path, Some(&stranger))
        .send()
        .await
        .unwrap();
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    for _ in 0..2 {
        let removed = app
            .request(Method::DELETE, &path, Some(&owner))
            .send()
            .await
            .unwrap();
        assert_eq!(
            removed.status(),
            StatusCode::NO_CONTENT,
            "removing again answers the same"
        );
    }
    let unknown = format!("/api/v1/merchant/webhooks/{}", uuid::Uuid::new_v4());
    let missing = app
        .request(Method::DELETE, &unknown, Some(&owner))
        .send()
        .await
        .unwrap();
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    let waiting: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, last_error FROM webhook_deliveries ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(waiting.len(), 2);
    for (status, why) in waiting {
        assert_eq!(status, "FAILED");
        assert_eq!(why.as_deref(), Some("the endpoint was removed"));
    }
    let listed = app.get_json("/api/v1/merchant/webhooks", &owner).await;
    assert_eq!(listed["endpoints"][0]["status"], "DISABLED");
}

/// A payment made while a failing endpoint's try is out waits for the hold
/// that try's failure sets, as its backlog does, not for the try's lease
/// (five minutes).
#[tokio::test]
async fn a_payment_made_during_a_failing_try_waits_only_for_the_hold() {
    let app = webhook_app().await;
    let till = register(&app, OWNER, "Chai Corner", "till").await;
    let owner = app.token(OWNER, "5831").await;
    let (url, hooks) = slow_receiver(usize::MAX, secs(1)).await;
    let endpoint = app
        .post(
            "/api/v1/merchant/webhooks",
            Some(&owner),
            json!({"url": url, "events": ["payment.received"]}),
        )
        .await;
    assert_eq!(endpoint.status(), StatusCode::CREATED);
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    pay_till(&app, &customer, &till, 1_000).await;
    let tries = async |n: usize| {
        eventually("a try out", secs(20), async || {
            (hooks.seen.lock().unwrap().len() >= n).then_some(())
        })
        .await
    };
    // The second try is out on an endpoint already failing.
    tries(2).await;
    pay_till(&app, &customer, &till, 2_000).await;
    let held: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM held_until - now())::float8 FROM merchant_webhooks",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(held > 60.0, "the try's lease holds the endpoint: {held} s");
    eventually(
        "the payment made during the try is tried",
        secs(20),
        async || {
            let seen = hooks.seen.lock().unwrap();
            seen.iter()
                .any(|(_, body)| body.contains("\"amount\":2000"))
                .then_some(())
        },
    )
    .await;
}

/// A business whose endpoints answer slowly has one try out at a time, so
/// another business's webhook does not queue behind its backlog.
#[tokio::test]
async fn a_business_with_slow_endpoints_holds_up_one_sender_not_every_business() {
    let app = webhook_app().await;
    let endpoint = async |owner: &str, url: &str| {
        let token = app.token(owner, "5831").await;
        let created = app
            .post(
                "/api/v1/merchant/webhooks",
                Some(&token),
                json!({"url": url, "events": ["payment.received"]}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
    };
    let slow_till = register(&app, OWNER, "Slow Shop", "till").await;
    let (slow_url, slow) = slow_receiver(0, secs(2)).await;
    for _ in 0..4 {
        endpoint(OWNER, &slow_url).await;
    }
    let fast_till = register(&app, PAYBILL_OWNER, "Fast Shop", "till").await;
    let (fast_url, fast) = receiver(0).await;
    endpoint(PAYBILL_OWNER, &fast_url).await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    for _ in 0..6 {
        pay_till(&app, &customer, &slow_till, 1_000).await;
    }
    eventually("the slow business's tries begin", secs(10), async || {
        (!slow.seen.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    pay_till(&app, &customer, &fast_till, 2_000).await;
    // Oldest first, the slow business's 24 deliveries (two seconds a try)
    // would all be tried before the other's on every sender at once; with
    // one try out, the other's is tried while most still wait.
    let tried_slow = eventually("the other business's webhook", secs(30), async || {
        (!fast.seen.lock().unwrap().is_empty()).then(|| slow.seen.lock().unwrap().len())
    })
    .await;
    assert!(
        tried_slow <= 12,
        "{tried_slow} of the slow business's 24 tries came first"
    );
}

/// A payment committing while its business removes the endpoint: the
/// removal waits for the payment and gives up what it enqueued, so nothing
/// is left pending on an endpoint that will never send it.
#[tokio::test]
async fn a_payment_racing_its_endpoints_removal_leaves_nothing_waiting() {
    let app = webhook_app().await;
    register(&app, OWNER, "Chai Corner", "till").await;
    let owner = app.token(OWNER, "5831").await;
    let (url, _hooks) = receiver(0).await;
    let body = json!({"url": url, "events": ["payment.received"]});
    let endpoint: Value = app
        .post("/api/v1/merchant/webhooks", Some(&owner), body)
        .await
        .json()
        .await
        .unwrap();
    let path = format!(
        "/api/v1/merchant/webhooks/{}",
        endpoint["webhook_id"].as_str().unwrap()
    );
    let merchant_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM merchants")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    // The payment's transaction, open with its event enqueued.
    let mut payment = app.pool.begin().await.unwrap();
    let event = json!({"amount": 100});
    chainpay_gateway::merchants::webhooks::enqueue(
        &mut payment,
        merchant_id,
        "payment.received",
        event,
    )
    .await
    .unwrap();
    let remove = app.request(Method::DELETE, &path, Some(&owner)).send();
    let commit_once_removal_waits = async {
        let deadline = std::time::Instant::now() + secs(5);
        while std::time::Instant::now() < deadline {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%merchant_webhooks%'",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        payment.commit().await.unwrap();
    };
    let (removed, ()) = tokio::join!(remove, commit_once_removal_waits);
    assert_eq!(removed.unwrap().status(), StatusCode::NO_CONTENT);
    let left: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, last_error FROM webhook_deliveries")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        left,
        [(
            "FAILED".to_owned(),
            Some("the endpoint was removed".to_owned())
        )]
    );
}

#[tokio::test]
async fn an_operator_sees_a_business_payments_refunds_endpoints_deliveries_and_keys() {
    let app = webhook_app().await;
    let till = register(&app, OWNER, "Chai Corner", "till").await;
    let owner = app.token(OWNER, "5831").await;
    let (url, _hooks) = receiver(0).await;
    let endpoint = app
        .post(
            "/api/v1/merchant/webhooks",
            Some(&owner),
            json!({"url": url, "events": ["payment.received"]}),
        )
        .await;
    assert_eq!(endpoint.status(), StatusCode::CREATED);
    let key = new_key(&app, &owner, json!(["payments:read"])).await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let paid = pay_till(&app, &customer, &till, 8_000).await;
    let refund = app
        .post(
            "/api/v1/merchant/refunds",
            Some(&owner),
            json!({"payment_id": paid["tx_id"], "amount": 1_000}),
        )
        .await;
    assert_eq!(refund.status(), StatusCode::CREATED);

    let owned = app.get_json("/api/v1/merchant/webhooks", &owner).await;
    assert_eq!(owned["endpoints"][0]["url"], url.as_str());
    assert!(owned["endpoints"][0].get("secret").is_none());
    let admin = app.admin_token().await;
    let path = format!(
        "/api/v1/admin/merchants/{}",
        till["merchant_id"].as_str().unwrap()
    );
    let detail = eventually("the delivery to land", secs(15), async || {
        let detail = app.get_json(&path, &admin).await;
        // (The page's lists are read one after another, not at one instant.)
        let landed = detail["endpoints"][0]["delivered"] == 1
            && detail["deliveries"][0]["status"] == "DELIVERED";
        landed.then_some(detail)
    })
    .await;
    assert_eq!(detail["merchant"]["name"], "Chai Corner");
    assert_eq!(detail["payments"][0]["tx_id"], paid["tx_id"]);
    assert_eq!(detail["refunds"][0]["amount"], 1_000);
    assert_eq!(detail["refunds"][0]["payment_id"], paid["tx_id"]);
    assert_eq!(detail["deliveries"][0]["type"], "payment.received");
    assert_eq!(detail["keys"][0]["prefix"], key["prefix"]);
    assert!(detail["keys"][0].get("key").is_none());
    let customer_view = app.get(&path, &customer).await;
    assert_problem(customer_view, StatusCode::FORBIDDEN, "forbidden").await;
}
