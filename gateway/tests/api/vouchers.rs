//! Offline vouchers over HTTP and the CLI: bought with a fee, the code by
//! SMS (masked in the outbox), the signed form checked offline, redeemed
//! exactly once under concurrent redeemers, wrong guesses limited, and
//! refunds on cancel and at expiry.

use std::process::Command;

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn buy(app: &TestApp, token: &str, amount: i64) -> Value {
    let bought = app
        .post(
            "/api/v1/vouchers",
            Some(token),
            json!({"amount": amount, "currency": "KES", "expires_in_days": 7}),
        )
        .await;
    assert_eq!(bought.status(), StatusCode::CREATED);
    bought.json().await.unwrap()
}

async fn redeem(app: &TestApp, token: &str, code: &str) -> reqwest::Response {
    app.post(
        "/api/v1/vouchers/redeem",
        Some(token),
        json!({ "code": code }),
    )
    .await
}

/// A well-formed code (valid check digit) that no voucher has: one in
/// 10^15, fresh each time.
fn stranger_code() -> String {
    chainpay_core::voucher::new_code()
}

#[tokio::test]
async fn a_voucher_is_bought_with_its_code_by_sms_and_a_signed_form_that_verifies_offline() {
    let app = spawn_app().await;
    let buyer = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&buyer, "KES").await;
    let voucher = buy(&app, &buyer, 50_000).await;
    let code = voucher["code"].as_str().unwrap();
    assert_eq!(code.len(), 16);
    assert!(chainpay_core::voucher::parse_code(code).is_some());
    let fee = voucher["fee"].as_i64().unwrap();
    assert!(fee > 0);
    assert_eq!(app.balance(&buyer, "KES").await, before - 50_000 - fee);

    let key = app.get_public("/api/v1/vouchers/authority").await["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let signed = voucher["signed"].as_str().unwrap();
    let terms = chainpay_core::voucher::verify(signed, &key).unwrap();
    assert_eq!(
        (terms.amount_minor, terms.currency.as_str()),
        (50_000, "KES")
    );

    let cli = |signed: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chainpay"));
        command
            .args(["voucher", "verify", signed, "--key", &key])
            .env("RUST_LOG", "warn");
        run_command(command)
    };
    let good = cli(signed).await;
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("signature valid"));
    let tampered = signed.replacen(".50000.", ".5000000.", 1);
    let bad = cli(&tampered).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("NOT VALID"));

    // Operators see the message masked; the phone gets the code.
    let stored: String = sqlx::query_scalar(
        "SELECT message FROM sms_outbox WHERE to_phone = $1 AND tx_id = $2::uuid",
    )
    .bind(USER_PHONE)
    .bind(voucher["tx_id"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        stored.contains(&format!("**** **** **** {}", &code[12..])),
        "{stored}"
    );
    let grouped = chainpay_core::voucher::grouped(code);
    assert!(
        !stored.contains(&grouped) && !stored.contains(code),
        "{stored}"
    );
    eventually("the code to reach the phone", secs(20), async || {
        let sent: Vec<String> =
            sqlx::query_scalar("SELECT message FROM sim_at_messages WHERE to_phone = $1")
                .bind(USER_PHONE)
                .fetch_all(&app.pool)
                .await
                .unwrap();
        sent.iter().any(|m| m.contains(&grouped)).then_some(())
    })
    .await;
    // Africa's Talking has it; the worker then records it sent and erases
    // the sealed copy.
    eventually(
        "the sealed copy to be erased once sent",
        secs(20),
        async || {
            let erased: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT sealed_message FROM sms_outbox WHERE tx_id = $1::uuid")
                    .bind(voucher["tx_id"].as_str().unwrap())
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            erased.is_none().then_some(())
        },
    )
    .await;
    let listed = app.get_json("/api/v1/vouchers", &buyer).await;
    assert_eq!(listed["vouchers"][0]["status"], "ACTIVE");
    assert!(listed["vouchers"][0].get("code").is_none());
}

#[tokio::test]
async fn ten_people_redeeming_one_voucher_at_once_get_it_paid_exactly_once() {
    let app = spawn_app().await;
    let buyer = app.token(USER_PHONE, DEMO_PIN).await;
    let voucher = buy(&app, &buyer, 20_000).await;
    let code = voucher["code"].as_str().unwrap().to_owned();
    let mut redeemers = Vec::new();
    for i in 0..10 {
        redeemers.push(
            app.verified_user(&format!("+2547113100{i:02}"), "Bearer Person", 0)
                .await,
        );
    }
    let attempts = redeemers.iter().map(|token| redeem(&app, token, &code));
    let answers = futures::future::join_all(attempts).await;
    let mut statuses: Vec<StatusCode> = answers.iter().map(|a| a.status()).collect();
    statuses.sort();
    assert_eq!(statuses[0], StatusCode::CREATED);
    assert!(
        statuses[1..].iter().all(|s| *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let mut paid = 0;
    for token in &redeemers {
        paid += app.balance(token, "KES").await;
    }
    assert_eq!(paid, 20_000, "exactly one redeemer was paid");
    let liability: i64 = sqlx::query_scalar(
        "SELECT balance FROM accounts WHERE kind = 'voucher_liability' AND currency = 'KES'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(liability, 0);
    let spent = redeem(&app, &redeemers[0], &code).await;
    assert_problem(spent, StatusCode::CONFLICT, "voucher_invalid").await;
    let listed = app.get_json("/api/v1/vouchers", &buyer).await;
    assert_eq!(listed["vouchers"][0]["status"], "REDEEMED");
    app.assert_balanced().await;
}

#[tokio::test]
async fn wrong_codes_count_and_five_a_day_pause_redeeming() {
    let app = spawn_app().await;
    let buyer = app.token(USER_PHONE, DEMO_PIN).await;
    let voucher = buy(&app, &buyer, 20_000).await;
    let guesser = app.verified_user("+254711320001", "Code Guesser", 0).await;
    assert_problem(
        redeem(&app, &guesser, "1234 5678").await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    for _ in 0..5 {
        assert_problem(
            redeem(&app, &guesser, &stranger_code()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "voucher_invalid",
        )
        .await;
    }
    let right = voucher["code"].as_str().unwrap();
    assert_problem(
        redeem(&app, &guesser, right).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    assert_eq!(app.balance(&guesser, "KES").await, 0);
    let refused: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'voucher.redeem' AND outcome = 'rejected'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(refused, 5, "every wrong code is audited");
    // Someone else with the right code is unaffected.
    let other = app
        .verified_user("+254711320002", "Rightful Bearer", 0)
        .await;
    assert_eq!(
        redeem(&app, &other, right).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn unredeemed_vouchers_return_to_the_buyer_on_cancel_and_at_expiry() {
    let app = spawn_app().await;
    let buyer = app.token(USER_PHONE, DEMO_PIN).await;
    let start = app.balance(&buyer, "KES").await;
    let first = buy(&app, &buyer, 30_000).await;
    let second = buy(&app, &buyer, 40_000).await;
    let fees = first["fee"].as_i64().unwrap() + second["fee"].as_i64().unwrap();

    let cancel = format!(
        "/api/v1/vouchers/{}/cancel",
        first["voucher_id"].as_str().unwrap()
    );
    let stranger = app.verified_user("+254711330001", "Not The Buyer", 0).await;
    assert_problem(
        app.post(&cancel, Some(&stranger), json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let cancelled = app.post(&cancel, Some(&buyer), json!({})).await;
    assert_eq!(cancelled.status(), StatusCode::CREATED);
    assert_eq!(
        cancelled.json::<Value>().await.unwrap()["type"],
        "voucher_refund"
    );
    assert_problem(
        app.post(&cancel, Some(&buyer), json!({})).await,
        StatusCode::CONFLICT,
        "voucher_invalid",
    )
    .await;
    assert_problem(
        redeem(&app, &stranger, first["code"].as_str().unwrap()).await,
        StatusCode::CONFLICT,
        "voucher_invalid",
    )
    .await;

    sqlx::query("UPDATE vouchers SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(second["voucher_id"].as_str().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    assert_problem(
        redeem(&app, &stranger, second["code"].as_str().unwrap()).await,
        StatusCode::CONFLICT,
        "voucher_invalid",
    )
    .await;
    eventually(
        "the expiry job to refund the voucher",
        secs(30),
        async || {
            let listed = app.get_json("/api/v1/vouchers", &buyer).await;
            (listed["vouchers"][0]["status"] == "EXPIRED").then_some(())
        },
    )
    .await;
    assert_eq!(
        app.balance(&buyer, "KES").await,
        start - fees,
        "both amounts back; fees kept"
    );
    let history = app
        .get_json("/api/v1/wallet/transactions?limit=10", &buyer)
        .await;
    let types: Vec<&str> = history["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        &types[..4],
        ["voucher_refund", "voucher_refund", "voucher", "voucher"],
        "{types:?}"
    );
    let admin = app.admin_token().await;
    let all = app
        .get_json("/api/v1/admin/vouchers?status=EXPIRED", &admin)
        .await;
    assert_eq!(all["vouchers"].as_array().unwrap().len(), 1);
    app.assert_balanced().await;
}

#[tokio::test]
async fn an_agent_redeems_a_bearers_voucher_for_cash_into_their_float() {
    let app = spawn_app().await;
    let (agent, _) = app.agent_with_float("+254711340001", "KES", 0).await;
    let buyer = app.token(USER_PHONE, DEMO_PIN).await;
    let voucher = buy(&app, &buyer, 25_000).await;
    let cashed = app
        .post(
            "/api/v1/agent/vouchers/redeem",
            Some(&agent),
            json!({"code": voucher["code"]}),
        )
        .await;
    assert_eq!(cashed.status(), StatusCode::CREATED);
    assert_eq!(app.float("+254711340001", "KES").await, 25_000);
    let another = buy(&app, &buyer, 25_000).await;
    let not_agent = app.verified_user("+254711340002", "Not An Agent", 0).await;
    let refused = app
        .post(
            "/api/v1/agent/vouchers/redeem",
            Some(&not_agent),
            json!({"code": another["code"]}),
        )
        .await;
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(app.balance(&not_agent, "KES").await, 0);
    app.assert_balanced().await;
}

#[tokio::test]
async fn guesses_sent_in_parallel_cannot_pass_the_limit_and_a_keyed_retry_replays() {
    let app = spawn_app().await;
    let guesser = app
        .verified_user("+254711320003", "Parallel Guesser", 0)
        .await;
    let keyed = app
        .request(
            reqwest::Method::POST,
            "/api/v1/vouchers/redeem",
            Some(&guesser),
        )
        .header("Idempotency-Key", "guess-1")
        .json(&json!({"code": stranger_code()}));
    let first = keyed.try_clone().unwrap().send().await.unwrap();
    assert_problem(first, StatusCode::UNPROCESSABLE_ENTITY, "voucher_invalid").await;
    let retried = keyed.send().await.unwrap();
    assert_eq!(
        retried
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_problem(retried, StatusCode::UNPROCESSABLE_ENTITY, "voucher_invalid").await;

    let guesses: Vec<String> = (0..12).map(|_| stranger_code()).collect();
    let answers =
        futures::future::join_all(guesses.iter().map(|code| redeem(&app, &guesser, code))).await;
    let counted = answers
        .iter()
        .filter(|a| a.status() == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    let paused = answers
        .iter()
        .filter(|a| a.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        counted,
        4,
        "five a day, the retry included once: {:?}",
        answers.iter().map(|a| a.status()).collect::<Vec<_>>()
    );
    assert_eq!(paused, 8);
}

/// A buyer suspended (a stolen phone reported, say) freezes their vouchers:
/// whoever holds a code cannot redeem it, into a wallet or for cash, until
/// the buyer is reinstated.
#[tokio::test]
async fn a_suspended_buyers_vouchers_cannot_be_redeemed_until_reinstated() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let buyer = app.token(USER_PHONE, DEMO_PIN).await;
    let voucher = buy(&app, &buyer, 20_000).await;
    let code = voucher["code"].as_str().unwrap();
    let bearer = app.verified_user("+254711330002", "Code Holder", 0).await;
    let buyer_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
        .bind(USER_PHONE)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let path = |verb: &str| format!("/api/v1/admin/users/{buyer_id}/{verb}");
    let suspended = app.post(&path("suspend"), Some(&admin), json!({})).await;
    assert_eq!(suspended.status(), StatusCode::OK);

    let refused = redeem(&app, &bearer, code).await;
    let problem = assert_problem(refused, StatusCode::CONFLICT, "voucher_invalid").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be redeemed now"),
        "{problem}"
    );
    assert_eq!(app.balance(&bearer, "KES").await, 0, "nothing paid");

    let reinstated = app.post(&path("unsuspend"), Some(&admin), json!({})).await;
    assert_eq!(reinstated.status(), StatusCode::OK);
    let redeemed = redeem(&app, &bearer, code).await;
    assert_eq!(redeemed.status(), StatusCode::CREATED);
    assert_eq!(app.balance(&bearer, "KES").await, 20_000);
    app.assert_balanced().await;
}
