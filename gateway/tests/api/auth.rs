//! Registration, login, lockout, PIN changes, tokens, suspension, rate limits.

use crate::support::*;
use chainpay_gateway::jwt::Claims;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn weak_malformed_and_duplicate_registrations_are_refused_without_creating_users() {
    let app = spawn_app().await;
    for pin in ["1234", "0000", "1111", "1212", "4321", "9876", "7777"] {
        let response = app.register("+254712000001", "Weak", pin).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "weak_pin").await;
    }
    for pin in ["123", "12345", "abcd", ""] {
        let response = app.register("+254712000001", "Bad", pin).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    for phone in ["12", "not a phone", "+2547123456789999"] {
        let response = app.register(phone, "Bad", "5831").await;
        assert_problem(response, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    let long_name = "x".repeat(101);
    for name in ["", "   ", long_name.as_str()] {
        let response = app.register("+254712000001", name, "5831").await;
        assert_problem(response, StatusCode::BAD_REQUEST, "validation_error").await;
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 2, "only the demo users exist");

    assert_eq!(
        app.register("0712000001", "First", "5831").await.status(),
        StatusCode::CREATED
    );
    let duplicate = app.register("+254 712 000 001", "Second", "2749").await;
    assert_problem(duplicate, StatusCode::CONFLICT, "phone_taken").await;
}

#[tokio::test]
async fn the_pin_is_stored_only_as_an_argon2id_hash() {
    let app = spawn_app().await;
    app.register("+254712000002", "Hashed", "5831").await;
    let stored: String =
        sqlx::query_scalar("SELECT pin_hash FROM users WHERE phone = '+254712000002'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(stored.starts_with("$argon2id$"));
    let audit: String = sqlx::query_scalar(
        "SELECT string_agg(detail::text || coalesce(subject, ''), ' ') FROM audit_log",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(!audit.contains("5831"));
}

#[tokio::test]
async fn wrong_pins_and_unknown_phones_get_the_same_answer() {
    let app = spawn_app().await;
    assert_problem(
        app.login(USER_PHONE, "9999").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.login("+254799999999", "9999").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.login(USER_PHONE, "12").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn five_wrong_pins_lock_the_account_and_the_lock_survives_a_restart() {
    let mut app = spawn_app().await;
    for _ in 0..4 {
        assert_problem(
            app.login(USER_PHONE, "9999").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    let fifth = app.login(USER_PHONE, "9999").await;
    assert_problem(fifth, StatusCode::LOCKED, "account_locked").await;

    // Even the right PIN is refused while locked, with a Retry-After hint.
    let locked = app.login(USER_PHONE, DEMO_PIN).await;
    let retry_after: i64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    assert_problem(locked, StatusCode::LOCKED, "account_locked").await;

    app.restart().await;
    assert_problem(
        app.login(USER_PHONE, DEMO_PIN).await,
        StatusCode::LOCKED,
        "account_locked",
    )
    .await;

    // Five minutes later (simulated by moving the lock into the past) the right PIN works again.
    sqlx::query("UPDATE users SET locked_until = now() - interval '1 second' WHERE phone = $1")
        .bind(USER_PHONE)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        app.login(USER_PHONE, DEMO_PIN).await.status(),
        StatusCode::OK
    );
    let failures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'auth.login' AND outcome <> 'success'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(failures, 7, "every failed or refused login is audited");
}

/// Anyone who knows a phone number can lock its account, so the notice
/// texted to its owner goes out at most three times a day: locking it
/// again and again sends no more (an SMS costs the operator).
#[tokio::test]
async fn lock_notices_are_texted_at_most_three_times_a_day() {
    let app = spawn_app().await;
    for _ in 0..4 {
        for _ in 0..5 {
            app.login(USER_PHONE, "9999").await;
        }
        // The lock over, and a fresh day's count, so each round locks on
        // its fifth wrong PIN (the daily cap has its own test).
        sqlx::query("UPDATE users SET locked_until = now() - interval '1 second', wrong_pins_recent = 0 WHERE phone = $1")
            .bind(USER_PHONE)
            .execute(&app.pool)
            .await
            .unwrap();
        // The right PIN forgives, so the next five wrong ones lock it again.
        assert_eq!(
            app.login(USER_PHONE, DEMO_PIN).await.status(),
            StatusCode::OK
        );
    }
    let locks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'auth.login' AND detail->>'reason' = 'wrong_pin' AND detail->>'locked' = 'true'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(locks, 4, "locked four times");
    let texted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sms_outbox WHERE to_phone = $1 AND message LIKE '%account is locked%'",
    )
    .bind(USER_PHONE)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(texted, 3);
}

/// Someone guessing four PINs at a time between the owner's own logins
/// never makes five in a row, yet the tenth wrong PIN of the day locks the
/// account, and so does each one after it, until the day is over or an
/// admin unlocks it.
#[tokio::test]
async fn guesses_spread_between_the_owners_logins_lock_after_ten_a_day() {
    let app = spawn_app().await;
    let wrong = || app.login(USER_PHONE, "9999");
    let expect_wrong = || async {
        assert_problem(
            wrong().await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    };
    let expect_locked = |response: reqwest::Response| async {
        assert_problem(response, StatusCode::LOCKED, "account_locked").await;
    };
    // Runs an update of the customer's row, as time passing would.
    let pool = &app.pool;
    let on_row = |sql: &'static str| async move {
        sqlx::query(sql)
            .bind(USER_PHONE)
            .execute(pool)
            .await
            .unwrap();
    };
    for _ in 0..2 {
        for _ in 0..4 {
            expect_wrong().await;
        }
        assert_eq!(
            app.login(USER_PHONE, DEMO_PIN).await.status(),
            StatusCode::OK
        );
    }
    expect_wrong().await;
    expect_locked(wrong().await).await;
    expect_locked(app.login(USER_PHONE, DEMO_PIN).await).await;
    let lift = "UPDATE users SET locked_until = now() - interval '1 second' WHERE phone = $1";
    on_row(lift).await;
    assert_eq!(
        app.login(USER_PHONE, DEMO_PIN).await.status(),
        StatusCode::OK
    );
    expect_locked(wrong().await).await;

    // Past the limit each wrong PIN climbs the escalation, and the owner's
    // logins between them no longer reset it: 5 minutes, an hour, then
    // until someone acts. An admin's unlock lifts the lock, not the count.
    let admin = app.admin_token().await;
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
        .bind(USER_PHONE)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let unlock = format!("/api/v1/admin/users/{user_id}/unlock");
    let unlocked = app
        .post(&unlock, Some(&admin), json!({"note": "owner called"}))
        .await;
    assert_eq!(unlocked.status(), StatusCode::OK);
    let minutes_locked = || async {
        sqlx::query_scalar::<_, Option<f64>>(
            "SELECT CASE WHEN locked_until = 'infinity' THEN NULL
                         ELSE extract(epoch FROM locked_until - now())::float8 / 60 END
             FROM users WHERE phone = $1",
        )
        .bind(USER_PHONE)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    for expected in [Some(5.0), Some(60.0), None] {
        assert_eq!(
            app.login(USER_PHONE, DEMO_PIN).await.status(),
            StatusCode::OK
        );
        expect_locked(wrong().await).await;
        let left = minutes_locked().await;
        match (left, expected) {
            (Some(left), Some(expected)) => assert!(expected - left < 1.0, "{left} of {expected}"),
            (left, expected) => assert_eq!(left, expected),
        }
        on_row(lift).await;
    }

    // A day after its first wrong PIN the count starts again.
    let day_old =
        "UPDATE users SET wrong_pins_since = now() - interval '25 hours' WHERE phone = $1";
    on_row(day_old).await;
    assert_eq!(
        app.login(USER_PHONE, DEMO_PIN).await.status(),
        StatusCode::OK
    );
    for _ in 0..4 {
        expect_wrong().await;
    }
    assert_eq!(
        app.login(USER_PHONE, DEMO_PIN).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_burst_of_parallel_guesses_cannot_exceed_the_attempt_limit() {
    let app = spawn_app().await;
    let guesses = (0..20).map(|_| app.login(USER_PHONE, "9999"));
    let responses = futures::future::join_all(guesses).await;
    let locked = responses
        .iter()
        .filter(|r| r.status() == StatusCode::LOCKED)
        .count();
    let verified: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.login' AND detail->>'reason' = 'wrong_pin'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(verified, 5, "only five PINs may be checked before the lock");
    assert_eq!(
        locked, 16,
        "the fifth wrong PIN and every later guess report the lock"
    );
    assert_problem(
        app.login(USER_PHONE, DEMO_PIN).await,
        StatusCode::LOCKED,
        "account_locked",
    )
    .await;
}

#[tokio::test]
async fn changing_the_pin_requires_the_old_one_and_a_strong_new_one() {
    let app = spawn_app().await;
    let token = app.new_user("+254712000003", "Changer").await;
    let change = |old: &str, new: &str| {
        app.post(
            "/api/v1/auth/change-pin",
            Some(&token),
            json!({"old_pin": old, "new_pin": new}),
        )
    };
    assert_problem(
        change("1111", "2749").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        change("5831", "1234").await,
        StatusCode::BAD_REQUEST,
        "weak_pin",
    )
    .await;
    assert_problem(
        change("5831", "5831").await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert_eq!(
        change("5831", "2749").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(
        app.login("+254712000003", "5831").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        app.login("+254712000003", "2749").await.status(),
        StatusCode::OK
    );
}

fn forge(claims: &Claims, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[tokio::test]
async fn missing_expired_tampered_and_unsigned_tokens_are_refused() {
    let app = spawn_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let claims = app.state.jwt.verify(&token).unwrap();
    let now = chrono::Utc::now().timestamp();
    let secret = app.state.keys.jwt_secret.clone();

    let expired = forge(
        &Claims {
            iat: now - 7200,
            exp: now - 3600,
            ..claims.clone()
        },
        &secret,
    );
    let wrong_key = forge(&claims, b"another-secret-another-secret-another");
    let (header, rest) = token.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut flipped = signature.to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let tampered_signature = format!("{header}.{payload}.{}", String::from_utf8(flipped).unwrap());
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let admin_payload = b64.encode(
        serde_json::to_vec(&Claims {
            role: "admin".into(),
            ..claims.clone()
        })
        .unwrap(),
    );
    let tampered_payload = format!("{header}.{admin_payload}.{signature}");
    let alg_none = format!("{}.{payload}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#));

    for bad in [
        expired,
        wrong_key,
        tampered_signature,
        tampered_payload,
        alg_none,
        "garbage".into(),
    ] {
        let response = app.get("/api/v1/wallet/balances", &bad).await;
        assert_problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    let anonymous = app
        .request(Method::GET, "/api/v1/wallet/balances", None)
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let basic = app
        .client
        .get(app.url("/api/v1/wallet/balances"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_problem(basic, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn tokens_survive_a_restart_because_the_secret_is_persisted() {
    let mut app = spawn_app().await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    app.restart().await;
    assert_eq!(
        app.get("/api/v1/wallet/balances", &token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn suspension_ends_existing_tokens_at_once_and_unsuspension_lets_the_user_sign_in_again() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let users: Value = app
        .get("/api/v1/admin/users?q=0000001", &admin)
        .await
        .json()
        .await
        .unwrap();
    let user_id = users["users"][0]["user_id"].as_str().unwrap().to_owned();

    let suspended = app
        .post(
            &format!("/api/v1/admin/users/{user_id}/suspend"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(suspended.status(), StatusCode::OK);
    // A suspension ends every token at once.
    assert_problem(
        app.get("/api/v1/wallet/balances", &user).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_problem(
        app.login(USER_PHONE, DEMO_PIN).await,
        StatusCode::FORBIDDEN,
        "account_suspended",
    )
    .await;
    // Nobody can pay into a suspended account either.
    let payment = app.send(&admin, USER_PHONE, 100, "KES").await;
    assert_problem(payment, StatusCode::FORBIDDEN, "account_suspended").await;

    let restored = app
        .post(
            &format!("/api/v1/admin/users/{user_id}/unsuspend"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(restored.status(), StatusCode::OK);
    // The ended token stays ended; signing in again works.
    assert_eq!(
        app.get("/api/v1/wallet/balances", &user).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let again = app.token(USER_PHONE, DEMO_PIN).await;
    assert_eq!(
        app.get("/api/v1/wallet/balances", &again).await.status(),
        StatusCode::OK
    );

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE action LIKE 'admin.%' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(actions, ["admin.suspend", "admin.unsuspend"]);
}

#[tokio::test]
async fn each_user_gets_the_configured_requests_per_minute_then_429_with_retry_after() {
    let mut app = spawn_with(TestOptions {
        rate_limit_per_user: 5,
        ..Default::default()
    })
    .await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let admin = app.admin_token().await;
    for _ in 0..5 {
        assert_eq!(
            app.get("/api/v1/wallet/balances", &user).await.status(),
            StatusCode::OK
        );
    }
    let limited = app.get("/api/v1/wallet/balances", &user).await;
    let retry_after: i64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another user has their own window.
    assert_eq!(
        app.get("/api/v1/wallet/balances", &admin).await.status(),
        StatusCode::OK
    );
    // The window lives in PostgreSQL: a restart does not reset it.
    app.restart().await;
    assert_problem(
        app.get("/api/v1/wallet/balances", &user).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    // Once the window has slid past the old requests, they are admitted again.
    sqlx::query(
        "UPDATE rate_limits SET hits = ARRAY(SELECT h - interval '61 seconds' FROM unnest(hits) h)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        app.get("/api/v1/wallet/balances", &user).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn concurrent_requests_cannot_overshoot_the_rate_limit() {
    let app = spawn_with(TestOptions {
        rate_limit_per_user: 10,
        ..Default::default()
    })
    .await;
    let user = app.token(USER_PHONE, DEMO_PIN).await;
    let responses =
        futures::future::join_all((0..40).map(|_| app.get("/api/v1/wallet/balances", &user))).await;
    let admitted = responses
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(admitted, 10);
}

#[tokio::test]
async fn unauthenticated_auth_routes_are_limited_per_client_ip() {
    let app = spawn_with(TestOptions {
        rate_limit_per_ip: 3,
        ..Default::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            app.login(USER_PHONE, "9999").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_problem(
        app.login(USER_PHONE, DEMO_PIN).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    assert_problem(
        app.register("+254712000009", "Late", "5831").await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
}

/// Both instances listening for auth changes, and remembering `token`.
async fn remembered_on(instances: [&TestApp; 2], token: &str) -> (uuid::Uuid, uuid::Uuid) {
    let claims = instances[0].state.jwt.verify(token).unwrap();
    for instance in instances {
        eventually(
            "the instance listens for auth changes",
            secs(10),
            async || instance.state.sessions.is_listening().then_some(()),
        )
        .await;
        // A notification still in flight from the login (which wrote the
        // user's row) may void the first read; the next one is remembered.
        eventually("the instance remembers the token", secs(5), async || {
            let answer = instance.get("/api/v1/wallet/balances", token).await;
            assert_eq!(answer.status(), StatusCode::OK);
            instance.state.sessions.get(claims.sub, claims.jti)
        })
        .await;
    }
    (claims.sub, claims.jti)
}

#[tokio::test]
async fn a_remembered_token_stops_working_on_every_instance_when_its_user_changes_anywhere() {
    let app = spawn_app().await;
    let other = app.second_instance(|_| {}).await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    remembered_on([&app, &other], &token).await;
    // Changed straight in the database, as another process (the CLI) would.
    sqlx::query("UPDATE users SET suspended = true WHERE phone = $1")
        .bind(USER_PHONE)
        .execute(&app.pool)
        .await
        .unwrap();
    for instance in [&app, &other] {
        eventually("the suspension reaches the instance", secs(5), async || {
            let answer = instance.get("/api/v1/wallet/balances", &token).await;
            (answer.status() == StatusCode::FORBIDDEN).then_some(())
        })
        .await;
    }
    sqlx::query("UPDATE users SET suspended = false WHERE phone = $1")
        .bind(USER_PHONE)
        .execute(&app.pool)
        .await
        .unwrap();
    remembered_on([&app, &other], &token).await;
    // A logout on one instance: refused there at once, and on the other
    // as soon as the notification arrives.
    app.logout(&token).await;
    assert_eq!(
        app.get("/api/v1/wallet/balances", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    other
        .refuses_eventually(&token, "the logout reaches the other instance")
        .await;
}

#[tokio::test]
async fn losing_the_listening_connection_forgets_every_token() {
    let app = spawn_app().await;
    let other = app.second_instance(|_| {}).await;
    let token = app.token(USER_PHONE, DEMO_PIN).await;
    let (user, jti) = remembered_on([&app, &other], &token).await;
    let listeners: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(listeners, 2, "one listening connection per instance");
    for instance in [&app, &other] {
        // Whatever was sent while it was down is lost: nothing is trusted.
        eventually("the instance notices", secs(5), async || {
            instance
                .state
                .sessions
                .get(user, jti)
                .is_none()
                .then_some(())
        })
        .await;
    }
    remembered_on([&app, &other], &token).await;
}
