//! Agents and e-money over HTTP: appointment, treasury issuance with four
//! eyes, cash-in and cash-out with commission and SMS, and the ledger
//! still balanced.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const AGENT: &str = "+254711300001";

async fn summary(app: &TestApp, agent: &str) -> Value {
    app.get_json("/api/v1/agent/summary", agent).await
}

fn kes<'a>(list: &'a Value, field: &str) -> &'a Value {
    list[field]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["currency"] == "KES")
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn float_exists_only_after_a_second_admin_approves_an_issuance() {
    let app = spawn_app().await;
    let (agent, number) = app.agent_with_float(AGENT, "KES", 0).await;
    assert_eq!(number.len(), 6);
    let admin = app.admin_token().await;
    let body = json!({"agent_phone": AGENT, "amount": 10_000_000, "currency": "KES", "reference": "EQUITY-778812"});
    let proposed = app
        .post(
            "/api/v1/admin/treasury/issuances",
            Some(&admin),
            body.clone(),
        )
        .await;
    assert_eq!(proposed.status(), StatusCode::CREATED);
    let proposed: Value = proposed.json().await.unwrap();
    assert_eq!(proposed["status"], "PENDING");
    let approve = format!(
        "/api/v1/admin/treasury/issuances/{}/approve",
        proposed["id"].as_str().unwrap()
    );

    assert_problem(
        app.post(&approve, Some(&admin), json!({"note": "mine"}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.float(AGENT, "KES").await,
        0,
        "the proposer alone creates nothing"
    );
    assert_problem(
        app.post(&approve, Some(&agent), json!({})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(
        app.post("/api/v1/admin/treasury/issuances", Some(&admin), body)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;

    let second = app.second_admin().await;
    let approved: Value = app
        .post(
            &approve,
            Some(&second),
            json!({"note": "statement checked"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(approved["status"], "APPROVED");
    assert!(approved["tx_id"].is_string());
    assert_eq!(app.float(AGENT, "KES").await, 10_000_000);
    let again: Value = app
        .post(&approve, Some(&second), json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["tx_id"], approved["tx_id"],
        "approving again issues nothing more"
    );
    assert_eq!(app.float(AGENT, "KES").await, 10_000_000);
    let reject = approve.replace("/approve", "/reject");
    assert_problem(
        app.post(&reject, Some(&second), json!({})).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;

    let texts: Vec<String> =
        sqlx::query_scalar("SELECT message FROM sms_outbox WHERE to_phone = $1")
            .bind(AGENT)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("KES 100,000.00 float issued") && t.contains("EQUITY-778812")),
        "{texts:?}"
    );
    let pending = app
        .get_json("/api/v1/admin/treasury/issuances?status=PENDING", &admin)
        .await;
    assert_eq!(pending["issuances"], json!([]));

    // One transfer, one issuance, however its reference is typed; a
    // rejected proposal frees its reference; unknown currencies are refused.
    let propose = |reference: &str, currency: &str| json!({"agent_phone": AGENT, "amount": 1_000, "currency": currency, "reference": reference});
    let retyped = app
        .post(
            "/api/v1/admin/treasury/issuances",
            Some(&admin),
            propose(" equity-778812 ", "KES"),
        )
        .await;
    assert_problem(retyped, StatusCode::CONFLICT, "conflict").await;
    // A reference that only looks like the approved one (an invisible
    // character, full-width letters) is refused, not a second issuance.
    for lookalike in ["EQUITY-778812\u{200b}", "ＥQUITY-778812"] {
        let refused = app
            .post(
                "/api/v1/admin/treasury/issuances",
                Some(&admin),
                propose(lookalike, "KES"),
            )
            .await;
        assert_problem(refused, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    let unknown = app
        .post(
            "/api/v1/admin/treasury/issuances",
            Some(&admin),
            propose("REF-XYZ", "XYZ"),
        )
        .await;
    assert_problem(unknown, StatusCode::BAD_REQUEST, "validation_error").await;
    let typo: Value = app
        .post(
            "/api/v1/admin/treasury/issuances",
            Some(&admin),
            propose("KCB-1", "KES"),
        )
        .await
        .json()
        .await
        .unwrap();
    let reject = format!(
        "/api/v1/admin/treasury/issuances/{}/reject",
        typo["id"].as_str().unwrap()
    );
    assert_eq!(
        app.post(&reject, Some(&second), json!({"note": "wrong amount"}))
            .await
            .status(),
        StatusCode::OK
    );
    let right = app
        .post(
            "/api/v1/admin/treasury/issuances",
            Some(&admin),
            propose("kcb-1", "KES"),
        )
        .await;
    assert_eq!(right.status(), StatusCode::CREATED);
    app.assert_balanced().await;
}

/// A proposal counts only while its proposer stands behind it: one three
/// days old, or one whose proposer has since been suspended, can be
/// rejected but no longer approved; nor is one for an agent since listed.
#[tokio::test]
async fn a_lapsed_issuance_is_never_approved() {
    let app = spawn_app().await;
    app.agent_with_float(AGENT, "KES", 0).await;
    let admin = app.admin_token().await;
    let second = app.second_admin().await;
    let propose = async |reference: &str| -> String {
        let body = json!({"agent_phone": AGENT, "amount": 1_000_000, "currency": "KES", "reference": reference});
        let proposed: Value = app
            .post("/api/v1/admin/treasury/issuances", Some(&admin), body)
            .await
            .json()
            .await
            .unwrap();
        format!(
            "/api/v1/admin/treasury/issuances/{}",
            proposed["id"].as_str().unwrap()
        )
    };
    let set = async |sql: &str| {
        sqlx::query(sql).execute(&app.pool).await.unwrap();
    };
    let suspend = |suspended: bool| {
        format!("UPDATE users SET suspended = {suspended} WHERE phone = '{ADMIN_PHONE}'")
    };
    let old = propose("BANK-OLD-1").await;
    set("UPDATE treasury_issuances SET created_at = now() - interval '73 hours'").await;
    let stale = app
        .post(&format!("{old}/approve"), Some(&second), json!({}))
        .await;
    assert_problem(stale, StatusCode::CONFLICT, "conflict").await;
    let rejected = app
        .post(&format!("{old}/reject"), Some(&second), json!({}))
        .await;
    assert_eq!(rejected.status(), StatusCode::OK);

    let fresh = propose("BANK-NEW-1").await;
    set(&suspend(true)).await;
    let orphaned = app
        .post(&format!("{fresh}/approve"), Some(&second), json!({}))
        .await;
    let problem: Value = orphaned.json().await.unwrap();
    assert_eq!(problem["status"], 409);
    assert!(
        problem["detail"].as_str().unwrap().contains("has lapsed"),
        "{problem}"
    );
    assert_eq!(app.float(AGENT, "KES").await, 0);
    set(&suspend(false)).await;
    let approved: Value = app
        .post(&format!("{fresh}/approve"), Some(&second), json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(approved["status"], "APPROVED");
    assert_eq!(app.float(AGENT, "KES").await, 1_000_000);

    // An agent the re-screening found on the list is issued nothing.
    let listed = propose("BANK-LISTED-1").await;
    set(&format!(
        "WITH entry AS (INSERT INTO sanctions_entries (name, source) VALUES ('Listed Agent', 'manual') RETURNING id)
         UPDATE users SET sanctions_match_id = (SELECT id FROM entry) WHERE phone = '{AGENT}'"
    ))
    .await;
    let refused = app
        .post(&format!("{listed}/approve"), Some(&second), json!({}))
        .await;
    assert_problem(refused, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(app.float(AGENT, "KES").await, 1_000_000);
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_cash_in_pays_the_customer_from_the_float_with_a_commission_and_two_sms() {
    let app = spawn_app().await;
    let (agent, number) = app.agent_with_float(AGENT, "KES", 10_000_000).await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&customer, "KES").await;
    let preview = app
        .get_json(&format!("/api/v1/agent/cash-in/preview?customer_phone={USER_PHONE}&amount=100000&currency=KES"), &agent)
        .await;
    assert_eq!(preview["customer_name"], "Demo User");
    let commission = preview["commission"].as_i64().unwrap();
    assert!(commission > 0);

    let body = json!({"customer_phone": "0700000001", "amount": 100_000, "currency": "KES"});
    let cashed = app.post("/api/v1/agent/cash-in", Some(&agent), body).await;
    assert_eq!(cashed.status(), StatusCode::CREATED);
    let cashed: Value = cashed.json().await.unwrap();
    assert_eq!(cashed["type"], "cash_in");
    assert_eq!(app.balance(&customer, "KES").await, before + 100_000);
    assert_eq!(
        app.float(AGENT, "KES").await,
        10_000_000 - 100_000 + commission
    );

    let summary = summary(&app, &agent).await;
    assert_eq!(summary["agent_number"], number.as_str());
    let today = kes(&summary, "today");
    assert_eq!(today["cash_in_count"], 1);
    assert_eq!(today["cash_in_amount"], 100_000);
    assert_eq!(kes(&summary, "commission")["balance"], commission);
    assert_eq!(
        kes(&summary, "float")["balance"],
        10_000_000 - 100_000 + commission
    );

    let to_customer: Vec<String> = sqlx::query_scalar(
        "SELECT message FROM sms_outbox WHERE to_phone = $1 AND tx_id = $2::uuid",
    )
    .bind(USER_PHONE)
    .bind(cashed["tx_id"].as_str().unwrap())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(
        to_customer[0].contains(&format!(
            "deposited KES 1,000.00 cash at agent {number} MARY WANJIRU"
        )),
        "{to_customer:?}"
    );
    let to_agent: String = sqlx::query_scalar(
        "SELECT message FROM sms_outbox WHERE to_phone = $1 AND tx_id = $2::uuid",
    )
    .bind(AGENT)
    .bind(cashed["tx_id"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        to_agent.contains("Cash in of KES 1,000.00 to DEMO USER"),
        "{to_agent}"
    );
    app.assert_balanced().await;
}

/// Commission is paid from fee revenue and capped per cash-in (USD 2.00),
/// while a voucher's fee is capped per voucher: an agent and a customer
/// cycling money agent → customer → voucher → agent in several cash-ins
/// would earn more than the voucher costs. A day's cash-ins for one
/// customer earn what one cash-in of their total would.
#[tokio::test]
async fn a_days_cash_ins_for_one_customer_earn_the_commission_of_their_total() {
    let app = spawn_app().await;
    app.lift_limits().await;
    let (agent, _) = app.agent_with_float(AGENT, "KES", 40_000_000).await;
    // KES 100,000.00 (USD 772) earns 0.2 %, KES 200.00; the cap is USD 2.00,
    // KES 259.00.
    let body = json!({"customer_phone": USER_PHONE, "amount": 10_000_000, "currency": "KES"});
    let mut earned = Vec::new();
    for _ in 0..3 {
        let before = app.float(AGENT, "KES").await;
        let cashed = app
            .post("/api/v1/agent/cash-in", Some(&agent), body.clone())
            .await;
        assert_eq!(cashed.status(), StatusCode::CREATED);
        earned.push(app.float(AGENT, "KES").await - before + 10_000_000);
    }
    assert_eq!(
        earned,
        [20_000, 5_900, 0],
        "KES 259.00 in all, as one cash-in of the total"
    );
    let preview = app
        .get_json(&format!("/api/v1/agent/cash-in/preview?customer_phone={USER_PHONE}&amount=10000000&currency=KES"), &agent)
        .await;
    assert_eq!(preview["commission"], 0);
    app.assert_balanced().await;
}

#[tokio::test]
async fn cash_in_is_for_active_agents_with_float_above_the_minimum() {
    let app = spawn_app().await;
    let (agent, number) = app.agent_with_float(AGENT, "KES", 100_000).await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let cash_in =
        |amount: i64| json!({"customer_phone": USER_PHONE, "amount": amount, "currency": "KES"});
    assert_problem(
        app.post("/api/v1/agent/cash-in", Some(&customer), cash_in(100_000))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(
        app.post("/api/v1/agent/cash-in", Some(&agent), cash_in(200_000))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
    )
    .await;
    assert_problem(
        app.post("/api/v1/agent/cash-in", Some(&agent), cash_in(50))
            .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    let own = json!({"customer_phone": AGENT, "amount": 100_000, "currency": "KES"});
    assert_problem(
        app.post("/api/v1/agent/cash-in", Some(&agent), own).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;

    let admin = app.admin_token().await;
    let suspended = app
        .post(
            &format!("/api/v1/admin/agents/{number}/suspend"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(
        suspended.json::<Value>().await.unwrap()["status"],
        "SUSPENDED"
    );
    assert_problem(
        app.post("/api/v1/agent/cash-in", Some(&agent), cash_in(100_000))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(app.float(AGENT, "KES").await, 100_000, "nothing moved");
    let agents = app.get_json("/api/v1/admin/agents", &admin).await;
    assert_eq!(agents["agents"][0]["status"], "SUSPENDED");
}

#[tokio::test]
async fn a_customer_withdraws_cash_at_an_agent_and_the_fee_is_shared_with_the_agent() {
    let app = spawn_app().await;
    let (agent, number) = app.agent_with_float(AGENT, "KES", 0).await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&customer, "KES").await;
    let preview = app
        .get_json(
            &format!(
                "/api/v1/wallet/withdraw/preview?agent_number={number}&amount=100000&currency=KES"
            ),
            &customer,
        )
        .await;
    assert_eq!(preview["agent_name"], "Mary Wanjiru");
    let fee = preview["fee"].as_i64().unwrap();
    assert!(fee > 0);

    let body =
        json!({"method": "agent", "agent_number": number, "amount": 100_000, "currency": "KES"});
    let withdrawn = app
        .post("/api/v1/wallet/withdraw", Some(&customer), body)
        .await;
    assert_eq!(withdrawn.status(), StatusCode::CREATED);
    let withdrawn: Value = withdrawn.json().await.unwrap();
    assert_eq!(withdrawn["type"], "cash_out");
    assert_eq!(withdrawn["fee"], fee);
    assert_eq!(app.balance(&customer, "KES").await, before - 100_000 - fee);
    let commission = app.float(AGENT, "KES").await - 100_000;
    assert!(
        commission > 0 && commission <= fee,
        "commission {commission} of fee {fee}"
    );
    assert_eq!(
        kes(&summary(&app, &agent).await, "commission")["balance"],
        commission
    );

    let instruction: String = sqlx::query_scalar(
        "SELECT message FROM sms_outbox WHERE to_phone = $1 AND tx_id = $2::uuid",
    )
    .bind(AGENT)
    .bind(withdrawn["tx_id"].as_str().unwrap())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        instruction.contains("Give DEMO USER +254700000001 KES 1,000.00 in cash"),
        "{instruction}"
    );

    let unknown =
        json!({"method": "agent", "agent_number": "000000", "amount": 100_000, "currency": "KES"});
    assert_problem(
        app.post("/api/v1/wallet/withdraw", Some(&customer), unknown)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_eligible",
    )
    .await;
    let malformed =
        json!({"method": "agent", "agent_number": "12ab", "amount": 100_000, "currency": "KES"});
    assert_problem(
        app.post("/api/v1/wallet/withdraw", Some(&customer), malformed)
            .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    app.assert_balanced().await;
}

#[tokio::test]
async fn only_verified_customers_in_good_standing_become_agents_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.new_user("+254711300009", "Unverified Person").await;
    let appoint = |phone: &str| json!({ "phone": phone });
    assert_problem(
        app.post(
            "/api/v1/admin/agents",
            Some(&admin),
            appoint("+254711300009"),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert_problem(
        app.post("/api/v1/admin/agents", Some(&admin), appoint(ADMIN_PHONE))
            .await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert_problem(
        app.post(
            "/api/v1/admin/agents",
            Some(&admin),
            appoint("+254711300404"),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // A business owner's takings and an agent's float stay apart.
    crate::merchants::register(&app, "+254711300010", "Owner Not Agent", "till").await;
    let refused = app
        .post(
            "/api/v1/admin/agents",
            Some(&admin),
            appoint("+254711300010"),
        )
        .await;
    let problem = assert_problem(refused, StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("business owner"));
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    assert_problem(
        app.post("/api/v1/admin/agents", Some(&customer), appoint(USER_PHONE))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.post("/api/v1/admin/agents", Some(&admin), appoint(USER_PHONE))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_problem(
        app.post("/api/v1/admin/agents", Some(&admin), appoint(USER_PHONE))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    let opened: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM accounts a JOIN users u ON u.id = a.user_id WHERE u.phone = $1 AND a.kind = 'agent_float'",
    )
    .bind(USER_PHONE)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(opened, 5, "a float per currency");
}
