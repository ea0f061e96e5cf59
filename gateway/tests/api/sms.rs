//! SMS: the outbox and its worker against the Africa's Talking simulator,
//! delivery reports, retries when Africa's Talking is down, and inbound
//! commands.

use crate::support::*;
use chainpay_gateway::config::AfricasTalking;
use reqwest::StatusCode;
use serde_json::Value;

/// An inbound SMS from `from`, as Africa's Talking posts it.
pub(crate) async fn inbound(app: &TestApp, from: &str, text: &str, id: &str) -> StatusCode {
    app.client
        .post(app.url("/api/v1/sms/inbound"))
        .form(&[
            ("from", from),
            ("to", "20880"),
            ("text", text),
            ("date", "2026-11-25 14:51:08"),
            ("id", id),
            ("linkId", "x"),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

/// The outbox as operators see it, once every message to `to` settled.
async fn settled_outbox(app: &TestApp, to: &str, count: usize) -> Vec<Value> {
    let admin = app.admin_token().await;
    eventually(
        &format!("{count} SMS to {to} to be delivered"),
        secs(20),
        async || {
            let outbox = app
                .get_json(&format!("/api/v1/admin/sms-outbox?to={to}"), &admin)
                .await;
            let messages = outbox["messages"].as_array().unwrap().clone();
            (messages.len() >= count && messages.iter().all(|m| m["status"] == "DELIVERED"))
                .then_some(messages)
        },
    )
    .await
}

#[tokio::test]
async fn bal_mini_and_help_are_answered_by_sms_once_per_message_id() {
    let app = spawn_app().await;
    assert_eq!(
        inbound(&app, "0700000001", "bal", "ATXid_1").await,
        StatusCode::OK
    );
    assert_eq!(
        inbound(&app, "0700000001", "bal", "ATXid_1").await,
        StatusCode::OK,
        "a retried callback"
    );
    let replies = settled_outbox(&app, "0700000001", 1).await;
    assert_eq!(replies.len(), 1, "the retry queued nothing");
    let text = replies[0]["message"].as_str().unwrap();
    assert!(
        text.starts_with("ChainPay balance: EUR 10,000.00, GBP 10,000.00, KES 1,000,000.00"),
        "{text}"
    );

    inbound(&app, "+254700000001", "MINI", "ATXid_2").await;
    inbound(&app, "254700000001", "what can I do?", "ATXid_3").await;
    let replies = settled_outbox(&app, "0700000001", 3).await;
    assert!(
        replies[1]["message"]
            .as_str()
            .unwrap()
            .starts_with("ChainPay last 5: "),
        "{replies:?}"
    );
    let help = replies[0]["message"].as_str().unwrap();
    assert!(
        help.contains("BAL") && help.contains("MINI") && help.contains("never asks for your PIN"),
        "{help}"
    );

    // A number with no account is not answered: anyone can put any number
    // in `from`, and every reply is an SMS the operator pays for.
    assert_eq!(
        inbound(&app, "0711999888", "BAL", "ATXid_4").await,
        StatusCode::OK
    );
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sms_outbox WHERE to_phone = '+254711999888'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(queued, 0, "nothing is sent to a stranger");
    // Only the command word is kept, never the text.
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT command FROM sms_inbound ORDER BY received_at")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, ["BAL", "MINI", "HELP"]);

    // Ten replies an hour, and a retried callback does not use one up.
    for n in 5..12 {
        for _ in 0..2 {
            inbound(&app, "0700000001", "BAL", &format!("ATXid_{n}")).await;
        }
    }
    settled_outbox(&app, "0700000001", 10).await;
    inbound(&app, "0700000001", "BAL", "ATXid_12").await;
    let (answered, kept): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM sms_outbox WHERE to_phone = '+254700000001'),
                (SELECT count(*) FROM sms_inbound)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (answered, kept),
        (10, 10),
        "the eleventh is neither answered nor kept"
    );
}

#[tokio::test]
async fn bad_inbound_and_unknown_delivery_reports_are_handled() {
    let app = spawn_app().await;
    let bad = app
        .client
        .post(app.url("/api/v1/sms/inbound"))
        .form(&[
            ("from", "nope"),
            ("to", "20880"),
            ("text", "BAL"),
            ("id", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_problem(bad, StatusCode::BAD_REQUEST, "validation_error").await;
    let unknown = app
        .client
        .post(app.url("/api/v1/sms/delivery"))
        .form(&[
            ("id", "ATXid_unknown"),
            ("status", "Success"),
            ("phoneNumber", "+254700000001"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::OK);
    // A report holding text the database cannot store cannot be from
    // Africa's Talking: acknowledged (so it is not retried) and ignored,
    // not a server error.
    let nul = app
        .client
        .post(app.url("/api/v1/sms/delivery"))
        .form(&[
            ("id", "ATXid_unknown"),
            ("status", "Succ\0ess"),
            ("phoneNumber", "+254700000001"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(nul.status(), StatusCode::OK);
}

#[tokio::test]
async fn when_africas_talking_is_down_messages_wait_and_go_out_once_it_is_back() {
    let mut app = spawn_with(TestOptions {
        configure: |settings| {
            settings.africastalking = Some(AfricasTalking {
                base_url: "http://127.0.0.1:9".into(),
                username: "chainpay".into(),
                api_key: "atsk_test".into(),
                sender_id: None,
            })
        },
        ..TestOptions::default()
    })
    .await;
    let demo = app.token(USER_PHONE, DEMO_PIN).await;
    assert_eq!(
        app.send(&demo, ADMIN_PHONE, 1_000, "KES").await.status(),
        StatusCode::CREATED
    );
    let tried = eventually("the worker to try both messages", secs(20), async || {
        let tried: Vec<(String, i32, Option<String>)> =
            sqlx::query_as("SELECT status, attempts, failure_reason FROM sms_outbox ORDER BY id")
                .fetch_all(&app.pool)
                .await
                .unwrap();
        (tried.len() == 2 && tried.iter().all(|(_, attempts, _)| *attempts >= 1)).then_some(tried)
    })
    .await;
    assert!(
        tried
            .iter()
            .all(|(status, _, reason)| status == "QUEUED" && reason.is_some()),
        "{tried:?}"
    );
    let backed_off: bool =
        sqlx::query_scalar("SELECT bool_and(next_attempt_at > now()) FROM sms_outbox")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(backed_off, "retries wait");

    // The gateway restarts with Africa's Talking reachable (the simulator);
    // nothing queued before the restart is lost.
    app.settings.africastalking = None;
    app.restart().await;
    sqlx::query("UPDATE sms_outbox SET next_attempt_at = now()")
        .execute(&app.pool)
        .await
        .unwrap();
    settled_outbox(&app, USER_PHONE, 1).await;
    settled_outbox(&app, ADMIN_PHONE, 1).await;
    let sent: i64 = sqlx::query_scalar("SELECT count(*) FROM sim_at_messages")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        sent, 2,
        "each message reached Africa's Talking exactly once"
    );
}

#[tokio::test]
async fn the_outbox_shows_each_message_with_its_delivery_status_to_admins_only() {
    let app = spawn_app().await;
    let demo = app.token(USER_PHONE, DEMO_PIN).await;
    app.send(&demo, ADMIN_PHONE, 1_000, "KES").await;
    let messages = settled_outbox(&app, ADMIN_PHONE, 1).await;
    let message = &messages[0];
    assert_eq!(message["to"], ADMIN_PHONE);
    assert!(message["at_message_id"]
        .as_str()
        .unwrap()
        .starts_with("ATXid_"));
    assert!(message["delivered_at"].is_string());
    // Reports arriving after the delivery (progress, a stray failure)
    // leave the message delivered.
    for status in ["Buffered", "Failed"] {
        let report = app
            .client
            .post(app.url("/api/v1/sms/delivery"))
            .form(&[
                ("id", message["at_message_id"].as_str().unwrap()),
                ("status", status),
                ("phoneNumber", ADMIN_PHONE),
                ("failureReason", "DeliveryFailure"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(report.status(), StatusCode::OK);
    }
    let after = settled_outbox(&app, ADMIN_PHONE, 1).await;
    assert_eq!(after[0]["status"], "DELIVERED");
    assert_eq!(after[0]["delivered_at"], message["delivered_at"]);
    assert_problem(
        app.get("/api/v1/admin/sms-outbox", &demo).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let admin = app.admin_token().await;
    assert_problem(
        app.get("/api/v1/admin/sms-outbox?to=abc", &admin).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
}

/// Africa's Talking's SMS endpoint on a local port that holds its first
/// answer until `go` turns true, telling `arrived` when that message is in,
/// and answers the rest at once; returns its base URL and the count of
/// messages it took.
async fn at_holding_its_first_answer(
    arrived: tokio::sync::mpsc::Sender<()>,
    go: tokio::sync::watch::Receiver<bool>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let taken = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = taken.clone();
    let messaging = axum::routing::post(move || {
        let (arrived, mut go, taken) = (arrived.clone(), go.clone(), counted.clone());
        async move {
            if taken.fetch_add(1, Ordering::SeqCst) == 0 {
                arrived.send(()).await.unwrap();
                go.wait_for(|go| *go).await.unwrap();
            }
            r#"{"SMSMessageData":{"Message":"Sent to 1/1 Total Cost: KES 0.8000","Recipients":[{"statusCode":101,"number":"+254711000222","status":"Success","cost":"KES 0.8000","messageId":"ATXid_held"}]}}"#
        }
    });
    let router = axum::Router::new().route("/version1/messaging", messaging);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, taken)
}

/// The SMS worker gives up recording a claim the database does not answer
/// within the patience (a server gone silent: no reset, no answer), as a
/// crash would: once the server lets the claim go, the message goes out
/// again, on a connection opened anew, and is recorded.
#[tokio::test]
async fn an_sms_worker_waiting_on_a_silent_server_gives_up_and_sends_again() {
    let mut app = spawn_app().await;
    let (arrived, mut in_flight) = tokio::sync::mpsc::channel(1);
    let (go, held) = tokio::sync::watch::channel(false);
    let (at, taken) = at_holding_its_first_answer(arrived, held).await;
    let upstream = database_options(&app.database).await;
    let link = SilentLink::to(&upstream).await;
    let _via = app
        .instance_via(link.options(&upstream), |settings| {
            settings.posting_patience_ms = 1_000;
            settings.africastalking = Some(AfricasTalking {
                base_url: at,
                username: "chainpay".into(),
                api_key: "atsk_test".into(),
                sender_id: None,
            });
        })
        .await;
    app.stop().await; // Only `_via` sends from here on.
    let mut conn = app.pool.acquire().await.unwrap();
    chainpay_gateway::sms::outbox::queue(&mut conn, "+254711000222", "Held", None)
        .await
        .unwrap();
    tokio::time::timeout(secs(20), in_flight.recv())
        .await
        .expect("the worker sends the message");
    // The message is out; its claim's transaction waits on a link that
    // goes silent before the answer can be recorded.
    link.silence();
    go.send(true).unwrap();
    let sent = eventually(
        "the message to be sent again and recorded",
        secs(45),
        async || {
            // The server letting an abandoned transaction go, as its TCP
            // keepalives would once the link is found dead.
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND state = 'idle in transaction'
               AND state_change < now() - interval '2 seconds' AND pid <> pg_backend_pid()",
            )
            .execute(&app.pool)
            .await
            .unwrap();
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT at_message_id FROM sms_outbox WHERE to_phone = '+254711000222'",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap()
        },
    )
    .await;
    assert_eq!(sent, "ATXid_held");
    assert!(
        taken.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the message given up went out again"
    );
}
