//! Validating the whole chain at a million transactions.
//!
//! `cargo bench -p chainpay-gateway --bench chain`
//!
//! Loads `BENCH_CHAIN_TXS` (1,000,000) transactions straight into the
//! database, seals them into blocks of 50 with the production sealer, then
//! times the production validator and reports its throughput against the
//! raw SHA3-256 speed of hashing the same leaf bytes, measured in the same
//! run, the CPU time validation took in this process and in PostgreSQL
//! (steadier than the time on a shared machine), and the process's peak
//! memory before and after validation (the validator streams: its memory
//! must not grow with the chain).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use chainpay_gateway::chain::{seal, validate};
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

const DATABASE: &str = "chainpay_bench_chain";
const LOAD_BATCH: i64 = 100_000;

/// Peak resident memory of this process, in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Loads `total` transactions and seals them with the production sealer.
async fn build_chain(
    target: &support::Target,
    state: &chainpay_gateway::http::AppState,
    total: i64,
) {
    println!("loading {total} transactions ...");
    let began = Instant::now();
    let mut owner = target
        .options
        .clone()
        .database(DATABASE)
        .connect()
        .await
        .unwrap();
    load_history(&mut owner, total).await;
    println!("  loaded in {:.1} s", began.elapsed().as_secs_f64());

    println!("sealing into blocks of {} ...", seal::BLOCK_CAPACITY);
    let began = Instant::now();
    let mut blocks = 0;
    while seal::seal_next(&state.pool, &state.sealer)
        .await
        .unwrap()
        .is_some()
    {
        blocks += 1;
    }
    println!(
        "  sealed {blocks} blocks in {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let total: i64 = std::env::var("BENCH_CHAIN_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // BENCH_CHAIN_REUSE=1 times the validation of the chain the last run
    // left, without loading and sealing it again (to compare two builds).
    let reuse = std::env::var("BENCH_CHAIN_REUSE").is_ok_and(|v| v == "1");
    let target = support::target().await;
    if !reuse {
        support::recreate_database(&target, DATABASE).await;
    }
    // Fixed, so `chainpay verify-chain` can be run on the bench's database
    // afterwards (CHAINPAY_MASTER_KEY=c4c4…); it guards nothing but this.
    let master_key = "c4".repeat(32);
    let state = support::app_state(&target, DATABASE, &master_key).await;
    if reuse {
        println!("validating the chain the last run built ...");
    } else {
        build_chain(&target, &state, total).await;
    }

    let rss_before = peak_rss_mib();
    let cpu_before = (support::cpu::own(), support::cpu::postgres());
    let began = Instant::now();
    let report = validate::validate(&state.pool, &state.keys.master)
        .await
        .unwrap();
    let validation = began.elapsed();
    let cpu = (
        support::cpu::own() - cpu_before.0,
        support::cpu::postgres() - cpu_before.1,
    );
    let rss_after = peak_rss_mib();
    assert!(report.valid, "{report:?}");
    assert!(
        report.blocks_checked > 1,
        "no chain to validate: run once without BENCH_CHAIN_REUSE"
    );
    let (hashing, leaf_bytes) = support::raw_leaf_hashing(&state.pool).await;
    print_report(
        &report,
        validation,
        hashing,
        leaf_bytes,
        (rss_before, rss_after),
    );
    println!(
        "validation CPU          : {:.2} s in this process, {:.2} s in PostgreSQL",
        cpu.0, cpu.1
    );
}

/// `total` transfers between two users, queued for sealing.
async fn load_history(owner: &mut sqlx::PgConnection, total: i64) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO users (id, phone, name, pin_hash) VALUES ($1, '+254718000001', 'Alice', 'x'), ($2, '+254718000002', 'Bob', 'x')",
    )
    .bind(alice)
    .bind(bob)
    .execute(&mut *owner)
    .await
    .unwrap();
    let mut loaded = 0;
    while loaded < total {
        let batch = LOAD_BATCH.min(total - loaded);
        let mut tx = owner.begin().await.unwrap();
        // A bulk load of history: the per-row balance trigger is not what is measured.
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query(
            "WITH t AS (
                 INSERT INTO transactions (tx_id, tx_type, amount, fee, currency, from_user_id, to_user_id, signature, created_at)
                 SELECT gen_random_uuid(), 'transfer', 100 + n % 100000, n % 7, 'KES', $1, $2, 'bench',
                        now() - interval '1 second' * ($3::bigint - n)
                 FROM generate_series(1, $3::bigint) AS n
                 RETURNING tx_id
             ) INSERT INTO chain_pending (tx_id) SELECT tx_id FROM t",
        )
        .bind(alice)
        .bind(bob)
        .bind(batch)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        loaded += batch;
    }
    sqlx::query("ANALYZE").execute(&mut *owner).await.unwrap();
}

fn print_report(
    report: &validate::ChainReport,
    validation: Duration,
    hashing: Duration,
    leaf_bytes: usize,
    (rss_before, rss_after): (f64, f64),
) {
    let mib = leaf_bytes as f64 / (1024.0 * 1024.0);
    println!();
    println!("blocks checked          : {}", report.blocks_checked);
    println!("transactions checked    : {}", report.transactions_checked);
    println!(
        "validation time         : {:.2} s",
        validation.as_secs_f64()
    );
    println!(
        "validation throughput   : {:.0} tx/s, {:.1} MiB/s of leaf bytes",
        report.transactions_checked as f64 / validation.as_secs_f64(),
        mib / validation.as_secs_f64()
    );
    println!(
        "raw SHA3-256, same bytes: {:.0} leaves/s, {:.1} MiB/s ({:.2} s)",
        report.transactions_checked as f64 / hashing.as_secs_f64(),
        mib / hashing.as_secs_f64(),
        hashing.as_secs_f64()
    );
    println!(
        "validation / raw hashing: {:.3}",
        hashing.as_secs_f64() / validation.as_secs_f64()
    );
    println!(
        "peak RSS                : {rss_before:.0} MiB before validation, {rss_after:.0} MiB after"
    );
}
