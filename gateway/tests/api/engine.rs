//! The posting engine: concurrent transfers decided together in one
//! database transaction, each still written, refused, audited, confirmed
//! and saved under its key exactly as it would be alone.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{eventually, secs, spawn_with, TestApp, TestOptions};

const PEOPLE: usize = 12;

fn phone(i: usize) -> String {
    format!("+2547124000{i:02}")
}

/// `PEOPLE` funded customers with KES 500.00 each; their tokens.
async fn people(app: &TestApp) -> Vec<String> {
    app.lift_limits().await;
    let mut tokens = Vec::new();
    for i in 0..PEOPLE {
        tokens.push(app.new_user(&phone(i), &format!("Person {i}")).await);
        app.fund(&phone(i), "KES", 50_000).await;
    }
    tokens
}

async fn keyed_send(
    app: &TestApp,
    token: &str,
    key: String,
    to: String,
    amount: i64,
) -> reqwest::Response {
    app.request(reqwest::Method::POST, "/api/v1/wallet/send", Some(token))
        .header("Idempotency-Key", key)
        .json(&json!({"to_phone": to, "amount": amount, "currency": "KES"}))
        .send()
        .await
        .unwrap()
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

/// One worker, so the burst queues behind the first batch and is decided in
/// few, large batches.
fn one_worker() -> TestOptions {
    TestOptions {
        configure: |settings| settings.posting_workers = 1,
        ..TestOptions::default()
    }
}

/// Of 30 sends, the 11th (index 10) failed with a 500 and wrote nothing;
/// its 29 neighbours were posted, and the books balance.
async fn only_the_tenth_failed(app: &TestApp, responses: Vec<reqwest::Response>) {
    let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses[10],
        StatusCode::INTERNAL_SERVER_ERROR,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .enumerate()
            .all(|(n, s)| n == 10 || *s == StatusCode::CREATED),
        "its neighbours are posted: {statuses:?}"
    );
    let transfers = scalar(
        app,
        "SELECT count(*) FROM transactions WHERE tx_type = 'transfer'",
    )
    .await;
    assert_eq!(transfers, 29, "nothing of the failed transfer was written");
    app.assert_balanced().await;
}

#[tokio::test]
async fn a_burst_of_transfers_is_decided_in_batches_and_each_keeps_everything_it_gets_alone() {
    let app = spawn_with(one_worker()).await;
    let tokens = people(&app).await;
    let mut requests = Vec::new();
    // 48 ordinary sends, each keyed.
    for n in 0..48 {
        let (from, to) = (n % PEOPLE, (n + 1) % PEOPLE);
        requests.push((from, format!("plain-{n}"), phone(to), 1_000));
    }
    // One request sent three times with one key; one key reused for another body.
    for _ in 0..3 {
        requests.push((0, "copied".to_owned(), phone(5), 2_500));
    }
    requests.push((1, "clash".to_owned(), phone(2), 100));
    requests.push((1, "clash".to_owned(), phone(3), 100));
    // Refusals among them: unknown recipient, a suspended one, more than the wallet holds.
    let suspended = "+254712409999";
    app.new_user(suspended, "Suspended Person").await;
    sqlx::query("UPDATE users SET suspended = true WHERE phone = $1")
        .bind(suspended)
        .execute(&app.pool)
        .await
        .unwrap();
    requests.push((2, "nobody".to_owned(), "+254719999999".to_owned(), 100));
    requests.push((3, "suspended".to_owned(), suspended.to_owned(), 100));
    requests.push((4, "too-much".to_owned(), phone(6), 10_000_000));
    let sends = requests.iter().map(|(from, key, to, amount)| {
        keyed_send(&app, &tokens[*from], key.clone(), to.clone(), *amount)
    });
    let responses = futures::future::join_all(sends).await;
    let mut bodies = Vec::new();
    for response in responses {
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        bodies.push((status, body));
    }
    for (status, body) in &bodies[..48] {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
    }
    let copies: Vec<&Value> = bodies[48..51]
        .iter()
        .map(|(_, body)| &body["tx_id"])
        .collect();
    assert!(bodies[48..51]
        .iter()
        .all(|(status, _)| *status == StatusCode::CREATED));
    assert!(
        copies.iter().all(|id| *id == copies[0]),
        "one transfer for three copies: {copies:?}"
    );
    let clash: Vec<StatusCode> = bodies[51..53].iter().map(|(status, _)| *status).collect();
    assert!(
        clash.contains(&StatusCode::CREATED) && clash.contains(&StatusCode::CONFLICT),
        "{clash:?}"
    );
    assert_eq!(bodies[53].0, StatusCode::NOT_FOUND);
    assert_eq!(
        bodies[54].1["code"], "account_suspended",
        "a suspended recipient cannot be paid"
    );
    assert_eq!(bodies[55].1["code"], "insufficient_funds");

    // 48 + 1 copied + 1 of the clash.
    let transfers = scalar(
        &app,
        "SELECT count(*) FROM transactions WHERE tx_type = 'transfer'",
    )
    .await;
    assert_eq!(transfers, 50);
    let batches = scalar(
        &app,
        "SELECT count(DISTINCT xmin::text) FROM transactions WHERE tx_type = 'transfer'",
    )
    .await;
    assert!(
        batches < transfers,
        "{transfers} transfers committed in {batches} transactions"
    );
    // Everything a transfer writes alone, each one wrote.
    for sql in [
        "SELECT count(*) FROM transactions t WHERE tx_type = 'transfer'
           AND (SELECT count(*) FROM sms_outbox s WHERE s.tx_id = t.tx_id) <> 2",
        "SELECT count(*) FROM transactions t WHERE tx_type = 'transfer' AND NOT EXISTS
           (SELECT 1 FROM audit_log a WHERE a.subject = t.tx_id::text AND a.action = 'wallet.send' AND a.outcome = 'success')",
        "SELECT count(*) FROM transactions t WHERE tx_type = 'transfer'
           AND (SELECT count(*) FROM postings p WHERE p.tx_id = t.tx_id) <> 3",
        "SELECT count(*) FROM idempotency_keys WHERE outcome IS NULL",
    ] {
        assert_eq!(scalar(&app, sql).await, 0, "{sql}");
    }
    let keys = scalar(&app, "SELECT count(*) FROM idempotency_keys").await;
    assert_eq!(keys, 48 + 1 + 1 + 3, "every distinct key saved once");
    let refused = scalar(
        &app,
        "SELECT count(*) FROM audit_log WHERE action = 'wallet.send' AND outcome = 'rejected'",
    )
    .await;
    assert_eq!(refused, 3, "each refusal audited once");
    let audited_request = scalar(
        &app,
        "SELECT count(*) FROM audit_log WHERE action = 'wallet.send' AND request_id IS NULL",
    )
    .await;
    assert_eq!(audited_request, 0, "each audit row names its request");
    // A retry after the fact replays; the balance moved once.
    let again = keyed_send(&app, &tokens[0], "copied".into(), phone(5), 2_500).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(&again["tx_id"], copies[0]);
    app.assert_balanced().await;
    eventually(
        "every transfer sealed into the chain",
        secs(30),
        async || {
            let pending = scalar(&app, "SELECT count(*) FROM chain_pending").await;
            (pending == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_batch_whose_commit_fails_is_found_unwritten_and_decided_again() {
    let app = spawn_with(one_worker()).await;
    let tokens = people(&app).await;
    // A fault injected at commit: a deferred check refuses one transfer's
    // journal entry, so its whole batch fails at COMMIT, after every
    // statement succeeded. The engine must find that nothing was written.
    app.tamper(&[
        "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.amount = 1234 THEN RAISE EXCEPTION 'injected commit fault'; END IF; RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON transactions
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()",
    ])
    .await;
    let sends = (0..30).map(|n| {
        let amount = if n == 10 { 1_234 } else { 1_000 };
        keyed_send(&app, &tokens[n % 6], format!("c-{n}"), phone(8), amount)
    });
    only_the_tenth_failed(&app, futures::future::join_all(sends).await).await;
}

#[tokio::test]
async fn a_batch_that_cannot_commit_is_decided_again_one_transfer_at_a_time() {
    let app = spawn_with(one_worker()).await;
    let tokens = people(&app).await;
    // A fault injected into one transfer's writes: its confirmation SMS
    // cannot be queued. The batch holding it fails as a whole.
    app.tamper(&[
        "CREATE FUNCTION refuse_person_7() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.message LIKE '%PERSON 7%' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_person_7 BEFORE INSERT ON sms_outbox FOR EACH ROW EXECUTE FUNCTION refuse_person_7()",
    ])
    .await;
    let sends = (0..30).map(|n| {
        let to = if n == 10 { 7 } else { 8 };
        keyed_send(&app, &tokens[n % 6], format!("k-{n}"), phone(to), 1_000)
    });
    only_the_tenth_failed(&app, futures::future::join_all(sends).await).await;
}

/// A batch waiting on a server that went silent (no reset, no answer: a
/// failover, a dropped NAT mapping) is given up after the posting patience,
/// so its worker is free again: its request is answered with an error and
/// nothing of it is written, and later transfers post on new connections.
#[tokio::test]
async fn a_batch_waiting_on_a_silent_server_is_given_up_and_later_ones_post() {
    let app = crate::support::spawn_app().await;
    app.lift_limits().await;
    let mut tokens = Vec::new();
    for i in 0..4 {
        tokens.push(app.new_user(&phone(i), &format!("Person {i}")).await);
        app.fund(&phone(i), "KES", 50_000).await;
    }
    let upstream = crate::support::database_options(&app.database).await;
    let link = crate::support::SilentLink::to(&upstream).await;
    let via = app
        .instance_via(link.options(&upstream), |settings| {
            settings.posting_workers = 1;
            settings.posting_patience_ms = 1_000;
        })
        .await;
    // Both senders' tokens are remembered by this instance before the
    // silence, so their requests reach the engine without a query.
    eventually(
        "the instance listens for auth changes",
        secs(10),
        async || via.state.sessions.is_listening().then_some(()),
    )
    .await;
    for (sender, to) in [(0, 1), (2, 3)] {
        let claims = via.state.jwt.verify(&tokens[sender]).unwrap();
        let key = format!("warm-{sender}");
        let sent = keyed_send(&via, &tokens[sender], key.clone(), phone(to), 100).await;
        assert_eq!(sent.status(), StatusCode::CREATED);
        eventually("the instance remembers the token", secs(5), async || {
            let again = keyed_send(&via, &tokens[sender], key.clone(), phone(to), 100).await;
            assert_eq!(again.status(), StatusCode::CREATED, "a replay");
            via.state.sessions.get(claims.sub, claims.jti)
        })
        .await;
    }

    link.silence();
    let began = std::time::Instant::now();
    let stuck = keyed_send(&via, &tokens[0], "silent".into(), phone(1), 250).await;
    assert_eq!(stuck.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stuck.headers()["retry-after"], "2");
    let problem: serde_json::Value = stuck.json().await.unwrap();
    assert_eq!(problem["code"], "service_unavailable");
    assert!(
        began.elapsed() < secs(10),
        "answered after {:?}, not within the patience",
        began.elapsed()
    );

    // The one worker posts again, on connections opened anew (each try may
    // still meet one of the silent connections idle in the pool, and give
    // up on it).
    let deadline = std::time::Instant::now() + secs(45);
    loop {
        let sent = keyed_send(&via, &tokens[2], "after".into(), phone(3), 300).await;
        if sent.status() == StatusCode::CREATED {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no transfer posted since the silence: {}",
            sent.status()
        );
    }
    let given_up = scalar(&app, "SELECT count(*) FROM transactions WHERE amount = 250").await;
    assert_eq!(given_up, 0, "nothing of the abandoned batch is written");
    assert_eq!(
        scalar(&app, "SELECT count(*) FROM transactions WHERE amount = 300").await,
        1
    );
}

/// A batch whose `COMMIT` got no answer asks how its transaction ended by
/// the transaction's id. While the commit may still land (on its way to
/// disk, or the server not yet aware the client has gone) the answer waits:
/// a batch is decided again only once its first attempt is known aborted.
#[tokio::test]
async fn a_commit_without_an_answer_is_told_by_its_transaction_id() {
    use chainpay_gateway::db::transaction_outcome;
    let app = crate::support::spawn_app().await;
    let xid_of = async |conn: &mut sqlx::PgConnection| -> i64 {
        sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
            .fetch_one(conn)
            .await
            .unwrap()
    };
    let until = |patience| tokio::time::Instant::now() + patience;

    let mut landing = app.pool.begin().await.unwrap();
    let xid = xid_of(&mut landing).await;
    let started = std::time::Instant::now();
    let commit_later = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        landing.commit().await.unwrap();
    };
    let (outcome, ()) = tokio::join!(
        transaction_outcome(&app.pool, xid, until(secs(5))),
        commit_later
    );
    assert_eq!(outcome, Some(true));
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "answered only once the commit landed"
    );

    let mut aborted = app.pool.begin().await.unwrap();
    let xid = xid_of(&mut aborted).await;
    aborted.rollback().await.unwrap();
    assert_eq!(
        transaction_outcome(&app.pool, xid, until(secs(5))).await,
        Some(false)
    );

    let mut open = app.pool.begin().await.unwrap();
    let xid = xid_of(&mut open).await;
    let patience = std::time::Duration::from_millis(200);
    assert_eq!(
        transaction_outcome(&app.pool, xid, until(patience)).await,
        None,
        "still open when patience ran out: unknown, never 'not written'"
    );
    open.rollback().await.unwrap();
}

/// A batch whose `COMMIT` reached the server but whose answer was lost on
/// the way back is found committed by its transaction id, and its transfer
/// answered as posted; one whose `COMMIT` never arrived is found rolled back
/// and decided again. Either way a transfer sent without a key, which
/// nothing else would stop from posting twice, posts once with everything
/// it writes.
#[tokio::test]
async fn a_commit_whose_answer_is_lost_posts_its_transfer_exactly_once() {
    use crate::support::{Cut, SilentLink};
    let app = crate::support::spawn_app().await;
    app.lift_limits().await;
    let sender = app.new_user(&phone(0), "Person 0").await;
    let recipient = app.new_user(&phone(1), "Person 1").await;
    app.fund(&phone(0), "KES", 50_000).await;
    let upstream = crate::support::database_options(&app.database).await;
    let link = SilentLink::to(&upstream).await;
    let via = app
        .instance_via(link.options(&upstream), |settings| {
            settings.posting_workers = 1;
        })
        .await;
    for (cut, amount) in [(Cut::AnswerLost, 1_111), (Cut::NeverSent, 2_222)] {
        let note = format!("cut {cut:?}");
        link.cut_commit(&note, cut);
        let sent = via
            .request(reqwest::Method::POST, "/api/v1/wallet/send", Some(&sender))
            .json(&json!({"to_phone": phone(1), "amount": amount, "currency": "KES", "note": note}))
            .send()
            .await
            .unwrap();
        assert!(link.cut_made(), "{cut:?}: the batch's COMMIT was cut");
        assert_eq!(sent.status(), StatusCode::CREATED, "{cut:?}");
        let posted: Value = sent.json().await.unwrap();
        assert_eq!(posted["amount"], amount, "{cut:?}");
        let tx_id = posted["tx_id"].as_str().unwrap();
        let written = format!(
            "SELECT (SELECT count(*) FROM transactions WHERE amount = {amount})
                  + (SELECT count(*) FROM transactions WHERE tx_id = '{tx_id}')"
        );
        assert_eq!(
            scalar(&app, &written).await,
            2,
            "{cut:?}: one row, the one answered"
        );
        let texts = format!("SELECT count(*) FROM sms_outbox WHERE tx_id = '{tx_id}'");
        assert_eq!(
            scalar(&app, &texts).await,
            2,
            "{cut:?}: both confirmations, once"
        );
    }
    assert_eq!(app.balance(&recipient, "KES").await, 3_333);
    app.assert_balanced().await;
}

/// A suspension committed while a transfer waits for its sender's lock
/// stops the transfer: the sender is read as locked, not as the statement
/// first saw them.
#[tokio::test]
async fn a_suspension_committed_while_a_send_waits_for_the_sender_stops_it() {
    let app = crate::support::spawn_app().await;
    let token = app
        .token(crate::support::USER_PHONE, crate::support::DEMO_PIN)
        .await;
    let mut suspension = app.pool.begin().await.unwrap();
    sqlx::query("UPDATE users SET suspended = true WHERE phone = $1")
        .bind(crate::support::USER_PHONE)
        .execute(&mut *suspension)
        .await
        .unwrap();
    let send = app
        .request(reqwest::Method::POST, "/api/v1/wallet/send", Some(&token))
        .json(&json!({"to_phone": crate::support::ADMIN_PHONE, "amount": 100, "currency": "KES"}))
        .send();
    let waiting = async {
        eventually("the send to wait for its sender", secs(10), async || {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&app.pool)
            .await
            .unwrap();
            (waiting > 0).then_some(())
        })
        .await;
        suspension.commit().await.unwrap();
    };
    let (response, ()) = tokio::join!(send, waiting);
    crate::support::assert_problem(
        response.unwrap(),
        StatusCode::FORBIDDEN,
        "account_suspended",
    )
    .await;
    app.assert_balanced().await;
}
