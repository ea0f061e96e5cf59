//! The append-only, hash-chained audit log.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn verify(app: &TestApp, admin: &str) -> Value {
    app.get_json("/api/v1/admin/audit-log/verify", admin).await
}

#[tokio::test]
async fn logins_movements_refusals_and_admin_actions_are_all_recorded() {
    let app = spawn_app().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    assert_eq!(
        app.login(USER_PHONE, "9999").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.send(&user, ADMIN_PHONE, 1_000, "KES").await;
    app.send(&user, ADMIN_PHONE, 1_000_000_000, "KES").await; // over the single limit
    let admin = app.admin_token().await;
    app.request(reqwest::Method::PUT, "/api/v1/admin/fx/rates", Some(&admin))
        .json(&json!({"spread": "0.01"}))
        .send()
        .await
        .unwrap();
    let page = app
        .get_json("/api/v1/admin/audit-log?limit=200", &admin)
        .await;
    let actions: Vec<(String, String)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("auth.login", "success"),
        ("auth.login", "failure"),
        ("wallet.send", "success"),
        ("wallet.send", "rejected"),
        ("config.fx_rates", "success"),
        ("demo.seed", "success"),
    ] {
        assert!(
            actions.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} missing from {actions:?}"
        );
    }
    let refusal = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "wallet.send" && e["outcome"] == "rejected")
        .unwrap();
    assert_eq!(refusal["detail"]["rule"], "single_transaction_limit");
}

#[tokio::test]
async fn the_audit_log_pages_and_filters_by_user_action_and_time() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let before_logins = chrono::Utc::now();
    for _ in 0..3 {
        app.token(USER_PHONE, DEMO_PIN).await;
    }
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
        .bind(USER_PHONE)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let by_user = app
        .get_json(
            &format!("/api/v1/admin/audit-log?user_id={user_id}&action=auth.login&limit=2"),
            &admin,
        )
        .await;
    let first = by_user["entries"].as_array().unwrap();
    assert_eq!(first.len(), 2);
    assert!(first
        .iter()
        .all(|e| e["actor_user_id"] == user_id.to_string()));
    let cursor = by_user["next_cursor"].as_str().unwrap();
    let rest = app
        .get_json(
            &format!("/api/v1/admin/audit-log?user_id={user_id}&action=auth.login&limit=2&before={cursor}"),
            &admin,
        )
        .await;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let since = before_logins
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        .replace('+', "%2B");
    let recent = app
        .get_json(
            &format!("/api/v1/admin/audit-log?from={since}&action=demo.seed"),
            &admin,
        )
        .await;
    assert_eq!(
        recent["entries"].as_array().unwrap().len(),
        0,
        "the seed happened before"
    );
    assert_problem(
        app.get("/api/v1/admin/audit-log?from=yesterday", &admin)
            .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
}

#[tokio::test]
async fn verify_reports_the_first_altered_entry() {
    let app = spawn_app().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    app.send(&user, ADMIN_PHONE, 1_000, "KES").await;
    let admin = app.admin_token().await;
    let clean = verify(&app, &admin).await;
    assert_eq!(clean["valid"], true, "{clean}");
    assert!(clean["entries_checked"].as_i64().unwrap() >= 5);

    let victim: i64 = sqlx::query_scalar("SELECT id FROM audit_log WHERE action = 'wallet.send'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    app.tamper(&[&format!(
        "UPDATE audit_log SET detail = jsonb_set(detail, '{{amount}}', '1') WHERE id = {victim}"
    )])
    .await;
    let broken = verify(&app, &admin).await;
    assert_eq!(broken["valid"], false);
    assert_eq!(broken["first_broken_id"], victim);
    assert_eq!(broken["reason"], "the audit row was altered");
}

#[tokio::test]
async fn verify_reports_a_deleted_entry() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.token(USER_PHONE, DEMO_PIN).await;
    assert_eq!(verify(&app, &admin).await["valid"], true);
    let victim: i64 =
        sqlx::query_scalar("SELECT min(id) FROM audit_log WHERE action = 'auth.login'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    app.tamper(&[&format!("DELETE FROM audit_log WHERE id = {victim}")])
        .await;
    let broken = verify(&app, &admin).await;
    assert_eq!(broken["valid"], false);
    assert_eq!(broken["first_broken_id"], victim);
    assert_eq!(broken["reason"], "the audit row was removed");
}

#[tokio::test]
async fn the_application_role_cannot_change_or_erase_the_audit_log() {
    let app = spawn_app().await;
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(role, "chainpay_app");
    for statement in [
        "UPDATE audit_log SET outcome = 'success'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "DELETE FROM audit_chain",
        "UPDATE postings SET amount = amount",
        "UPDATE transactions SET amount = amount + 1",
    ] {
        let error = sqlx::query(statement)
            .execute(&app.state.pool)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("permission denied") || error.contains("must be owner"),
            "{statement}: {error}"
        );
    }
    // Even the owner meets the triggers.
    let owner = sqlx::query("UPDATE audit_log SET outcome = 'success'")
        .execute(&app.pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(owner.contains("append-only"), "{owner}");
    let truncate = sqlx::query("TRUNCATE audit_log CASCADE")
        .execute(&app.pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(truncate.contains("append-only"), "{truncate}");
}
