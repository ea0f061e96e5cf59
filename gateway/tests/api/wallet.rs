//! Sending money: idempotency, concurrency, bad input, history.

use crate::support::*;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn send_keyed(app: &TestApp, token: &str, key: &str, body: Value) -> reqwest::Response {
    app.request(Method::POST, "/api/v1/wallet/send", Some(token))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_retried_send_moves_money_once_and_a_reused_key_with_another_body_conflicts() {
    let app = spawn_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let body = json!({"to_phone": ADMIN_PHONE, "amount": 5_000, "currency": "KES"});
    let before = app.balance(&token, "KES").await;

    let first = send_keyed(&app, &token, "retry-1", body.clone()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = send_keyed(&app, &token, "retry-1", body.clone()).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again, "the retry returns the original result");
    // KES 50.00 is under USD 10: the fee is 2 %.
    assert_eq!(app.balance(&token, "KES").await, before - 5_100);

    let other = send_keyed(
        &app,
        &token,
        "retry-1",
        json!({"to_phone": ADMIN_PHONE, "amount": 5_001, "currency": "KES"}),
    )
    .await;
    assert_problem(other, StatusCode::CONFLICT, "idempotency_conflict").await;
    assert_eq!(app.balance(&token, "KES").await, before - 5_100);

    // Keys belong to their user: another user's identical key is independent.
    let admin = app.admin_token().await;
    let theirs = send_keyed(
        &app,
        &admin,
        "retry-1",
        json!({"to_phone": USER_PHONE, "amount": 100, "currency": "KES"}),
    )
    .await;
    assert_eq!(theirs.status(), StatusCode::CREATED);
    app.assert_balanced().await;
}

#[tokio::test]
async fn ten_simultaneous_copies_of_one_keyed_send_move_money_once() {
    let app = spawn_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let body = json!({"to_phone": ADMIN_PHONE, "amount": 700, "currency": "KES"});
    let copies =
        futures::future::join_all((0..10).map(|_| send_keyed(&app, &token, "storm", body.clone())))
            .await;
    let mut ids = std::collections::HashSet::new();
    for response in copies {
        assert_eq!(response.status(), StatusCode::CREATED);
        let tx: Value = response.json().await.unwrap();
        ids.insert(tx["tx_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every copy reports the same transaction");
    assert_eq!(app.balance(&token, "KES").await, before - 714);
}

#[tokio::test]
async fn a_refused_keyed_send_replays_its_refusal() {
    let app = spawn_app().await;
    let poor = app.new_user("+254712100001", "Poor").await;
    let body = json!({"to_phone": USER_PHONE, "amount": 100, "currency": "KES"});
    assert_problem(
        send_keyed(&app, &poor, "k", body.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
    )
    .await;
    app.fund("+254712100001", "KES", 10_000).await;
    // Same key: the first answer stands, nothing moves.
    let replay = send_keyed(&app, &poor, "k", body.clone()).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_problem(
        replay,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
    )
    .await;
    assert_eq!(app.balance(&poor, "KES").await, 10_000);
    // A new key is a new request.
    assert_eq!(
        send_keyed(&app, &poor, "k2", body).await.status(),
        StatusCode::CREATED
    );
    let rejected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'wallet.send' AND outcome = 'rejected'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(rejected, 1, "the refusal is audited once");
}

#[tokio::test]
async fn fifty_concurrent_sends_from_a_wallet_that_affords_ten_succeed_exactly_ten_times() {
    let app = spawn_app().await;
    // This test is about funds, not AML: no per-user limit may interfere.
    app.lift_limits().await;
    let sender = app.new_user("+254712200001", "Sender").await;
    // Each send costs KES 100.00 + KES 2.00 fee (2 %); fund exactly ten of them.
    app.fund("+254712200001", "KES", 10 * 10_200).await;
    let sends = (0..50).map(|_| app.send(&sender, USER_PHONE, 10_000, "KES"));
    let responses = futures::future::join_all(sends).await;
    let mut created = 0;
    for response in responses {
        match response.status() {
            StatusCode::CREATED => created += 1,
            _ => {
                assert_problem(
                    response,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "insufficient_funds",
                )
                .await;
            }
        }
    }
    assert_eq!(created, 10);
    assert_eq!(app.balance(&sender, "KES").await, 0);
    let negative: i64 =
        sqlx::query_scalar("SELECT count(*) FROM accounts WHERE kind = 'wallet' AND balance < 0")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(negative, 0);
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_random_bank_of_concurrent_transfers_conserves_every_currency() {
    let app = spawn_app().await;
    // Conservation is the point here; AML limits are tested on their own.
    app.lift_limits().await;
    let mut people = Vec::new();
    for i in 0..8 {
        let phone = format!("+25471230000{i}");
        let token = app.new_user(&phone, &format!("Person {i}")).await;
        app.fund(&phone, "KES", 50_000).await;
        app.fund(&phone, "USD", 5_000).await;
        people.push((phone, token));
    }
    let totals_before = (
        app.currency_total("KES").await,
        app.currency_total("USD").await,
    );
    let wallets_before: i64 =
        sqlx::query_scalar("SELECT sum(balance)::bigint FROM accounts WHERE kind = 'wallet'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let plan: Vec<(usize, usize, i64, &str)> = (0..160)
        .map(|_| {
            let from = rng.gen_range(0..people.len());
            let to = (from + rng.gen_range(1..people.len())) % people.len();
            let currency = if rng.gen_bool(0.5) { "KES" } else { "USD" };
            (from, to, rng.gen_range(1..20_000), currency)
        })
        .collect();
    let sends = plan.iter().map(|(from, to, amount, currency)| {
        app.send(&people[*from].1, &people[*to].0, *amount, currency)
    });
    let responses = futures::future::join_all(sends).await;
    let mut fees = 0;
    for (response, (_, _, _, currency)) in responses.into_iter().zip(&plan) {
        match response.status() {
            StatusCode::CREATED => {
                let tx: Value = response.json().await.unwrap();
                assert_eq!(tx["currency"], *currency);
                fees += 1;
            }
            StatusCode::UNPROCESSABLE_ENTITY => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(fees > 50, "most transfers succeed ({fees})");
    assert_eq!(
        (
            app.currency_total("KES").await,
            app.currency_total("USD").await
        ),
        totals_before
    );
    assert_eq!(totals_before, (0, 0), "every currency sums to zero");
    let house_fees: i64 =
        sqlx::query_scalar("SELECT sum(balance)::bigint FROM accounts WHERE kind = 'fee_revenue'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let wallets_after: i64 =
        sqlx::query_scalar("SELECT sum(balance)::bigint FROM accounts WHERE kind = 'wallet'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        wallets_before - wallets_after,
        house_fees,
        "customers lost exactly the fees"
    );
    app.assert_balanced().await;
}

#[tokio::test]
async fn bad_send_requests_get_clear_errors_and_change_nothing() {
    let app = spawn_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let poor = app.new_user("+254712500001", "Poor").await;
    let before = app.balance(&token, "KES").await;
    let raw = |body: &'static str| {
        app.request(Method::POST, "/api/v1/wallet/send", Some(&token))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: Vec<(&str, reqwest::Response, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            raw("{\"to_phone\": ").await.unwrap(),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "amount as a string",
            raw(r#"{"to_phone":"+254700000000","amount":"100","currency":"KES"}"#)
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "fractional amount",
            raw(r#"{"to_phone":"+254700000000","amount":10.5,"currency":"KES"}"#)
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "overflowing amount",
            raw(r#"{"to_phone":"+254700000000","amount":99999999999999999999,"currency":"KES"}"#)
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "missing field",
            raw(r#"{"to_phone":"+254700000000","currency":"KES"}"#)
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "zero",
            app.send(&token, ADMIN_PHONE, 0, "KES").await,
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "negative",
            app.send(&token, ADMIN_PHONE, -500, "KES").await,
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "above the ceiling",
            app.send(&token, ADMIN_PHONE, i64::MAX, "KES").await,
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "more than the balance",
            app.send(&poor, ADMIN_PHONE, 100, "KES").await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "insufficient_funds",
        ),
        (
            "unknown currency",
            app.send(&token, ADMIN_PHONE, 100, "XYZ").await,
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "malformed currency",
            app.send(&token, ADMIN_PHONE, 100, "KSH!").await,
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "unknown recipient",
            app.send(&token, "+254799887766", 100, "KES").await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "invalid phone",
            app.send(&token, "12345", 100, "KES").await,
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "to yourself",
            app.send(&token, "0700000001", 100, "KES").await,
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
    ];
    for (case, response, status, code) in cases {
        assert_eq!(response.status(), status, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{case}: {body}");
    }
    let text_plain = app
        .request(Method::POST, "/api/v1/wallet/send", Some(&token))
        .body(r#"{"to_phone":"+254700000000","amount":1,"currency":"KES"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(text_plain, StatusCode::BAD_REQUEST, "validation_error").await;

    assert_eq!(app.balance(&token, "KES").await, before);
    let transfers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transactions WHERE tx_type = 'transfer'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(transfers, 0);
    app.assert_balanced().await;
}

#[tokio::test]
async fn history_pages_backwards_with_a_cursor_without_gaps_or_repeats() {
    let app = spawn_app().await;
    let token = app.new_user("+254712300001", "Pager").await;
    app.fund("+254712300001", "KES", 100_000).await;
    for amount in 1..=6 {
        assert_eq!(
            app.send(&token, USER_PHONE, amount * 100, "KES")
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    // Funding + 6 sends = 7 transactions.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/wallet/transactions?limit=3&before={c}"),
            None => "/api/v1/wallet/transactions?limit=3".into(),
        };
        let page: Value = app.get(&path, &token).await.json().await.unwrap();
        for tx in page["transactions"].as_array().unwrap() {
            seen.push(tx["tx_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 7);
    let newest: Value = app
        .get("/api/v1/wallet/transactions?limit=1", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(newest["transactions"][0]["amount"], 600, "newest first");

    for bad in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "before=xyz",
        "before=-4",
    ] {
        let response = app
            .get(&format!("/api/v1/wallet/transactions?{bad}"), &token)
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    let bad_id = app.get("/api/v1/transactions/not-a-uuid", &token).await;
    assert_problem(bad_id, StatusCode::BAD_REQUEST, "validation_error").await;
}

#[tokio::test]
async fn adding_a_currency_is_one_row_and_it_works_at_once() {
    let app = spawn_app().await;
    sqlx::query(
        "INSERT INTO currencies (code, exponent, name) VALUES ('UGX', 0, 'Ugandan shilling')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // Its rate is a row too: fees and limits are measured in USD.
    sqlx::query("INSERT INTO fx_rates (currency, usd_mid) VALUES ('UGX', 3700)")
        .execute(&app.pool)
        .await
        .unwrap();
    app.state.rules.invalidate().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    assert_eq!(app.balance(&token, "UGX").await, 0);
    app.fund(USER_PHONE, "UGX", 5_000).await;
    let sent = app.send(&token, ADMIN_PHONE, 1_500, "UGX").await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    let tx: Value = sent.json().await.unwrap();
    // UGX 1,500 is about USD 0.41: 2 %, rounded up to a whole shilling.
    assert_eq!(tx["fee"], 30);
    assert_eq!(app.balance(&token, "UGX").await, 3_470);
    let newcomer = app.new_user("+254712400001", "Newcomer").await;
    assert_eq!(app.balance(&newcomer, "UGX").await, 0);
    app.assert_balanced().await;
}

/// Any transfer of the last day can be asked to be reversed, not only the
/// twenty newest a list shows.
#[tokio::test]
async fn a_reversal_can_be_asked_for_any_transfer_of_the_last_day() {
    let app = spawn_app().await;
    app.lift_limits().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let mut sent = Vec::new();
    for _ in 0..21 {
        let response = app.send(&user, ADMIN_PHONE, 100, "KES").await;
        assert_eq!(response.status(), StatusCode::CREATED);
        sent.push(response.json::<Value>().await.unwrap()["tx_id"].clone());
    }
    let listed = app.get_json("/api/v1/reversal/eligible", &user).await;
    assert_eq!(
        listed["transactions"].as_array().map(Vec::len),
        Some(20),
        "{listed}"
    );
    let ask_for_the_oldest = || {
        app.post(
            "/api/v1/reversal/request",
            Some(&user),
            json!({"tx_id": sent[0], "reason": "Sent to the wrong person"}),
        )
    };
    assert_eq!(ask_for_the_oldest().await.status(), StatusCode::CREATED);
    let again = ask_for_the_oldest().await;
    assert_problem(again, StatusCode::UNPROCESSABLE_ENTITY, "not_eligible").await;
}
