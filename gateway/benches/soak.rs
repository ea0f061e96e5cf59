//! The soak: a long mixed load, watched for anything that grows without
//! bound. `cargo xtask soak` (`SOAK_SECONDS`, default 600; at most an hour,
//! the tokens' lifetime).
//!
//! A private PostgreSQL cluster (default durability) holds `SOAK_USERS`
//! funded wallets; `chainpay serve` runs as a child process with its
//! built-in Daraja and Africa's Talking simulators, reached over HTTP as the
//! real services would be. `SOAK_CLIENTS` clients, offering `SOAK_RATE`
//! operations a second between them (default 100, a steady load below what
//! the 2-core development machine can do; 0 offers as much as the gateway
//! takes, where the background work cannot keep up), send money over REST,
//! convert KES to USD, run USSD sessions (balance, send), deposit through
//! M-Pesa (the simulator's callbacks credit them), and ask for reversals of
//! their own transfers, which an admin approves; and they read balances and
//! statements. Every tenth of the run it prints one line: operations per
//! second, refusals, gateway RSS, database size and bytes per transaction,
//! and how far the background work lags (SMS not yet handed to Africa's
//! Talking, transactions not yet in a block, audit rows not yet chained,
//! deposits still waiting for their callback).
//!
//! It fails (exit 1) on any 5xx, unanswered request or 4xx other than a
//! business refusal (409, 422, 429), on a USSD session ending early, on
//! unreadable or growing RSS (the last tenth more than a quarter plus
//! 16 MiB above the third tenth's), on a background lag over 30 s, when the
//! background does not drain within two minutes of the load stopping, or
//! when `chainpay reconcile` or `chainpay verify-chain` fails afterwards.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::PgPool;
use support::{caught_up, recreate_database, stop_gateway, Cleanup, GATEWAY_PID};
use uuid::Uuid;

const BINARY: &str = env!("CARGO_BIN_EXE_chainpay");
const DATABASE: &str = "chainpay_soak";
/// Each wallet's opening balance: KES 1,000,000, so no one runs dry.
const OPENING_MINOR: i64 = 100_000_000;
const PIN: &str = "5831";
/// Longest any background work may lag.
const MAX_LAG_S: f64 = 30.0;

struct Config {
    seconds: u64,
    clients: usize,
    users: usize,
    /// Operations per second offered, spread over the clients; 0 for as
    /// fast as answers come.
    rate: f64,
}

impl Config {
    fn from_env() -> Self {
        let number = support::env_number;
        Self {
            seconds: number("SOAK_SECONDS", 600).min(3_600),
            clients: number("SOAK_CLIENTS", 8) as usize,
            users: number("SOAK_USERS", 400).max(8) as usize,
            rate: number("SOAK_RATE", 100) as f64,
        }
    }
}

/// What the clients do, and how often (weights out of 100).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Send,
    Convert,
    Ussd,
    Deposit,
    Reversal,
    Read,
}

const MIX: [(Kind, u32); 6] = [
    (Kind::Send, 45),
    (Kind::Convert, 10),
    (Kind::Ussd, 15),
    (Kind::Deposit, 10),
    (Kind::Reversal, 5),
    (Kind::Read, 15),
];

/// Operations in one window: done, refused (4xx, by code) and failed
/// (5xx or no answer).
#[derive(Default)]
struct Tally {
    done: HashMap<Kind, u64>,
    refused: HashMap<String, u64>,
    failed: Vec<String>,
}

type Shared = Arc<Mutex<Tally>>;

/// Who the clients act as: REST users (who also convert), USSD users (who
/// hold only shillings, so a send asks no currency), and the admin.
struct People {
    rest: Vec<(String, String)>,
    ussd: Vec<(String, String)>,
    /// Two admins: a reversal is booked by a second admin's approval.
    admins: [String; 2],
}

/// One window's line of the report.
struct Sample {
    ops: u64,
    refused: u64,
    rss_kib: u64,
    db_bytes: i64,
    transactions: i64,
    sms_lag: f64,
    chain_lag: f64,
    audit_lag: f64,
    deposits_waiting: i64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::from_env();
    let dir = PathBuf::from(format!("/tmp/chainpay-soak-{}", std::process::id()));
    let _cleanup = Cleanup(dir.clone());
    let target = support::private_target(&dir).await;
    recreate_database(&target, DATABASE).await;
    let master_key = chainpay_core::crypto::aead::MasterKey::generate().to_hex();
    println!(
        "soak: {} s, {} clients, {} wallets, {} operations/s offered",
        config.seconds, config.clients, config.users, config.rate
    );
    let mut accounts =
        support::funded_users(&target, DATABASE, &master_key, config.users, OPENING_MINOR).await;
    let url = (target.url_for)(DATABASE);
    let pool = PgPool::connect(&url).await.unwrap();
    prepare(&pool, [&accounts[0].0, &accounts[1].0]).await;

    let addr = support::free_addr();
    let base = format!("http://{addr}");
    // Each phone may be prompted a few times an hour; the soak's 300-odd
    // depositors would soon be refused every time, and what is measured is
    // what accepted deposits cost.
    let env = [
        ("MPESA_SIM_DELAY_MS", "300"),
        ("MPESA_PROMPTS_PER_PHONE_HOUR", "100000"),
    ];
    let log = dir.join("gateway.log");
    let mut server = support::spawn_gateway(BINARY, &url, &master_key, &addr, &env, Some(&log));
    GATEWAY_PID.store(server.id(), Ordering::Relaxed);
    assert!(support::wait_ready(&base, Duration::from_secs(120)).await);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let admins = [
        login(&http, &base, &accounts.remove(0).0).await,
        login(&http, &base, &accounts.remove(0).0).await,
    ];
    let ussd = accounts.split_off(accounts.len() * 3 / 4);
    let people = Arc::new(People {
        rest: accounts,
        ussd,
        admins,
    });

    let tally = Shared::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..config.clients)
        .map(|_| {
            let pace = (config.rate > 0.0)
                .then(|| Duration::from_secs_f64(config.clients as f64 / config.rate));
            let api = Api {
                http: http.clone(),
                base: base.clone(),
            };
            tokio::spawn(client(
                api,
                pace,
                people.clone(),
                tally.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let samples = watch(&config, &pool, &server, &tally).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let mut failures = judge(&samples, &tally.lock().unwrap());
    if !caught_up(&pool, Duration::from_secs(120)).await {
        failures.push("the background work did not drain within 2 minutes of the load".into());
    }
    // The books against themselves, both chains, M-Pesa's deposits,
    // callbacks, payouts and float (the simulator's Account Balance).
    for command in ["reconcile", "verify-chain"] {
        failures.extend(support::cli(BINARY, command, &url, &master_key, &env));
    }
    pool.close().await;
    stop_gateway(&mut server);
    if let Some(cluster) = &target.cluster {
        cluster.stop().await.unwrap();
    }
    support::verdict("soak", &failures, &log)
}

/// Lifts the hourly cap on movements (the load would hit it; what is
/// measured is what accepted movements cost) and makes the first two users
/// the admins who approve reversals.
async fn prepare(pool: &PgPool, admin_phones: [&str; 2]) {
    support::lift_hourly_cap(pool).await;
    sqlx::query("UPDATE users SET role = 'admin' WHERE phone = ANY($1)")
        .bind(&admin_phones[..])
        .execute(pool)
        .await
        .unwrap();
}

async fn login(http: &reqwest::Client, base: &str, phone: &str) -> String {
    let body: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"phone": phone, "pin": PIN}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn pick(rng: &mut StdRng) -> Kind {
    let mut roll = rng.gen_range(0..MIX.iter().map(|(_, w)| w).sum::<u32>());
    for (kind, weight) in MIX {
        if roll < weight {
            return kind;
        }
        roll -= weight;
    }
    Kind::Read
}

/// One client: operations at random, one every `pace` (or back to back),
/// until told to stop.
async fn client(
    api: Api,
    pace: Option<Duration>,
    people: Arc<People>,
    tally: Shared,
    stop: Arc<AtomicBool>,
) {
    let mut rng = StdRng::from_entropy();
    // This client's own recent transfers, as (sender's token, tx_id).
    let mut sent: Vec<(String, String)> = Vec::new();
    let mut ticks = pace.map(|every| {
        let mut ticks = tokio::time::interval(every);
        // Behind (the gateway slower than the offered rate): carry on from
        // now rather than burst to catch up.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    while !stop.load(Ordering::Relaxed) {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        let kind = pick(&mut rng);
        let result = match kind {
            Kind::Send => api.send(&people, &mut rng, &mut sent).await,
            Kind::Convert => {
                let (_, token) = &people.rest[rng.gen_range(0..people.rest.len())];
                let order = json!({"from_currency": "KES", "to_currency": "USD", "amount": rng.gen_range(10_000..50_000)});
                api.post("/wallet/convert", token, &order).await.map(drop)
            }
            Kind::Deposit => {
                let (_, token) = &people.rest[rng.gen_range(0..people.rest.len())];
                let order = json!({"amount": rng.gen_range(1..100) * 100, "currency": "KES", "method": "mpesa"});
                api.post("/wallet/deposit", token, &order).await.map(drop)
            }
            Kind::Reversal => api.reverse(&people, &mut sent).await,
            Kind::Ussd => api.ussd_session(&people, &mut rng).await,
            Kind::Read => {
                let (_, token) = &people.rest[rng.gen_range(0..people.rest.len())];
                let path =
                    ["/wallet/balances", "/wallet/transactions?limit=20"][rng.gen_range(0..2)];
                api.get(path, token).await
            }
        };
        let mut tally = tally.lock().unwrap();
        match result {
            Ok(()) => *tally.done.entry(kind).or_default() += 1,
            Err(Failure::Refused(code)) => *tally.refused.entry(code).or_default() += 1,
            Err(Failure::Failed(what)) => tally.failed.push(format!("{kind:?}: {what}")),
        }
    }
}

enum Failure {
    /// A definitive 4xx, by status and problem code.
    Refused(String),
    /// A 5xx, no answer, or an answer that breaks the contract.
    Failed(String),
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn answer(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, Failure> {
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Failed(format!("{what}: no answer: {e}")))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else if matches!(status.as_u16(), 409 | 422 | 429) {
            // A business refusal (a limit, a rule): counted, not a fault.
            let code = body["code"].as_str().unwrap_or_default();
            Err(Failure::Refused(format!("{} {code}", status.as_u16())))
        } else {
            Err(Failure::Failed(format!("{what}: {status} {body}")))
        }
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Result<Value, Failure> {
        let request = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(token)
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .json(body);
        self.answer(request, path).await
    }

    async fn get(&self, path: &str, token: &str) -> Result<(), Failure> {
        let request = self
            .http
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(token);
        self.answer(request, path).await.map(drop)
    }

    async fn send(
        &self,
        people: &People,
        rng: &mut StdRng,
        sent: &mut Vec<(String, String)>,
    ) -> Result<(), Failure> {
        let all = people.rest.len() + people.ussd.len();
        let from = rng.gen_range(0..people.rest.len());
        let to = (from + rng.gen_range(1..all)) % all;
        let to_phone = people
            .rest
            .get(to)
            .unwrap_or_else(|| &people.ussd[to - people.rest.len()]);
        let token = &people.rest[from].1;
        let order =
            json!({"to_phone": to_phone.0, "amount": rng.gen_range(100..5_000), "currency": "KES"});
        let body = self.post("/wallet/send", token, &order).await?;
        if let Some(id) = body["tx_id"].as_str() {
            sent.push((token.clone(), id.to_owned()));
            if sent.len() > 20 {
                sent.remove(0);
            }
        }
        Ok(())
    }

    /// The sender asks for a recent transfer back; two admins approve.
    async fn reverse(
        &self,
        people: &People,
        sent: &mut Vec<(String, String)>,
    ) -> Result<(), Failure> {
        let Some((token, tx_id)) = sent.pop() else {
            return Ok(());
        };
        let asked = json!({"tx_id": tx_id, "reason": "Sent to the wrong number"});
        let request = self.post("/reversal/request", &token, &asked).await?;
        let id = request["reversal_id"].as_str().unwrap_or_default();
        let path = format!("/admin/reversals/{id}/approve");
        let note = json!({"note": "Confirmed with both parties"});
        for admin in &people.admins {
            self.post(&path, admin, &note).await?;
        }
        Ok(())
    }

    /// A balance check or a send, step by step as Africa's Talking posts
    /// them; every page must be `CON`, the last `END`.
    async fn ussd_session(&self, people: &People, rng: &mut StdRng) -> Result<(), Failure> {
        let n = people.ussd.len();
        let from = rng.gen_range(0..n);
        let national = |phone: &str| format!("0{}", &phone[4..]);
        let caller = national(&people.ussd[from].0);
        let steps: Vec<String> = if rng.gen_bool(0.5) {
            vec!["4".into(), PIN.into()]
        } else {
            let to = national(&people.ussd[(from + rng.gen_range(1..n)) % n].0);
            vec!["1".into(), to, rng.gen_range(1..50).to_string(), PIN.into()]
        };
        let session = Uuid::new_v4().to_string();
        let mut typed: Vec<String> = Vec::new();
        for index in 0..=steps.len() {
            let form = [
                ("sessionId", session.as_str()),
                ("serviceCode", "*384*123#"),
                ("phoneNumber", caller.as_str()),
                ("text", &typed.join("*")),
            ];
            let page = self
                .http
                .post(format!("{}/api/v1/ussd", self.base))
                .form(&form)
                .send()
                .await
                .map_err(|e| Failure::Failed(format!("ussd: no answer: {e}")))?;
            let status = page.status();
            let page = page.text().await.unwrap_or_default();
            let last = index == steps.len();
            let expected = if last { "END " } else { "CON " };
            // Nothing in these sessions may end early: no balance runs
            // short and no limit applies, and the gateway answers its own
            // trouble with an END page ("try later").
            if !status.is_success() || !page.starts_with(expected) {
                return Err(Failure::Failed(format!(
                    "ussd step {index}: {status} {page:?}"
                )));
            }
            if let Some(key) = steps.get(index) {
                typed.push(key.clone());
            }
        }
        Ok(())
    }
}

/// Samples the gateway and the database every tenth of the run and prints
/// the report as it goes.
async fn watch(config: &Config, pool: &PgPool, server: &Child, tally: &Shared) -> Vec<Sample> {
    let window = Duration::from_secs(config.seconds) / 10;
    println!(
        "{:>6} {:>8} {:>8} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "t(s)",
        "ops/s",
        "refused",
        "RSS MiB",
        "DB MiB",
        "B/tx",
        "sms lag",
        "chain",
        "audit",
        "deposits"
    );
    let began = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut last_tx = transactions(pool).await;
    let mut last_bytes = database_bytes(pool).await;
    for _ in 0..10 {
        tokio::time::sleep(window).await;
        let counted = std::mem::take(&mut *tally.lock().unwrap());
        let sample = sample(pool, server, &counted).await;
        let new_tx = (sample.transactions - last_tx).max(1);
        let per_tx = (sample.db_bytes - last_bytes) / new_tx;
        println!(
            "{:>6} {:>8.1} {:>8} {:>9.1} {:>9.1} {:>10} {:>7.1}s {:>7.1}s {:>7.1}s {:>8}",
            began.elapsed().as_secs(),
            sample.ops as f64 / window.as_secs_f64(),
            sample.refused,
            sample.rss_kib as f64 / 1024.0,
            sample.db_bytes as f64 / 1_048_576.0,
            per_tx,
            sample.sms_lag,
            sample.chain_lag,
            sample.audit_lag,
            sample.deposits_waiting,
        );
        (last_tx, last_bytes) = (sample.transactions, sample.db_bytes);
        let mut kept = tally.lock().unwrap();
        kept.failed.extend(counted.failed);
        for (code, n) in counted.refused {
            *kept.refused.entry(code).or_default() += n;
        }
        drop(kept);
        samples.push(sample);
    }
    samples
}

async fn sample(pool: &PgPool, server: &Child, counted: &Tally) -> Sample {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let age = |sql: &'static str| async move {
        sqlx::query_scalar::<_, f64>(sql)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    Sample {
        ops: counted.done.values().sum(),
        refused: counted.refused.values().sum(),
        rss_kib,
        db_bytes: database_bytes(pool).await,
        transactions: transactions(pool).await,
        sms_lag: age("SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 FROM sms_outbox WHERE queued").await,
        chain_lag: age("SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(t.created_at)), 0)::float8 FROM chain_pending p JOIN transactions t USING (tx_id) WHERE p.seq = (SELECT min(seq) FROM chain_pending)").await,
        audit_lag: age("SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(a.at)), 0)::float8 FROM audit_pending p JOIN audit_log a ON a.id = p.audit_id WHERE p.audit_id = (SELECT min(audit_id) FROM audit_pending)").await,
        deposits_waiting: sqlx::query_scalar("SELECT count(*) FROM mpesa_deposits WHERE status = 'PENDING'")
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

async fn transactions(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM transactions")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn database_bytes(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// What the samples and the clients' tally say is wrong.
fn judge(samples: &[Sample], tally: &Tally) -> Vec<String> {
    let mut failures: Vec<String> = tally.failed.iter().take(20).cloned().collect();
    if tally.failed.len() > 20 {
        failures.push(format!("… {} failed requests in all", tally.failed.len()));
    }
    let mut refused: Vec<_> = tally.refused.iter().collect();
    refused.sort_by(|a, b| b.1.cmp(a.1));
    println!("refusals by code: {refused:?}");
    if samples.iter().any(|s| s.rss_kib == 0) {
        failures.push("the gateway's RSS could not be read from /proc".into());
    }
    let (third, last) = (&samples[2], &samples[samples.len() - 1]);
    let bound = third.rss_kib + third.rss_kib / 4 + 16 * 1024;
    if last.rss_kib > bound {
        failures.push(format!(
            "gateway RSS grew from {} KiB (third tenth) to {} KiB (last)",
            third.rss_kib, last.rss_kib
        ));
    }
    for (i, s) in samples.iter().enumerate() {
        let worst = s.sms_lag.max(s.chain_lag).max(s.audit_lag);
        if worst > MAX_LAG_S {
            failures.push(format!("window {}: background lag {worst:.1} s", i + 1));
        }
    }
    failures
}
