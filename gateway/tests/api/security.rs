//! Each finding of the security audit, replayed as the attack it was: it
//! now fails safely and moves no money.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU16, Ordering};

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn rejected_webhooks_write_nothing_and_are_counted() {
    let app = spawn_app().await;
    let (callbacks, audits) = (
        count(&app, "SELECT count(*) FROM mpesa_callbacks").await,
        count(&app, "SELECT count(*) FROM audit_log").await,
    );
    let padding = "x".repeat(60_000);
    for path in [
        "/api/v1/mpesa/callback?token=guess",
        "/api/v1/mpesa/callback",
        "/api/v1/mpesa/b2c/result?token=guess",
    ] {
        for _ in 0..20 {
            let response = app
                .client
                .post(app.url(path))
                .json(&json!({"Body": {"padding": padding}}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM mpesa_callbacks").await,
        callbacks
    );
    assert_eq!(count(&app, "SELECT count(*) FROM audit_log").await, audits);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"chainpay_rejected_webhooks_total{reason="bad_token",webhook="mpesa_stk"} 40"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"chainpay_rejected_webhooks_total{reason="bad_token",webhook="mpesa_b2c"} 20"#
    ));
}

#[tokio::test]
async fn only_short_safe_request_ids_are_kept() {
    let app = spawn_app().await;
    let echoed = |id: String| {
        let app = &app;
        async move {
            let response = app
                .client
                .post(app.url("/api/v1/auth/login"))
                .header("x-request-id", id)
                .json(&json!({"phone": "0700000009", "pin": "5831"}))
                .send()
                .await
                .unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(echoed("trace-42.a:b_c".into()).await, "trace-42.a:b_c");
    for hostile in [
        "x".repeat(200_000),
        "a status=200 user_id=00000000".into(),
        "<script>".into(),
    ] {
        let replaced = echoed(hostile.clone()).await;
        assert_ne!(replaced, hostile);
        assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
    }
    let longest: i64 = count(
        &app,
        "SELECT coalesce(max(length(request_id)), 0)::bigint FROM audit_log",
    )
    .await;
    assert!(
        longest <= 64,
        "an audit row kept a {longest}-byte request id"
    );
}

#[tokio::test]
async fn inbound_sms_answers_only_registered_numbers_and_at_most_ten_an_hour() {
    let app = spawn_app().await;
    let inbound = |from: &'static str, id: String| {
        let app = &app;
        async move {
            let response = app
                .client
                .post(app.url("/api/v1/sms/inbound"))
                .form(&[
                    ("from", from),
                    ("to", "22384"),
                    ("text", "HELP"),
                    ("id", id.as_str()),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    };
    for n in 0..30 {
        inbound("+2348031234567", format!("stranger-{n}")).await;
    }
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM sms_outbox WHERE to_phone = '+2348031234567'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM sms_inbound").await,
        0,
        "nothing is written for a stranger"
    );
    for n in 0..15 {
        inbound("+254700000001", format!("customer-{n}")).await;
    }
    let replies = count(
        &app,
        "SELECT count(*) FROM sms_outbox WHERE to_phone = '+254700000001'",
    )
    .await;
    assert_eq!(
        replies, 10,
        "a customer is answered ten times an hour, no more"
    );
}

#[tokio::test]
async fn chain_views_show_hashes_only_and_proofs_go_to_parties_and_admins() {
    let app = spawn_app().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let admin = app.admin_token().await;
    let sent: Value = app
        .send(&user, ADMIN_PHONE, 500, "KES")
        .await
        .json()
        .await
        .unwrap();
    let tx_id = sent["tx_id"].as_str().unwrap();
    let mined = app
        .request(Method::POST, "/api/v1/blockchain/mine", Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(mined.status(), StatusCode::CREATED);
    let index = mined.json::<Value>().await.unwrap()["index"]
        .as_i64()
        .unwrap();
    let public = app
        .get_public(&format!("/api/v1/blockchain/blocks/{index}"))
        .await;
    let leaves = public["transactions"].as_array().unwrap();
    assert!(
        !leaves.is_empty()
            && leaves
                .iter()
                .all(|l| l["tx_id"].is_null() && l["leaf_hash"].is_string())
    );
    assert!(
        !public.to_string().contains(tx_id),
        "the public block names no transaction"
    );
    let full = app
        .get_json(&format!("/api/v1/blockchain/blocks/{index}"), &admin)
        .await;
    assert!(full["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["tx_id"] == tx_id));

    let proof = format!("/api/v1/blockchain/proof/{tx_id}");
    let anonymous = app.client.get(app.url(&proof)).send().await.unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let stranger = app.new_user("+254712999001", "Nosy Neighbour").await;
    assert_problem(
        app.get(&proof, &stranger).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for party in [&user, &admin] {
        let shown = app.get_json(&proof, party).await;
        assert_eq!(shown["tx_id"], tx_id);
        assert!(shown["leaf"].as_str().unwrap().contains(tx_id));
    }
}

#[tokio::test]
async fn a_pin_change_logout_all_and_a_suspension_end_every_earlier_token() {
    let app = spawn_app().await;
    let phone = "+254712999002";
    let first = app.new_user(phone, "Many Devices").await;
    let second = app.token(phone, "5831").await;
    let changed = app
        .post(
            "/api/v1/auth/change-pin",
            Some(&first),
            json!({"old_pin": "5831", "new_pin": "7395"}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    for old in [&first, &second] {
        assert_problem(
            app.get("/api/v1/wallet/balances", old).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    let third = app.token(phone, "7395").await;
    let fourth = app.token(phone, "7395").await;
    let all = app
        .post("/api/v1/auth/logout-all", Some(&third), json!({}))
        .await;
    assert_eq!(all.status(), StatusCode::NO_CONTENT);
    for old in [&third, &fourth] {
        assert_eq!(
            app.get("/api/v1/wallet/balances", old).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // A suspension ends tokens too: lifting it does not revive them.
    let fifth = app.token(phone, "7395").await;
    let admin = app.admin_token().await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
        .bind(phone)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for action in ["suspend", "unsuspend"] {
        let done = app
            .post(
                &format!("/api/v1/admin/users/{id}/{action}"),
                Some(&admin),
                json!({}),
            )
            .await;
        assert_eq!(done.status(), StatusCode::OK);
    }
    assert_eq!(
        app.get("/api/v1/wallet/balances", &fifth).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let fresh = app.token(phone, "7395").await;
    assert_eq!(
        app.get("/api/v1/wallet/balances", &fresh).await.status(),
        StatusCode::OK
    );
}

/// Five wrong PINs for `phone`; returns the last answer.
async fn five_wrong(app: &TestApp, phone: &str) -> reqwest::Response {
    let mut last = None;
    for _ in 0..5 {
        last = Some(app.login(phone, "0000").await);
    }
    last.unwrap()
}

async fn expire_lock(app: &TestApp, phone: &str) {
    sqlx::query("UPDATE users SET locked_until = now() - interval '1 second' WHERE phone = $1")
        .bind(phone)
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_pins_lock_for_longer_each_time_then_until_an_admin_unlocks() {
    let app = spawn_app().await;
    let phone = "+254712999003";
    app.new_user(phone, "Forgetful Farmer").await;
    let first = five_wrong(&app, phone).await;
    assert_eq!(first.headers()["retry-after"], "300");
    assert_problem(first, StatusCode::LOCKED, "account_locked").await;
    expire_lock(&app, phone).await;
    let second = five_wrong(&app, phone).await;
    assert_eq!(second.headers()["retry-after"], "3600");
    expire_lock(&app, phone).await;
    let third = five_wrong(&app, phone).await;
    assert!(
        third.headers().get("retry-after").is_none(),
        "locked until an admin acts"
    );
    let body = assert_problem(third, StatusCode::LOCKED, "account_locked").await;
    assert!(body["detail"].as_str().unwrap().contains("support"));
    // Even the right PIN is refused now, and not looked at.
    assert_eq!(app.login(phone, "5831").await.status(), StatusCode::LOCKED);
    let told: Vec<String> =
        sqlx::query_scalar("SELECT message FROM sms_outbox WHERE to_phone = $1 ORDER BY id")
            .bind(phone)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(told.len(), 3, "the owner is told of every lock: {told:?}");
    assert!(
        told[0].contains("5 minutes")
            && told[1].contains("60 minutes")
            && told[2].contains("support")
    );

    let admin = app.admin_token().await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
        .bind(phone)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let unlock = format!("/api/v1/admin/users/{id}/unlock");
    let noteless = app.post(&unlock, Some(&admin), json!({"note": ""})).await;
    assert_problem(noteless, StatusCode::BAD_REQUEST, "validation_error").await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    assert_eq!(
        app.post(&unlock, Some(&user), json!({"note": "me"}))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let unlocked = app
        .post(
            &unlock,
            Some(&admin),
            json!({"note": "ID checked at the branch"}),
        )
        .await;
    assert_eq!(unlocked.status(), StatusCode::OK);
    assert_eq!(app.login(phone, "5831").await.status(), StatusCode::OK);
    let audited = count(&app, "SELECT count(*) FROM audit_log WHERE action = 'admin.unlock' AND detail->>'note' = 'ID checked at the branch'").await;
    assert_eq!(audited, 1);
}

/// An admin's own KYC (their limits) and the reports about them are
/// another admin's call; such reports are not even shown to them.
#[tokio::test]
async fn an_admin_neither_verifies_themselves_nor_reviews_a_report_about_themselves() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let me: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
        .bind(ADMIN_PHONE)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let own_kyc = app
        .post(
            &format!("/api/v1/admin/users/{me}/kyc"),
            Some(&admin),
            json!({"status": "VERIFIED"}),
        )
        .await;
    assert_problem(own_kyc, StatusCode::FORBIDDEN, "forbidden").await;
    let sar: i64 = sqlx::query_scalar(
        "INSERT INTO sars (user_id, rule, detail) VALUES ($1, 'structuring', '{}') RETURNING id",
    )
    .bind(me)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let path = format!("/api/v1/admin/sars/{sar}");
    let body = json!({"status": "UNDER_REVIEW", "note": "looking"});
    let own_case = app.post(&path, Some(&admin), body.clone()).await;
    assert_problem(own_case, StatusCode::NOT_FOUND, "not_found").await;
    // Nor is it shown to them (no tipping off); another admin sees it.
    let listed = app.get_json("/api/v1/admin/suspicious", &admin).await;
    assert!(!listed["sars"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == sar));
    assert_problem(
        app.get(&path, &admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let second = app.second_admin().await;
    let listed = app.get_json("/api/v1/admin/suspicious", &second).await;
    assert!(listed["sars"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == sar));
    let reviewed = app.post(&path, Some(&second), body).await;
    assert_eq!(reviewed.status(), StatusCode::OK);
    // The review's audit row, and the open-case count, also stay out of
    // their sight.
    let reviews = "/api/v1/admin/audit-log?action=admin.sar_review";
    let subject = sar.to_string();
    let mentions = |page: &Value| {
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["subject"] == subject.as_str())
    };
    assert!(!mentions(&app.get_json(reviews, &admin).await));
    assert!(mentions(&app.get_json(reviews, &second).await));
    let open = |page: Value| page["open_sars"].as_i64().unwrap();
    let theirs = open(app.get_json("/api/v1/admin/overview", &admin).await);
    let others = open(app.get_json("/api/v1/admin/overview", &second).await);
    assert_eq!(others - theirs, 1);
}

#[tokio::test]
async fn an_admin_cannot_approve_a_correction_they_asked_for_or_gain_from() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let sent: Value = app
        .send(&admin, USER_PHONE, 2_000, "KES")
        .await
        .json()
        .await
        .unwrap();
    let requested = app
        .post(
            "/api/v1/reversal/request",
            Some(&admin),
            json!({"tx_id": sent["tx_id"], "reason": "Sent twice"}),
        )
        .await;
    assert_eq!(requested.status(), StatusCode::CREATED);
    let id = requested.json::<Value>().await.unwrap()["reversal_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&user, "KES").await;
    let own = app
        .post(
            &format!("/api/v1/admin/reversals/{id}/approve"),
            Some(&admin),
            json!({"note": "mine"}),
        )
        .await;
    let body = assert_problem(own, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(body["detail"].as_str().unwrap().contains("another admin"));
    // Nor does a party reject it: the recipient, made an admin, would keep
    // the money by rejecting as surely as an approval would move it.
    sqlx::query("UPDATE users SET role = 'admin' WHERE phone = $1")
        .bind(USER_PHONE)
        .execute(&app.pool)
        .await
        .unwrap();
    let recipient = app.token(USER_PHONE, DEMO_PIN).await;
    let kept = app
        .post(
            &format!("/api/v1/admin/reversals/{id}/reject"),
            Some(&recipient),
            json!({"note": "mine now"}),
        )
        .await;
    assert_problem(kept, StatusCode::FORBIDDEN, "forbidden").await;
    sqlx::query("UPDATE users SET role = 'user' WHERE phone = $1")
        .bind(USER_PHONE)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.balance(&user, "KES").await, before, "nothing moved");

    // Two admins other than the parties: the first approval is recorded
    // (asking again changes nothing), the second books it.
    let approve = format!("/api/v1/admin/reversals/{id}/approve");
    let second = app.second_admin().await;
    for _ in 0..2 {
        let first = app
            .post(&approve, Some(&second), json!({"note": "checked"}))
            .await;
        assert_eq!(first.status(), StatusCode::ACCEPTED);
        let first: Value = first.json().await.unwrap();
        assert_eq!(first["status"], "PENDING");
        assert_eq!(app.balance(&user, "KES").await, before, "nothing moved yet");
    }
    // A first approval stands three days; after that the next approval is
    // a first one again.
    sqlx::query("UPDATE reversal_requests SET first_approved_at = now() - interval '73 hours'")
        .execute(&app.pool)
        .await
        .unwrap();
    let third = app.admin_at("+254799000098", "Third Admin").await;
    let renewed = app
        .post(&approve, Some(&third), json!({"note": "seen too"}))
        .await;
    assert_eq!(renewed.status(), StatusCode::ACCEPTED);
    assert_eq!(app.balance(&user, "KES").await, before);
    let approved = app
        .post(&approve, Some(&second), json!({"note": "checked again"}))
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
    assert_eq!(app.balance(&user, "KES").await, before - 2_000);
    let named: Value =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'admin.reversal_approve'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let requester: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
        .bind(ADMIN_PHONE)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(named["requested_by"], requester.to_string());
    assert_ne!(named["decided_by"], named["requested_by"]);
    assert_ne!(named["decided_by"], named["first_approved_by"]);
    assert!(named["first_approved_by"].is_string());
    app.assert_balanced().await;
}

#[tokio::test]
async fn simulator_controls_answer_only_an_admin() {
    let app = spawn_with(TestOptions {
        configure: |settings| settings.mpesa.sim_delay_ms = 600_000,
        ..TestOptions::default()
    })
    .await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let started: Value = app
        .post(
            "/api/v1/mpesa/initiate",
            Some(&user),
            json!({"amount": 10_000}),
        )
        .await
        .json()
        .await
        .unwrap();
    let control = format!(
        "/sim/daraja/stk/{}",
        started["checkout_request_id"].as_str().unwrap()
    );
    let before = app.balance(&user, "KES").await;
    let anonymous = app
        .client
        .post(app.url(&control))
        .json(&json!({"result_code": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let customer = app
        .post(&control, Some(&user), json!({"result_code": 0}))
        .await;
    assert_eq!(customer.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.balance(&user, "KES").await,
        before,
        "nobody but an admin settles a prompt"
    );
}

#[tokio::test]
async fn deposits_pass_the_same_screening_and_tier_limits_as_any_movement() {
    let app = spawn_app().await;
    // A KYC-pending customer may hold USD 100.00 a day: KES 20,000 is more.
    let pending = app.new_user("+254712999004", "New Customer").await;
    let over = app
        .post(
            "/api/v1/mpesa/initiate",
            Some(&pending),
            json!({"amount": 2_000_000}),
        )
        .await;
    assert_problem(over, StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded").await;
    let within = app
        .post(
            "/api/v1/mpesa/initiate",
            Some(&pending),
            json!({"amount": 500_000}),
        )
        .await;
    assert_eq!(within.status(), StatusCode::ACCEPTED);
    let again = app
        .post(
            "/api/v1/mpesa/initiate",
            Some(&pending),
            json!({"amount": 900_000}),
        )
        .await;
    assert_problem(again, StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded").await;

    let rejected = app.new_user("+254712999005", "Rejected Customer").await;
    sqlx::query("UPDATE users SET kyc_status = 'REJECTED' WHERE phone = '+254712999005'")
        .execute(&app.pool)
        .await
        .unwrap();
    let refused = app
        .post(
            "/api/v1/mpesa/initiate",
            Some(&rejected),
            json!({"amount": 10_000}),
        )
        .await;
    assert_problem(refused, StatusCode::FORBIDDEN, "kyc_required").await;

    let admin = app.admin_token().await;
    let listed = app.new_user("+254712999006", "Listed Person").await;
    let added = app
        .post(
            "/api/v1/admin/sanctions",
            Some(&admin),
            json!({"name": "Someone Else", "phone": "+254712999006"}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let sanctioned = app
        .post(
            "/api/v1/mpesa/initiate",
            Some(&listed),
            json!({"amount": 10_000}),
        )
        .await;
    assert_problem(sanctioned, StatusCode::FORBIDDEN, "sanctioned").await;
    let prompts = count(&app, "SELECT count(*) FROM mpesa_deposits").await;
    assert_eq!(
        prompts, 1,
        "only the deposit within the tier prompted a phone"
    );
}

#[tokio::test]
async fn eight_copies_of_one_keyed_deposit_prompt_the_phone_once() {
    let app = spawn_with(TestOptions {
        configure: |settings| settings.mpesa.sim_delay_ms = 600_000,
        ..TestOptions::default()
    })
    .await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let copies = (0..8).map(|_| {
        app.request(Method::POST, "/api/v1/mpesa/initiate", Some(&user))
            .header("Idempotency-Key", "deposit-once")
            .json(&json!({"amount": 10_000}))
            .send()
    });
    let answers = futures::future::join_all(copies).await;
    let mut refs = std::collections::HashSet::new();
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status() {
            StatusCode::ACCEPTED => {
                refs.insert(
                    answer.json::<Value>().await.unwrap()["ref"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
            }
            StatusCode::CONFLICT => {
                assert_problem(answer, StatusCode::CONFLICT, "idempotency_conflict").await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(refs.len(), 1, "every accepted copy names the same deposit");
    assert_eq!(count(&app, "SELECT count(*) FROM mpesa_deposits").await, 1);
    assert_eq!(
        count(&app, "SELECT count(*) FROM sim_daraja_pushes").await,
        1,
        "one STK push"
    );
    // After the first finished, a copy replays it.
    let replay = app
        .request(Method::POST, "/api/v1/mpesa/initiate", Some(&user))
        .header("Idempotency-Key", "deposit-once")
        .json(&json!({"amount": 10_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert!(refs.contains(
        replay.json::<Value>().await.unwrap()["ref"]
            .as_str()
            .unwrap()
    ));
}

#[tokio::test]
async fn a_deposit_prompts_only_the_customers_own_phone_a_few_times_an_hour() {
    let app = spawn_with(TestOptions {
        configure: |settings| {
            settings.mpesa.sim_delay_ms = 600_000;
            settings.mpesa.prompts_per_phone_hour = 3;
        },
        ..TestOptions::default()
    })
    .await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let victim = app
        .post(
            "/api/v1/mpesa/initiate",
            Some(&user),
            json!({"amount": 10_000, "phone": "0712345678"}),
        )
        .await;
    assert_problem(victim, StatusCode::UNPROCESSABLE_ENTITY, "not_eligible").await;
    for _ in 0..3 {
        let own = app
            .post(
                "/api/v1/mpesa/initiate",
                Some(&user),
                json!({"amount": 10_000}),
            )
            .await;
        assert_eq!(own.status(), StatusCode::ACCEPTED);
    }
    let fourth = app
        .post(
            "/api/v1/mpesa/initiate",
            Some(&user),
            json!({"amount": 10_000}),
        )
        .await;
    assert!(fourth.headers().contains_key("retry-after"));
    assert_problem(fourth, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(
        count(&app, "SELECT count(*) FROM sim_daraja_pushes").await,
        3
    );
}

#[tokio::test]
async fn anonymous_quotes_write_nothing_and_a_quote_belongs_to_its_owner() {
    let app = spawn_app().await;
    let quotes = count(&app, "SELECT count(*) FROM fx_quotes").await;
    for _ in 0..50 {
        let quote = app
            .get_public("/api/v1/fx/quote?from=USD&to=KES&amount=10000")
            .await;
        assert_eq!(quote["indicative"], true);
        assert!(quote["quote_id"].is_null() && quote["converted_amount"].as_i64().unwrap() > 0);
    }
    assert_eq!(
        count(&app, "SELECT count(*) FROM fx_quotes").await,
        quotes,
        "nothing was stored"
    );
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let locked = app
        .get_json("/api/v1/fx/quote?from=USD&to=KES&amount=10000", &user)
        .await;
    assert_eq!(locked["indicative"], false);
    let admin = app.admin_token().await;
    let taken = app
        .post(
            "/api/v1/wallet/convert",
            Some(&admin),
            json!({"quote_id": locked["quote_id"]}),
        )
        .await;
    assert_problem(taken, StatusCode::NOT_FOUND, "not_found").await;
    let own = app
        .post(
            "/api/v1/wallet/convert",
            Some(&user),
            json!({"quote_id": locked["quote_id"]}),
        )
        .await;
    assert_eq!(own.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn metrics_answer_only_a_bearer_of_the_metrics_token() {
    let app = spawn_app().await;
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let admin = app.admin_token().await;
    let wrong = app
        .request(Method::GET, "/metrics", Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong.status(),
        StatusCode::UNAUTHORIZED,
        "an admin session is not the metrics token"
    );
    assert!(app.metrics().await.contains("chainpay_http_requests_total"));

    // With no token configured, the main listener does not serve them at all;
    // a private listener does, without a token.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    PRIVATE_METRICS_PORT.store(free.local_addr().unwrap().port(), Ordering::SeqCst);
    drop(free);
    let private = spawn_with(TestOptions {
        configure: |settings| {
            settings.metrics_token = None;
            let port = PRIVATE_METRICS_PORT.load(Ordering::SeqCst);
            settings.metrics_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        },
        ..TestOptions::default()
    })
    .await;
    let main = private
        .client
        .get(private.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
    let port = PRIVATE_METRICS_PORT.load(Ordering::SeqCst);
    let text = eventually("the private metrics listener", secs(10), async || {
        let response = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .ok()?;
        (response.status() == StatusCode::OK).then(|| response.text())
    })
    .await
    .await
    .unwrap();
    assert!(text.contains("chainpay_http_requests_total"));
}

/// The port a test's private metrics listener binds (settings are set by a
/// plain function, so the port travels through here).
static PRIVATE_METRICS_PORT: AtomicU16 = AtomicU16::new(0);
