//! Full USSD sessions over HTTP, as Africa's Talking drives them: a fresh
//! `sessionId` per dial, `text` carrying every input so far.

use crate::support::*;
use reqwest::StatusCode;
use serde_json::Value;

async fn sms_to(app: &TestApp, phone: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT message, status FROM sms_outbox WHERE to_phone = $1 ORDER BY id")
        .bind(phone)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// Waits until every queued SMS to `phone` has been delivered.
async fn delivered_sms(app: &TestApp, phone: &str, count: usize) -> Vec<String> {
    eventually(
        &format!("{count} SMS to {phone} to be delivered"),
        secs(20),
        async || {
            let messages = sms_to(app, phone).await;
            (messages.len() >= count && messages.iter().all(|(_, status)| status == "DELIVERED"))
                .then(|| messages.into_iter().map(|(message, _)| message).collect())
        },
    )
    .await
}

#[tokio::test]
async fn a_new_number_registers_with_name_and_a_confirmed_strong_pin() {
    let app = spawn_app().await;
    let (mut s, first) = Session::dial(&app, "+254715000001").await;
    assert!(first.starts_with("CON Welcome to ChainPay"), "{first}");
    assert!(s.press("Wanjiru Kamau").await.contains("4-digit PIN"));
    assert!(s.press("1111").await.contains("too easy"));
    assert!(s.press("4826").await.contains("Confirm"));
    assert!(s.press("4827").await.contains("did not match"));
    s.press("4826").await;
    let done = s.press("4826").await;
    assert_eq!(done, "END Welcome to ChainPay, Wanjiru Kamau! Dial again to send money, check your balance and more.");
    // The account works on every channel with that PIN.
    assert_eq!(
        app.login("0715000001", "4826").await.status(),
        StatusCode::OK
    );
    let (_, menu) = Session::dial(&app, "+254715000001").await;
    assert!(menu.starts_with("CON Hi Wanjiru\n1. Send money"), "{menu}");
}

#[tokio::test]
async fn a_sanctioned_name_cannot_register_over_ussd() {
    let app = spawn_app().await;
    let (mut s, _) = Session::dial(&app, "+254715000002").await;
    let end = s.keys(&["Nicolas Maduro Moros", "4826", "4826"]).await;
    assert!(
        end.starts_with("END Not completed: this transaction cannot be completed; contact support"),
        "{end}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE phone = '+254715000002'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn sending_money_moves_it_once_and_both_parties_get_an_sms() {
    let app = spawn_app().await;
    let demo = app.token(USER_PHONE, DEMO_PIN).await;
    let admin = app.admin_token().await;
    let (demo_before, admin_before) = (
        app.balance(&demo, "KES").await,
        app.balance(&admin, "KES").await,
    );

    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    assert!(s.press("1").await.contains("recipient phone"));
    assert!(s.press("0799111222").await.contains("not on ChainPay"));
    // The demo user holds five currencies: choose shillings.
    let currencies = s.press("0700000000").await;
    assert!(currencies.contains("1. KES"), "{currencies}");
    assert!(s.press("1").await.contains("Enter amount (KES)"));
    let confirm = s.press("250").await;
    assert!(
        confirm.contains("Send KES 250.00 to CHAINPAY ADMIN +254700000000?"),
        "{confirm}"
    );
    assert!(confirm.contains("Fee KES 5.00"), "{confirm}");
    let done = s.press("1234").await;
    assert!(
        done.starts_with("END ") && done.contains("Confirmed. KES 250.00 sent to CHAINPAY ADMIN"),
        "{done}"
    );
    assert!(
        done.contains(&format!(
            "New balance KES {}",
            chainpay_core::money::format_minor(demo_before - 25_500, 2)
        )),
        "{done}"
    );

    // Africa's Talking retries the last request: same answer, no second transfer.
    assert_eq!(s.post().await, done);
    assert_eq!(app.balance(&demo, "KES").await, demo_before - 25_500);
    assert_eq!(app.balance(&admin, "KES").await, admin_before + 25_000);
    let transfers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transactions WHERE tx_type = 'transfer'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(transfers, 1);

    let to_sender = delivered_sms(&app, USER_PHONE, 1).await;
    assert!(
        to_sender[0].contains("Confirmed. KES 250.00 sent to CHAINPAY ADMIN +254700000000"),
        "{to_sender:?}"
    );
    assert!(to_sender[0].contains("Fee KES 5.00"));
    let to_recipient = delivered_sms(&app, ADMIN_PHONE, 1).await;
    assert!(
        to_recipient[0].contains("You have received KES 250.00 from DEMO USER +254700000001"),
        "{to_recipient:?}"
    );
    // The receipt names the transaction, whose proof the holder can fetch.
    let tx_id: uuid::Uuid =
        sqlx::query_scalar("SELECT tx_id FROM transactions WHERE tx_type = 'transfer'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(to_recipient[0].ends_with(&format!("Receipt {tx_id}")));
    // The simulator saw exactly one message per party.
    let simulated: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sim_at_messages WHERE to_phone IN ($1, $2)")
            .bind(USER_PHONE)
            .bind(ADMIN_PHONE)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(simulated, 2);
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_send_the_wallet_cannot_afford_ends_with_a_plain_sentence() {
    let app = spawn_app().await;
    app.new_user("+254715000003", "Poor Person").await;
    let (mut s, _) = Session::dial(&app, "+254715000003").await;
    let confirm = s.keys(&["1", "0700000001", "100"]).await;
    assert!(
        confirm.contains("Send KES 100.00 to DEMO USER"),
        "{confirm}"
    );
    let end = s.press("5831").await;
    assert_eq!(end, "END Not completed: your balance is not enough.");
}

#[tokio::test]
async fn a_swahili_customer_reads_refusals_and_sms_in_swahili() {
    let app = spawn_app().await;
    app.new_user("+254715000013", "Maskini Mtu").await;
    let (mut s, _) = Session::dial(&app, "+254715000013").await;
    assert_eq!(s.keys(&["8", "2", "2"]).await, "END Lugha imehifadhiwa.");
    let (mut s, _) = Session::dial(&app, "+254715000013").await;
    let confirm = s.keys(&["1", "0700000001", "100"]).await;
    assert!(
        confirm.contains("Tuma KES 100.00 kwa DEMO USER"),
        "{confirm}"
    );
    let end = s.press("5831").await;
    assert_eq!(end, "END Haikukamilika: salio lako halitoshi.");

    // Once funded, the payment's SMS to them is in Swahili; the recipient
    // (who reads English) gets English.
    app.fund("+254715000013", "KES", 50_000).await;
    let (mut s, _) = Session::dial(&app, "+254715000013").await;
    let done = s.keys(&["1", "0700000001", "100", "5831"]).await;
    assert!(
        done.starts_with("END ") && done.contains("Imethibitishwa"),
        "{done}"
    );
    let theirs = delivered_sms(&app, "+254715000013", 1).await;
    assert!(
        theirs[0].contains("imetumwa kwa DEMO USER") && theirs[0].contains("Salio jipya"),
        "{theirs:?}"
    );
    let demo = delivered_sms(&app, USER_PHONE, 1).await;
    assert!(
        demo[0].contains("You have received KES 100.00 from MASKINI MTU"),
        "{demo:?}"
    );
}

#[tokio::test]
async fn three_wrong_pins_end_the_session_and_count_towards_the_lockout() {
    let app = spawn_app().await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    s.press("4").await;
    assert!(s.press("1111").await.contains("Wrong PIN"));
    assert!(s.press("2222").await.contains("Wrong PIN"));
    let end = s.press("3333").await;
    assert_eq!(end, "END Wrong PIN entered 3 times. Session ended.");
    let attempts: i32 =
        sqlx::query_scalar("SELECT failed_pin_attempts FROM users WHERE phone = $1")
            .bind(USER_PHONE)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 3);
    // Two more anywhere lock the account, and the next session says so.
    assert_eq!(
        app.login(USER_PHONE, "4444").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    s.press("4").await;
    assert!(s.press("5555").await.contains("locked"));
    assert_eq!(
        app.login(USER_PHONE, DEMO_PIN).await.status(),
        StatusCode::LOCKED
    );
}

#[tokio::test]
async fn neither_the_pin_nor_the_raw_text_is_stored_anywhere() {
    let app = spawn_app().await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    s.keys(&["1", "0700000000", "1", "7", "1234"]).await;
    let (mut r, _) = Session::dial(&app, "+254715000004").await;
    r.keys(&["Juma Baraka", "8531", "8531"]).await;
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(state::text || last_reply, ' ') FROM ussd_sessions")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    for secret in ["1234", "8531", "1*0700000000", "Juma Baraka*8531"] {
        assert!(
            !dump.contains(secret),
            "{secret} found in ussd_sessions: {dump}"
        );
    }
    let audit: String = sqlx::query_scalar("SELECT string_agg(detail::text, ' ') FROM audit_log")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(
        !audit.contains("8531") && !audit.contains("\"1234\""),
        "{audit}"
    );
}

#[tokio::test]
async fn balance_mini_statement_and_paging_read_the_callers_own_money() {
    let app = spawn_app().await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    let balance = s.keys(&["4", "1234"]).await;
    assert!(
        balance.starts_with("END Your balance:\nKES 1,000,000.00"),
        "{balance}"
    );
    assert!(balance.contains("USD 10,000.00") && balance.contains("NGN 10,000,000.00"));

    let demo = app.token(USER_PHONE, DEMO_PIN).await;
    for amount in [100, 200, 300] {
        app.send(&demo, ADMIN_PHONE, amount, "KES").await;
    }
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    let first = s.keys(&["6", "1234"]).await;
    assert!(first.contains("-KES 3.06 to CHAINPAY"), "{first}");
    assert!(first.contains("98 More"), "{first}");
    let second = s.press("98").await;
    assert!(second.contains("+KES 1,000,000.00 deposit"), "{second}");
    assert!(!second.contains("98 More"), "{second}");
    assert!(s.press("00").await.starts_with("CON Hi Demo"));
}

#[tokio::test]
async fn zero_goes_back_double_zero_goes_home_and_bad_input_asks_again() {
    let app = spawn_app().await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    assert!(s.press("11").await.starts_with("CON Invalid choice."));
    assert!(s.press("1").await.contains("recipient phone"));
    assert!(s.press("abc").await.contains("Invalid number"));
    assert!(s.press("0").await.starts_with("CON Hi Demo"));
    s.keys(&["8", "1"]).await;
    assert!(s.press("00").await.starts_with("CON Hi Demo"));
    assert_eq!(s.keys(&["3", "2"]).await, "CON Enter agent number:");
    assert!(
        s.press("0").await.contains("1. To M-Pesa"),
        "back to the withdraw menu"
    );
}

#[tokio::test]
async fn deposits_prompt_the_phone_and_withdrawals_pay_out_to_mpesa() {
    let app = spawn_app().await;
    let demo = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&demo, "KES").await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    assert!(s.press("2").await.contains("Enter amount (KES)"));
    assert!(
        s.press("12.50").await.contains("Invalid amount"),
        "M-Pesa takes whole shillings"
    );
    let prompt = s.press("100").await;
    assert_eq!(prompt, "END Check your phone: enter your M-Pesa PIN to deposit KES 100.00. We will SMS you when it arrives.");
    // The simulated customer accepts within seconds and the wallet is credited.
    eventually("the deposit to be credited", secs(20), async || {
        (app.balance(&demo, "KES").await == before + 10_000).then_some(())
    })
    .await;

    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    s.keys(&["3", "1"]).await;
    let confirm = s.press("500").await;
    assert!(
        confirm.contains("Withdraw KES 500.00 to your M-Pesa?\nFee KES 10.00."),
        "{confirm}"
    );
    let done = s.press("1234").await;
    assert!(
        done.contains("KES 500.00 is on its way to your M-Pesa"),
        "{done}"
    );
    assert_eq!(app.balance(&demo, "KES").await, before + 10_000 - 51_000);
    let conversation = eventually("the payout's acknowledgement", secs(10), async || {
        sqlx::query_scalar::<_, Option<String>>("SELECT conversation_id FROM mpesa_withdrawals")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    })
    .await;
    assert!(conversation.starts_with("AG_"));
}

#[tokio::test]
async fn converting_over_ussd_executes_the_quote_shown() {
    let app = spawn_app().await;
    let demo = app.token(USER_PHONE, DEMO_PIN).await;
    let kes_before = app.balance(&demo, "KES").await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    let from = s.press("5").await;
    assert!(from.contains("Convert from:"), "{from}");
    let usd = from
        .lines()
        .find(|l| l.ends_with("USD"))
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let to = s.press(&usd).await;
    let kes = to
        .lines()
        .find(|l| l.ends_with("KES"))
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    assert!(s.press(&kes).await.contains("Enter amount (USD)"));
    let confirm = s.press("10").await;
    assert!(
        confirm.contains("Convert USD 10.00 to KES 1,285.28?"),
        "{confirm}"
    );
    assert!(
        confirm.contains("Rate 128.52875. Fee USD 0.15"),
        "{confirm}"
    );
    let done = s.press("1234").await;
    assert!(
        done.contains("Confirmed. You received KES 1,285.28"),
        "{done}"
    );
    assert_eq!(app.balance(&demo, "KES").await, kes_before + 128_528);
}

#[tokio::test]
async fn my_account_changes_pin_language_and_shows_kyc() {
    let app = spawn_app().await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    assert_eq!(s.keys(&["8", "3"]).await, "END Your KYC status: VERIFIED.");
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    let changed = s.keys(&["8", "1", "1234", "7395", "7395"]).await;
    assert_eq!(changed, "END Your PIN has been changed.");
    assert_eq!(app.login(USER_PHONE, "7395").await.status(), StatusCode::OK);
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    assert_eq!(s.keys(&["8", "2", "2"]).await, "END Lugha imehifadhiwa.");
    let (_, menu) = Session::dial(&app, USER_PHONE).await;
    assert!(menu.starts_with("CON Habari Demo\n1. Tuma pesa"), "{menu}");
}

#[tokio::test]
async fn a_reversal_is_requested_over_ussd_and_decided_by_an_operator() {
    let app = spawn_app().await;
    let demo = app.token(USER_PHONE, DEMO_PIN).await;
    let sent: Value = app
        .send(&demo, ADMIN_PHONE, 50_000, "KES")
        .await
        .json()
        .await
        .unwrap();
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    // Amounts and names are shown behind the PIN, as a mini statement is.
    assert!(s.press("7").await.contains("PIN"));
    let list = s.press("1234").await;
    assert!(
        list.contains("1. ") && list.contains("KES 500.00 CHAINPAY"),
        "{list}"
    );
    assert!(s.press("1").await.contains("Reason"));
    assert!(s.press("x").await.contains("3-100"));
    s.press("Wrong number").await;
    let done = s.press("1234").await;
    assert!(
        done.starts_with("END Reversal of ") && done.contains("requested"),
        "{done}"
    );
    // Nothing more is eligible for that transfer.
    let (mut again, _) = Session::dial(&app, USER_PHONE).await;
    again.press("7").await;
    assert!(again
        .press("1234")
        .await
        .starts_with("END No transactions can be reversed"));

    let admin = app.admin_token().await;
    let pending = app
        .get_json("/api/v1/admin/reversals?status=PENDING", &admin)
        .await;
    let request = &pending["reversals"][0];
    assert_eq!(request["tx_id"], sent["tx_id"]);
    assert_eq!(request["reason"], "Wrong number");
    let admin_before = app.balance(&admin, "KES").await;
    let demo_before = app.balance(&demo, "KES").await;
    // The admin received the transfer: two other admins decide (four eyes).
    let approve = format!(
        "/api/v1/admin/reversals/{}/approve",
        request["reversal_id"].as_str().unwrap()
    );
    let note = serde_json::json!({"note": "Confirmed with both parties"});
    let maker = app.second_admin().await;
    let first = app.post(&approve, Some(&maker), note.clone()).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert_eq!(
        app.balance(&demo, "KES").await,
        demo_before,
        "one approval moves nothing"
    );
    let checker = app.admin_at("+254799000097", "Checking Admin").await;
    let approved: Value = app
        .post(&approve, Some(&checker), note)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(approved["status"], "APPROVED");
    assert_eq!(
        app.balance(&demo, "KES").await,
        demo_before + 50_000,
        "the amount comes back; the fee stays earned"
    );
    assert_eq!(app.balance(&admin, "KES").await, admin_before - 50_000);
    let original = app
        .get_json(
            &format!("/api/v1/transactions/{}", sent["tx_id"].as_str().unwrap()),
            &demo,
        )
        .await;
    assert_eq!(original["status"], "REVERSED");
    let twice = app
        .post(&approve, Some(&checker), serde_json::json!({}))
        .await;
    assert_problem(twice, StatusCode::UNPROCESSABLE_ENTITY, "not_eligible").await;
    let messages = delivered_sms(&app, USER_PHONE, 2).await;
    assert!(
        messages
            .iter()
            .any(|m| m.contains("was reversed") && m.contains("returned to you")),
        "{messages:?}"
    );
    app.assert_balanced().await;
}

#[tokio::test]
async fn any_instance_serves_any_step_of_a_session() {
    let app = spawn_app().await;
    let other = app
        .second_instance(|settings| settings.node_name = "chainpay-node-2".into())
        .await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    s.press("1").await;
    s.app = &other;
    s.press("0700000000").await;
    s.press("1").await;
    s.app = &app;
    let confirm = s.press("100").await;
    assert!(
        confirm.contains("Send KES 100.00 to CHAINPAY ADMIN"),
        "{confirm}"
    );
}

/// Africa's Talking resending a PIN step while the first is still being
/// served, to two instances at once: the money moves once, and every
/// request is answered with the one confirmation.
#[tokio::test]
async fn a_pin_step_sent_many_times_at_once_moves_the_money_once() {
    let app = spawn_app().await;
    let other = app.second_instance(|_| {}).await;
    let demo = app.token(USER_PHONE, DEMO_PIN).await;
    let before = app.balance(&demo, "KES").await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    let confirm = s.keys(&["1", "0700000000", "1", "300"]).await;
    assert!(confirm.contains("Send KES 300.00"), "{confirm}");
    s.inputs.push(DEMO_PIN.to_owned());
    let on_other = Session {
        app: &other,
        id: s.id.clone(),
        phone: s.phone.clone(),
        inputs: s.inputs.clone(),
    };
    let answers = futures::future::join_all((0..8).map(|n| {
        if n % 2 == 0 {
            s.post()
        } else {
            on_other.post()
        }
    }))
    .await;
    assert!(
        answers[0].contains("Confirmed. KES 300.00 sent"),
        "{answers:?}"
    );
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    // The PIN was checked once: the lockout counted nothing.
    let counted: (i32, i32) =
        sqlx::query_as("SELECT failed_pin_attempts, wrong_pins_recent FROM users WHERE phone = $1")
            .bind(USER_PHONE)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(counted, (0, 0));
    let (transfers, fee): (i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(fee)::int8 FROM transactions WHERE tx_type = 'transfer'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(transfers, 1);
    assert_eq!(app.balance(&demo, "KES").await, before - 30_000 - fee);
    app.assert_balanced().await;
}

#[tokio::test]
async fn malformed_ussd_requests_are_refused_and_a_configured_token_is_required() {
    let app = spawn_with(TestOptions {
        configure: |settings| settings.at_webhook_token = Some("s3cret".into()),
        ..TestOptions::default()
    })
    .await;
    let form = [
        ("sessionId", "x1"),
        ("phoneNumber", "+254700000001"),
        ("text", ""),
    ];
    let no_token = app
        .client
        .post(app.url("/api/v1/ussd"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_problem(no_token, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let ok = app
        .client
        .post(app.url("/api/v1/ussd?token=s3cret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let bad_phone = app
        .client
        .post(app.url("/api/v1/ussd?token=s3cret"))
        .form(&[("sessionId", "x2"), ("phoneNumber", "12"), ("text", "")])
        .send()
        .await
        .unwrap();
    assert_problem(bad_phone, StatusCode::BAD_REQUEST, "validation_error").await;
}

#[tokio::test]
async fn a_session_idle_past_its_lifetime_starts_afresh() {
    let app = spawn_app().await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    s.press("1").await;
    sqlx::query("UPDATE ussd_sessions SET updated_at = now() - interval '10 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    // The same sessionId again, as a new dial: the menu, not the old screen.
    s.inputs.clear();
    assert!(s.post().await.starts_with("CON Hi Demo"));
}

#[tokio::test]
async fn an_agent_cashes_in_and_a_customer_cashes_out_over_ussd_with_names_before_the_pin() {
    let app = spawn_app().await;
    let agent_phone = "+254711350001";
    let (_, number) = app.agent_with_float(agent_phone, "KES", 10_000_000).await;
    let customer = app.token(USER_PHONE, DEMO_PIN).await;
    let start = app.balance(&customer, "KES").await;

    let (mut s, home) = Session::dial(&app, agent_phone).await;
    assert!(home.contains("11. Agent"), "{home}");
    assert!(s.press("11").await.contains(&format!("Agent {number}")));
    s.keys(&["1", "0700000001"]).await;
    let confirm = s.press("1000").await;
    assert!(
        confirm.contains("Cash in KES 1,000.00 to DEMO USER +254700000001?"),
        "{confirm}"
    );
    let done = s.press("5831").await;
    assert!(
        done.starts_with("END ") && done.contains("KES 1,000.00 paid in to DEMO USER"),
        "{done}"
    );
    assert_eq!(app.balance(&customer, "KES").await, start + 100_000);
    let float = app.float(agent_phone, "KES").await;

    let (mut c, _) = Session::dial(&app, USER_PHONE).await;
    c.keys(&["3", "2"]).await;
    assert!(c.press("12345").await.contains("6 digits"));
    c.press(&number).await;
    let confirm = c.press("1000").await;
    assert!(
        confirm.contains(&format!(
            "Withdraw KES 1,000.00 at agent {number} MARY WANJIRU?"
        )),
        "{confirm}"
    );
    let done = c.press("1234").await;
    assert!(
        done.contains("Collect KES 1,000.00 from MARY WANJIRU"),
        "{done}"
    );
    let after = app.float(agent_phone, "KES").await;
    assert!(
        after > float + 100_000 - 1 && after <= float + 100_000 + 1_000,
        "float {float} → {after}"
    );

    let (mut st, _) = Session::dial(&app, USER_PHONE).await;
    let statement = st.keys(&["6", "1234"]).await;
    assert!(
        statement.contains("cash out at MARY")
            && statement.contains("+KES 1,000.00 cash in at MARY"),
        "{statement}"
    );
    let (mut unknown, _) = Session::dial(&app, USER_PHONE).await;
    unknown.keys(&["3", "2", "999999"]).await;
    assert!(unknown
        .press("100")
        .await
        .contains("no active agent has that number"));
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_voucher_is_bought_and_redeemed_over_ussd_and_the_code_is_never_on_a_screen() {
    let app = spawn_app().await;
    let (mut s, _) = Session::dial(&app, USER_PHONE).await;
    assert!(s.press("9").await.contains("1. Buy a voucher"));
    s.press("1").await;
    let confirm = s.press("200").await;
    assert!(
        confirm.contains("Buy a voucher of KES 200.00, valid 30 days?"),
        "{confirm}"
    );
    let done = s.press("1234").await;
    assert!(done.contains("Its code is on its way by SMS"), "{done}");
    let code = eventually("the code to reach the phone", secs(20), async || {
        let sent: Vec<String> = sqlx::query_scalar("SELECT message FROM sim_at_messages WHERE to_phone = $1 AND message LIKE '%Voucher of%'")
            .bind(USER_PHONE)
            .fetch_all(&app.pool)
            .await
            .unwrap();
        sent.first().and_then(|m| m.split("code ").nth(1)).map(|rest| rest[..19].to_owned())
    })
    .await;
    let replies: Vec<String> = sqlx::query_scalar("SELECT last_reply FROM ussd_sessions")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(
        replies.iter().all(|r| !r.contains(&code)),
        "no screen stored the code"
    );

    let bearer = "+254711350002";
    app.verified_user(bearer, "Bearer Otieno", 0).await;
    let (mut b, _) = Session::dial(&app, bearer).await;
    b.keys(&["9", "2"]).await;
    assert!(b
        .press("1234 5678 9012 3456")
        .await
        .contains("not a voucher code"));
    let redeemed = b.press(&code).await;
    assert!(
        redeemed.contains("Voucher redeemed: KES 200.00 added"),
        "{redeemed}"
    );
    let (mut again, _) = Session::dial(&app, bearer).await;
    again.keys(&["9", "2"]).await;
    assert!(again.press(&code).await.contains("already used"));
    let (mut st, _) = Session::dial(&app, bearer).await;
    assert!(st
        .keys(&["6", "5831"])
        .await
        .contains("+KES 200.00 voucher"));
}
