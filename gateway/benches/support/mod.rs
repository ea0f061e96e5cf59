//! What the benchmarks share: the PostgreSQL they measure against.
#![allow(dead_code, clippy::unwrap_used)]

pub mod cpu;
pub mod inbox;
pub mod phases;
pub mod ussd;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use chainpay_gateway::db::{ClusterOptions, EmbeddedPostgres};
use sha3::{Digest, Sha3_256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Executor};
use uuid::Uuid;

/// The server under test: connection options, plus the flags pgbench needs
/// to reach it.
pub struct Target {
    pub options: PgConnectOptions,
    pub pgbench_args: Vec<String>,
    pub url_for: Box<dyn Fn(&str) -> String>,
    /// The embedded cluster, when the target is one.
    pub cluster: Option<EmbeddedPostgres>,
}

pub async fn target() -> Target {
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        let options = PgConnectOptions::from_str(&url).unwrap();
        let base = url.rsplit_once('/').unwrap().0.to_owned();
        let host = options.get_host().to_owned();
        let port = options.get_port().to_string();
        let user = options.get_username().to_owned();
        return Target {
            options,
            pgbench_args: vec!["-h".into(), host, "-p".into(), port, "-U".into(), user],
            url_for: Box::new(move |db| format!("{base}/{db}")),
            cluster: None,
        };
    }
    private_target(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-pg")).await
}

/// An embedded cluster of its own in `dir` (default durability), started
/// if need be.
pub async fn private_target(dir: &Path) -> Target {
    let cluster = EmbeddedPostgres::ensure_running(dir, ClusterOptions::default())
        .await
        .unwrap();
    let socket = dir.canonicalize().unwrap().join("pg");
    let socket_text = socket.to_string_lossy().into_owned();
    Target {
        options: cluster.connect_options("postgres"),
        pgbench_args: vec![
            "-h".into(),
            socket_text.clone(),
            "-U".into(),
            "chainpay".into(),
        ],
        url_for: Box::new(move |db| {
            format!("postgres://chainpay@localhost/{db}?host={socket_text}")
        }),
        cluster: Some(cluster),
    }
}

pub async fn recreate_database(target: &Target, name: &str) {
    let mut admin = target
        .options
        .clone()
        .database("postgres")
        .connect()
        .await
        .unwrap();
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
}

/// Opens (creating and migrating) `name` on the target and builds the
/// application state on it, as `chainpay serve` would.
pub async fn app_state(
    target: &Target,
    name: &str,
    master_key: &str,
) -> chainpay_gateway::http::AppState {
    let settings = chainpay_gateway::config::Settings {
        database_url: Some((target.url_for)(name)),
        data_dir: std::env::temp_dir(),
        master_key_hex: Some(master_key.to_owned()),
        ..chainpay_gateway::config::Settings::defaults()
    };
    let database = chainpay_gateway::db::Database::open(&settings, false)
        .await
        .unwrap();
    chainpay_gateway::startup::build_state(settings, database.pool)
        .await
        .unwrap()
}

/// `users` KYC-verified users with `minor_each` KES each and a token apiece,
/// as `(phone, token)`, made directly through the library (registration's
/// Argon2 cost is not what the benchmarks measure).
pub async fn funded_users(
    target: &Target,
    database: &str,
    master_key: &str,
    users: usize,
    minor_each: i64,
) -> Vec<(String, String)> {
    let state = app_state(target, database, master_key).await;
    let pin_hash =
        chainpay_core::crypto::pin_hash::hash_pin(&chainpay_core::Pin::parse("5831").unwrap());
    let ids: Vec<Uuid> = (0..users).map(|_| Uuid::new_v4()).collect();
    let phones: Vec<String> = (0..users).map(|i| format!("+2547100{i:05}")).collect();
    sqlx::query(
        "INSERT INTO users (id, phone, name, pin_hash, kyc_status)
         SELECT id, phone, 'Bench ' || phone, $3, 'VERIFIED' FROM unnest($1::uuid[], $2::text[]) AS u (id, phone)",
    )
    .bind(&ids)
    .bind(&phones)
    .bind(&pin_hash)
    .execute(&state.pool)
    .await
    .unwrap();
    let mut conn = state.pool.acquire().await.unwrap();
    for id in &ids {
        chainpay_gateway::seed::fund(&mut conn, &state.keys.tx_signing, *id, "KES", minor_each)
            .await
            .unwrap();
    }
    drop(conn);
    // Screen them as registration would have, so no transfer screens inline.
    let rules = state.rules.get(&state.pool).await.unwrap();
    while chainpay_gateway::compliance::sanctions::rescreen_stale(
        &state.pool,
        &state.sanctions,
        rules.sanctions_threshold,
    )
    .await
    .unwrap()
        > 0
    {}
    // Statistics, as autovacuum would have gathered on a live database.
    let mut owner = target
        .options
        .clone()
        .database(database)
        .connect()
        .await
        .unwrap();
    sqlx::query("ANALYZE").execute(&mut owner).await.unwrap();
    let tokens = ids
        .iter()
        .zip(&phones)
        .map(|(id, phone)| (phone.clone(), state.jwt.issue(*id, "user", 0).unwrap().0))
        .collect();
    state.pool.close().await;
    tokens
}

/// `chainpay serve` (the binary under test) on `url`, listening on `addr`,
/// with `env` on top of what every run sets; stderr goes to `log` when given.
pub fn spawn_gateway(
    binary: &str,
    url: &str,
    master_key: &str,
    addr: &str,
    env: &[(&str, &str)],
    log: Option<&Path>,
) -> std::process::Child {
    let stderr = match log {
        Some(path) => std::process::Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap(),
        ),
        None => std::process::Stdio::inherit(),
    };
    let child = std::process::Command::new(binary)
        .args(["serve"])
        .env("DATABASE_URL", url)
        .env("CHAINPAY_MASTER_KEY", master_key)
        .env("CHAINPAY_ADDR", addr)
        .env("CHAINPAY_RATE_LIMIT", "0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    stopped_on_panic(child.id(), binary);
    child
}

/// Gateways started here that may still run, by pid and binary.
static STARTED: std::sync::Mutex<Vec<(u32, String)>> = std::sync::Mutex::new(Vec::new());

/// A panic here stops the gateway `pid` too: a bench that fails half-way
/// must not leave gateways running on, writing to the next run's database
/// and taking its cores. (A pid is signalled only while it still runs
/// `binary`, so one reused by another process is left alone.)
fn stopped_on_panic(pid: u32, binary: &str) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let started = STARTED.lock().map(|s| s.clone()).unwrap_or_default();
            for (pid, binary) in started {
                let command = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if command.split(|b| *b == 0).next() == Some(binary.as_bytes()) {
                    terminate(pid);
                }
            }
            previous(info);
        }));
    });
    if let Ok(mut started) = STARTED.lock() {
        started.retain(|(running, _)| *running != pid);
        started.push((pid, binary.to_owned()));
    }
}

fn terminate(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

/// Waits until the gateway at `base` answers `/readyz`; `false` if it has
/// not within `within`.
pub async fn wait_ready(base: &str, within: std::time::Duration) -> bool {
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let ready = client
            .get(format!("{base}/readyz"))
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ready {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// A free local port, as `127.0.0.1:<port>`.
pub fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// A PostgreSQL client tool (`pgbench`, `pg_dump` ...): beside the
/// `initdb` in use, else Debian's newest, else whatever `PATH` finds.
pub fn pg_tool(name: &str) -> std::path::PathBuf {
    let beside = chainpay_gateway::db::embedded::find_binaries()
        .map(|dir| dir.join(name))
        .ok()
        .filter(|path| path.exists());
    let mut debian: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin").join(name))
        .filter(|path| path.exists())
        .collect();
    debian.sort();
    beside
        .or_else(|| debian.pop())
        .unwrap_or_else(|| name.into())
}

/// Value at fraction `p` of sorted samples.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The gateway running now, so a failed run can stop it on the way out.
pub static GATEWAY_PID: AtomicU32 = AtomicU32::new(0);

/// Stops whatever the run left behind, however it ends: the gateway
/// (SIGKILL) and the cluster (SIGQUIT, PostgreSQL's immediate shutdown),
/// then removes the run's directory.
pub struct Cleanup(pub PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let kill = |pid: i32, signal| {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        };
        let gateway = GATEWAY_PID.load(Ordering::Relaxed);
        if gateway != 0 {
            kill(gateway as i32, nix::sys::signal::Signal::SIGKILL);
        }
        let postmaster = std::fs::read_to_string(self.0.join("pg/postmaster.pid"))
            .ok()
            .and_then(|pid| pid.lines().next()?.trim().parse().ok());
        if let Some(pid) = postmaster {
            kill(pid, nix::sys::signal::Signal::SIGQUIT);
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stops a gateway as an operator would (SIGTERM) and waits for it.
pub fn stop_gateway(child: &mut std::process::Child) {
    terminate(child.id());
    let _ = child.wait();
    if let Ok(mut started) = STARTED.lock() {
        started.retain(|(running, _)| *running != child.id());
    }
}

/// Balance totals per currency, over every account.
pub async fn totals(pool: &sqlx::PgPool) -> std::collections::HashMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT currency, sum(balance)::bigint FROM accounts GROUP BY currency")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter().collect()
}

/// Wallets below zero or below what they hold.
pub async fn overdrawn_wallets(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM accounts WHERE kind = 'wallet' AND (balance < 0 OR balance < locked)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until every committed transaction is sealed, every audit row
/// linked, every SMS handed to Africa's Talking and every M-Pesa deposit
/// answered; `false` if that has not happened within `within`.
pub async fn caught_up(pool: &sqlx::PgPool, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let behind: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM chain_pending) + (SELECT count(*) FROM audit_pending)
                  + (SELECT count(*) FROM sms_outbox WHERE queued)
                  + (SELECT count(*) FROM mpesa_deposits WHERE status = 'PENDING')",
        )
        .fetch_one(pool)
        .await
        .unwrap_or(i64::MAX);
        if behind == 0 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    false
}

/// Success when nothing failed; else each failure and the gateway log's
/// last lines, and failure.
pub fn verdict(run: &str, failures: &[String], log: &Path) -> std::process::ExitCode {
    if failures.is_empty() {
        println!("{run}: every check passed");
        return std::process::ExitCode::SUCCESS;
    }
    for failure in failures {
        println!("FAILED: {failure}");
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    println!("gateway log, last lines:");
    for line in tail.iter().rev() {
        println!("  {line}");
    }
    std::process::ExitCode::FAILURE
}

/// Runs `chainpay <command>` (`binary`) against `url` with `env`; a failure
/// when it fails.
pub fn cli(
    binary: &str,
    command: &str,
    url: &str,
    master_key: &str,
    env: &[(&str, &str)],
) -> Option<String> {
    let output = std::process::Command::new(binary)
        .arg(command)
        .env("DATABASE_URL", url)
        .env("CHAINPAY_MASTER_KEY", master_key)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let database = url
        .split('?')
        .next()
        .and_then(|path| path.rsplit('/').next())
        .unwrap_or(url);
    if output.status.success() {
        println!("chainpay {command} on {database}: passed");
        None
    } else {
        Some(format!(
            "chainpay {command} on {database} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A whole number from the environment variable `name`, else `default`
/// (also when it is not a number).
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Transfers beyond one per saved keyed answer: every bench transfer is
/// keyed, so anything above zero was posted twice (or without its record).
pub async fn double_posted(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM transactions WHERE tx_type = 'transfer')
              - (SELECT count(DISTINCT outcome->'ok'->>'tx_id') FROM idempotency_keys WHERE outcome ? 'ok')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Lifts the operator's hourly cap on a verified user's outgoing movements,
/// which a load of many movements per user would hit: what the benches
/// measure is what accepted movements cost (every window is still read and
/// decided on).
pub async fn lift_hourly_cap(pool: &sqlx::PgPool) {
    sqlx::query(
        "UPDATE compliance_tiers SET hourly_max_count = 1000000 WHERE kyc_status = 'VERIFIED'",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// The same leaf bytes, hashed alone: fetched in pages, only hashing timed.
pub async fn raw_leaf_hashing(pool: &sqlx::PgPool) -> (std::time::Duration, usize) {
    let mut hashing = std::time::Duration::ZERO;
    let mut leaf_bytes = 0usize;
    let mut after_seq = 0i64;
    loop {
        let rows = sqlx::query!(
            r#"SELECT seq, tx_id, tx_type, amount, fee, currency, from_user_id, to_user_id, created_at,
                      to_currency, converted_amount, trim_scale(rate)::text AS rate
               FROM transactions WHERE seq > $1 ORDER BY seq LIMIT 50000"#,
            after_seq
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let Some(last) = rows.last() else { break };
        after_seq = last.seq;
        let leaves: Vec<Vec<u8>> = rows
            .into_iter()
            .map(|r| chainpay_gateway::leaf_row!(r).leaf().unwrap())
            .collect();
        let began = std::time::Instant::now();
        for leaf in &leaves {
            let mut hasher = Sha3_256::new();
            hasher.update([0u8]);
            hasher.update(leaf);
            std::hint::black_box(hasher.finalize());
            leaf_bytes += leaf.len() + 1;
        }
        hashing += began.elapsed();
    }
    (hashing, leaf_bytes)
}
