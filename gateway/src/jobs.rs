//! Background jobs: each runs at its own pace, in batches, and is safe to
//! run on every gateway instance at once (single-writer work takes a
//! PostgreSQL advisory lock; the rest is idempotent).
//!
//! - audit sealer: links committed audit rows into the hash chain (1 s);
//! - block sealer: seals queued transactions into blocks when 50 are
//!   waiting or the oldest has waited `CHAINPAY_BLOCK_INTERVAL_S`;
//! - SMS outbox: sends queued messages through Africa's Talking (0.5 s);
//! - M-Pesa sweeper: asks STK Query about deposits whose callback is overdue;
//! - Daraja simulator (simulator mode only): settles prompts and payouts;
//! - housekeeping: prunes finished USSD sessions, idle rate-limit windows,
//!   expired revocations and quotes, week-old idempotency records (10 min);
//! - sanctions re-screening: screens users against a changed list (10 s, or
//!   at once when an operator adds an entry);
//! - FX feed: the simulated random walk, when configured.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chainpay_core::fx::{RandomWalk, RateSource};
use rand::SeedableRng;
use rust_decimal::Decimal;
use sqlx::PgPool;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::audit::chain;
use crate::chain::seal;
use crate::compliance::sanctions;
use crate::config::FxFeed;
use crate::http::AppState;
use crate::sms;

const AUDIT_SEAL_PERIOD: Duration = Duration::from_secs(1);
/// How often the SMS worker looks at the outbox.
const SMS_PERIOD: Duration = Duration::from_millis(500);
/// How often overdue deposits are looked for (STK Query).
const MPESA_SWEEP_PERIOD: Duration = Duration::from_secs(2);
/// How often the Daraja simulator's customers and network act.
const DARAJA_SIM_PERIOD: Duration = Duration::from_millis(200);
/// How often finished sessions, old windows and expired records are pruned.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(600);
/// How often the block sealer looks at the queue.
const BLOCK_SEAL_PERIOD: Duration = Duration::from_secs(1);
const RESCREEN_PERIOD: Duration = Duration::from_secs(10);
/// Advisory lock of the FX feed, so instances take turns.
const FX_FEED_LOCK: i64 = 0x4348_4149_4e46_5846;

/// Ways to wake a job before its next period.
#[derive(Default)]
pub struct JobSignals {
    rescreen: Notify,
}

impl JobSignals {
    /// The sanctions list changed: screen users again now.
    pub fn wake_rescreen(&self) {
        self.rescreen.notify_one();
    }
}

/// Starts every job; they stop when `shutdown` turns true.
pub fn spawn_all(state: &AppState, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let mut handles = Vec::new();
    let pool = state.pool.clone();
    handles.push(tokio::spawn(every(
        "audit_seal",
        AUDIT_SEAL_PERIOD,
        None,
        shutdown.clone(),
        move || {
            let pool = pool.clone();
            async move { chain::seal(&pool).await.map(|_| ()) }
        },
    )));

    let block_state = state.clone();
    let block_interval = Duration::from_secs(u64::from(state.settings.block_interval_s));
    handles.push(tokio::spawn(every(
        "block_seal",
        BLOCK_SEAL_PERIOD,
        None,
        shutdown.clone(),
        move || {
            let state = block_state.clone();
            async move {
                seal::seal_due(&state.pool, &state.sealer, block_interval)
                    .await
                    .map(|_| ())
            }
        },
    )));

    let sms_state = state.clone();
    let sms_client = std::sync::Arc::new(std::sync::OnceLock::new());
    handles.push(tokio::spawn(every(
        "sms_outbox",
        SMS_PERIOD,
        None,
        shutdown.clone(),
        move || {
            let (state, client) = (sms_state.clone(), sms_client.clone());
            async move {
                let Some(self_url) = state.self_url.get() else {
                    return Ok(());
                };
                if client.get().is_none() {
                    let _ = client.set(sms::client(&state.settings, self_url)?);
                }
                match client.get() {
                    Some(client) => sms::worker::send_due(&state.pool, client).await.map(|_| ()),
                    None => Ok(()),
                }
            }
        },
    )));

    let mpesa_state = state.clone();
    handles.push(tokio::spawn(every(
        "mpesa_sweep",
        MPESA_SWEEP_PERIOD,
        None,
        shutdown.clone(),
        move || {
            let state = mpesa_state.clone();
            async move {
                if state.self_url.get().is_some() {
                    crate::mpesa::deposits::sweep(&state)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                Ok(())
            }
        },
    )));
    if state.settings.mpesa.env == crate::config::MpesaEnv::Simulator {
        let sim_state = state.clone();
        handles.push(tokio::spawn(every(
            "daraja_simulator",
            DARAJA_SIM_PERIOD,
            None,
            shutdown.clone(),
            move || {
                let state = sim_state.clone();
                async move { crate::sim::daraja::settle_due(&state).await }
            },
        )));
    }

    let pool = state.pool.clone();
    handles.push(tokio::spawn(every(
        "housekeeping",
        HOUSEKEEPING_PERIOD,
        None,
        shutdown.clone(),
        move || {
            let pool = pool.clone();
            async move {
                crate::housekeeping::prune(&pool)
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
        },
    )));

    let rescreen_state = state.clone();
    handles.push(tokio::spawn(every(
        "sanctions_rescreen",
        RESCREEN_PERIOD,
        Some(state.jobs.clone()),
        shutdown.clone(),
        move || {
            let state = rescreen_state.clone();
            async move {
                let rules = state.rules.get(&state.pool).await?;
                while sanctions::rescreen_stale(
                    &state.pool,
                    &state.sanctions,
                    rules.sanctions_threshold,
                )
                .await?
                    > 0
                {}
                Ok(())
            }
        },
    )));

    if state.settings.fx_feed == FxFeed::Simulated {
        let period = Duration::from_secs(u64::from(state.settings.fx_feed_interval_s));
        let pool = state.pool.clone();
        let rules = state.rules.clone();
        let walk = std::sync::Arc::new(tokio::sync::Mutex::new(RandomWalk::new(
            rand::rngs::StdRng::from_entropy(),
            Decimal::new(3, 3),
        )));
        handles.push(tokio::spawn(every(
            "fx_feed",
            period,
            None,
            shutdown,
            move || {
                let (pool, rules, walk) = (pool.clone(), rules.clone(), walk.clone());
                async move {
                    let mut walk = walk.lock().await;
                    if fx_tick(&pool, &mut *walk, period).await? {
                        rules.invalidate().await;
                    }
                    Ok(())
                }
            },
        )));
    }
    handles
}

/// Runs `tick` now and then every `period` (or when woken) until shutdown.
async fn every<F, Fut>(
    name: &'static str,
    period: Duration,
    wake: Option<std::sync::Arc<JobSignals>>,
    mut shutdown: watch::Receiver<bool>,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Err(error) = tick().await {
            tracing::warn!(
                job = name,
                error = format!("{error:#}"),
                "background job failed; retrying next period"
            );
        }
        let woken = async {
            match &wake {
                Some(signals) => signals.rescreen.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = woken => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One step of the simulated feed, unless another instance stepped within
/// the period. Returns whether rates changed.
async fn fx_tick(
    pool: &PgPool,
    source: &mut dyn RateSource,
    period: Duration,
) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let locked = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock($1) AS "locked!""#,
        FX_FEED_LOCK
    )
    .fetch_one(&mut *tx)
    .await?;
    let due = sqlx::query_scalar!(
        r#"SELECT coalesce(max(updated_at) FILTER (WHERE source = 'simulated'), '-infinity') < now() - make_interval(secs => $1)
           AS "due!" FROM fx_rates"#,
        period.as_secs_f64() * 0.9
    )
    .fetch_one(&mut *tx)
    .await?;
    if !locked || !due {
        return Ok(false);
    }
    let current: BTreeMap<String, Decimal> = sqlx::query!("SELECT currency, usd_mid FROM fx_rates")
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|row| (row.currency, row.usd_mid))
        .collect();
    let Some(next) = source.next_legs(&current) else {
        return Ok(false);
    };
    let (currencies, mids): (Vec<String>, Vec<Decimal>) = next.into_iter().unzip();
    sqlx::query!(
        "UPDATE fx_rates r SET usd_mid = n.usd_mid, source = 'simulated', updated_at = now()
         FROM unnest($1::text[], $2::numeric[]) AS n (currency, usd_mid) WHERE r.currency = n.currency",
        &currencies,
        &mids
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}
