//! Reconciliation and M-Pesa recovery, end to end against the Daraja
//! simulator: a clean run, a planted discrepancy in each kind of check,
//! the scheduled run, a payment after its deposit expired held in suspense
//! until two admins resolve it, lost B2C answers resolved through
//! Transaction Status, and the Daraja client pointed at another host with
//! `MPESA_BASE_URL`.

use std::sync::Mutex;

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Prompts are answered only when a test says so; deposits are asked about
/// after a second and expire after three.
pub(crate) async fn expiring_app() -> TestApp {
    spawn_with(TestOptions {
        configure: |settings| {
            settings.mpesa.sim_delay_ms = 600_000;
            settings.mpesa.pending_timeout_s = 1;
            settings.mpesa.query_deadline_s = 3;
        },
        ..TestOptions::default()
    })
    .await
}

/// The simulated customers and network answer within 300 ms; overdue
/// payouts are asked about after a second.
async fn quick_app() -> TestApp {
    spawn_with(TestOptions {
        configure: |settings| {
            settings.mpesa.sim_delay_ms = 300;
            settings.mpesa.pending_timeout_s = 1;
            settings.mpesa.query_deadline_s = 3;
        },
        ..TestOptions::default()
    })
    .await
}

/// Starts a reconciliation run as an admin through HTTP; the run as answered.
pub(crate) async fn run(app: &TestApp) -> Value {
    let admin = app.admin_token().await;
    let response = app
        .post("/api/v1/admin/reconciliation/runs", Some(&admin), json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

fn checks_of(run: &Value) -> Vec<&str> {
    run["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["check"].as_str().unwrap())
        .collect()
}

async fn deposit(app: &TestApp, token: &str, amount: i64) -> Value {
    let response = app
        .post(
            "/api/v1/mpesa/initiate",
            Some(token),
            json!({"amount": amount}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.unwrap()
}

async fn deposit_becomes(app: &TestApp, token: &str, reference: &Value, wanted: &str) -> Value {
    let path = format!("/api/v1/mpesa/status/{}", reference.as_str().unwrap());
    eventually(
        &format!("the deposit to become {wanted}"),
        secs(20),
        async || {
            let deposit = app.get_json(&path, token).await;
            (deposit["status"] == wanted).then_some(deposit)
        },
    )
    .await
}

#[tokio::test]
async fn a_clean_run_finds_nothing_and_a_planted_discrepancy_of_each_kind_is_found() {
    let app = quick_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let started = deposit(&app, &token, 25_000).await;
    deposit_becomes(&app, &token, &started["ref"], "CONFIRMED").await;

    let clean = run(&app).await;
    assert_eq!(clean["clean"], true, "{clean:#}");
    assert_eq!(clean["items"], json!([]));
    let float = &clean["checks"]["mpesa_float"]["looked_at"];
    assert_eq!(
        float["mpesa"], 25_000,
        "Account Balance states what the simulator holds: {float}"
    );
    assert_eq!(float["books"], 25_000);
    assert_eq!(
        clean["checks"]["mpesa_deposits"]["looked_at"]["confirmed"],
        1
    );

    // A balance that disagrees with its postings, a success callback for a
    // payment nobody asked for, and M-Pesa holding KES 50 more than the books.
    let account: i64 = sqlx::query_scalar(
        "UPDATE accounts SET balance = balance + 7 WHERE id = (SELECT min(id) FROM accounts WHERE kind = 'wallet') RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let stray = json!({"Body": {"stkCallback": {
        "MerchantRequestID": "1-2-3", "CheckoutRequestID": "ws_CO_NOBODY_ASKED", "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "CallbackMetadata": {"Item": [{"Name": "Amount", "Value": 10.0}, {"Name": "MpesaReceiptNumber", "Value": "SXX0000001"},
                                      {"Name": "PhoneNumber", "Value": 254700000001i64}]}}}});
    let url = format!(
        "/api/v1/mpesa/callback?token={}",
        app.state.mpesa_callback_token
    );
    assert_eq!(app.post(&url, None, stray).await.status(), StatusCode::OK);
    app.sim_daraja_faults(json!({"float_offset_cents": 5_000}))
        .await;

    let found = run(&app).await;
    assert_eq!(found["clean"], false);
    let checks = checks_of(&found);
    for expected in ["ledger", "mpesa_callback", "mpesa_float"] {
        assert!(checks.contains(&expected), "{expected} in {found:#}");
    }
    let items = found["items"].as_array().unwrap();
    assert!(items
        .iter()
        .any(|i| i["subject"] == format!("account {account}")));
    let callback = items
        .iter()
        .find(|i| i["check"] == "mpesa_callback")
        .unwrap();
    assert_eq!(
        callback["detail"]["checkout_request_id"],
        "ws_CO_NOBODY_ASKED"
    );
    let float = items.iter().find(|i| i["check"] == "mpesa_float").unwrap();
    assert_eq!(float["detail"]["difference"], 5_000);

    // Stored, listed, counted and audited.
    let admin = app.admin_token().await;
    let listed = app
        .get_json("/api/v1/admin/reconciliation/runs", &admin)
        .await;
    assert_eq!(listed["runs"][0]["id"], found["id"]);
    assert_eq!(listed["runs"][1]["clean"], true);
    let stored = app
        .get_json(
            &format!("/api/v1/admin/reconciliation/runs/{}", found["id"]),
            &admin,
        )
        .await;
    assert_eq!(stored["items"], found["items"]);
    assert!(stored["finished_at"].is_string());
    assert!(app
        .metrics()
        .await
        .contains(r#"chainpay_reconciliation_discrepancies_total{check="mpesa_float"} 1"#));
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'reconciliation.discrepancy'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, items.len() as i64);
    let missing = app
        .get("/api/v1/admin/reconciliation/runs/999999", &admin)
        .await;
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    let customer = app
        .post("/api/v1/admin/reconciliation/runs", Some(&token), json!({}))
        .await;
    assert_problem(customer, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn the_scheduled_run_happens_once_across_instances() {
    let app = spawn_with(TestOptions {
        configure: |settings| settings.recon_interval_s = 2,
        ..TestOptions::default()
    })
    .await;
    let other = app.second_instance(|_| {}).await;
    let admin = app.admin_token().await;
    let scheduled = eventually("a scheduled run", secs(20), async || {
        let runs = app
            .get_json("/api/v1/admin/reconciliation/runs", &admin)
            .await;
        let first = runs["runs"].as_array().unwrap().last().cloned()?;
        (first["trigger"] == "job" && first["finished_at"].is_string()).then_some(first)
    })
    .await;
    assert_eq!(scheduled["clean"], true, "{scheduled:#}");
    let starts: Vec<(chrono::DateTime<chrono::Utc>,)> = sqlx::query_as(
        "SELECT started_at FROM reconciliation_runs WHERE trigger = 'job' ORDER BY started_at",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for pair in starts.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap.num_milliseconds() >= 1_800,
            "two instances ran one interval's run twice: {starts:?}"
        );
    }
    drop(other);
}

#[tokio::test]
async fn a_payment_after_its_deposit_expired_waits_in_suspense_for_two_admins() {
    let app = expiring_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;
    let started = deposit(&app, &token, 40_000).await;
    let expired = deposit_becomes(&app, &token, &started["ref"], "EXPIRED").await;
    assert!(
        expired["result_desc"]
            .as_str()
            .unwrap()
            .contains("no definitive answer"),
        "{expired}"
    );

    // The customer pays after all: the money is booked, but not to the wallet.
    let checkout = started["checkout_request_id"].as_str().unwrap();
    app.sim_answer(checkout, 0, true).await;
    let held = deposit_becomes(&app, &token, &started["ref"], "SUSPENSE").await;
    assert_eq!(
        app.balance(&token, "KES").await,
        before,
        "a late payment credits nothing by itself"
    );
    assert!(app
        .last_sms(USER_PHONE)
        .await
        .contains("could not match it"));
    app.assert_balanced().await;

    let first = app.admin_token().await;
    let second = app.second_admin().await;
    let open = app
        .get_json("/api/v1/admin/reconciliation/suspense?status=OPEN", &first)
        .await;
    let item = open["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["subject"] == started["ref"])
        .unwrap()
        .clone();
    assert_eq!(item["detail"]["reason"], "late");
    assert_eq!(item["detail"]["amount"], 40_000);
    assert_eq!(item["detail"]["receipt"], held["mpesa_receipt"]);
    let path = |action: &str| format!("/api/v1/admin/reconciliation/items/{}/{action}", item["id"]);

    let proposed = app
        .post(
            &path("propose"),
            Some(&first),
            json!({"resolution": "credit", "note": "customer confirmed by phone"}),
        )
        .await;
    assert_eq!(proposed.status(), StatusCode::OK);
    let read: Value = proposed.json().await.unwrap();
    let seen = json!({"note": "checked", "proposal_version": read["proposal_version"]});
    let own = app.post(&path("approve"), Some(&first), seen.clone()).await;
    assert_problem(own, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(app.balance(&token, "KES").await, before);
    // Nor does the deposit's customer, were they an admin, send it back and
    // hold up their own item.
    let make = |role: &'static str| {
        sqlx::query("UPDATE users SET role = $1 WHERE phone = $2")
            .bind(role)
            .bind(USER_PHONE)
            .execute(&app.pool)
    };
    make("admin").await.unwrap();
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let theirs = app.post(&path("reject"), Some(&customer), json!({})).await;
    assert_problem(theirs, StatusCode::FORBIDDEN, "forbidden").await;
    make("user").await.unwrap();

    // Sent back and proposed again while the second admin read the first:
    // approving what they read books nothing.
    let sent_back = app.post(&path("reject"), Some(&first), json!({})).await;
    assert_eq!(sent_back.status(), StatusCode::OK);
    let again = json!({"resolution": "credit", "note": "customer confirmed twice"});
    let replaced: Value = app
        .post(&path("propose"), Some(&first), again)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(replaced["proposal_version"], read["proposal_version"]);
    let unseen = app.post(&path("approve"), Some(&second), seen).await;
    assert_problem(unseen, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(app.balance(&token, "KES").await, before);
    let seen = json!({"note": "checked", "proposal_version": replaced["proposal_version"]});
    // A proposal three days old has lapsed, as has one whose proposer was
    // suspended since: the second admin's approval books nothing.
    let aged = |hours: i32| {
        sqlx::query("UPDATE reconciliation_items SET proposed_at = now() - make_interval(hours => $2) WHERE id = $1")
            .bind(item["id"].as_i64().unwrap())
            .bind(hours)
            .execute(&app.pool)
    };
    let suspended = |yes: bool| {
        sqlx::query("UPDATE users SET suspended = $1 WHERE phone = $2")
            .bind(yes)
            .bind(ADMIN_PHONE)
            .execute(&app.pool)
    };
    aged(73).await.unwrap();
    let stale = app
        .post(&path("approve"), Some(&second), seen.clone())
        .await;
    let problem: Value = stale.json().await.unwrap();
    assert_eq!(problem["status"], 409);
    assert!(
        problem["detail"].as_str().unwrap().contains("has lapsed"),
        "{problem}"
    );
    aged(0).await.unwrap();
    suspended(true).await.unwrap();
    let orphaned = app
        .post(&path("approve"), Some(&second), seen.clone())
        .await;
    assert_problem(orphaned, StatusCode::CONFLICT, "conflict").await;
    suspended(false).await.unwrap();
    assert_eq!(app.balance(&token, "KES").await, before);

    let approved = app
        .post(&path("approve"), Some(&second), seen.clone())
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!(approved["status"], "RESOLVED");
    let again = app.post(&path("approve"), Some(&second), seen).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a retried approval answers the same"
    );
    assert_eq!(
        app.balance(&token, "KES").await,
        before + 40_000,
        "credited once"
    );
    deposit_becomes(&app, &token, &started["ref"], "CONFIRMED").await;
    assert!(app
        .last_sms(USER_PHONE)
        .await
        .contains("deposited from M-Pesa"));
    app.assert_balanced().await;
    let after = run(&app).await;
    assert_eq!(after["clean"], true, "{after:#}");
}

#[tokio::test]
async fn money_in_suspense_can_be_refunded_with_the_reversal_reference_instead() {
    let app = expiring_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let started = deposit(&app, &token, 15_000).await;
    deposit_becomes(&app, &token, &started["ref"], "EXPIRED").await;
    app.sim_answer(started["checkout_request_id"].as_str().unwrap(), 0, true)
        .await;
    deposit_becomes(&app, &token, &started["ref"], "SUSPENSE").await;
    let (first, second) = (app.admin_token().await, app.second_admin().await);
    let open = app
        .get_json("/api/v1/admin/reconciliation/suspense?status=OPEN", &first)
        .await;
    let id = open["items"][0]["id"].clone();
    let path = |action: &str| format!("/api/v1/admin/reconciliation/items/{id}/{action}");
    let unreferenced = app
        .post(
            &path("propose"),
            Some(&first),
            json!({"resolution": "refund", "note": "asked"}),
        )
        .await;
    assert_problem(unreferenced, StatusCode::BAD_REQUEST, "validation_error").await;
    let proposed = app
        .post(&path("propose"), Some(&first), json!({"resolution": "refund", "note": "customer asked", "mpesa_reference": "sxr1234567"}))
        .await;
    assert_eq!(proposed.status(), StatusCode::OK);
    let bad = app
        .get("/api/v1/admin/reconciliation/suspense?status=maybe", &first)
        .await;
    assert_problem(bad, StatusCode::BAD_REQUEST, "validation_error").await;
    let version = proposed.json::<Value>().await.unwrap()["proposal_version"].clone();
    let approval = json!({"proposal_version": version});
    let approved = app.post(&path("approve"), Some(&second), approval).await;
    assert_eq!(approved.status(), StatusCode::OK);
    deposit_becomes(&app, &token, &started["ref"], "REFUNDED").await;
    let suspense: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(balance), 0)::bigint FROM accounts WHERE kind = 'suspense' AND currency = 'KES'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(suspense, 0, "nothing left in suspense");
    assert!(app
        .last_sms(USER_PHONE)
        .await
        .contains("refunded to your M-Pesa"));
    app.assert_balanced().await;
}

async fn withdraw(app: &TestApp, token: &str, amount: i64) -> Value {
    let response = app
        .post(
            "/api/v1/wallet/withdraw",
            Some(token),
            json!({"amount": amount, "currency": "KES", "method": "mpesa"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.unwrap()
}

async fn withdrawal_becomes(app: &TestApp, hold: &Value, wanted: &str) -> (Option<String>, i32) {
    eventually(&format!("the withdrawal to become {wanted}"), secs(30), async || {
        let row: (String, Option<String>, i32) = sqlx::query_as(
            "SELECT status, mpesa_receipt, status_no_record FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid",
        )
        .bind(hold["tx_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        (row.0 == wanted).then_some((row.1, row.2))
    })
    .await
}

#[tokio::test]
async fn payouts_whose_answers_were_lost_are_settled_through_transaction_status() {
    let app = quick_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&token, "KES").await;

    // Safaricom received and paid it, but neither the acknowledgement nor
    // the result reached us: Transaction Status finds the receipt.
    app.sim_daraja_faults(json!({"b2c": "lose_replies"})).await;
    let paid = withdraw(&app, &token, 50_000).await;
    let fee = paid["fee"].as_i64().unwrap();
    let (receipt, no_record) = withdrawal_becomes(&app, &paid, "COMPLETED").await;
    let paid_by_mpesa: Option<String> = sqlx::query_scalar("SELECT receipt FROM sim_daraja_b2c WHERE originator_conversation_id = (SELECT ref::text FROM mpesa_withdrawals WHERE hold_tx_id = $1::uuid)")
        .bind(paid["tx_id"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(receipt, paid_by_mpesa, "settled with M-Pesa's own receipt");
    assert_eq!(no_record, 0);
    assert!(app.last_sms(USER_PHONE).await.contains("KES 500.00"));

    // The request never arrived: after three "no such transaction" answers,
    // and once the query deadline has passed, amount and fee come back.
    app.sim_daraja_faults(json!({"b2c": "lose_request"})).await;
    let lost = withdraw(&app, &token, 20_000).await;
    let (_, no_record) = withdrawal_becomes(&app, &lost, "FAILED").await;
    assert!(
        no_record >= 3,
        "refunded only after repeated answers: {no_record}"
    );
    assert_eq!(app.balance(&token, "KES").await, before - 50_000 - fee);
    app.sim_daraja_faults(json!({"b2c": null})).await;
    app.assert_balanced().await;
    let after = run(&app).await;
    assert_eq!(after["clean"], true, "{after:#}");
}

/// Where the second gateway finds a Daraja-compatible host.
static DARAJA_HOST: Mutex<String> = Mutex::new(String::new());

#[tokio::test]
async fn mpesa_base_url_points_the_client_at_another_daraja_compatible_host() {
    let host = quick_app().await;
    *DARAJA_HOST.lock().unwrap() = host.url("/sim/daraja");
    // A gateway configured for the sandbox, but sent to the other host.
    let gateway = host
        .second_instance(|settings| {
            settings.mpesa.env = chainpay_gateway::config::MpesaEnv::Sandbox;
            settings.mpesa.base_url = Some(DARAJA_HOST.lock().unwrap().clone());
        })
        .await;
    let not_served = gateway.post("/sim/daraja/faults", None, json!({})).await;
    assert_eq!(
        not_served.status(),
        StatusCode::NOT_FOUND,
        "no simulator on a sandbox gateway"
    );
    let token = gateway.token(USER_PHONE, DEMO_PIN).await;
    let before = gateway.balance(&token, "KES").await;
    let started = deposit(&gateway, &token, 10_000).await;
    assert!(started["checkout_request_id"]
        .as_str()
        .unwrap()
        .starts_with("ws_CO_"));
    deposit_becomes(&gateway, &token, &started["ref"], "CONFIRMED").await;
    assert_eq!(gateway.balance(&token, "KES").await, before + 10_000);
    let callback_to: String = sqlx::query_scalar(
        "SELECT callback_url FROM sim_daraja_pushes WHERE checkout_request_id = $1",
    )
    .bind(started["checkout_request_id"].as_str().unwrap())
    .fetch_one(&host.pool)
    .await
    .unwrap();
    assert!(
        callback_to.starts_with(&gateway.base),
        "the other host called this gateway back: {callback_to}"
    );
}
