//! The operations desk: identity documents (sealed, masked, one account
//! each, reviewed with an SMS) and PIN reset through USSD with a one-time
//! code.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CUSTOMER: &str = "+254711400001";

async fn texts_to(app: &TestApp, phone: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT message FROM sms_outbox WHERE to_phone = $1 ORDER BY id")
        .bind(phone)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_document_number_is_stored_sealed_shown_masked_and_reviewed_with_an_sms() {
    let app = spawn_app().await;
    let token = app.new_user(CUSTOMER, "Achieng Odhiambo").await;
    let submitted = app
        .post(
            "/api/v1/kyc/documents",
            Some(&token),
            json!({"document_type": "national_id", "document_number": "27 345 678"}),
        )
        .await;
    assert_eq!(submitted.status(), StatusCode::CREATED);
    let submitted: Value = submitted.json().await.unwrap();
    assert_eq!(submitted["number_masked"], "*****678");
    assert_eq!(submitted["status"], "PENDING");

    // Nowhere in the database in the clear.
    let leaks: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM kyc_documents WHERE position('27345678' IN encode(number_sealed, 'escape')) > 0)
              + (SELECT count(*) FROM audit_log WHERE detail::text LIKE '%27345678%')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(leaks, 0);
    let again = app
        .post(
            "/api/v1/kyc/documents",
            Some(&token),
            json!({"document_type": "passport", "document_number": "AK1234567"}),
        )
        .await;
    assert_problem(again, StatusCode::CONFLICT, "conflict").await;
    // A pending claim does not hold the number: someone else claiming it
    // (its owner, or a squatter) is let in, and reviewers see both.
    let other = app.new_user("+254711400002", "Someone Else").await;
    let same = json!({"document_type": "national_id", "document_number": "27345678"});
    let claimed = app
        .post("/api/v1/kyc/documents", Some(&other), same.clone())
        .await;
    assert_eq!(claimed.status(), StatusCode::CREATED);
    // Whether someone else claims a number is for reviewers, not customers.
    let claimed: Value = claimed.json().await.unwrap();
    assert!(claimed.get("also_claimed_by").is_none(), "{claimed}");
    let own = app.get_json("/api/v1/kyc/documents", &other).await;
    assert!(
        own["documents"][0].get("also_claimed_by").is_none(),
        "{own}"
    );
    let bad = app
        .post(
            "/api/v1/kyc/documents",
            Some(&other),
            json!({"document_type": "national_id", "document_number": "12"}),
        )
        .await;
    assert_problem(bad, StatusCode::BAD_REQUEST, "validation_error").await;

    let admin = app.admin_token().await;
    let pending = app
        .get_json("/api/v1/admin/kyc/documents?status=PENDING", &admin)
        .await;
    let documents = pending["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 2);
    for listed in documents {
        assert_eq!(listed["number_masked"], "*****678");
        assert_eq!(listed["also_claimed_by"], 1, "the other claim is flagged");
    }
    assert!(!pending.to_string().contains("27345678"));
    let listed = documents.iter().find(|d| d["phone"] == CUSTOMER).unwrap();
    let user_id = listed["user_id"].as_str().unwrap();
    let reviewed = app
        .post(
            &format!("/api/v1/admin/users/{user_id}/kyc"),
            Some(&admin),
            json!({"status": "VERIFIED", "note": "ID seen at the Kisumu branch"}),
        )
        .await;
    assert_eq!(reviewed.status(), StatusCode::OK);
    let mine = app.get_json("/api/v1/kyc/documents", &token).await;
    assert_eq!(mine["documents"][0]["status"], "VERIFIED");
    assert_eq!(
        mine["documents"][0]["review_note"],
        "ID seen at the Kisumu branch"
    );
    assert!(texts_to(&app, CUSTOMER)
        .await
        .iter()
        .any(|t| t.contains("your identity is verified")));

    // Once it verifies one account, it verifies no other, and no one new
    // may claim it.
    let squatter = documents.iter().find(|d| d["phone"] != CUSTOMER).unwrap();
    let second = app
        .post(
            &format!(
                "/api/v1/admin/users/{}/kyc",
                squatter["user_id"].as_str().unwrap()
            ),
            Some(&admin),
            json!({"status": "VERIFIED"}),
        )
        .await;
    assert_problem(second, StatusCode::CONFLICT, "conflict").await;
    let third = app.new_user("+254711400003", "A Third").await;
    let late = app.post("/api/v1/kyc/documents", Some(&third), same).await;
    assert_problem(late, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn a_document_is_submitted_over_ussd() {
    let app = spawn_app().await;
    app.new_user(CUSTOMER, "Achieng Odhiambo").await;
    let (mut s, _) = Session::dial(&app, CUSTOMER).await;
    assert!(s.keys(&["8", "4"]).await.contains("1. National ID"));
    s.press("2").await;
    assert!(s
        .press("12345")
        .await
        .contains("not a valid document number"));
    let done = s.press("ak 1234567").await;
    assert!(done.starts_with("END Thank you"), "{done}");
    let admin = app.admin_token().await;
    let listed = app.get_json("/api/v1/admin/kyc/documents", &admin).await;
    assert_eq!(listed["documents"][0]["document_type"], "passport");
    assert_eq!(listed["documents"][0]["number_masked"], "******567");
}

#[tokio::test]
async fn a_locked_out_customer_sets_a_new_pin_over_ussd_with_a_one_time_code() {
    let app = spawn_app().await;
    let old_token = app.new_user(CUSTOMER, "Achieng Odhiambo").await;
    for _ in 0..5 {
        app.login(CUSTOMER, "9999").await;
    }
    assert_problem(
        app.login(CUSTOMER, "5831").await,
        StatusCode::LOCKED,
        "account_locked",
    )
    .await;
    let admin = app.admin_token().await;
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
        .bind(CUSTOMER)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let issued = app
        .post(
            &format!("/api/v1/admin/users/{user_id}/pin-reset"),
            Some(&admin),
            json!({"note": "called back on the registered number"}),
        )
        .await;
    assert_eq!(issued.status(), StatusCode::ACCEPTED);
    let stored = texts_to(&app, CUSTOMER).await;
    assert!(
        stored
            .iter()
            .any(|t| t.contains("your PIN reset code is ******")),
        "operators see it masked: {stored:?}"
    );
    let code = eventually("the code to reach the phone", secs(20), async || {
        let sent: Vec<String> =
            sqlx::query_scalar("SELECT message FROM sim_at_messages WHERE to_phone = $1")
                .bind(CUSTOMER)
                .fetch_all(&app.pool)
                .await
                .unwrap();
        sent.iter()
            .find_map(|m| m.split("reset code is ").nth(1))
            .map(|rest| rest[..6].to_owned())
    })
    .await;

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (mut s, _) = Session::dial(&app, CUSTOMER).await;
    s.keys(&["8", "5", wrong, "4826"]).await;
    assert!(
        s.press("4826").await.contains("reset code is wrong"),
        "a wrong code changes nothing"
    );
    let (mut s, _) = Session::dial(&app, CUSTOMER).await;
    s.keys(&["8", "5", &code]).await;
    assert!(s.press("1111").await.contains("too easy"));
    s.press("4826").await;
    assert!(s.press("4826").await.starts_with("END Your new PIN is set"));

    assert_eq!(
        app.login(CUSTOMER, "4826").await.status(),
        StatusCode::OK,
        "the lockout cleared"
    );
    let me = app
        .request(
            reqwest::Method::GET,
            "/api/v1/wallet/balances",
            Some(&old_token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::UNAUTHORIZED,
        "every earlier token ended"
    );
    let (mut again, _) = Session::dial(&app, CUSTOMER).await;
    again.keys(&["8", "5", &code, "5927"]).await;
    assert!(
        again.press("5927").await.contains("reset code is wrong"),
        "a code works once"
    );
    assert!(texts_to(&app, CUSTOMER)
        .await
        .iter()
        .any(|t| t.contains("your PIN was changed with a reset code")));
    let admin_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
        .bind(ADMIN_PHONE)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let second = app.second_admin().await;
    let forbidden = app
        .post(
            &format!("/api/v1/admin/users/{admin_id}/pin-reset"),
            Some(&second),
            json!({}),
        )
        .await;
    assert_problem(forbidden, StatusCode::FORBIDDEN, "forbidden").await;
}
