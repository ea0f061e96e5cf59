//! The AML rules' cost per transfer as a sender's history grows.
//!
//! `cargo bench -p chainpay-gateway --bench rules`
//!
//! For one sender with 0, 1,000 and 10,000 past transactions (spread over
//! 60 days, as a busy customer's would be), it times the check every
//! outgoing movement runs inside its transaction: lock the sender, read
//! their tier and rolling windows, decide. Beside it, the same number of
//! empty transactions on the same connection give the floor set by the
//! round trips alone. A flat column is what the index on
//! `(from_user_id, created_at)` is for.
//!
//! Knobs: `BENCH_ITERATIONS` (2000), `BENCH_DATABASE_URL` (see `transfers`).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use chainpay_gateway::compliance::limits;
use chainpay_gateway::movements::parties;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

const DATABASE: &str = "chainpay_bench_rules";

async fn time<F>(iterations: usize, conn: &mut PgConnection, mut step: F) -> Vec<Duration>
where
    F: for<'c> FnMut(
        &'c mut PgConnection,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'c>>,
{
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let began = Instant::now();
        step(conn).await;
        samples.push(began.elapsed());
    }
    samples.sort();
    samples
}

fn report(label: &str, samples: &[Duration]) {
    let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
    println!(
        "{label:<34} mean {:>7.1} µs   p50 {:>7.1} µs   p99 {:>7.1} µs",
        mean.as_secs_f64() * 1e6,
        support::percentile(samples, 0.5).as_secs_f64() * 1e6,
        support::percentile(samples, 0.99).as_secs_f64() * 1e6,
    );
}

async fn connect(target: &support::Target) -> PgConnection {
    use sqlx::ConnectOptions;
    target
        .options
        .clone()
        .database(DATABASE)
        .connect()
        .await
        .unwrap()
}

/// Past transfers `from..to`, newest first, one every ~8.6 minutes over 60
/// days. They carry no postings: only the windows read them here.
async fn add_history(pool: &sqlx::PgPool, (sender, other): (Uuid, Uuid), from: i32, to: i32) {
    sqlx::query(
        "INSERT INTO transactions (tx_id, tx_type, amount, currency, from_user_id, to_user_id, signature, created_at, usd_cents)
         SELECT gen_random_uuid(), 'transfer', 100, 'USD', $1, $2, 'bench',
                now() - (n * interval '60 days' / 10000), 100
         FROM generate_series($3::int, $4::int - 1) AS n",
    )
    .bind(sender)
    .bind(other)
    .bind(from)
    .bind(to)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::main]
async fn main() {
    let iterations: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let target = support::target().await;
    support::recreate_database(&target, DATABASE).await;
    let master_key = chainpay_core::crypto::aead::MasterKey::generate().to_hex();
    let state = support::app_state(&target, DATABASE, &master_key).await;
    let rules = state.rules.get(&state.pool).await.unwrap();
    let sender = Uuid::new_v4();
    let other = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO users (id, phone, name, pin_hash, kyc_status)
         VALUES ($1, '+254719000001', 'Busy Sender', 'x', 'VERIFIED'), ($2, '+254719000002', 'Other', 'x', 'VERIFIED')",
    )
    .bind(sender)
    .bind(other)
    .execute(&state.pool)
    .await
    .unwrap();
    let mut history = 0;
    println!("AML check per outgoing movement ({iterations} iterations each)\n");
    for size in [0, 1_000, 10_000] {
        add_history(&state.pool, (sender, other), history, size).await;
        history = size;
        // As autovacuum would; a fresh connection so no plan prepared
        // against the smaller table is reused.
        let mut conn = connect(&target).await;
        sqlx::query("ANALYZE transactions")
            .execute(&mut conn)
            .await
            .unwrap();
        let rules = rules.clone();
        let checks = time(iterations, &mut conn, |conn| {
            let rules = rules.clone();
            Box::pin(async move {
                let mut tx = conn.begin().await.unwrap();
                // What every outgoing movement does: lock the sender (with the
                // parties' screening state), then read and decide the windows.
                parties::load(&mut tx, sender, None).await.unwrap();
                limits::check_outgoing(&mut tx, &rules, sender, 100)
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
            })
        })
        .await;
        report(&format!("history {size:>6} transactions"), &checks);
    }
    let mut conn = connect(&target).await;
    let floor = time(iterations, &mut conn, |conn| {
        Box::pin(async move {
            let mut tx = conn.begin().await.unwrap();
            sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
            tx.rollback().await.unwrap();
        })
    })
    .await;
    report("baseline: empty transaction", &floor);
}
