//! Exchange rates, locked quotes and conversions through the HTTP API.

use std::str::FromStr;

use crate::support::*;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn dec(value: &Value) -> Decimal {
    Decimal::from_str(value.as_str().unwrap()).unwrap()
}

async fn quote(
    app: &TestApp,
    token: Option<&str>,
    from: &str,
    to: &str,
    amount: i64,
) -> reqwest::Response {
    let path = format!("/api/v1/fx/quote?from={from}&to={to}&amount={amount}");
    app.request(reqwest::Method::GET, &path, token)
        .send()
        .await
        .unwrap()
}

async fn convert(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post("/api/v1/wallet/convert", Some(token), body).await
}

/// Makes conversions free, so a test can look at the spread alone.
async fn free_conversions(app: &TestApp) {
    sqlx::query("UPDATE fee_bands SET rate = 0 WHERE kind = 'convert'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.state.rules.invalidate().await;
}

#[tokio::test]
async fn every_pair_is_quoted_and_cross_rates_follow_the_usd_legs() {
    let app = spawn_app().await;
    let rates: Value = app.get_public("/api/v1/fx/rates").await;
    let rates = rates["rates"].as_array().unwrap();
    assert_eq!(rates.len(), 5 * 4, "every ordered pair of five currencies");
    let pair = |name: &str| rates.iter().find(|r| r["pair"] == name).unwrap().clone();
    let usd_kes = pair("USD/KES");
    assert_eq!(dec(&usd_kes["mid"]), Decimal::from_str("129.5").unwrap());
    for rate in rates {
        assert!(
            dec(&rate["bid"]) < dec(&rate["mid"]) && dec(&rate["mid"]) < dec(&rate["ask"]),
            "{rate}"
        );
    }
    // EUR/KES is derived from USD/KES and USD/EUR.
    let derived = dec(&usd_kes["mid"]) / dec(&pair("USD/EUR")["mid"]);
    assert!(
        (dec(&pair("EUR/KES")["mid"]) - derived).abs() < Decimal::from_str("0.0000001").unwrap()
    );
    // Selling B for A at the bid of B/A is buying A at the ask of A/B.
    let kes_usd_bid = dec(&pair("KES/USD")["bid"]);
    let implied_ask = Decimal::ONE / kes_usd_bid;
    assert!((implied_ask - dec(&usd_kes["ask"])).abs() < Decimal::from_str("0.0001").unwrap());
}

#[tokio::test]
async fn a_quote_executes_exactly_as_quoted_once() {
    let app = spawn_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let (usd_before, kes_before) = (
        app.balance(&token, "USD").await,
        app.balance(&token, "KES").await,
    );
    let quoted: Value = quote(&app, Some(&token), "USD", "KES", 10_000)
        .await
        .json()
        .await
        .unwrap();
    // USD 100.00 at 129.5 × (1 − 0.0075) = 128.52875 → KES 12,852.87 (rounded down).
    assert_eq!(quoted["rate"], "128.52875");
    assert_eq!(quoted["converted_amount"], 1_285_287);
    // USD 100.00 is in the 1 % band.
    assert_eq!(quoted["fee"], 100);

    // The rate moves after the quote (two admins set it); the quote does not.
    for (admin, status) in [
        (app.admin_token().await, StatusCode::ACCEPTED),
        (app.second_admin().await, StatusCode::OK),
    ] {
        let moved = app
            .request(reqwest::Method::PUT, "/api/v1/admin/fx/rates", Some(&admin))
            .json(&json!({"rates": [{"currency": "KES", "usd_mid": "140"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(moved.status(), status);
    }

    let done = convert(&app, &token, json!({"quote_id": quoted["quote_id"]})).await;
    assert_eq!(done.status(), StatusCode::CREATED);
    let tx: Value = done.json().await.unwrap();
    assert_eq!(tx["type"], "conversion");
    assert_eq!(tx["currency"], "USD");
    assert_eq!(tx["to_currency"], "KES");
    assert_eq!(tx["amount"], 10_000);
    assert_eq!(tx["converted_amount"], 1_285_287);
    assert_eq!(tx["rate"], "128.52875");
    assert_eq!(tx["fee"], 100);
    assert_eq!(app.balance(&token, "USD").await, usd_before - 10_100);
    assert_eq!(app.balance(&token, "KES").await, kes_before + 1_285_287);

    let again = convert(&app, &token, json!({"quote_id": quoted["quote_id"]})).await;
    assert_problem(again, StatusCode::CONFLICT, "quote_expired").await;
    let stored = app
        .get_json(
            &format!("/api/v1/transactions/{}", tx["tx_id"].as_str().unwrap()),
            &token,
        )
        .await;
    assert_eq!(stored["converted_amount"], 1_285_287);
    assert_eq!(stored["rate"], "128.52875");
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_quote_used_after_it_expires_is_refused_and_moves_nothing() {
    let app = spawn_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let quoted: Value = quote(&app, Some(&token), "EUR", "GBP", 5_000)
        .await
        .json()
        .await
        .unwrap();
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(quoted["expires_at"].as_str().unwrap()).unwrap();
    let lifetime = expires_at
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!(
        (28..=30).contains(&lifetime),
        "locked for 30 s ({lifetime})"
    );
    // Thirty seconds pass.
    sqlx::query("UPDATE fx_quotes SET expires_at = now() - interval '1 millisecond' WHERE quote_id = $1::uuid")
        .bind(quoted["quote_id"].as_str().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let eur = app.balance(&token, "EUR").await;
    let late = convert(&app, &token, json!({"quote_id": quoted["quote_id"]})).await;
    let body = assert_problem(late, StatusCode::CONFLICT, "quote_expired").await;
    assert!(body["detail"].as_str().unwrap().contains("expired"));
    assert_eq!(app.balance(&token, "EUR").await, eur);
}

#[tokio::test]
async fn a_quote_reserved_to_one_user_cannot_be_used_by_another() {
    let app = spawn_app().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let admin = app.admin_token().await;
    let mine: Value = quote(&app, Some(&user), "USD", "EUR", 1_000)
        .await
        .json()
        .await
        .unwrap();
    assert_problem(
        convert(&app, &admin, json!({"quote_id": mine["quote_id"]})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // An anonymous caller gets an indicative price: nothing to convert with.
    let open: Value = quote(&app, None, "USD", "EUR", 1_000)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(open["indicative"], true);
    assert!(open["quote_id"].is_null() && open["expires_at"].is_null());
    assert_eq!(open["converted_amount"], mine["converted_amount"]);
}

#[tokio::test]
async fn a_round_trip_loses_the_spread_and_never_gains() {
    let app = spawn_app().await;
    free_conversions(&app).await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let usd_before = app.balance(&token, "USD").await;
    for amount in [100, 12_345, 150_000] {
        let out: Value = convert(
            &app,
            &token,
            json!({"from_currency": "USD", "to_currency": "KES", "amount": amount}),
        )
        .await
        .json()
        .await
        .unwrap();
        let back: Value = convert(
            &app,
            &token,
            json!({"from_currency": "KES", "to_currency": "USD", "amount": out["converted_amount"]}),
        )
        .await
        .json()
        .await
        .unwrap();
        let returned = Decimal::from(back["converted_amount"].as_i64().unwrap());
        let half = Decimal::ONE - Decimal::from_str("0.0075").unwrap();
        let ceiling = (Decimal::from(amount) * half * half).floor();
        assert!(
            returned <= ceiling,
            "{amount} came back as {returned}, above {ceiling}"
        );
        assert!(
            returned >= ceiling - Decimal::from(3),
            "{amount} came back as {returned}, far below {ceiling}"
        );
    }
    assert!(app.balance(&token, "USD").await < usd_before);
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_conversion_is_one_balanced_entry_through_the_fx_positions() {
    let app = spawn_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let tx: Value = convert(
        &app,
        &token,
        json!({"from_currency": "GBP", "to_currency": "NGN", "amount": 2_000}),
    )
    .await
    .json()
    .await
    .unwrap();
    let postings: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT a.kind, a.currency, p.amount FROM postings p JOIN accounts a ON a.id = p.account_id
         WHERE p.tx_id = $1::uuid ORDER BY a.currency, p.amount",
    )
    .bind(tx["tx_id"].as_str().unwrap())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let converted = tx["converted_amount"].as_i64().unwrap();
    let fee = tx["fee"].as_i64().unwrap();
    assert_eq!(
        postings,
        vec![
            ("wallet".into(), "GBP".into(), -(2_000 + fee)),
            ("fee_revenue".into(), "GBP".into(), fee),
            ("fx_position".into(), "GBP".into(), 2_000),
            ("fx_position".into(), "NGN".into(), -converted),
            ("wallet".into(), "NGN".into(), converted),
        ]
    );
    app.assert_balanced().await;
}

#[tokio::test]
async fn bad_conversions_get_clear_errors_and_change_nothing() {
    let app = spawn_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let poor = app.new_user("+254714000001", "Poor").await;
    let cases = [
        (
            json!({"from_currency": "USD", "to_currency": "USD", "amount": 100}),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            json!({"from_currency": "USD", "to_currency": "XYZ", "amount": 100}),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            json!({"from_currency": "USD", "to_currency": "KES", "amount": 0}),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            json!({"from_currency": "KES", "to_currency": "USD", "amount": 1}),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            json!({"from_currency": "USD", "amount": 100}),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            json!({"quote_id": "not-a-uuid"}),
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            json!({"quote_id": uuid::Uuid::new_v4()}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        let response = convert(&app, &token, body.clone()).await;
        assert_eq!(response.status(), status, "{body}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], code, "{body}: {problem}");
    }
    assert_problem(
        convert(
            &app,
            &poor,
            json!({"from_currency": "USD", "to_currency": "KES", "amount": 100}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
    )
    .await;
    assert_problem(
        quote(&app, None, "USD", "KES", -1).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    let conversions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transactions WHERE tx_type = 'conversion'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(conversions, 0);
}

/// A rate is a price the house converts at: one admin alone setting it off
/// the market (even a little, on two legs at once) could have an accomplice
/// convert at it and take e-money the house never had. Every change waits
/// for a second admin to set the same value.
#[tokio::test]
async fn operators_set_rates_and_spread_with_four_eyes_and_every_change_is_audited() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let second = app.second_admin().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let put = |token: &str, body: Value| {
        app.request(reqwest::Method::PUT, "/api/v1/admin/fx/rates", Some(token))
            .json(&body)
            .send()
    };
    assert_problem(
        put(&user, json!({"spread": "0.02"})).await.unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    for bad in [
        json!({"rates": [{"currency": "KES", "usd_mid": "-1"}]}),
        json!({"rates": [{"currency": "KES", "usd_mid": "abc"}]}),
        json!({"rates": [{"currency": "USD", "usd_mid": "2"}]}),
        json!({"rates": [{"currency": "XYZ", "usd_mid": "2"}]}),
        json!({"rates": [{"currency": "KES", "usd_mid": "130"}, {"currency": "KES", "usd_mid": "131"}]}),
        json!({"spread": "0.9"}),
        json!({}),
    ] {
        assert_problem(
            put(&admin, bad).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "validation_error",
        )
        .await;
    }
    let change = json!({"rates": [{"currency": "NGN", "usd_mid": "1600.25"}], "spread": "0.02"});
    for _ in 0..2 {
        let proposed = put(&admin, change.clone()).await.unwrap();
        assert_eq!(
            proposed.status(),
            StatusCode::ACCEPTED,
            "asking again is still one proposal"
        );
        let book: Value = proposed.json().await.unwrap();
        assert_eq!(book["spread"], "0.015", "nothing in force yet");
        let subjects: Vec<&str> = book["proposals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["subject"].as_str().unwrap())
            .collect();
        assert_eq!(subjects.len(), 2);
        assert!(subjects.contains(&"NGN") && subjects.contains(&"spread"));
    }
    let quoted: Value = quote(&app, None, "USD", "NGN", 100)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        quoted["rate"], "1538.375",
        "1550 × (1 − 0.0075): the rate in force"
    );

    // A second admin setting another value proposes it instead; setting the
    // same one (written differently) puts it in force.
    let other = put(&second, json!({"spread": "0.03"})).await.unwrap();
    assert_eq!(other.status(), StatusCode::ACCEPTED);
    let agreed = json!({"rates": [{"currency": "NGN", "usd_mid": "1600.250"}]});
    let book: Value = put(&second, agreed).await.unwrap().json().await.unwrap();
    let ngn = book["legs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["currency"] == "NGN")
        .unwrap();
    assert_eq!(ngn["usd_mid"], "1600.25");
    assert_eq!(ngn["source"], "admin");
    let spread = put(&admin, json!({"spread": "0.03"})).await.unwrap();
    assert_eq!(spread.status(), StatusCode::OK);
    let book: Value = spread.json().await.unwrap();
    assert_eq!(book["spread"], "0.03");
    assert_eq!(book["proposals"].as_array().unwrap().len(), 0);
    let quoted: Value = quote(&app, None, "USD", "NGN", 100)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(quoted["rate"], "1576.24625", "1600.25 × (1 − 0.015)");

    // A proposal lapses after 15 minutes: the same value is then a new one.
    assert_eq!(
        put(&admin, json!({"spread": "0.02"}))
            .await
            .unwrap()
            .status(),
        StatusCode::ACCEPTED
    );
    sqlx::query("UPDATE fx_rate_proposals SET proposed_at = now() - interval '16 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    let late = put(&second, json!({"spread": "0.02"})).await.unwrap();
    assert_eq!(late.status(), StatusCode::ACCEPTED);
    // So does one whose proposer has been suspended since.
    sqlx::query("UPDATE users SET suspended = true WHERE phone = '+254799000099'")
        .execute(&app.pool)
        .await
        .unwrap();
    let orphaned = put(&admin, json!({"spread": "0.02"})).await.unwrap();
    assert_eq!(orphaned.status(), StatusCode::ACCEPTED);
    let book: Value = orphaned.json().await.unwrap();
    assert_eq!(book["spread"], "0.03", "nothing put in force");

    let audit = app
        .get_json("/api/v1/admin/audit-log?action=config.fx_rates", &admin)
        .await;
    let outcomes: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["detail"]["changes"].as_array().unwrap())
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "agreed").count(), 2);
    assert_eq!(outcomes.iter().filter(|o| **o == "proposed").count(), 8);
}

#[tokio::test]
async fn the_send_preview_shows_the_recipient_and_the_tiered_fee() {
    let app = spawn_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let small = app
        .get_json(
            "/api/v1/wallet/send/preview?to_phone=0700000000&amount=25000&currency=KES",
            &token,
        )
        .await;
    assert_eq!(small["recipient_name"], "ChainPay Admin");
    assert_eq!(small["fee"], 500, "KES 250.00 ≈ USD 1.93: 2 %");
    assert_eq!(small["total"], 25_500);
    let large = app
        .get_json(
            "/api/v1/wallet/send/preview?to_phone=0700000000&amount=150000&currency=USD",
            &token,
        )
        .await;
    assert_eq!(large["fee"], 750, "USD 1,500.00: 0.5 %");
    assert_problem(
        app.get(
            "/api/v1/wallet/send/preview?to_phone=0799000000&amount=100&currency=KES",
            &token,
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_send_preview_answers_while_a_movement_holds_the_sender() {
    let app = spawn_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    // A movement in progress holds the sender's row until it commits.
    let mut movement = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM users WHERE phone = $1 FOR UPDATE")
        .bind(USER_PHONE)
        .execute(&mut *movement)
        .await
        .unwrap();
    let preview = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.get_json(
            "/api/v1/wallet/send/preview?to_phone=0700000000&amount=25000&currency=KES",
            &token,
        ),
    )
    .await
    .expect("the preview waited for the movement");
    assert_eq!(preview["recipient_name"], "ChainPay Admin");
    movement.rollback().await.unwrap();
}

#[tokio::test]
async fn the_simulated_feed_moves_each_rate_at_most_0_3_percent_per_tick() {
    let app = spawn_with(TestOptions {
        configure: |settings| {
            settings.fx_feed = FxFeed::Simulated;
            settings.fx_feed_interval_s = 1;
        },
        ..TestOptions::default()
    })
    .await;
    let admin = app.admin_token().await;
    let legs = |book: &Value| -> Vec<(String, Decimal, String)> {
        book["legs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["currency"].as_str().unwrap().to_owned(),
                    dec(&l["usd_mid"]),
                    l["source"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let mut previous = legs(&app.get_json("/api/v1/admin/fx/rates", &admin).await);
    for _ in 0..2 {
        let current = eventually("the feed to tick", secs(20), async || {
            let current = legs(&app.get_json("/api/v1/admin/fx/rates", &admin).await);
            (current != previous).then_some(current)
        })
        .await;
        for ((currency, before, _), (_, after, source)) in previous.iter().zip(&current) {
            assert_eq!(source, "simulated");
            if currency == "USD" {
                assert_eq!(*after, Decimal::ONE);
            } else {
                let step = (*after / *before - Decimal::ONE).abs();
                assert!(
                    step <= Decimal::from_str("0.0030001").unwrap(),
                    "{currency} moved {step}"
                );
            }
        }
        previous = current;
    }
}
