//! Operator endpoints: access control, users, KYC, stats, ledger check.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn ordinary_users_get_403_on_every_admin_endpoint() {
    let app = spawn_app().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let some_id = uuid::Uuid::new_v4();
    for path in [
        "/api/v1/admin/stats",
        "/api/v1/admin/users",
        "/api/v1/admin/ledger/check",
    ] {
        assert_problem(
            app.get(path, &user).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    for path in [
        format!("/api/v1/admin/users/{some_id}/suspend"),
        format!("/api/v1/admin/users/{some_id}/unsuspend"),
        format!("/api/v1/admin/users/{some_id}/kyc"),
    ] {
        let response = app
            .post(&path, Some(&user), json!({"status": "VERIFIED"}))
            .await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
}

#[tokio::test]
async fn admins_find_users_by_part_of_a_name_or_phone() {
    let app = spawn_app().await;
    app.register("+254712500001", "Wanjiru Kamau", "5831").await;
    app.register("+254712500002", "Otieno Odhiambo", "5831")
        .await;
    let admin = app.admin_token().await;
    let by_name: Value = app
        .get("/api/v1/admin/users?q=wanjiru", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_name["users"].as_array().unwrap().len(), 1);
    assert_eq!(by_name["users"][0]["phone"], "+254712500001");
    let by_phone: Value = app
        .get("/api/v1/admin/users?q=712500", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_phone["users"].as_array().unwrap().len(), 2);
    let wildcard: Value = app
        .get("/api/v1/admin/users?q=%25", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        wildcard["users"].as_array().unwrap().len(),
        0,
        "% is searched literally"
    );
    let all: Value = app
        .get("/api/v1/admin/users", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["users"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn kyc_changes_are_validated_applied_and_audited() {
    let app = spawn_app().await;
    let registered: Value = app
        .register("+254712600001", "Kyc Person", "5831")
        .await
        .json()
        .await
        .unwrap();
    let user_id = registered["user_id"].as_str().unwrap();
    let admin = app.admin_token().await;
    let path = format!("/api/v1/admin/users/{user_id}/kyc");

    assert_problem(
        app.post(&path, Some(&admin), json!({"status": "MAYBE"}))
            .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    let missing = format!("/api/v1/admin/users/{}/kyc", uuid::Uuid::new_v4());
    assert_problem(
        app.post(&missing, Some(&admin), json!({"status": "VERIFIED"}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    assert_problem(
        app.post(
            &path,
            Some(&admin),
            json!({"status": "VERIFIED", "note": "x".repeat(501)}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    let note = "National ID checked at the Moi Avenue branch";
    let verified: Value = app
        .post(
            &path,
            Some(&admin),
            json!({"status": "verified", "note": note}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verified["kyc_status"], "VERIFIED");
    let detail: Value =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'admin.kyc'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        detail,
        json!({"from": "PENDING", "to": "VERIFIED", "note": note})
    );

    // A rejected user cannot move money.
    app.post(&path, Some(&admin), json!({"status": "REJECTED"}))
        .await;
    app.fund("+254712600001", "KES", 10_000).await;
    let token = app.token("+254712600001", "5831").await;
    assert_problem(
        app.send(&token, USER_PHONE, 100, "KES").await,
        StatusCode::FORBIDDEN,
        "kyc_required",
    )
    .await;
}

#[tokio::test]
async fn an_admin_cannot_suspend_themself_or_an_unknown_user() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let me: Value = app
        .get("/api/v1/admin/users?q=700000000", &admin)
        .await
        .json()
        .await
        .unwrap();
    let my_id = me["users"][0]["user_id"].as_str().unwrap();
    let response = app
        .post(
            &format!("/api/v1/admin/users/{my_id}/suspend"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "validation_error").await;
    let unknown = app
        .post(
            &format!("/api/v1/admin/users/{}/suspend", uuid::Uuid::new_v4()),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn stats_count_users_transactions_volume_and_fees() {
    let app = spawn_app().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    app.send(&user, ADMIN_PHONE, 20_000, "KES").await;
    app.send(&user, ADMIN_PHONE, 30_000, "KES").await;
    let admin = app.admin_token().await;
    let stats: Value = app
        .get("/api/v1/admin/stats", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["users"], 2);
    // 10 funding entries from the demo seed plus 2 transfers.
    assert_eq!(stats["transactions"], 12);
    let kes = stats["currencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["currency"] == "KES")
        .unwrap();
    assert_eq!(kes["transfer_volume"], 50_000);
    // KES 200.00 and 300.00 are both under USD 10: 2 % fees.
    assert_eq!(kes["fee_revenue"], 400 + 600);
    assert_eq!(kes["customer_balances"], 2 * 100_000_000 - 1_000);
}

#[tokio::test]
async fn the_ledger_check_names_each_discrepancy_precisely() {
    let app = spawn_app().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let tx: Value = app
        .send(&user, ADMIN_PHONE, 5_000, "KES")
        .await
        .json()
        .await
        .unwrap();
    app.assert_balanced().await;

    // Someone edits a balance behind the ledger's back.
    let account_id: i64 = sqlx::query_scalar(
        "UPDATE accounts SET balance = balance + 777 WHERE kind = 'wallet' AND currency = 'KES'
         AND user_id = (SELECT id FROM users WHERE phone = $1) RETURNING id",
    )
    .bind(USER_PHONE)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let report = app.ledger_check().await;
    assert_eq!(report["balanced"], false);
    let discrepancies = report["discrepancies"].as_array().unwrap();
    assert!(discrepancies.contains(&json!({
        "kind": "account_balance", "account_id": account_id, "account_kind": "wallet", "currency": "KES",
        "balance": 100_000_000 - 5_100 + 777, "postings_sum": 100_000_000 - 5_100
    })), "{report:#}");
    assert!(
        discrepancies.contains(&json!({"kind": "currency_total", "currency": "KES", "total": 777}))
    );
    assert!(report["accounts_checked"].as_i64().unwrap() > 50);
    assert_eq!(report["transactions_checked"], 11);
    let _ = tx;
}

#[tokio::test]
async fn postgresql_refuses_an_unbalanced_entry_and_edits_to_postings() {
    let app = spawn_app().await;
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO transactions (tx_id, tx_type, amount, currency, signature, created_at)
         VALUES ('00000000-0000-0000-0000-000000000001', 'funding', 5, 'KES', 'x', now())",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let leg = sqlx::query(
        "INSERT INTO postings (tx_id, account_id, amount)
         SELECT '00000000-0000-0000-0000-000000000001', id, 5 FROM accounts WHERE kind = 'wallet' AND currency = 'KES' LIMIT 1",
    )
    .execute(&mut *tx)
    .await
    .unwrap_err()
    .to_string();
    assert!(leg.contains("does not balance"), "{leg}");
    drop(tx);

    let edit = sqlx::query("UPDATE postings SET amount = amount + 1")
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(edit.to_string().contains("append-only"));
    let erase = sqlx::query("DELETE FROM audit_log")
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(erase.to_string().contains("append-only"));
    let overdraw = sqlx::query("UPDATE accounts SET balance = -1 WHERE kind = 'wallet'")
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(overdraw
        .to_string()
        .contains("accounts_wallet_not_overdrawn"));
}

#[tokio::test]
async fn postgresql_refuses_rows_that_refer_to_nothing_and_the_removal_of_what_rows_refer_to() {
    let app = spawn_app().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let sent = app.send(&user, ADMIN_PHONE, 5_000, "KES").await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    let refused = |sql: &'static str, expected: &'static str| {
        let pool = app.pool.clone();
        async move {
            let error = sqlx::query(sql)
                .execute(&pool)
                .await
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{sql}: {error}");
        }
    };
    refused(
        "INSERT INTO transactions (tx_id, tx_type, amount, currency, signature, created_at)
         VALUES (gen_random_uuid(), 'funding', 5, 'XYZ', 'x', now())",
        "transactions_currency_fkey",
    )
    .await;
    refused(
        "INSERT INTO transactions (tx_id, tx_type, amount, currency, to_user_id, signature, created_at)
         VALUES (gen_random_uuid(), 'funding', 5, 'KES', gen_random_uuid(), 'x', now())",
        "transactions_to_user_id_fkey",
    )
    .await;
    refused(
        "INSERT INTO postings (tx_id, account_id, amount)
         SELECT gen_random_uuid(), id, 5 FROM accounts WHERE kind = 'wallet' LIMIT 1",
        "postings_tx_id_fkey",
    )
    .await;
    refused(
        "INSERT INTO postings (tx_id, account_id, amount) SELECT tx_id, -1, 5 FROM transactions LIMIT 1",
        "postings_account_id_fkey",
    )
    .await;
    // A leg added to a posted entry later must keep it balanced.
    refused(
        "INSERT INTO postings (tx_id, account_id, amount)
         SELECT tx_id, account_id, amount FROM postings ORDER BY tx_id LIMIT 1",
        "does not balance",
    )
    .await;
    refused(
        "INSERT INTO sms_outbox (to_phone, message, tx_id) VALUES ('+254700000001', 'hi', gen_random_uuid())",
        "sms_outbox_tx_id_fkey",
    )
    .await;
    refused(
        "INSERT INTO chain_pending (tx_id) VALUES (gen_random_uuid())",
        "chain_pending_tx_id_fkey",
    )
    .await;
    refused(
        "INSERT INTO audit_pending (audit_id) VALUES (-1)",
        "audit_pending_audit_id_fkey",
    )
    .await;
    refused(
        "UPDATE sms_outbox SET tx_id = NULL WHERE tx_id IS NOT NULL",
        "never changes",
    )
    .await;
    for removal in [
        "DELETE FROM users",
        "UPDATE users SET id = gen_random_uuid()",
        "DELETE FROM accounts",
        "TRUNCATE accounts CASCADE",
        "UPDATE currencies SET code = 'XYZ' WHERE code = 'KES'",
        "DELETE FROM currencies WHERE code = 'KES'",
    ] {
        refused(removal, "referred to by the ledger").await;
    }
}

#[tokio::test]
async fn the_ledger_check_reports_a_safeguard_the_owner_switched_off() {
    let app = spawn_app().await;
    app.assert_balanced().await;
    for statement in [
        "ALTER TABLE postings DISABLE TRIGGER postings_references",
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
    ] {
        sqlx::query(statement).execute(&app.pool).await.unwrap();
    }
    let report = app.ledger_check().await;
    assert_eq!(report["balanced"], false, "{report:#}");
    let off: Vec<(String, String)> = report["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "safeguard_off")
        .map(|d| {
            let text = |field: &str| d[field].as_str().unwrap().to_owned();
            (text("table"), text("safeguard"))
        })
        .collect();
    let named = |table: &str, safeguard: &str| off.contains(&(table.into(), safeguard.into()));
    assert!(named("postings", "postings_references"), "{off:?}");
    // Every trigger of audit_log, a foreign key's by its constraint's name.
    assert!(named("audit_log", "audit_chain_audit_id_fkey"), "{off:?}");
    assert!(
        off.iter()
            .all(|(table, _)| table == "postings" || table == "audit_log"),
        "{off:?}"
    );
    // A reconciliation run flags it too, under the ledger check.
    let run = crate::reconciliation::run(&app).await;
    assert_eq!(run["clean"], false, "{run:#}");
    assert!(
        run["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["check"] == "ledger"
                && item["subject"] == "table postings, postings_references"),
        "{run:#}"
    );
    for statement in [
        "ALTER TABLE postings ENABLE TRIGGER postings_references",
        "ALTER TABLE audit_log ENABLE TRIGGER ALL",
    ] {
        sqlx::query(statement).execute(&app.pool).await.unwrap();
    }
    app.assert_balanced().await;
}
