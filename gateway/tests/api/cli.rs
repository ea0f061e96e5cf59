//! The `chainpay` binary itself: `serve` on the embedded default database,
//! graceful shutdown, and the `users` and `reconcile` subcommands.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_chainpay");

/// A private data directory the `postgres` user can traverse (as root the
/// embedded cluster runs as `postgres`).
fn data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("chainpay-cli-{}", uuid::Uuid::new_v4().simple()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `chainpay <args>` with a clean configuration environment.
fn chainpay(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CHAINPAY_MASTER_KEY")
        .env_remove("CHAINPAY_JWT_SECRET")
        .env("RUST_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_command(chainpay(args, env)).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn wait_until_healthy(base: &str, server: &mut std::process::Child) {
    let client = reqwest::Client::new();
    eventually("chainpay serve to become healthy", secs(120), async || {
        if let Some(status) = server.try_wait().unwrap() {
            panic!("chainpay serve exited early with {status}");
        }
        let response = client.get(format!("{base}/healthz")).send().await.ok()?;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
}

async fn terminate_and_wait(server: &mut std::process::Child) -> std::process::ExitStatus {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    eventually("chainpay serve to stop on SIGTERM", secs(60), async || {
        server.try_wait().unwrap()
    })
    .await
}

fn cluster_is_running(dir: &Path) -> bool {
    dir.join("pg").join("postmaster.pid").exists()
}

#[tokio::test]
async fn serve_on_the_embedded_default_seeds_demo_users_and_stops_cleanly_on_sigterm() {
    let dir = data_dir();
    let dir_text = dir.to_string_lossy().into_owned();
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let env = [
        ("CHAINPAY_DATA_DIR", dir_text.as_str()),
        ("CHAINPAY_ADDR", addr.as_str()),
    ];
    let mut server = chainpay(&["serve"], &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://{addr}");
    wait_until_healthy(&base, &mut server).await;

    // The contract's demo user exists with the contract's opening balances.
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"phone": USER_PHONE, "pin": DEMO_PIN}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let balances: Value = client
        .get(format!("{base}/api/v1/wallet/balances"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kes = balances["wallets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["currency"] == "KES")
        .unwrap();
    assert_eq!(kes["balance"], 100_000_000);
    // The cluster listens on a socket inside the data directory, not on TCP.
    assert!(dir.join("pg").join(".s.PGSQL.5432").exists());
    let conf = std::fs::read_to_string(dir.join("pg").join("postgresql.conf")).unwrap();
    assert!(conf.contains("listen_addresses = ''"));

    let status = terminate_and_wait(&mut server).await;
    assert!(status.success(), "serve exited with {status}");
    assert!(
        !cluster_is_running(&dir),
        "serve stops the cluster it started"
    );

    // One-shot commands read the same configuration and find the same data.
    let users = run(&["users"], &env).await;
    assert!(users.status.success());
    let listing = stdout(&users);
    assert!(
        listing.contains(ADMIN_PHONE) && listing.contains(USER_PHONE),
        "{listing}"
    );
    assert!(listing.contains("KES 1,000,000.00"), "{listing}");
    assert!(listing.contains("2 user(s)"), "{listing}");

    let reconcile = run(&["reconcile"], &env).await;
    assert!(reconcile.status.success(), "{}", stdout(&reconcile));
    assert!(stdout(&reconcile).contains("BALANCED"));

    // Restarting does not seed the demo users twice.
    let mut again = chainpay(&["serve"], &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_healthy(&base, &mut again).await;
    assert!(terminate_and_wait(&mut again).await.success());
    assert!(stdout(&run(&["users"], &env).await).contains("2 user(s)"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reconcile_exits_non_zero_and_names_the_account_that_does_not_add_up() {
    let app = spawn_app().await;
    let url = database_url(&app.database).await;
    // Without the master key (none configured, none in the data directory)
    // a check refuses to run, and leaves no key of its own behind.
    let empty = data_dir();
    let keyless = [
        ("DATABASE_URL", url.as_str()),
        ("CHAINPAY_DATA_DIR", empty.to_str().unwrap()),
    ];
    for command in ["reconcile", "verify-chain"] {
        let refused = run(&[command], &keyless).await;
        assert!(!refused.status.success());
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains("no master key"), "{said}");
        assert!(!empty.join("master.key").exists(), "{command} made a key");
    }
    let master_key = "11".repeat(32);
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("CHAINPAY_MASTER_KEY", master_key.as_str()),
    ];
    let clean = run(&["reconcile"], &env).await;
    assert!(clean.status.success(), "{}", stdout(&clean));
    // An Account Balance answer to a query nobody made (forged with a
    // leaked callback token) is not the float's latest figure.
    let forged = serde_json::json!({"Result": {
        "ResultType": 0, "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": "1", "ConversationID": "AG_20261207_FORGED", "TransactionID": "1",
        "ResultParameters": {"ResultParameter": [{"Key": "AccountBalance",
            "Value": "Working Account|KES|900000.00|900000.00|0.00|0.00"}]}}});
    let answered = app
        .post(
            &format!(
                "/api/v1/mpesa/balance/result?token={}",
                app.state.mpesa_callback_token
            ),
            None,
            forged,
        )
        .await;
    assert_eq!(answered.status(), reqwest::StatusCode::OK);
    let still = run(&["reconcile"], &env).await;
    assert!(still.status.success(), "{}", stdout(&still));
    assert!(
        stdout(&still).contains("no recent Account Balance answer"),
        "{}",
        stdout(&still)
    );

    let account_id: i64 = sqlx::query_scalar(
        "UPDATE accounts SET balance = balance + 1 WHERE id = (SELECT min(id) FROM accounts WHERE kind = 'wallet') RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let broken = run(&["reconcile"], &env).await;
    assert_eq!(broken.status.code(), Some(1));
    let report = stdout(&broken);
    assert!(report.contains("DISCREPANCIES FOUND"), "{report}");
    assert!(
        report.contains(&format!("\"account_id\":{account_id}")),
        "{report}"
    );
    // Both runs are stored, as the console shows them.
    let runs: Vec<(String, i32)> =
        sqlx::query_as("SELECT trigger, discrepancies FROM reconciliation_runs ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(runs[0], ("cli".to_owned(), 0));
    assert_eq!(runs[1], ("cli".to_owned(), 0));
    assert!(runs[2].1 >= 1, "{runs:?}");
}

/// Anyone who knows the admins' numbers can lock them out, and an admin's
/// lock waits for another admin: whoever runs the server lifts it.
#[tokio::test]
async fn the_host_unlocks_a_locked_out_admin() {
    let app = spawn_app().await;
    for _ in 0..5 {
        app.login(ADMIN_PHONE, "9999").await;
    }
    assert_eq!(
        app.login(ADMIN_PHONE, DEMO_PIN).await.status(),
        StatusCode::LOCKED
    );
    // And suspended by another (rogue) admin.
    let rogue = app.second_admin().await;
    let me: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE phone = $1")
        .bind(ADMIN_PHONE)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let suspend = format!("/api/v1/admin/users/{me}/suspend");
    let suspended = app.post(&suspend, Some(&rogue), json!({})).await;
    assert_eq!(suspended.status(), StatusCode::OK);
    let url = database_url(&app.database).await;
    let env = [("DATABASE_URL", url.as_str())];
    let unknown = run(&["unlock", "0799999999"], &env).await;
    assert_eq!(unknown.status.code(), Some(1), "{}", stdout(&unknown));
    let unlocked = run(&["unlock", ADMIN_PHONE], &env).await;
    assert!(unlocked.status.success(), "{}", stdout(&unlocked));
    assert!(stdout(&unlocked).contains("unlocked and reinstated"));
    assert_eq!(
        app.login(ADMIN_PHONE, DEMO_PIN).await.status(),
        StatusCode::OK
    );
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'cli.unlock'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn an_external_database_is_created_when_missing_and_never_gets_demo_data() {
    let app = spawn_app().await;
    let name = format!("cli_new_{}", uuid::Uuid::new_v4().simple());
    let url = database_url(&app.database)
        .await
        .replace(&app.database, &name);
    let users = run(&["users"], &[("DATABASE_URL", url.as_str())]).await;
    assert!(
        users.status.success(),
        "{}",
        String::from_utf8_lossy(&users.stderr)
    );
    assert!(stdout(&users).contains("0 user(s)"));
    // A check on a database no server has run on refuses, and does not
    // make the key it was given the database's.
    let master_key = "22".repeat(32);
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("CHAINPAY_MASTER_KEY", master_key.as_str()),
    ];
    let refused = run(&["verify-chain"], &env).await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("run `chainpay serve` on it first"), "{said}");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let secrets: i64 = sqlx::query_scalar("SELECT count(*) FROM server_secrets")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(secrets, 0);
}

#[tokio::test]
async fn the_phone_simulator_dials_the_menu_and_shows_the_sms_that_arrive() {
    let dir = data_dir();
    let dir_text = dir.to_string_lossy().into_owned();
    let addr = format!("127.0.0.1:{}", free_port());
    let env = [
        ("CHAINPAY_DATA_DIR", dir_text.as_str()),
        ("CHAINPAY_ADDR", addr.as_str()),
    ];
    let mut server = chainpay(&["serve"], &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_healthy(&format!("http://{addr}"), &mut server).await;

    let mut phone = chainpay(&["phone", "0700000001"], &env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = phone.stdin.as_mut().unwrap();
        // Balance, then dial again and send KES 100.00 to the admin, then hang up.
        stdin
            .write_all(b"4\n1234\n\n1\n0700000000\n1\n100\n1234\nq\n")
            .unwrap();
    }
    let output = tokio::task::spawn_blocking(move || phone.wait_with_output().unwrap())
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("Dialling *384*123#"), "{printed}");
    assert!(printed.contains("Hi Demo\n1. Send money"), "{printed}");
    assert!(
        printed.contains("Your balance:\nKES 1,000,000.00"),
        "{printed}"
    );
    assert!(
        printed.contains("Confirmed. KES 100.00 sent to CHAINPAY ADMIN"),
        "{printed}"
    );
    assert!(
        printed.contains("[SMS from ChainPay]")
            && printed.contains("sent to CHAINPAY ADMIN +254700000000"),
        "{printed}"
    );

    assert!(terminate_and_wait(&mut server).await.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn production_mode_refuses_to_start_and_names_every_missing_setting() {
    let dir = data_dir();
    let dir_text = dir.to_string_lossy().into_owned();
    let refused = run(
        &["serve", "--demo"],
        &[
            ("CHAINPAY_ENV", "production"),
            ("CHAINPAY_DATA_DIR", dir_text.as_str()),
        ],
    )
    .await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    for named in [
        "CHAINPAY_ENV=production refuses to start",
        "DATABASE_URL",
        "--demo",
        "MPESA_CONSUMER_KEY",
        "AT_USERNAME",
        "AT_WEBHOOK_TOKEN",
        "CHAINPAY_MASTER_KEY",
        "MPESA_CALLBACK_URL",
    ] {
        assert!(said.contains(named), "{named} not named in: {said}");
    }
    assert!(!dir.join("pg").exists(), "nothing was started");
}

/// With every setting right, production still refuses to run as the
/// database's owner (a login user that cannot take the restricted role),
/// which could switch off the append-only triggers.
#[tokio::test]
async fn production_mode_refuses_to_run_as_the_tables_owner() {
    let dir = data_dir();
    let dir_text = dir.to_string_lossy().into_owned();
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let (owner, database) = (format!("cp_owner_{suffix}"), format!("cp_owned_{suffix}"));
    let admin = sqlx::PgPool::connect_with(database_options("postgres").await)
        .await
        .unwrap();
    for statement in [
        format!("CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEROLE"),
        format!("CREATE DATABASE {database} OWNER {owner}"),
    ] {
        sqlx::query(&statement).execute(&admin).await.unwrap();
    }
    // The test server's URL, as the new login user.
    let url = database_url(&database).await;
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let scheme = &scheme_user[..scheme_user.find("//").unwrap() + 2];
    let url = format!("{scheme}{owner}@{rest}");
    let token = "t".repeat(40);
    let key = "ab".repeat(32);
    let refused = run(
        &["serve"],
        &[
            ("CHAINPAY_ENV", "production"),
            ("CHAINPAY_DATA_DIR", dir_text.as_str()),
            ("CHAINPAY_ADDR", "127.0.0.1:0"),
            ("DATABASE_URL", url.as_str()),
            ("CHAINPAY_MASTER_KEY", key.as_str()),
            ("MPESA_ENV", "production"),
            ("MPESA_CONSUMER_KEY", "key"),
            ("MPESA_CONSUMER_SECRET", "secret"),
            (
                "MPESA_CALLBACK_URL",
                "https://pay.example.com/api/v1/mpesa/callback",
            ),
            ("AT_USERNAME", "chainpay"),
            ("AT_API_KEY", "key"),
            ("AT_WEBHOOK_TOKEN", token.as_str()),
        ],
    )
    .await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("refuses to start") && said.contains("chainpay_app"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A callback token anyone could send (blank, as a config file may hold
/// it) or one that would not survive the trip through a URL keeps the
/// gateway from starting, before anything is started.
#[tokio::test]
async fn a_weak_or_url_unsafe_callback_token_refuses_to_start() {
    let dir = data_dir();
    let dir_text = dir.to_string_lossy().into_owned();
    let file = dir.with_extension("mpesa.json");
    std::fs::write(&file, r#"{"callback_token": ""}"#).unwrap();
    let file_text = file.to_string_lossy().into_owned();
    let unsafe_token = format!("{}&x", "a".repeat(40));
    let settings: [&[(&str, &str)]; 2] = [
        &[("CHAINPAY_MPESA_CONFIG", file_text.as_str())],
        &[("MPESA_CALLBACK_TOKEN", unsafe_token.as_str())],
    ];
    for setting in settings {
        let mut env = vec![("CHAINPAY_DATA_DIR", dir_text.as_str())];
        env.extend_from_slice(setting);
        let refused = run(&["serve"], &env).await;
        assert!(!refused.status.success(), "{setting:?} started");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains("MPESA_CALLBACK_TOKEN must be"), "{said}");
    }
    assert!(!dir.join("pg").exists(), "nothing was started");
    let _ = std::fs::remove_file(&file);
}

/// A listener that accepts connections and never answers: an upstream
/// that hangs. Returns its port and how many connections it has taken.
async fn tarpit() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = taken.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    (port, taken)
}

#[tokio::test]
async fn one_process_owns_the_embedded_cluster_and_sigterm_stops_it_promptly() {
    let (upstream, taken) = tarpit().await;
    let dir = data_dir();
    let dir_text = dir.to_string_lossy().into_owned();
    let addr = format!("127.0.0.1:{}", free_port());
    let at_base = format!("http://127.0.0.1:{upstream}");
    let env = [
        ("CHAINPAY_DATA_DIR", dir_text.as_str()),
        ("CHAINPAY_ADDR", addr.as_str()),
        ("AT_USERNAME", "chainpay"),
        ("AT_API_KEY", "test-key"),
        ("AT_BASE_URL", at_base.as_str()),
    ];
    let mut server = chainpay(&["serve"], &env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://{addr}");
    wait_until_healthy(&base, &mut server).await;

    // A second server on the same data directory is refused, clearly.
    let other = format!("127.0.0.1:{}", free_port());
    let second = run(
        &["serve"],
        &[
            ("CHAINPAY_DATA_DIR", dir_text.as_str()),
            ("CHAINPAY_ADDR", other.as_str()),
        ],
    )
    .await;
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("is in use by process"), "{said}");

    // A transfer queues SMS; the worker hangs on an upstream that never answers.
    let client = reqwest::Client::new();
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"phone": USER_PHONE, "pin": DEMO_PIN}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sent = client
        .post(format!("{base}/api/v1/wallet/send"))
        .bearer_auth(login["access_token"].as_str().unwrap())
        .json(&json!({"to_phone": ADMIN_PHONE, "amount": 100, "currency": "KES"}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::CREATED);
    eventually(
        "the SMS worker to reach the hanging upstream",
        secs(20),
        async || (taken.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(()),
    )
    .await;
    let asked = std::time::Instant::now();
    let status = terminate_and_wait(&mut server).await;
    assert!(status.success(), "serve exited with {status}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "shutdown took {:?} with a job stuck upstream",
        asked.elapsed()
    );
    assert!(!cluster_is_running(&dir), "the owner stopped the cluster");
    let _ = std::fs::remove_dir_all(&dir);
}
