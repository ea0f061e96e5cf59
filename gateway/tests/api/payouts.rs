//! Payouts M-Pesa never answered for, settled by two admins from M-Pesa's
//! own records: paid (the hold goes to the float) or not paid (the
//! customer gets amount and fee back), once, and never by one admin alone.

use crate::mpesa::{conversation_of, mpesa_app, payout_hold, payout_state, withdraw};
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The withdrawal's `ref`.
async fn reference_of(app: &TestApp, held: &Value) -> String {
    sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT ref FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid",
    )
    .bind(held["tx_id"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap()
    .to_string()
}

async fn propose(app: &TestApp, token: &str, reference: &str, body: Value) -> reqwest::Response {
    app.post(
        &format!("/api/v1/admin/mpesa/withdrawals/{reference}/resolutions"),
        Some(token),
        body,
    )
    .await
}

async fn decide(app: &TestApp, token: &str, id: &Value, verb: &str) -> reqwest::Response {
    let id = id.as_str().unwrap();
    app.post(
        &format!("/api/v1/admin/mpesa/resolutions/{id}/{verb}"),
        Some(token),
        json!({"note": "checked"}),
    )
    .await
}

/// Asserts a refusal's status and code.
async fn refused(response: reqwest::Response, status: StatusCode) {
    let code = match status {
        StatusCode::BAD_REQUEST => "validation_error",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        _ => "conflict",
    };
    assert_problem(response, status, code).await;
}

/// Ages every payout past the hour automatic recovery has, as only time
/// would, and waits until each was asked about through Transaction Status.
async fn past_automatic_recovery(app: &TestApp) {
    sqlx::query("UPDATE mpesa_withdrawals SET submitted_at = now() - interval '2 hours', created_at = now() - interval '2 hours'")
        .execute(&app.pool)
        .await
        .unwrap();
    eventually("the payouts asked about", secs(30), async || {
        let unasked: i64 =
            sqlx::query_scalar("SELECT count(*) FROM mpesa_withdrawals WHERE status_queries = 0")
                .fetch_one(&app.pool)
                .await
                .unwrap();
        (unasked == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn two_admins_settle_a_payout_mpesa_never_answered_for_once() {
    let app = mpesa_app().await;
    let (first, second) = (app.admin_token().await, app.second_admin().await);
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let paid = withdraw(&app, &token, 20_000).await;
    let unpaid = withdraw(&app, &token, 30_000).await;
    for held in [&paid, &unpaid] {
        conversation_of(&app, held).await;
    }
    let (paid_ref, unpaid_ref) = (
        reference_of(&app, &paid).await,
        reference_of(&app, &unpaid).await,
    );
    let statement =
        json!({"outcome": "PAID", "receipt": " sxk1234567 ", "note": "M-Pesa statement of 2 Dec"});
    // Automatic recovery has the first hour, and asks Transaction Status.
    let early = propose(&app, &first, &paid_ref, statement.clone()).await;
    refused(early, StatusCode::CONFLICT).await;
    past_automatic_recovery(&app).await;
    for bad in [
        json!({"outcome": "PAID", "note": "no receipt"}),
        json!({"outcome": "PAID", "receipt": "SXK-123", "note": "not a receipt"}),
        json!({"outcome": "NOT_PAID", "receipt": "SXK1234567", "note": "a receipt for nothing"}),
        json!({"outcome": "NOT_PAID", "receipt": "", "note": "an empty receipt"}),
        json!({"outcome": "PAID", "receipt": "SXK1234567", "note": ""}),
        json!({"outcome": "MAYBE", "note": "unknown outcome"}),
    ] {
        refused(
            propose(&app, &first, &paid_ref, bad).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let response = propose(&app, &first, &unknown, statement.clone()).await;
    refused(response, StatusCode::NOT_FOUND).await;
    let response = propose(&app, &token, &paid_ref, statement.clone()).await;
    refused(response, StatusCode::FORBIDDEN).await;
    // Nor may the payout's own customer settle it, admin or not.
    sqlx::query("UPDATE users SET role = 'admin' WHERE phone = $1")
        .bind(USER_PHONE)
        .execute(&app.pool)
        .await
        .unwrap();
    let customer_admin = app.token(USER_PHONE, DEMO_PIN).await;
    let response = propose(&app, &customer_admin, &paid_ref, statement.clone()).await;
    refused(response, StatusCode::FORBIDDEN).await;

    let proposed = propose(&app, &first, &paid_ref, statement.clone()).await;
    assert_eq!(proposed.status(), StatusCode::CREATED);
    let proposal: Value = proposed.json().await.unwrap();
    assert_eq!(
        (proposal["status"].as_str(), proposal["receipt"].as_str()),
        (Some("PENDING"), Some("SXK1234567"))
    );
    let again = propose(&app, &first, &paid_ref, statement.clone()).await;
    refused(again, StatusCode::CONFLICT).await;
    // Nothing moves on one admin's word, nor on the customer's.
    let hold = payout_hold(&app).await;
    for token in [&first, &customer_admin] {
        let response = decide(&app, token, &proposal["id"], "approve").await;
        refused(response, StatusCode::FORBIDDEN).await;
    }
    assert_eq!(payout_state(&app, &paid).await.0, "PENDING");
    let waiting = app
        .get_json("/api/v1/admin/mpesa/resolutions?status=PENDING", &second)
        .await;
    assert_eq!(waiting["resolutions"].as_array().unwrap().len(), 1);
    // Three days on, the proposal has lapsed: a second admin books nothing.
    let aged = |hours: i32| {
        sqlx::query("UPDATE payout_resolutions SET created_at = now() - make_interval(hours => $2) WHERE id::text = $1")
            .bind(proposal["id"].as_str().unwrap())
            .bind(hours)
            .execute(&app.pool)
    };
    aged(73).await.unwrap();
    let stale = decide(&app, &second, &proposal["id"], "approve").await;
    let problem: Value = stale.json().await.unwrap();
    assert_eq!(problem["status"], 409);
    assert!(
        problem["detail"].as_str().unwrap().contains("has lapsed"),
        "{problem}"
    );
    assert_eq!(payout_state(&app, &paid).await.0, "PENDING");
    aged(0).await.unwrap();
    for _ in 0..2 {
        let response = decide(&app, &second, &proposal["id"], "approve").await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "approving again answers the same"
        );
        let decided: Value = response.json().await.unwrap();
        assert_eq!(decided["status"], "APPROVED");
        assert!(decided["settle_tx_id"].is_string());
    }
    let response = decide(&app, &second, &proposal["id"], "reject").await;
    refused(response, StatusCode::CONFLICT).await;
    assert_eq!(payout_state(&app, &paid).await.0, "COMPLETED");
    assert_eq!(
        payout_hold(&app).await,
        hold - 20_000,
        "paid once, to the float"
    );
    let receipt = receipt_of(&app, &paid_ref).await;
    assert_eq!(receipt.as_deref(), Some("SXK1234567"));

    // One receipt pays one payout; a settled payout is not settled again.
    let response = propose(&app, &first, &unpaid_ref, statement.clone()).await;
    refused(response, StatusCode::CONFLICT).await;
    let not_paid = json!({"outcome": "NOT_PAID", "note": "not on the M-Pesa statement"});
    let response = propose(&app, &first, &paid_ref, not_paid.clone()).await;
    refused(response, StatusCode::CONFLICT).await;
    // A rejected proposal moves nothing and makes way for another.
    let response = propose(&app, &first, &unpaid_ref, not_paid.clone()).await;
    let rejected: Value = response.json().await.unwrap();
    let response = decide(&app, &second, &rejected["id"], "reject").await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "REJECTED"
    );
    assert_eq!(payout_state(&app, &unpaid).await.0, "PENDING");
    let response = propose(&app, &second, &unpaid_ref, not_paid).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let refund: Value = response.json().await.unwrap();
    let response = decide(&app, &first, &refund["id"], "approve").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(payout_state(&app, &unpaid).await.0, "FAILED");
    let fee = paid["fee"].as_i64().unwrap();
    assert_eq!(
        app.balance(&token, "KES").await,
        before - 20_000 - fee,
        "the unpaid one returned with its fee"
    );
    assert!(app
        .last_sms(USER_PHONE)
        .await
        .contains("did not go through"));
    let listed = app
        .get_json("/api/v1/admin/mpesa/resolutions", &first)
        .await;
    assert_eq!(listed["resolutions"].as_array().unwrap().len(), 3);
    app.assert_balanced().await;
    assert!(withdrawal_findings(&app).await.is_empty());

    // M-Pesa contradicting the operators' PAID books nothing and is reported.
    let conversation = conversation_of(&app, &paid).await;
    app.sim_payout(&conversation, json!({"result_code": 2001}))
        .await;
    let found = eventually("the contradiction reported", secs(10), async || {
        let findings = withdrawal_findings(&app).await;
        (!findings.is_empty()).then_some(findings)
    })
    .await;
    assert!(found[0]["detail"]["problem"]
        .as_str()
        .unwrap()
        .contains("operators settled as paid"));
    assert_eq!(payout_state(&app, &paid).await.0, "COMPLETED");
    assert_eq!(app.balance(&token, "KES").await, before - 20_000 - fee);
    app.assert_balanced().await;

    // Two admins correct it as M-Pesa says: amount and fee go back.
    let open = open_contradictions(&app, &first).await;
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0]["kind"].as_str(), open[0]["withdrawal"].as_str()),
        (Some("FAILED AFTER PAID"), Some(paid_ref.as_str()))
    );
    let id = open[0]["id"].as_i64().unwrap();
    let response = propose_correction(&app, &customer_admin, id, "CORRECT").await;
    refused(response, StatusCode::FORBIDDEN).await;
    let response = propose_correction(&app, &second, id, "CORRECT").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let correction: Value = response.json().await.unwrap();
    assert_eq!(correction["status"], "PENDING");
    let again = propose_correction(&app, &first, id, "DISMISS").await;
    refused(again, StatusCode::CONFLICT).await;
    for token in [&second, &customer_admin] {
        let response = decide_correction(&app, token, &correction["id"], "approve").await;
        refused(response, StatusCode::FORBIDDEN).await;
    }
    assert_eq!(app.balance(&token, "KES").await, before - 20_000 - fee);
    for _ in 0..2 {
        let response = decide_correction(&app, &first, &correction["id"], "approve").await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "approving again answers the same"
        );
        let approved: Value = response.json().await.unwrap();
        assert_eq!(approved["status"], "APPROVED");
        assert!(approved["correction_tx_id"].is_string());
    }
    assert_eq!(
        app.balance(&token, "KES").await,
        before,
        "amount and fee given back, once"
    );
    assert_eq!(payout_state(&app, &paid).await.0, "FAILED");
    assert!(app
        .last_sms(USER_PHONE)
        .await
        .contains("did not go through"));
    assert!(withdrawal_findings(&app).await.is_empty());
    assert!(open_contradictions(&app, &first).await.is_empty());
    app.assert_balanced().await;
}

/// The contradictions no correction has settled.
async fn open_contradictions(app: &TestApp, token: &str) -> Vec<Value> {
    let listed = app
        .get_json("/api/v1/admin/mpesa/contradictions", token)
        .await;
    let open = listed["contradictions"].as_array().unwrap().clone();
    assert_eq!(
        listed["open"].as_u64(),
        Some(open.len() as u64),
        "all listed"
    );
    open
}

async fn propose_correction(
    app: &TestApp,
    token: &str,
    id: i64,
    action: &str,
) -> reqwest::Response {
    app.post(
        &format!("/api/v1/admin/mpesa/contradictions/{id}/corrections"),
        Some(token),
        json!({"action": action, "note": "M-Pesa statement checked"}),
    )
    .await
}

async fn decide_correction(
    app: &TestApp,
    token: &str,
    id: &Value,
    verb: &str,
) -> reqwest::Response {
    let id = id.as_str().unwrap();
    app.post(
        &format!("/api/v1/admin/mpesa/corrections/{id}/{verb}"),
        Some(token),
        json!({"note": "checked"}),
    )
    .await
}

/// A payout refunded as failed that M-Pesa then reports paid: the customer
/// has it twice. Amount and fee are reserved on the wallet at once (once,
/// however often the result comes), and two admins take them back.
#[tokio::test]
async fn two_admins_take_back_a_refunded_payout_mpesa_paid_after_all() {
    let app = mpesa_app().await;
    let (first, second) = (app.admin_token().await, app.second_admin().await);
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    app.lift_limits().await;
    app.new_user(OTHER, "Other").await;
    let (held, reference) = refunded_payout(&app, &token).await;
    let owed = 20_000 + held["fee"].as_i64().unwrap();
    let before = app.balance(&token, "KES").await;
    for _ in 0..2 {
        paid_result(&app, &reference, "SXK2222222").await;
    }
    let open = open_contradictions(&app, &first).await;
    assert_eq!(open.len(), 2, "each result is kept");
    assert!(open
        .iter()
        .all(|c| c["kind"] == "PAID AFTER REFUND" && c["receipt"] == "SXK2222222"));
    assert_eq!(withdrawal_findings(&app).await.len(), 2);
    assert_eq!(
        app.balance(&token, "KES").await,
        before,
        "nothing booked by itself"
    );
    assert_eq!(reserved(&app).await, owed, "reserved once");
    assert!(app
        .last_sms(USER_PHONE)
        .await
        .contains("held while we check"));
    // Their balance by SMS is what they can spend.
    crate::sms::inbound(&app, USER_PHONE, "BAL", "ATXid_held").await;
    let reply = app.last_sms(USER_PHONE).await;
    assert!(
        reply.contains(&format!("KES {}", shown(before - owed))),
        "{reply}"
    );
    // What is reserved cannot be spent.
    let response = app.send(&token, OTHER, before - owed + 100, "KES").await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
    )
    .await;
    spend_down_to(&app, &token, owed + 1_000).await;
    // Every confirmation meanwhile tells them what they can spend.
    let spendable = app.balance(&token, "KES").await - owed;
    let sent = app.last_sms(USER_PHONE).await;
    assert!(sent.contains("sent to OTHER"), "{sent}");
    assert!(
        sent.contains(&format!("New balance is KES {}", shown(spendable))),
        "{sent}"
    );

    let response =
        propose_correction(&app, &first, open[1]["id"].as_i64().unwrap(), "CORRECT").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let correction: Value = response.json().await.unwrap();
    let left = app.balance(&token, "KES").await;
    // While its proposer is suspended the correction has lapsed.
    let suspended = |yes: bool| {
        sqlx::query("UPDATE users SET suspended = $1 WHERE phone = $2")
            .bind(yes)
            .bind(ADMIN_PHONE)
            .execute(&app.pool)
    };
    suspended(true).await.unwrap();
    let response = decide_correction(&app, &second, &correction["id"], "approve").await;
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 409);
    assert!(
        problem["detail"].as_str().unwrap().contains("has lapsed"),
        "{problem}"
    );
    assert_eq!(app.balance(&token, "KES").await, left);
    suspended(false).await.unwrap();
    let response = decide_correction(&app, &second, &correction["id"], "approve").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.balance(&token, "KES").await, left - owed);
    assert_eq!(reserved(&app).await, 0);
    assert_eq!(payout_state(&app, &held).await.0, "COMPLETED");
    assert_eq!(
        receipt_of(&app, &reference).await.as_deref(),
        Some("SXK2222222")
    );
    assert!(app.last_sms(USER_PHONE).await.contains("paid after all"));
    // The customer sees it taken, as the withdrawal made after all.
    let page = app.get_json("/api/v1/wallet/transactions", &token).await;
    let taken = page.to_string();
    assert!(taken.contains("paid after its refund"), "{taken}");
    // Both results are settled; M-Pesa saying paid again is no contradiction.
    assert!(open_contradictions(&app, &first).await.is_empty());
    paid_result(&app, &reference, "SXK2222222").await;
    assert!(withdrawal_findings(&app).await.is_empty());
    let response =
        propose_correction(&app, &first, open[0]["id"].as_i64().unwrap(), "DISMISS").await;
    refused(response, StatusCode::CONFLICT).await;
    app.assert_balanced().await;

    // Spent before M-Pesa's word came, it is reserved only as far as it is
    // there, and taking it back waits until the customer holds it.
    app.fund(USER_PHONE, "KES", 100_000).await;
    let (held, reference) = refunded_payout(&app, &token).await;
    spend_down_to(&app, &token, 15_000).await;
    let spent = app.balance(&token, "KES").await;
    paid_result(&app, &reference, "SXK3333333").await;
    assert_eq!(reserved(&app).await, spent);
    let id = open_contradictions(&app, &first).await[0]["id"]
        .as_i64()
        .unwrap();
    let response = propose_correction(&app, &first, id, "CORRECT").await;
    let correction: Value = response.json().await.unwrap();
    let response = decide_correction(&app, &second, &correction["id"], "approve").await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
    )
    .await;
    assert_eq!(app.balance(&token, "KES").await, spent, "nothing taken");
    assert_eq!(reserved(&app).await, spent, "still reserved");
    assert_eq!(payout_state(&app, &held).await.0, "FAILED");
    app.fund(USER_PHONE, "KES", 100_000).await;
    let response = decide_correction(&app, &second, &correction["id"], "approve").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.balance(&token, "KES").await, spent + 100_000 - owed);
    assert_eq!(reserved(&app).await, 0);
    app.assert_balanced().await;
}

/// Results naming two receipts for a payout refunded earlier are one debt:
/// a proposal to take it back tops the reservation up from what came in
/// since; dismissing one result settles it alone and releases the
/// reservation (the customer told), and the other stays open to settle.
#[tokio::test]
async fn a_dismissed_result_releases_the_reservation_and_settles_only_itself() {
    let app = mpesa_app().await;
    let (first, second) = (app.admin_token().await, app.second_admin().await);
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    app.lift_limits().await;
    app.new_user(OTHER, "Other").await;
    let (held, reference) = refunded_payout(&app, &token).await;
    let owed = 20_000 + held["fee"].as_i64().unwrap();
    spend_down_to(&app, &token, 15_000).await;
    let spent = app.balance(&token, "KES").await;
    paid_result(&app, &reference, "SXK4444444").await;
    paid_result(&app, &reference, "SXK5555555").await;
    assert_eq!(reserved(&app).await, spent, "as far as it is there, once");
    let open = open_contradictions(&app, &first).await;
    assert_eq!(open.len(), 2);
    let (named, other) = (
        open[0]["id"].as_i64().unwrap(),
        open[1]["id"].as_i64().unwrap(),
    );

    app.fund(USER_PHONE, "KES", 100_000).await;
    let response = propose_correction(&app, &first, named, "CORRECT").await;
    let correction: Value = response.json().await.unwrap();
    assert_eq!(reserved(&app).await, owed, "topped up to the debt");
    assert!(app
        .last_sms(USER_PHONE)
        .await
        .contains("held while we check"));
    let response = decide_correction(&app, &second, &correction["id"], "reject").await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "REJECTED"
    );
    assert_eq!(reserved(&app).await, owed, "a rejection releases nothing");

    let balance = app.balance(&token, "KES").await;
    let response = propose_correction(&app, &second, named, "DISMISS").await;
    let dismissal: Value = response.json().await.unwrap();
    let response = decide_correction(&app, &first, &dismissal["id"], "approve").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(reserved(&app).await, 0);
    assert_eq!(app.balance(&token, "KES").await, balance, "nothing moves");
    assert_eq!(payout_state(&app, &held).await.0, "FAILED");
    assert!(app.last_sms(USER_PHONE).await.contains("is released"));
    let left = open_contradictions(&app, &first).await;
    assert_eq!(left.len(), 1, "the other receipt's result is still open");
    assert_eq!(left[0]["id"].as_i64(), Some(other));
    assert_eq!(withdrawal_findings(&app).await.len(), 1);
    let response = propose_correction(&app, &first, other, "DISMISS").await;
    let dismissal: Value = response.json().await.unwrap();
    let response = decide_correction(&app, &second, &dismissal["id"], "approve").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(withdrawal_findings(&app).await.is_empty());
    assert_eq!(reserved(&app).await, 0);
    app.assert_balanced().await;
}

/// A business's payout paid after its refund: amount and fee are reserved on
/// the business's account, which its owner (or a key that reads payments)
/// and operators see beside what can be paid out; what is reserved cannot be.
#[tokio::test]
async fn a_business_sees_what_a_payout_paid_after_its_refund_reserves() {
    use crate::merchants::{new_key, pay_till, register, OWNER};
    let app = mpesa_app().await;
    let admin = app.admin_token().await;
    let till = register(&app, OWNER, "Chai Corner", "till").await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    pay_till(&app, &customer, &till, 50_000).await;
    let owner = app.token(OWNER, "5831").await;
    let held = app
        .post(
            "/api/v1/merchant/withdrawals",
            Some(&owner),
            json!({"amount": 20_000}),
        )
        .await;
    assert_eq!(held.status(), StatusCode::ACCEPTED);
    let held: Value = held.json().await.unwrap();
    let owed = 20_000 + held["fee"].as_i64().unwrap();
    let reference = refunded(&app, &held).await;
    let kes = |business: Value| -> Value {
        let balances = business["balances"].as_array().unwrap().clone();
        balances
            .into_iter()
            .find(|b| b["currency"] == "KES")
            .unwrap()
    };
    let before = kes(app.get_json("/api/v1/merchant", &owner).await);
    let takings = before["balance"].as_i64().unwrap();
    assert_eq!(takings, 50_000 - 500, "refunded in full");
    assert_eq!(
        (before["locked"].as_i64(), before["available"].as_i64()),
        (Some(0), Some(takings))
    );

    paid_result(&app, &reference, "SXK6666666").await;
    assert!(app.last_sms(OWNER).await.contains("held while we check"));
    let read_key = new_key(&app, &owner, json!(["payments:read"])).await;
    let seen_by_key = app
        .get_json("/api/v1/merchant", read_key["key"].as_str().unwrap())
        .await;
    assert_eq!(seen_by_key["number"], till["number"]);
    assert!(seen_by_key.get("owner_phone").is_none(), "{seen_by_key}");
    let after = kes(seen_by_key);
    assert_eq!(
        after["balance"].as_i64(),
        Some(takings),
        "nothing booked by itself"
    );
    assert_eq!(after["locked"].as_i64(), Some(owed));
    assert_eq!(after["available"].as_i64(), Some(takings - owed));
    let path = format!(
        "/api/v1/admin/merchants/{}",
        till["merchant_id"].as_str().unwrap()
    );
    let seen = app.get_json(&path, &admin).await;
    assert_eq!(kes(seen["merchant"].clone())["locked"].as_i64(), Some(owed));
    // What is reserved cannot be paid out.
    let response = app
        .post(
            "/api/v1/merchant/withdrawals",
            Some(&owner),
            json!({"amount": takings - owed}),
        )
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
    )
    .await;
    // A payout M-Pesa makes meanwhile tells the owner what can be spent.
    let small = app
        .post(
            "/api/v1/merchant/withdrawals",
            Some(&owner),
            json!({"amount": 5_000}),
        )
        .await;
    assert_eq!(small.status(), StatusCode::ACCEPTED);
    let small: Value = small.json().await.unwrap();
    let conversation = conversation_of(&app, &small).await;
    app.sim_payout(&conversation, json!({"result_code": 0}))
        .await;
    eventually("the small payout paid", secs(10), async || {
        (payout_state(&app, &small).await.0 == "COMPLETED").then_some(())
    })
    .await;
    let left = kes(app.get_json("/api/v1/merchant", &owner).await);
    assert_eq!(left["locked"].as_i64(), Some(owed));
    let paid = app.last_sms(OWNER).await;
    let spendable = shown(left["available"].as_i64().unwrap());
    assert!(
        paid.contains("withdrawn to M-Pesa")
            && paid.contains(&format!("New balance is KES {spendable}")),
        "{paid}"
    );
    // Only the owner, or a key that reads payments, sees the business.
    let refunds_key = new_key(&app, &owner, json!(["refunds:write"])).await;
    for caller in [customer.as_str(), refunds_key["key"].as_str().unwrap()] {
        let response = app.get("/api/v1/merchant", caller).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    app.assert_balanced().await;
}

const OTHER: &str = "+254700000077";

/// Minor units as the customer's SMS show them: `1,234.50`.
fn shown(minor: i64) -> String {
    let whole = (minor / 100).to_string();
    let mut grouped = String::new();
    for (n, digit) in whole.chars().enumerate() {
        if n > 0 && (whole.len() - n).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{grouped}.{:02}", minor % 100)
}

/// A payout of KES 200 M-Pesa refused (amount and fee returned), and its `ref`.
async fn refunded_payout(app: &TestApp, token: &str) -> (Value, String) {
    let held = withdraw(app, token, 20_000).await;
    let reference = refunded(app, &held).await;
    (held, reference)
}

/// M-Pesa fails the payout `held`, which is refunded; returns its reference.
async fn refunded(app: &TestApp, held: &Value) -> String {
    let conversation = conversation_of(app, held).await;
    app.sim_payout(&conversation, json!({"result_code": 2001}))
        .await;
    eventually("the payout refunded", secs(10), async || {
        (payout_state(app, held).await.0 == "FAILED").then_some(())
    })
    .await;
    reference_of(app, held).await
}

/// Sends money away until the customer's available balance is below `below`.
async fn spend_down_to(app: &TestApp, token: &str, below: i64) {
    loop {
        let available = app.balance(token, "KES").await - reserved(app).await;
        if available < below {
            return;
        }
        // Under the highest send fee (2 %), about half of `below` is left.
        let amount = (available - below / 2) * 100 / 102;
        let response = app.send(token, OTHER, amount, "KES").await;
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
    }
}

/// What is reserved on the demo customer's KES wallet.
async fn reserved(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT a.locked FROM accounts a JOIN users u ON u.id = a.user_id
         WHERE u.phone = $1 AND a.kind = 'wallet' AND a.currency = 'KES'",
    )
    .bind(USER_PHONE)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

async fn receipt_of(app: &TestApp, reference: &str) -> Option<String> {
    sqlx::query_scalar("SELECT mpesa_receipt FROM mpesa_withdrawals WHERE ref = $1::uuid")
        .bind(reference)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// M-Pesa's B2C result for payout `reference`: paid, under `receipt`.
async fn paid_result(app: &TestApp, reference: &str, receipt: &str) {
    b2c_result(app, reference, 0, receipt).await;
}

/// M-Pesa's B2C result `code` for payout `reference`, naming the
/// ConversationID Safaricom acknowledged the request with (or, if that was
/// lost, one the gateway never saw).
async fn b2c_result(app: &TestApp, reference: &str, code: i32, receipt: &str) {
    let conversation: Option<String> =
        sqlx::query_scalar("SELECT conversation_id FROM mpesa_withdrawals WHERE ref = $1::uuid")
            .bind(reference)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let conversation = conversation.unwrap_or_else(|| "AG_20261208_UNSEEN".to_owned());
    let result = json!({"Result": {"ResultType": 0, "ResultCode": code, "ResultDesc": "as M-Pesa said",
        "OriginatorConversationID": reference, "ConversationID": conversation,
        "TransactionID": receipt}});
    let url = app.url(&format!(
        "/api/v1/mpesa/b2c/result?token={}",
        app.state.mpesa_callback_token
    ));
    let response = app.client.post(url).json(&result).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// M-Pesa's failure for a payout whose acknowledgement was lost, after two
/// operators settled it as paid, is kept as a contradiction: the customer
/// may have lost amount and fee (nothing is booked on an unverifiable
/// result).
#[tokio::test]
async fn a_failure_for_an_unacknowledged_payout_operators_settled_as_paid_is_a_contradiction() {
    let app = mpesa_app().await;
    let (first, second) = (app.admin_token().await, app.second_admin().await);
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let held = withdraw(&app, &token, 20_000).await;
    conversation_of(&app, &held).await;
    let reference = reference_of(&app, &held).await;
    sqlx::query("UPDATE mpesa_withdrawals SET conversation_id = NULL WHERE ref = $1::uuid")
        .bind(&reference)
        .execute(&app.pool)
        .await
        .unwrap();
    past_automatic_recovery(&app).await;
    let statement = json!({"outcome": "PAID", "receipt": "SXK7654321", "note": "M-Pesa statement"});
    let proposal: Value = propose(&app, &first, &reference, statement)
        .await
        .json()
        .await
        .unwrap();
    let approved = decide(&app, &second, &proposal["id"], "approve").await;
    assert_eq!(approved.status(), StatusCode::OK);
    assert_eq!(payout_state(&app, &held).await.0, "COMPLETED");
    let balance = app.balance(&token, "KES").await;
    b2c_result(&app, &reference, 2001, "").await;
    let open = open_contradictions(&app, &first).await;
    assert_eq!(
        (open[0]["kind"].as_str(), open[0]["withdrawal"].as_str()),
        (Some("FAILED AFTER PAID"), Some(reference.as_str()))
    );
    assert_eq!(payout_state(&app, &held).await.0, "COMPLETED");
    assert_eq!(app.balance(&token, "KES").await, balance, "nothing booked");
    app.assert_balanced().await;
}

/// The proposals of one status.
async fn proposals(app: &TestApp, token: &str, status: &str) -> Vec<Value> {
    let listed = app
        .get_json(
            &format!("/api/v1/admin/mpesa/resolutions?status={status}"),
            token,
        )
        .await;
    listed["resolutions"].as_array().unwrap().clone()
}

/// M-Pesa's result, when it comes before a second admin, settles the payout
/// and supersedes the proposal waiting on it; a result saying a payout
/// operators settled was paid under another receipt is reported, not
/// booked, and so is a receipt operators gave one payout that another
/// payout's result then brings.
#[tokio::test]
async fn a_result_supersedes_a_waiting_proposal_and_another_receipt_is_reported() {
    let app = mpesa_app().await;
    let (first, second) = (app.admin_token().await, app.second_admin().await);
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let answered = withdraw(&app, &token, 20_000).await;
    let settled = withdraw(&app, &token, 30_000).await;
    let other = withdraw(&app, &token, 10_000).await;
    let answered_conversation = conversation_of(&app, &answered).await;
    let settled_conversation = conversation_of(&app, &settled).await;
    conversation_of(&app, &other).await;
    past_automatic_recovery(&app).await;
    let answered_ref = reference_of(&app, &answered).await;

    let not_paid = json!({"outcome": "NOT_PAID", "note": "not on the statement yet"});
    let response = propose(&app, &first, &answered_ref, not_paid).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let waiting: Value = response.json().await.unwrap();
    app.sim_payout(&answered_conversation, json!({"result_code": 0}))
        .await;
    eventually("the result settles the payout", secs(10), async || {
        (payout_state(&app, &answered).await.0 == "COMPLETED").then_some(())
    })
    .await;
    let superseded = proposals(&app, &second, "SUPERSEDED").await;
    assert_eq!(superseded.len(), 1);
    assert_eq!(superseded[0]["id"], waiting["id"]);
    assert!(superseded[0]["decided_by"].is_null());
    assert!(superseded[0]["decision_note"]
        .as_str()
        .unwrap()
        .contains("COMPLETED"));
    for verb in ["approve", "reject"] {
        let response = decide(&app, &second, &waiting["id"], verb).await;
        refused(response, StatusCode::CONFLICT).await;
    }
    assert_eq!(proposals(&app, &second, "SUPERSEDED").await, superseded);
    assert_eq!(
        proposals(&app, &second, "PENDING").await,
        Vec::<Value>::new()
    );

    let statement = json!({"outcome": "PAID", "receipt": "SXK7654321", "note": "M-Pesa statement"});
    let settled_ref = reference_of(&app, &settled).await;
    let response = propose(&app, &first, &settled_ref, statement).await;
    let proposal: Value = response.json().await.unwrap();
    let response = decide(&app, &second, &proposal["id"], "approve").await;
    assert_eq!(response.status(), StatusCode::OK);
    let hold = payout_hold(&app).await;
    // The third payout, still pending after an hour, is a finding of its own.
    let other_ref = reference_of(&app, &other).await;
    let contradictions = async || {
        let findings = withdrawal_findings(&app).await;
        let not_other = |f: &Value| f["detail"]["withdrawal"] != other_ref.as_str();
        findings.into_iter().filter(not_other).collect::<Vec<_>>()
    };
    // M-Pesa confirming the operators' receipt is no contradiction.
    paid_result(&app, &settled_ref, "SXK7654321").await;
    assert_eq!(contradictions().await, Vec::<Value>::new());
    // The simulator pays under a receipt of its own.
    app.sim_payout(&settled_conversation, json!({"result_code": 0}))
        .await;
    let found = eventually("the other receipt reported", secs(10), async || {
        let findings = contradictions().await;
        (!findings.is_empty()).then_some(findings)
    })
    .await;
    assert!(found[0]["detail"]["problem"]
        .as_str()
        .unwrap()
        .contains("under another receipt"));
    assert_eq!(payout_state(&app, &settled).await.0, "COMPLETED");
    assert_eq!(payout_hold(&app).await, hold, "nothing booked again");
    let recorded = receipt_of(&app, &settled_ref).await;
    assert_eq!(recorded.as_deref(), Some("SXK7654321"));

    // Another payout's result bringing the receipt the operators gave: it
    // is paid (M-Pesa says so), and the shared receipt is reported.
    paid_result(&app, &other_ref, "SXK7654321").await;
    assert_eq!(payout_state(&app, &other).await.0, "COMPLETED");
    let findings = withdrawal_findings(&app).await;
    assert!(
        findings
            .iter()
            .any(|f| f["detail"]["receipt"] == "SXK7654321"
                && f["detail"]["withdrawals"].as_array().unwrap().len() == 2),
        "{findings:?}"
    );
    app.assert_balanced().await;

    // Two admins record M-Pesa's own receipt on the payout the operators
    // settled: both findings go, and nothing moves.
    let open = open_contradictions(&app, &first).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["kind"], "PAID UNDER OTHER RECEIPT");
    let simulated = open[0]["receipt"].as_str().unwrap().to_owned();
    let (hold, balance) = (payout_hold(&app).await, app.balance(&token, "KES").await);
    let response =
        propose_correction(&app, &first, open[0]["id"].as_i64().unwrap(), "CORRECT").await;
    let correction: Value = response.json().await.unwrap();
    let response = decide_correction(&app, &second, &correction["id"], "approve").await;
    let approved: Value = response.json().await.unwrap();
    assert_eq!(approved["status"], "APPROVED");
    assert!(approved["correction_tx_id"].is_null());
    let recorded = receipt_of(&app, &settled_ref).await;
    assert_eq!(recorded.as_deref(), Some(simulated.as_str()));
    assert_eq!(contradictions().await, Vec::<Value>::new());
    assert_eq!(payout_hold(&app).await, hold, "nothing booked");
    assert_eq!(app.balance(&token, "KES").await, balance);

    // A result under yet another receipt, which the statement does not
    // bear out, is dismissed by two admins: the receipt stays.
    paid_result(&app, &settled_ref, "SXK9999999").await;
    let open = open_contradictions(&app, &first).await;
    assert_eq!(open.len(), 1);
    let id = open[0]["id"].as_i64().unwrap();
    let response = propose_correction(&app, &second, id, "DISMISS").await;
    let dismissal: Value = response.json().await.unwrap();
    let response = decide_correction(&app, &first, &dismissal["id"], "reject").await;
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "REJECTED"
    );
    assert_eq!(
        open_contradictions(&app, &first).await.len(),
        1,
        "a rejection settles nothing"
    );
    let response = propose_correction(&app, &second, id, "DISMISS").await;
    let dismissal: Value = response.json().await.unwrap();
    let response = decide_correction(&app, &first, &dismissal["id"], "approve").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(contradictions().await, Vec::<Value>::new());
    let listed = app
        .get_json("/api/v1/admin/mpesa/corrections?status=APPROVED", &first)
        .await;
    assert_eq!(listed["corrections"].as_array().unwrap().len(), 2);
    let recorded = receipt_of(&app, &settled_ref).await;
    assert_eq!(recorded.as_deref(), Some(simulated.as_str()));
    app.assert_balanced().await;
}

/// What a reconciliation run finds about withdrawals.
async fn withdrawal_findings(app: &TestApp) -> Vec<Value> {
    let run = crate::reconciliation::run(app).await;
    run["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["check"] == "mpesa_withdrawal")
        .cloned()
        .collect()
}
