//! The crash bank: money survives processes dying under load.
//!
//! `cargo xtask crash` (CI: about a minute) or, for an hour,
//! `CRASH_SECONDS=3600 cargo xtask crash`.
//!
//! A private PostgreSQL cluster (default durability) holds `CRASH_USERS`
//! funded wallets. `chainpay serve` runs as a child process, its SMS going
//! to an Africa's Talking stand-in run here (the production client, only the
//! base URL differs). `CRASH_CLIENTS` clients send random transfers, each
//! with its own `Idempotency-Key`, and retry any request that got no answer
//! (or a 5xx) with the same key until it does. Meanwhile the gateway is
//! killed with SIGKILL and restarted every few seconds, and once PostgreSQL
//! itself is stopped with `pg_ctl stop -m immediate` and started again.
//! A `pg_dump` is taken while all this goes on.
//!
//! Then, once the gateway has caught up, it checks that the total of every
//! currency is unchanged, no wallet is negative, every acknowledged transfer
//! exists exactly once and moved what was asked, every key maps to at most
//! one movement, every transaction is in exactly one block, `chainpay
//! verify-chain` and `chainpay reconcile` pass, and every movement's SMS
//! reached Africa's Talking — more than once only when a kill fell between
//! the first send and the resend (counted and reported). Finally both dumps
//! (mid-run and at rest) are restored into fresh databases, which must pass
//! `reconcile` and `verify-chain`; a gateway on the one at rest must serve
//! the same balances. Exits non-zero on any failure.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::{PgPool, Row};
use support::inbox::Inbox;
use support::{
    caught_up, overdrawn_wallets, recreate_database, stop_gateway, totals, Cleanup, Target,
    GATEWAY_PID,
};
use uuid::Uuid;

const BINARY: &str = env!("CARGO_BIN_EXE_chainpay");
const DATABASE: &str = "chainpay_crash";
const AT_USERNAME: &str = "crashbank";
const AT_API_KEY: &str = "crashbank-key";
/// Each wallet's opening balance, in minor units (KES 10,000).
const OPENING_MINOR: i64 = 1_000_000;
/// A request with no definitive answer after this long counts as unanswered.
const GIVE_UP: Duration = Duration::from_secs(180);

struct Config {
    seconds: u64,
    clients: usize,
    users: usize,
}

impl Config {
    fn from_env() -> Self {
        let number = support::env_number;
        Self {
            seconds: number("CRASH_SECONDS", 60),
            clients: number("CRASH_CLIENTS", 8) as usize,
            users: number("CRASH_USERS", 500) as usize,
        }
    }
}

/// When a killed gateway or database was seen dead: a resent SMS is
/// explained only by one of these falling between its two arrivals.
#[derive(Clone, Default)]
struct Kills(Arc<Mutex<Vec<Instant>>>);

/// A request the gateway wrote just before it died can still be read by
/// Africa's Talking a moment after: its bytes were already on the socket.
const IN_FLIGHT_SLACK: Duration = Duration::from_secs(1);

impl Kills {
    /// Called once the killed process is gone.
    fn record(&self) {
        self.0.lock().unwrap().push(Instant::now());
    }

    fn any_between(&self, first: Instant, last: Instant) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|dead| *dead + IN_FLIGHT_SLACK >= first && *dead <= last)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::from_env();
    let dir = PathBuf::from(format!("/tmp/chainpay-crash-{}", std::process::id()));
    let _cleanup = Cleanup(dir.clone());
    let target = support::private_target(&dir).await;
    recreate_database(&target, DATABASE).await;
    let master_key = chainpay_core::crypto::aead::MasterKey::generate().to_hex();
    println!(
        "crash bank: {} s, {} clients, {} wallets",
        config.seconds, config.clients, config.users
    );
    let accounts =
        support::funded_users(&target, DATABASE, &master_key, config.users, OPENING_MINOR).await;
    let pool = PgPool::connect(&(target.url_for)(DATABASE)).await.unwrap();
    support::lift_hourly_cap(&pool).await;
    let totals_before = totals(&pool).await;
    pool.close().await;

    let inbox = Inbox::start(AT_USERNAME, AT_API_KEY, None).await;
    let gateway = Gateway {
        url: (target.url_for)(DATABASE),
        master_key: master_key.clone(),
        addr: support::free_addr(),
        at_base: inbox.base.clone(),
        log: dir.join("gateway.log"),
    };
    let kills = Kills::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = start_clients(&config, &gateway.base(), Arc::new(accounts.clone()), &stop);
    let (server, chaos) = chaos(&config, &target, &gateway, &kills, &dir).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.unwrap());
    }
    let mut server = server;
    let mut failures = Vec::new();
    let pool = PgPool::connect(&(target.url_for)(DATABASE)).await.unwrap();
    if !caught_up(&pool, Duration::from_secs(300)).await {
        failures.push("the gateway did not catch up (chain, audit or SMS) within 5 minutes".into());
    }
    println!(
        "gateway kills: {}, PostgreSQL crashes: {}",
        chaos.gateway_kills, chaos.database_crashes
    );
    report_outcomes(&outcomes);
    failures.extend(check_money(&pool, &totals_before, &outcomes).await);
    failures.extend(check_chain(&pool).await);
    failures.extend(check_sms(&pool, &inbox, &kills).await);
    failures.extend(gateway.cli("verify-chain", &gateway.url));
    failures.extend(gateway.cli("reconcile", &gateway.url));
    failures.extend(
        backups(
            &target,
            &gateway,
            &accounts,
            chaos.mid_run_dump.as_deref(),
            &dir,
        )
        .await,
    );
    pool.close().await;
    stop_gateway(&mut server);
    if let Some(cluster) = &target.cluster {
        cluster.stop().await.unwrap();
    }
    support::verdict("crash bank", &failures, &gateway.log)
}

/// How to run the gateway under test.
struct Gateway {
    url: String,
    master_key: String,
    addr: String,
    at_base: String,
    log: PathBuf,
}

impl Gateway {
    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("AT_USERNAME", AT_USERNAME),
            ("AT_API_KEY", AT_API_KEY),
            ("AT_BASE_URL", &self.at_base),
            ("CHAINPAY_BLOCK_INTERVAL_S", "1"),
        ]
    }

    fn spawn_on(&self, url: &str, addr: &str) -> Child {
        let child = support::spawn_gateway(
            BINARY,
            url,
            &self.master_key,
            addr,
            &self.env(),
            Some(&self.log),
        );
        GATEWAY_PID.store(child.id(), Ordering::Relaxed);
        child
    }

    /// Runs `chainpay <command>` against `url`; a failure when it fails.
    fn cli(&self, command: &str, url: &str) -> Option<String> {
        support::cli(BINARY, command, url, &self.master_key, &self.env())
    }
}

fn kill_gateway(child: &mut Child) {
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

/// What the chaos did.
struct Chaos {
    gateway_kills: usize,
    database_crashes: usize,
    mid_run_dump: Option<PathBuf>,
}

/// Kills and restarts the gateway every 2–5 s for the run's length, crashes
/// PostgreSQL once halfway, and dumps the database at three quarters.
/// Returns the gateway left running.
async fn chaos(
    config: &Config,
    target: &Target,
    gateway: &Gateway,
    kills: &Kills,
    dir: &Path,
) -> (Child, Chaos) {
    let cluster = target.cluster.as_ref().unwrap();
    let began = Instant::now();
    let run = Duration::from_secs(config.seconds);
    let mut rng = StdRng::from_entropy();
    let mut done = Chaos {
        gateway_kills: 0,
        database_crashes: 0,
        mid_run_dump: None,
    };
    let mut dump = None;
    loop {
        let mut server = gateway.spawn_on(&gateway.url, &gateway.addr);
        assert!(
            support::wait_ready(&gateway.base(), Duration::from_secs(120)).await,
            "the gateway did not come back; see {}",
            gateway.log.display()
        );
        tokio::time::sleep(Duration::from_millis(rng.gen_range(2_000..5_000))).await;
        if dump.is_none() && began.elapsed() >= run * 3 / 4 {
            let socket = cluster.socket_dir().to_owned();
            dump = Some(tokio::spawn(pg_dump(
                socket,
                DATABASE,
                dir.join("mid-run.dump"),
            )));
        }
        if began.elapsed() >= run {
            if let Some(dump) = dump {
                done.mid_run_dump = dump.await.unwrap();
            }
            return (server, done);
        }
        if done.database_crashes == 0 && began.elapsed() >= run / 2 {
            cluster.crash().await.unwrap();
            kills.record();
            done.database_crashes += 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.start().await.unwrap();
            // The gateway lives through it: its pool must reconnect.
            tokio::time::sleep(Duration::from_millis(rng.gen_range(2_000..4_000))).await;
        }
        kill_gateway(&mut server);
        kills.record();
        done.gateway_kills += 1;
    }
}

/// What became of one transfer request.
#[derive(Debug)]
enum Outcome {
    /// 2xx: the transfer's id, as the gateway acknowledged it.
    Acked(Uuid),
    /// A definitive refusal (4xx), by its problem code.
    Refused(String),
    /// No definitive answer within [`GIVE_UP`].
    Unanswered,
}

struct Sent {
    key: String,
    from: String,
    to: String,
    amount: i64,
    outcome: Outcome,
    /// Times the request was sent again with the same key.
    retries: u32,
}

fn start_clients(
    config: &Config,
    base: &str,
    accounts: Arc<Vec<(String, String)>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Sent>>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    (0..config.clients)
        .map(|_| {
            let (http, base, accounts, stop) = (
                http.clone(),
                base.to_owned(),
                accounts.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut rng = StdRng::from_entropy();
                let mut log = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let from = rng.gen_range(0..accounts.len());
                    let to = (from + rng.gen_range(1..accounts.len())) % accounts.len();
                    let amount = rng.gen_range(100..=20_000);
                    let (phone, token) = &accounts[from];
                    let key = Uuid::new_v4().to_string();
                    let order =
                        json!({"to_phone": accounts[to].0, "amount": amount, "currency": "KES"});
                    let (outcome, retries) =
                        send_until_answered(&http, &base, token, &key, &order).await;
                    log.push(Sent {
                        key,
                        from: phone.clone(),
                        to: accounts[to].0.clone(),
                        amount,
                        outcome,
                        retries,
                    });
                }
                log
            })
        })
        .collect()
}

/// Sends one keyed transfer, and again with the same key after anything
/// that is not a definitive answer: no response, a 5xx, a 429, or the
/// key still in flight.
async fn send_until_answered(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    order: &Value,
) -> (Outcome, u32) {
    let give_up = Instant::now() + GIVE_UP;
    let mut retries = 0;
    while Instant::now() < give_up {
        let response = http
            .post(format!("{base}/api/v1/wallet/send"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(order)
            .send()
            .await;
        if let Ok(response) = response {
            let status = response.status();
            // A body cut short by a kill is no answer either.
            if let Ok(body) = response.json::<Value>().await {
                let code = body["code"].as_str().unwrap_or_default().to_owned();
                let definitive = !(status.is_server_error()
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || code == "idempotency_in_flight");
                if status.is_success() {
                    let id = body["tx_id"].as_str().and_then(|s| s.parse().ok()).unwrap();
                    return (Outcome::Acked(id), retries);
                } else if definitive {
                    return (
                        Outcome::Refused(format!("{} {code}", status.as_u16())),
                        retries,
                    );
                }
            }
        }
        retries += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Outcome::Unanswered, retries)
}

fn report_outcomes(outcomes: &[Sent]) {
    let acked = outcomes
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Acked(_)))
        .count();
    let mut refused: HashMap<&str, usize> = HashMap::new();
    for sent in outcomes {
        if let Outcome::Refused(code) = &sent.outcome {
            *refused.entry(code).or_default() += 1;
        }
    }
    let unanswered = outcomes
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Unanswered))
        .count();
    let retried = outcomes.iter().filter(|s| s.retries > 0).count();
    println!(
        "transfers: {} requested, {acked} acknowledged, {} refused {refused:?}, {unanswered} unanswered",
        outcomes.len(),
        refused.values().sum::<usize>()
    );
    println!(
        "retried with the same key: {retried} requests, {} resends",
        outcomes.iter().map(|s| s.retries).sum::<u32>()
    );
}

/// Totals, wallets, acknowledged transfers and idempotency keys.
async fn check_money(
    pool: &PgPool,
    totals_before: &HashMap<String, i64>,
    outcomes: &[Sent],
) -> Vec<String> {
    let mut failures = Vec::new();
    let totals_after = totals(pool).await;
    if &totals_after != totals_before {
        failures.push(format!(
            "currency totals changed: {totals_before:?} → {totals_after:?}"
        ));
    }
    let overdrawn = overdrawn_wallets(pool).await;
    if overdrawn > 0 {
        failures.push(format!(
            "{overdrawn} wallets are below zero or below what they hold"
        ));
    }
    failures.extend(check_acknowledged(pool, outcomes).await);
    failures.extend(check_keys(pool, outcomes).await);
    failures
}

/// Every acknowledged transfer exists once, between the right wallets, for
/// the amount asked.
async fn check_acknowledged(pool: &PgPool, outcomes: &[Sent]) -> Vec<String> {
    let rows = sqlx::query(
        "SELECT t.tx_id, f.phone AS from_phone, r.phone AS to_phone, t.amount
         FROM transactions t JOIN users f ON f.id = t.from_user_id JOIN users r ON r.id = t.to_user_id
         WHERE t.tx_type = 'transfer'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let stored: HashMap<Uuid, (String, String, i64)> = rows
        .into_iter()
        .map(|row| {
            (
                row.get("tx_id"),
                (
                    row.get("from_phone"),
                    row.get("to_phone"),
                    row.get("amount"),
                ),
            )
        })
        .collect();
    let mut failures = Vec::new();
    for sent in outcomes {
        let Outcome::Acked(id) = sent.outcome else {
            continue;
        };
        match stored.get(&id) {
            None => failures.push(format!("acknowledged transfer {id} is not in the ledger")),
            Some(row) if *row != (sent.from.clone(), sent.to.clone(), sent.amount) => {
                failures.push(format!("transfer {id} moved {row:?}, not what was asked"))
            }
            Some(_) => {}
        }
    }
    failures
}

/// Every transfer in the ledger belongs to exactly one key, and every key
/// to at most one transfer (the acknowledged one, if it was acknowledged).
async fn check_keys(pool: &PgPool, outcomes: &[Sent]) -> Vec<String> {
    let keys: Vec<String> = outcomes.iter().map(|s| s.key.clone()).collect();
    let rows = sqlx::query(
        "SELECT key, outcome->'ok'->>'tx_id' AS tx_id FROM idempotency_keys WHERE key = ANY($1)",
    )
    .bind(&keys)
    .fetch_all(pool)
    .await
    .unwrap();
    let by_key: HashMap<String, Option<String>> = rows
        .into_iter()
        .map(|row| (row.get("key"), row.get("tx_id")))
        .collect();
    let moved: Vec<&String> = by_key.values().flatten().collect();
    let distinct: std::collections::HashSet<&&String> = moved.iter().collect();
    let transfers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transactions WHERE tx_type = 'transfer'")
            .fetch_one(pool)
            .await
            .unwrap();
    let mut failures = Vec::new();
    if distinct.len() != moved.len() {
        failures.push("two keys share one transfer".to_owned());
    }
    if transfers != moved.len() as i64 {
        failures.push(format!(
            "{transfers} transfers in the ledger but {} keys that moved money",
            moved.len()
        ));
    }
    for sent in outcomes {
        if let Outcome::Acked(id) = sent.outcome {
            if by_key.get(&sent.key) != Some(&Some(id.to_string())) {
                failures.push(format!(
                    "key {} does not record its transfer {id}",
                    sent.key
                ));
            }
        }
    }
    failures
}

/// Every transaction is in exactly one block.
async fn check_chain(pool: &PgPool) -> Vec<String> {
    let unsealed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM transactions t WHERE NOT EXISTS (SELECT 1 FROM block_entries b WHERE b.tx_id = t.tx_id)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT tx_id FROM block_entries GROUP BY tx_id HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let blocks: i64 = sqlx::query_scalar("SELECT count(*) FROM blocks")
        .fetch_one(pool)
        .await
        .unwrap();
    println!("chain: {blocks} blocks");
    let mut failures = Vec::new();
    if unsealed > 0 {
        failures.push(format!("{unsealed} transactions are in no block"));
    }
    if twice > 0 {
        failures.push(format!("{twice} transactions are in more than one block"));
    }
    failures
}

/// Every queued SMS reached Africa's Talking; a message that arrived more
/// than once did so only across a kill; nothing arrived that was not queued.
async fn check_sms(pool: &PgPool, inbox: &Inbox, kills: &Kills) -> Vec<String> {
    let rows = sqlx::query("SELECT to_phone, message, status FROM sms_outbox")
        .fetch_all(pool)
        .await
        .unwrap();
    let received = inbox.by_message();
    let mut failures = Vec::new();
    let (mut duplicates, mut unexplained, mut missing) = (0, 0, 0);
    for row in &rows {
        let key = (
            row.get::<String, _>("to_phone"),
            row.get::<String, _>("message"),
        );
        let status: String = row.get("status");
        match received.get(&key) {
            None => {
                missing += 1;
                failures.push(format!(
                    "an SMS to {} ({status}) never reached Africa's Talking",
                    key.0
                ));
            }
            Some(times) if times.len() > 1 => {
                duplicates += times.len() - 1;
                if !kills.any_between(times[0], times[times.len() - 1]) {
                    unexplained += 1;
                }
            }
            Some(_) => {}
        }
    }
    let unmessaged: i64 = sqlx::query_scalar(
        // Counted per transaction in one pass (the outbox has no index on
        // tx_id: a probe per transfer would scan it once per transfer).
        "SELECT count(*) FROM transactions t
           LEFT JOIN (SELECT tx_id, count(*) AS n FROM sms_outbox GROUP BY tx_id) s USING (tx_id)
          WHERE t.tx_type = 'transfer' AND coalesce(s.n, 0) < 2",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    if unmessaged > 0 {
        failures.push(format!("{unmessaged} transfers lack their two SMS"));
    }
    if unexplained > 0 {
        failures.push(format!(
            "{unexplained} SMS were sent twice with no crash between"
        ));
    }
    let queued: std::collections::HashSet<(String, String)> = rows
        .iter()
        .map(|row| (row.get("to_phone"), row.get("message")))
        .collect();
    let phantom = received.keys().filter(|k| !queued.contains(*k)).count();
    if phantom > 0 {
        failures.push(format!(
            "{phantom} SMS reached Africa's Talking that were never queued"
        ));
    }
    println!(
        "SMS: {} queued, {missing} never reached Africa's Talking, resent across a crash: {duplicates}",
        rows.len()
    );
    failures
}

/// `pg_dump -Fc` of `database` into `file`; `None` (and a message) if it failed.
async fn pg_dump(socket: PathBuf, database: &str, file: PathBuf) -> Option<PathBuf> {
    let status = tokio::process::Command::new(support::pg_tool("pg_dump"))
        .arg("-h")
        .arg(&socket)
        .args(["-U", "chainpay", "-Fc", "-f"])
        .arg(&file)
        .arg(database)
        .status()
        .await
        .unwrap();
    if status.success() {
        Some(file)
    } else {
        println!("pg_dump of {database} failed: {status}");
        None
    }
}

/// Restores `dump` into a fresh `database`.
async fn pg_restore(target: &Target, dump: &Path, database: &str) -> bool {
    recreate_database(target, database).await;
    let socket = target.cluster.as_ref().unwrap().socket_dir().to_owned();
    tokio::process::Command::new(support::pg_tool("pg_restore"))
        .arg("-h")
        .arg(&socket)
        .args(["-U", "chainpay", "--exit-on-error", "-d", database])
        .arg(dump)
        .status()
        .await
        .unwrap()
        .success()
}

/// The mid-run dump and one at rest, restored: both pass `reconcile` and
/// `verify-chain`, and a gateway on the one at rest serves the balances the
/// original serves.
async fn backups(
    target: &Target,
    gateway: &Gateway,
    accounts: &[(String, String)],
    mid_run: Option<&Path>,
    dir: &Path,
) -> Vec<String> {
    let mut failures = Vec::new();
    let Some(mid_run) = mid_run else {
        return vec!["the mid-run pg_dump failed".to_owned()];
    };
    let socket = target.cluster.as_ref().unwrap().socket_dir().to_owned();
    let Some(at_rest) = pg_dump(socket, DATABASE, dir.join("at-rest.dump")).await else {
        return vec!["the pg_dump at rest failed".to_owned()];
    };
    for (dump, database) in [
        (mid_run, "chainpay_restored_mid_run"),
        (&at_rest, "chainpay_restored"),
    ] {
        if !pg_restore(target, dump, database).await {
            failures.push(format!("pg_restore into {database} failed"));
            continue;
        }
        let url = (target.url_for)(database);
        failures.extend(gateway.cli("reconcile", &url));
        failures.extend(gateway.cli("verify-chain", &url));
    }
    let addr = support::free_addr();
    let mut restored = gateway.spawn_on(&(target.url_for)("chainpay_restored"), &addr);
    let restored_base = format!("http://{addr}");
    if !support::wait_ready(&restored_base, Duration::from_secs(60)).await {
        failures.push("a gateway on the restored database did not start".to_owned());
    } else {
        let http = reqwest::Client::new();
        let mut same = 0;
        for (phone, token) in accounts.iter().take(50) {
            let original = balances(&http, &gateway.base(), token).await;
            let copy = balances(&http, &restored_base, token).await;
            if original != copy || original.is_null() {
                failures.push(format!(
                    "{phone}: restored balances {copy} differ from {original}"
                ));
            } else {
                same += 1;
            }
        }
        println!("restored at rest: a gateway on it serves the same balances for {same} wallets");
    }
    stop_gateway(&mut restored);
    failures
}

async fn balances(http: &reqwest::Client, base: &str, token: &str) -> Value {
    match http
        .get(format!("{base}/api/v1/wallet/balances"))
        .bearer_auth(token)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        _ => Value::Null,
    }
}
