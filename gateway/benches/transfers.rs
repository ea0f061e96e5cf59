//! Transfer throughput against a PostgreSQL baseline measured in the same run.
//!
//! `cargo bench -p chainpay-gateway --bench transfers`
//!
//! 1. `pgbench` TPC-B (scale 10, 8 clients, 20 s) on the PostgreSQL under test:
//!    what this machine's database can do with a simple banking transaction.
//! 2. P1: the release `chainpay serve` binary on the same PostgreSQL, driven
//!    over HTTP by concurrent clients from this separate process, sending
//!    authenticated, keyed `/wallet/send` requests round-robin across the
//!    funded users. The gateway sends its SMS to an Africa's Talking
//!    stand-in in this process (only the base URL differs from production),
//!    which posts every delivery report back as the real service does.
//! 3. P2: the same with every client paying one account.
//! 4. P5: a second instance on the same database, warmed up as the first
//!    was, the clients split between the two.
//! 5. P3: the Argon2id bound on these cores, then USSD callers stepping
//!    through *Send money* (pausing like people, then without pause, with
//!    the CPU time per PIN-confirmed send: the gateway's, the part of it its
//!    Argon2id threads spent, PostgreSQL's and this process's).
//! 6. P7: the production chain validator over the chain the run built,
//!    beside raw SHA3-256 of the same leaf bytes.
//!
//! Each measured phase (P1, P2, P5, P3) starts as pgbench's run does, on a
//! vacuumed database (here also caught up and checkpointed), so none pays
//! for another's writes.
//! Each transfer phase prints transfers/s, p50/p99 latency, the ratio to
//! pgbench's tps, the CPU time per transfer spent by the gateway(s),
//! PostgreSQL (and PgBouncer) and this process, and how far the SMS outbox,
//! chain sealing and audit linking fell behind (P4); then the gateway's peak
//! RSS under transfer load (P6) and whether anything was posted twice.
//!
//! The PostgreSQL is `BENCH_DATABASE_URL`'s server when set, otherwise an
//! embedded cluster under `target/bench-pg` (default durability settings).
//! Knobs: `BENCH_SECONDS` (20), `BENCH_CLIENTS` (16), `BENCH_USERS` (5000),
//! `BENCH_PGBENCH` (`0` skips the baseline), `BENCH_INSTANCES` (instances for
//! P1 and P2, 1), `BENCH_PGBOUNCER` (`1`: the gateways connect through
//! PgBouncer in session mode), `BENCH_USSD_SESSIONS` (200),
//! `BENCH_USSD_THINK_MS` (3000), `BENCH_ONLY_P1` (`1`: stop after P1, for
//! comparing a change with the code before it in alternating runs),
//! `BENCH_ONLY_P3` (`1`: after the warm-up, only P3, for the same).
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chainpay_gateway::db::pgbouncer::PgBouncer;
use serde_json::json;
use support::inbox::Inbox;
use support::ussd;
use support::{recreate_database, target, Target};
use uuid::Uuid;

const BINARY: &str = env!("CARGO_BIN_EXE_chainpay");
const BENCH_DATABASE: &str = "chainpay_bench";
const PGBENCH_DATABASE: &str = "chainpay_pgbench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// TPC-B tps from pgbench, excluding connection set-up.
async fn pgbench_tps(target: &Target, seconds: usize) -> f64 {
    recreate_database(target, PGBENCH_DATABASE).await;
    let binary = support::pg_tool("pgbench");
    let init = Command::new(&binary)
        .args(&target.pgbench_args)
        .args(["-i", "-q", "-s", "10", PGBENCH_DATABASE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(init.success(), "pgbench -i failed");
    let output = Command::new(&binary)
        .args(&target.pgbench_args)
        .args([
            "-c",
            "8",
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            PGBENCH_DATABASE,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let tps_line = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .unwrap_or_else(|| panic!("no tps in pgbench output: {text}"));
    tps_line
        .trim_start_matches("tps = ")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

struct CpuSample {
    gateway: f64,
    /// The part of `gateway` its PIN hashing threads spent.
    hashing: f64,
    postgres: f64,
    pooler: f64,
    load: f64,
}

fn sample_cpu(gateways: &[u32]) -> CpuSample {
    CpuSample {
        gateway: support::cpu::seconds(|pid, _| gateways.contains(&pid)),
        hashing: gateways
            .iter()
            .map(|pid| support::cpu::thread_seconds(*pid, "argon2-"))
            .sum(),
        postgres: support::cpu::postgres(),
        pooler: support::cpu::seconds(|_, command| command == "pgbouncer"),
        load: support::cpu::own(),
    }
}

/// Africa's Talking as the gateway is configured to reach it here.
const AT_USERNAME: &str = "benchat";
const AT_API_KEY: &str = "benchat-key";
const AT_WEBHOOK_TOKEN: &str = "bench-webhook-token";

#[tokio::main]
async fn main() {
    let seconds = env_usize("BENCH_SECONDS", 20);
    let clients = env_usize("BENCH_CLIENTS", 16);
    let users = env_usize("BENCH_USERS", 5000);
    let target = target().await;
    let tps = if env_usize("BENCH_PGBENCH", 1) == 1 {
        println!("pgbench TPC-B: scale 10, 8 clients, {seconds} s ...");
        let tps = pgbench_tps(&target, seconds).await;
        println!("  pgbench tps: {tps:.0}");
        Some(tps)
    } else {
        None
    };
    recreate_database(&target, BENCH_DATABASE).await;
    let url = (target.url_for)(BENCH_DATABASE);
    // BENCH_PGBOUNCER=1: the gateways reach PostgreSQL through PgBouncer in
    // session mode, with room for each instance's whole pool.
    let instances = env_usize("BENCH_INSTANCES", 1).max(1);
    let bouncer = match env_usize("BENCH_PGBOUNCER", 0) {
        0 => None,
        _ => Some(
            PgBouncer::start(
                &std::env::temp_dir()
                    .join(format!("chainpay-bench-bouncer-{}", std::process::id())),
                &target.options.clone().database(BENCH_DATABASE),
                // P5 adds an instance.
                32 * (instances as u32 + 1) + 8,
            )
            .await
            .unwrap(),
        ),
    };
    let gateway_url = bouncer
        .as_ref()
        .map_or_else(|| url.clone(), |b| b.url(BENCH_DATABASE));
    let master_key = chainpay_core::crypto::aead::MasterKey::generate().to_hex();
    println!("preparing {users} funded users ...");
    let accounts = Arc::new(
        support::funded_users(&target, BENCH_DATABASE, &master_key, users, 10_000_000).await,
    );
    let addrs: Vec<String> = (0..instances).map(|_| support::free_addr()).collect();
    let reports = format!(
        "http://{}/api/v1/sms/delivery?token={AT_WEBHOOK_TOKEN}",
        addrs[0]
    );
    let inbox = Inbox::start(AT_USERNAME, AT_API_KEY, Some(reports)).await;
    let mut servers = Vec::new();
    let mut bases = Vec::new();
    for addr in &addrs {
        let (server, base) = start_gateway(&gateway_url, &master_key, addr, &inbox.base).await;
        servers.push(server);
        bases.push(base);
    }
    let pids: Vec<u32> = servers.iter().map(std::process::Child::id).collect();
    // As large as a gateway's own (CHAINPAY_DB_POOL), which P7's validator
    // sizes its parallel walk by.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(32)
        .connect(&url)
        .await
        .unwrap();
    support::lift_hourly_cap(&pool).await;
    let mut load = Load {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()
            .unwrap(),
        bases,
        accounts,
        clients,
        next: Arc::new(AtomicUsize::new(0)),
        hot: false,
    };
    println!("warming up ...");
    load.run(Duration::from_secs(2)).await;
    // The funding's chain entries and SMS out of the way before anything
    // is measured (each phase then settles what the one before left).
    support::caught_up(&pool, Duration::from_secs(300)).await;
    if env_usize("BENCH_ONLY_P3", 0) == 1 {
        ussd_phase(&load, &pool, pids[0], seconds).await;
        for mut server in servers {
            support::stop_gateway(&mut server);
        }
        return;
    }
    let through = if bouncer.is_some() {
        ", through PgBouncer"
    } else {
        ""
    };
    println!("P1 HTTP /wallet/send: {clients} clients, {users} users, {instances} instance(s){through}, {seconds} s ...");
    let uniform = measure(&load, &pool, &pids, seconds, tps).await;
    if env_usize("BENCH_ONLY_P1", 0) == 1 {
        let double = support::double_posted(&pool).await;
        println!("transfers posted twice under one key: {double}");
        for mut server in servers {
            support::stop_gateway(&mut server);
        }
        return;
    }
    load.hot = true;
    println!("P2 every client pays one account, {seconds} s ...");
    let hot = measure(&load, &pool, &pids, seconds, tps).await;
    println!("  hot ÷ uniform        : {:.2}", hot / uniform);
    // P6 is the peak under transfer load, read before P3 (whose PIN checks
    // hold Argon2id's 19 MiB per hashing thread).
    let peak = pids.iter().map(|pid| peak_rss_kib(*pid)).max().unwrap_or(0);
    load.hot = false;
    let gateway = Gateway {
        url: &gateway_url,
        master_key: &master_key,
        at_base: &inbox.base,
    };
    let more = two_instances(&mut load, &gateway, &pool, &pids, (seconds, tps)).await;
    println!(
        "P5 {} instances ÷ {instances}   : {:.2}",
        instances + 1,
        more / uniform
    );
    ussd_phase(&load, &pool, pids[0], seconds).await;
    let drained = support::caught_up(&pool, Duration::from_secs(120)).await;
    println!("background work caught up afterwards: {drained}");
    chain_validation(&pool, &master_key).await;
    println!("SMS that reached Africa's Talking: {}", inbox.count());
    let double = support::double_posted(&pool).await;
    println!("transfers posted twice under one key: {double}");
    let overall = pids.iter().map(|pid| peak_rss_kib(*pid)).max().unwrap_or(0);
    println!(
        "P6 gateway peak RSS    : {} MiB under transfer load, {} MiB over the whole run with P3's PIN hashing (largest instance)",
        peak / 1024,
        overall / 1024
    );
    for mut server in servers {
        support::stop_gateway(&mut server);
    }
}

/// One measured phase: its report, and its transfers/s.
async fn measure(
    load: &Load,
    pool: &sqlx::PgPool,
    gateways: &[u32],
    seconds: usize,
    tps: Option<f64>,
) -> f64 {
    settle(pool).await;
    let batches_before = support::phases::Sample::read(&load.client, &load.bases).await;
    let cpu_before = sample_cpu(gateways);
    let began = Instant::now();
    let lags = tokio::spawn(max_lags(pool.clone(), Duration::from_secs(seconds as u64)));
    let (mut latencies, failures) = load.run(Duration::from_secs(seconds as u64)).await;
    let elapsed = began.elapsed().as_secs_f64();
    let cpu_after = sample_cpu(gateways);
    let batches_after = support::phases::Sample::read(&load.client, &load.bases).await;
    latencies.sort();
    report(
        &latencies,
        failures,
        elapsed,
        tps,
        (&cpu_before, &cpu_after),
    );
    batches_after.report(&batches_before);
    let (sms, chain, audit) = lags.await.unwrap();
    println!("P4 most behind (s)     : SMS outbox {sms:.1}, chain sealing {chain:.1}, audit linking {audit:.1}");
    latencies.len() as f64 / elapsed
}

/// How the bench starts a gateway.
struct Gateway<'a> {
    url: &'a str,
    master_key: &'a str,
    at_base: &'a str,
}

/// P5: one more instance on the same database, the clients spread over all
/// of them; its transfers/s (the instance is stopped afterwards).
async fn two_instances(
    load: &mut Load,
    gateway: &Gateway<'_>,
    pool: &sqlx::PgPool,
    pids: &[u32],
    (seconds, tps): (usize, Option<f64>),
) -> f64 {
    let (mut extra, base) = start_gateway(
        gateway.url,
        gateway.master_key,
        &support::free_addr(),
        gateway.at_base,
    )
    .await;
    let bases = load.bases.clone();
    load.bases.push(base);
    let mut all = pids.to_vec();
    all.push(extra.id());
    // Warmed up as P1's instance was: its caches and prepared statements
    // filled before anything is measured.
    load.run(Duration::from_secs(2)).await;
    println!(
        "P5 {} instances on one database, {} clients, {seconds} s ...",
        load.bases.len(),
        load.clients
    );
    let rate = measure(load, pool, &all, seconds, tps).await;
    load.bases = bases;
    support::stop_gateway(&mut extra);
    rate
}

/// P7: the production validator over the chain this run built, beside
/// raw SHA3-256 of the same leaf bytes.
async fn chain_validation(pool: &sqlx::PgPool, master_key: &str) {
    let master = chainpay_core::crypto::aead::MasterKey::from_hex(master_key).unwrap();
    let began = Instant::now();
    let report = chainpay_gateway::chain::validate::validate(pool, &master)
        .await
        .unwrap();
    let validation = began.elapsed().as_secs_f64();
    assert!(report.valid, "{report:?}");
    let (hashing, _) = support::raw_leaf_hashing(pool).await;
    let transactions = report.transactions_checked as f64;
    println!(
        "P7 chain validation    : {} transactions in {validation:.2} s ({:.0}/s); raw SHA3-256 of the same leaves {:.0}/s; ratio {:.2}",
        report.transactions_checked,
        transactions / validation,
        transactions / hashing.as_secs_f64(),
        hashing.as_secs_f64() / validation
    );
}

/// P3: what Argon2id alone allows on these cores, then USSD callers
/// stepping through *Send money* on the first instance: first pausing
/// between key presses as people do (`BENCH_USSD_THINK_MS`, 3 s ± 50 %), for
/// step latency; then pressing without pause, for PIN-confirmed sends/s
/// against the bound.
async fn ussd_phase(load: &Load, pool: &sqlx::PgPool, gateway: u32, seconds: usize) {
    settle(pool).await;
    let bound = tokio::task::spawn_blocking(|| ussd::argon2_bound(Duration::from_secs(5)))
        .await
        .unwrap();
    println!("P3 Argon2id alone     : {bound:.0} PIN verifications/s");
    let concurrent = env_usize("BENCH_USSD_SESSIONS", 200);
    let sessions = ussd::Sessions {
        client: load.client.clone(),
        base: load.bases[0].clone(),
        token: AT_WEBHOOK_TOKEN.to_owned(),
        accounts: load.accounts.clone(),
        next: load.next.clone(),
    };
    let during = Duration::from_secs(seconds as u64);
    let think = Duration::from_millis(env_usize("BENCH_USSD_THINK_MS", 3000) as u64);
    println!(
        "P3 {concurrent} USSD callers pausing {:.1} s between key presses, {seconds} s ...",
        think.as_secs_f64()
    );
    report_ussd(&sessions.run(concurrent, during, think).await, bound);
    println!("P3 {concurrent} USSD callers pressing without pause, {seconds} s ...");
    // CPU over the seconds whose sends are counted: from a quarter in to the end.
    let cpu = tokio::spawn(async move {
        tokio::time::sleep(during / 4).await;
        let before = sample_cpu(&[gateway]);
        tokio::time::sleep(during - during / 4).await;
        (before, sample_cpu(&[gateway]))
    });
    let outcome = sessions.run(concurrent, during, Duration::ZERO).await;
    report_ussd(&outcome, bound);
    let (before, after) = cpu.await.unwrap();
    let per_send = |before: f64, after: f64| (after - before) * 1e3 / outcome.sends.max(1) as f64;
    let hashing = per_send(before.hashing, after.hashing);
    println!(
        "  CPU per send: gateway {:.1} ms ({hashing:.1} ms of it Argon2id), PostgreSQL {:.1} ms, load generator {:.1} ms",
        per_send(before.gateway, after.gateway),
        per_send(before.postgres, after.postgres),
        per_send(before.load, after.load),
    );
}

/// Starts a phase where pgbench starts its run: the background work of the
/// phase before caught up, its dead rows vacuumed (statistics fresh) and
/// its pages written out, so no phase pays autovacuum or a checkpoint for
/// the writes of another, and the Argon2id bound runs on quiet cores. A
/// role that may not checkpoint (`BENCH_DATABASE_URL` without superuser)
/// is told so.
async fn settle(pool: &sqlx::PgPool) {
    support::caught_up(pool, Duration::from_secs(120)).await;
    sqlx::query("VACUUM (ANALYZE)").execute(pool).await.unwrap();
    if let Err(error) = sqlx::query("CHECKPOINT").execute(pool).await {
        println!("  (no CHECKPOINT between phases: {error})");
    }
}

fn report_ussd(outcome: &ussd::Outcome, bound: f64) {
    let ms = |q| support::percentile(&outcome.steps, q).as_secs_f64() * 1e3;
    let sends = outcome.sends as f64 / outcome.counted_s;
    println!(
        "  steps {}, p50 {:.1} ms, p99 {:.1} ms; sends {:.1}/s ({:.2} of the Argon2id bound); failed {}",
        outcome.steps.len(),
        ms(0.50),
        ms(0.99),
        sends,
        sends / bound,
        outcome.failures
    );
}

/// The most the SMS outbox, chain sealing and audit linking fell behind
/// (age in seconds of the oldest item waiting), sampled every second.
async fn max_lags(pool: sqlx::PgPool, during: Duration) -> (f64, f64, f64) {
    let deadline = Instant::now() + during;
    let mut most = (0f64, 0f64, 0f64);
    while Instant::now() < deadline {
        let (sms, chain, audit): (f64, f64, f64) = sqlx::query_as(
            "SELECT coalesce((SELECT extract(epoch FROM now() - min(created_at)) FROM sms_outbox WHERE queued), 0)::float8,
                    coalesce((SELECT extract(epoch FROM now() - min(t.created_at)) FROM chain_pending c
                              JOIN transactions t USING (tx_id)), 0)::float8,
                    coalesce((SELECT extract(epoch FROM now() - min(a.at)) FROM audit_pending p
                              JOIN audit_log a ON a.id = p.audit_id), 0)::float8",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        most = (most.0.max(sms), most.1.max(chain), most.2.max(audit));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    most
}

/// The most memory the process has held (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The release gateway on `url`, sending SMS to `at_base`, once it answers
/// `/readyz`.
async fn start_gateway(
    url: &str,
    master_key: &str,
    addr: &str,
    at_base: &str,
) -> (std::process::Child, String) {
    let env = [
        ("AT_USERNAME", AT_USERNAME),
        ("AT_API_KEY", AT_API_KEY),
        ("AT_BASE_URL", at_base),
        ("AT_WEBHOOK_TOKEN", AT_WEBHOOK_TOKEN),
        ("CHAINPAY_METRICS_TOKEN", support::phases::METRICS_TOKEN),
    ];
    let server = support::spawn_gateway(BINARY, url, master_key, addr, &env, None);
    let base = format!("http://{addr}");
    assert!(
        support::wait_ready(&base, Duration::from_secs(60)).await,
        "server did not start"
    );
    (server, base)
}

/// Keyed transfers from `clients` concurrent clients across the population.
struct Load {
    client: reqwest::Client,
    /// One per gateway instance; client `i` talks to `bases[i % len]`.
    bases: Vec<String>,
    accounts: Arc<Vec<(String, String)>>,
    clients: usize,
    next: Arc<AtomicUsize>,
    /// Every transfer to one account (P2) instead of across the population.
    hot: bool,
}

impl Load {
    /// Every client sends for `duration`; returns the latencies of completed
    /// transfers and the number of failed requests.
    async fn run(&self, duration: Duration) -> (Vec<Duration>, usize) {
        let handles: Vec<_> = (0..self.clients)
            .map(|i| {
                let (client, accounts) = (self.client.clone(), self.accounts.clone());
                let base = self.bases[i % self.bases.len()].clone();
                let (next, hot) = (self.next.clone(), self.hot);
                tokio::spawn(async move {
                    one_client(client, base, (accounts, hot), next, duration).await
                })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut failures = 0;
        for handle in handles {
            let (l, f) = handle.await.unwrap();
            latencies.extend(l);
            failures += f;
        }
        (latencies, failures)
    }
}

async fn one_client(
    client: reqwest::Client,
    base: String,
    (accounts, hot): (Arc<Vec<(String, String)>>, bool),
    next: Arc<AtomicUsize>,
    duration: Duration,
) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::new();
    let mut failures = 0usize;
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        // The first account receives the hot transfers and never sends.
        let n = next.fetch_add(1, Ordering::Relaxed) % (accounts.len() - 1) + 1;
        let (_, token) = &accounts[n];
        // Half the population away, so concurrent requests rarely share a wallet.
        let (to_phone, _) = match hot {
            true => &accounts[0],
            false => &accounts[(n + accounts.len() / 2) % accounts.len()],
        };
        let began = Instant::now();
        let response = client
            .post(format!("{base}/api/v1/wallet/send"))
            .bearer_auth(token)
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .json(&json!({"to_phone": to_phone, "amount": 10_000, "currency": "KES"}))
            .send()
            .await;
        match response {
            Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                let _ = r.bytes().await;
                latencies.push(began.elapsed());
            }
            Ok(r) => {
                if failures == 0 {
                    eprintln!(
                        "unexpected {}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    );
                }
                failures += 1;
            }
            Err(_) => failures += 1,
        }
    }
    (latencies, failures)
}

fn report(
    latencies: &[Duration],
    failures: usize,
    elapsed: f64,
    tps: Option<f64>,
    (before, after): (&CpuSample, &CpuSample),
) {
    let transfers_per_second = latencies.len() as f64 / elapsed;
    println!();
    println!("transfers completed : {}", latencies.len());
    println!("failed requests     : {failures}");
    println!("transfers/s         : {transfers_per_second:.0}");
    let ms = |q| support::percentile(latencies, q).as_secs_f64() * 1e3;
    println!("latency p50         : {:.2} ms", ms(0.50));
    println!("latency p99         : {:.2} ms", ms(0.99));
    if let Some(tps) = tps {
        println!("pgbench TPC-B tps   : {tps:.0}");
        println!("ratio transfers/tps : {:.2}", transfers_per_second / tps);
    }
    let per_transfer =
        |before: f64, after: f64| (after - before) * 1e6 / latencies.len().max(1) as f64;
    println!(
        "CPU per transfer    : gateway {:.0} us, PostgreSQL {:.0} us, load generator {:.0} us",
        per_transfer(before.gateway, after.gateway),
        per_transfer(before.postgres, after.postgres),
        per_transfer(before.load, after.load),
    );
    if after.pooler > before.pooler {
        println!(
            "CPU per transfer    : PgBouncer {:.0} us",
            per_transfer(before.pooler, after.pooler)
        );
    }
}
