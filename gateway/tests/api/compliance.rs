//! The AML rules at their boundaries, through the HTTP API: single and daily
//! limits, hourly velocity, structuring reports, KYC tiers, sanctions, and
//! the SAR review workflow.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Sends USD cents from `token` to the demo user; returns the response.
async fn pay(app: &TestApp, token: &str, usd_cents: i64) -> reqwest::Response {
    app.send(token, USER_PHONE, usd_cents, "USD").await
}

async fn rejected_rules(app: &TestApp, phone: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT a.detail->>'rule' FROM audit_log a JOIN users u ON u.id = a.actor_user_id
         WHERE u.phone = $1 AND a.action = 'wallet.send' AND a.outcome = 'rejected' ORDER BY a.id",
    )
    .bind(phone)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_single_transaction_limit_allows_usd_2000_and_not_a_cent_more() {
    let app = spawn_app().await;
    let token = app
        .verified_user("+254713000001", "Limit Tester", 1_000_000)
        .await;
    assert_eq!(
        pay(&app, &token, 199_999).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        pay(&app, &token, 200_000).await.status(),
        StatusCode::CREATED
    );
    let over = assert_problem(
        pay(&app, &token, 200_001).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
    )
    .await;
    // The customer reads a plain sentence; the rule is in the audit log.
    assert_eq!(
        over["detail"],
        "this amount is above your limit for a single transaction"
    );
    assert_eq!(
        rejected_rules(&app, "+254713000001").await,
        ["single_transaction_limit"]
    );
    // The limit is in USD whatever the currency: KES 259,001.30 is USD 2,000.01.
    app.fund("+254713000001", "KES", 30_000_000).await;
    assert_problem(
        app.send(&token, USER_PHONE, 25_900_130, "KES").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
    )
    .await;
}

#[tokio::test]
async fn the_daily_volume_allows_usd_5000_in_24_hours_and_refuses_a_cent_more() {
    let app = spawn_app().await;
    let token = app
        .verified_user("+254713000002", "Daily Tester", 1_000_000)
        .await;
    for usd_cents in [200_000, 200_000, 99_999] {
        assert_eq!(
            pay(&app, &token, usd_cents).await.status(),
            StatusCode::CREATED
        );
    }
    // USD 4,999.99 so far: one more cent reaches the limit exactly, two go over.
    assert_problem(
        pay(&app, &token, 2).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
    )
    .await;
    assert_eq!(pay(&app, &token, 1).await.status(), StatusCode::CREATED);
    assert_problem(
        pay(&app, &token, 1).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
    )
    .await;
    assert_eq!(
        rejected_rules(&app, "+254713000002").await,
        ["daily_volume_limit", "daily_volume_limit"]
    );
    // Refusals moved nothing: the sender paid USD 5,000.00 plus fees.
    let balance = app.balance(&token, "USD").await;
    let fees: i64 = sqlx::query_scalar(
        "SELECT sum(fee)::bigint FROM transactions t JOIN users u ON u.id = t.from_user_id WHERE u.phone = $1",
    )
    .bind("+254713000002")
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(balance, 1_000_000 - 500_000 - fees);
}

#[tokio::test]
async fn the_eleventh_transaction_within_an_hour_is_refused() {
    let app = spawn_app().await;
    let token = app
        .verified_user("+254713000003", "Velocity Tester", 100_000)
        .await;
    for _ in 0..10 {
        assert_eq!(pay(&app, &token, 100).await.status(), StatusCode::CREATED);
    }
    let body = assert_problem(
        pay(&app, &token, 100).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "velocity_exceeded",
    )
    .await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("too many transactions"));
    // Conversions count as outgoing movements too.
    let convert = app
        .post(
            "/api/v1/wallet/convert",
            Some(&token),
            json!({"from_currency": "USD", "to_currency": "KES", "amount": 100}),
        )
        .await;
    assert_problem(
        convert,
        StatusCode::UNPROCESSABLE_ENTITY,
        "velocity_exceeded",
    )
    .await;
}

#[tokio::test]
async fn three_payments_just_under_usd_1000_in_a_day_open_one_structuring_report() {
    let app = spawn_app().await;
    let token = app
        .verified_user("+254713000004", "Structurer", 1_000_000)
        .await;
    let admin = app.admin_token().await;
    // Room for six large payments in a day; only the structuring rule is under test.
    sqlx::query(
        "UPDATE compliance_tiers SET daily_max_usd_cents = 1000000 WHERE kyc_status = 'VERIFIED'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // Outside the USD 900.00–1,000.00 band: never counted.
    assert_eq!(
        pay(&app, &token, 89_999).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        pay(&app, &token, 100_001).await.status(),
        StatusCode::CREATED
    );
    // The band's edges count; the third in-band payment is allowed and reported.
    for usd_cents in [90_000, 100_000] {
        assert_eq!(
            pay(&app, &token, usd_cents).await.status(),
            StatusCode::CREATED
        );
    }
    let sars = app.get_json("/api/v1/admin/suspicious", &admin).await;
    assert_eq!(
        sars["sars"].as_array().unwrap().len(),
        0,
        "two are not a pattern"
    );
    let third = pay(&app, &token, 95_000).await;
    assert_eq!(
        third.status(),
        StatusCode::CREATED,
        "structuring is reported, not blocked"
    );
    let third: Value = third.json().await.unwrap();
    let fourth: Value = pay(&app, &token, 95_000).await.json().await.unwrap();

    let sars = app
        .get_json("/api/v1/admin/suspicious?status=OPEN", &admin)
        .await;
    let list = sars["sars"].as_array().unwrap();
    assert_eq!(list.len(), 1, "later findings join the open case: {sars:#}");
    let case = &list[0];
    assert_eq!(case["rule"], "structuring");
    assert_eq!(case["phone"], "+254713000004");
    assert_eq!(case["status"], "OPEN");
    assert_eq!(case["tx_ids"], json!([third["tx_id"], fourth["tx_id"]]));
    assert_eq!(case["detail"]["findings"].as_array().unwrap().len(), 2);
    let opened: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'compliance.sar'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(opened, 2);
}

#[tokio::test]
async fn kyc_tiers_limit_pending_users_and_stop_rejected_ones() {
    let app = spawn_app().await;
    let pending = app.new_user("+254713000005", "Pending Person").await;
    app.fund("+254713000005", "USD", 100_000).await;
    // PENDING: USD 100.00 a day in all.
    assert_eq!(
        pay(&app, &pending, 6_000).await.status(),
        StatusCode::CREATED
    );
    assert_problem(
        pay(&app, &pending, 4_001).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
    )
    .await;
    assert_eq!(
        pay(&app, &pending, 4_000).await.status(),
        StatusCode::CREATED
    );
    assert_problem(
        pay(&app, &pending, 1).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
    )
    .await;

    // REJECTED: no money moves at all.
    let admin = app.admin_token().await;
    let user_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE phone = '+254713000005'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    app.post(
        &format!("/api/v1/admin/users/{user_id}/kyc"),
        Some(&admin),
        json!({"status": "REJECTED"}),
    )
    .await;
    let refused = assert_problem(
        pay(&app, &pending, 1).await,
        StatusCode::FORBIDDEN,
        "kyc_required",
    )
    .await;
    assert!(!refused["detail"].as_str().unwrap().contains("tier"));
    // Nor can anyone pay them.
    let demo = app.token(USER_PHONE, DEMO_PIN).await;
    assert_problem(
        app.send(&demo, "+254713000005", 100, "USD").await,
        StatusCode::FORBIDDEN,
        "account_suspended",
    )
    .await;
    // SUSPENDED: the token stops working, and signing in is refused.
    app.post(
        &format!("/api/v1/admin/users/{user_id}/suspend"),
        Some(&admin),
        json!({}),
    )
    .await;
    assert_problem(
        pay(&app, &pending, 1).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_problem(
        app.login("+254713000005", "5831").await,
        StatusCode::FORBIDDEN,
        "account_suspended",
    )
    .await;
}

#[tokio::test]
async fn a_sanctioned_name_with_a_typo_and_reordered_tokens_cannot_register_and_a_near_miss_can() {
    let app = spawn_app().await;
    let refused = app
        .register("+254713000006", "Moros Nicolaz Maduro", "5831")
        .await;
    let body = assert_problem(refused, StatusCode::FORBIDDEN, "sanctioned").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        !detail.contains("MADURO") && !detail.contains("score"),
        "{detail}"
    );
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE phone = '+254713000006')")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!exists);

    assert_eq!(
        app.register("+254713000007", "Nicole Madison", "5831")
            .await
            .status(),
        StatusCode::CREATED,
        "a different person with a similar name is clear"
    );

    // Trying again, from another number, joins the same case.
    let again = app
        .register("+254713000009", "Nicolas Maduro Moros", "5831")
        .await;
    assert_problem(again, StatusCode::FORBIDDEN, "sanctioned").await;

    let admin = app.admin_token().await;
    let sars = app.get_json("/api/v1/admin/suspicious", &admin).await;
    assert_eq!(sars["sars"].as_array().unwrap().len(), 1, "{sars}");
    let case = &sars["sars"][0];
    assert_eq!(case["rule"], "sanctions");
    assert_eq!(case["user_id"], Value::Null);
    assert_eq!(case["detail"]["findings"].as_array().unwrap().len(), 2);
    let finding = &case["detail"]["findings"][0];
    assert_eq!(finding["phone"], "+254713000006");
    assert!(finding["listed_id"].as_i64().is_some());
    assert!(finding["score"].as_f64().unwrap() >= 0.9);
    let audit = app
        .get_json("/api/v1/admin/audit-log?action=auth.register", &admin)
        .await;
    let rejected: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 2, "each attempt is audited");
    assert_eq!(rejected[0]["detail"]["rule"], "sanctions");
}

#[tokio::test]
async fn a_newly_listed_customer_is_found_reported_and_cannot_send_or_receive() {
    let app = spawn_app().await;
    let target = app
        .verified_user("+254713000008", "Zawadi Achieng Mwangi", 100_000)
        .await;
    let demo = app.token(USER_PHONE, DEMO_PIN).await;
    assert_eq!(pay(&app, &target, 100).await.status(), StatusCode::CREATED);

    let admin = app.admin_token().await;
    let added = app
        .post(
            "/api/v1/admin/sanctions",
            Some(&admin),
            json!({"name": "MWANGI, Zawadi Achieng", "source": "UN consolidated list"}),
        )
        .await;
    assert_eq!(added.status(), StatusCode::CREATED);

    // Screening happens inside the movement even before the job catches up.
    assert_problem(
        pay(&app, &target, 100).await,
        StatusCode::FORBIDDEN,
        "sanctioned",
    )
    .await;
    assert_problem(
        app.send(&demo, "+254713000008", 100, "USD").await,
        StatusCode::FORBIDDEN,
        "sanctioned",
    )
    .await;

    // The background job re-screens everyone and opens a report.
    eventually(
        "the re-screening job to find the match",
        secs(20),
        async || {
            sqlx::query_scalar::<_, Option<i64>>(
                "SELECT sanctions_match_id FROM users WHERE phone = '+254713000008'",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap()
        },
    )
    .await;
    let sars = app
        .get_json("/api/v1/admin/suspicious?status=OPEN", &admin)
        .await;
    let case = sars["sars"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["phone"] == "+254713000008")
        .expect("a sanctions case for the listed customer");
    assert_eq!(case["rule"], "sanctions");
    // Others are untouched.
    assert_eq!(
        app.send(&demo, ADMIN_PHONE, 100, "USD").await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_listed_phone_number_is_refused_whatever_name_it_uses() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.post(
        "/api/v1/admin/sanctions",
        Some(&admin),
        json!({"name": "Unknown Courier", "phone": "0713000009"}),
    )
    .await;
    assert_problem(
        app.register("+254713000009", "Perfectly Ordinary", "5831")
            .await,
        StatusCode::FORBIDDEN,
        "sanctioned",
    )
    .await;
    let list = app.get_json("/api/v1/admin/sanctions", &admin).await;
    let entries = list["entries"].as_array().unwrap();
    assert_eq!(entries[0]["phone"], "+254713000009");
    assert!(
        entries.iter().any(|e| e["name"] == "MADURO MOROS, Nicolas"),
        "the OFAC sample ships"
    );
    let bad = app
        .post(
            "/api/v1/admin/sanctions",
            Some(&admin),
            json!({"name": " ,, "}),
        )
        .await;
    assert_problem(bad, StatusCode::BAD_REQUEST, "validation_error").await;
}

#[tokio::test]
async fn sars_move_from_open_to_review_to_filed_with_notes_and_no_way_back() {
    let app = spawn_app().await;
    app.register("+254713000010", "Nicolas Maduro", "5831")
        .await;
    let admin = app.admin_token().await;
    let id = app.get_json("/api/v1/admin/suspicious", &admin).await["sars"][0]["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/admin/sars/{id}");
    let skip = app
        .post(
            &path,
            Some(&admin),
            json!({"status": "FILED", "note": "skip review"}),
        )
        .await;
    assert_problem(skip, StatusCode::BAD_REQUEST, "validation_error").await;
    let no_note = app
        .post(
            &path,
            Some(&admin),
            json!({"status": "UNDER_REVIEW", "note": " "}),
        )
        .await;
    assert_problem(no_note, StatusCode::BAD_REQUEST, "validation_error").await;

    let review = app
        .post(
            &path,
            Some(&admin),
            json!({"status": "under_review", "note": "Checking the ID documents"}),
        )
        .await;
    assert_eq!(review.status(), StatusCode::OK);
    let filed: Value = app
        .post(
            &path,
            Some(&admin),
            json!({"status": "FILED", "note": "Filed with the FRC"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(filed["status"], "FILED");
    let notes = filed["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[1]["from_status"], "UNDER_REVIEW");
    assert_eq!(notes[1]["note"], "Filed with the FRC");
    let reopen = app
        .post(
            &path,
            Some(&admin),
            json!({"status": "OPEN", "note": "oops"}),
        )
        .await;
    assert_problem(reopen, StatusCode::BAD_REQUEST, "validation_error").await;
    let missing = app
        .post(
            "/api/v1/admin/sars/999999",
            Some(&admin),
            json!({"status": "FILED", "note": "x"}),
        )
        .await;
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;

    let user = app.token(USER_PHONE, DEMO_PIN).await;
    assert_problem(
        app.get("/api/v1/admin/suspicious", &user).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let reviews: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'admin.sar_review'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(reviews, 2);
}

#[tokio::test]
async fn concurrent_payments_cannot_slip_past_the_daily_limit_together() {
    let app = spawn_app().await;
    let token = app.verified_user("+254713000011", "Racer", 1_000_000).await;
    // Six payments of USD 1,500.00 at once: only three fit in USD 5,000.00.
    let payments = (0..6).map(|_| pay(&app, &token, 150_000));
    let statuses: Vec<StatusCode> = futures::future::join_all(payments)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 3, "{statuses:?}");
    let volume: i64 = sqlx::query_scalar(
        "SELECT sum(usd_cents)::bigint FROM transactions t JOIN users u ON u.id = t.from_user_id WHERE u.phone = '+254713000011'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(volume <= 500_000, "{volume}");
}
