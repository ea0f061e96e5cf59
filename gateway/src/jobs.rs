//! Background jobs: each runs at its own pace, in batches, and is safe to
//! run on every gateway instance at once (single-writer work takes a
//! PostgreSQL advisory lock; the rest is idempotent).
//!
//! - audit sealer: links committed audit rows into the hash chain (1 s);
//! - block sealer: seals queued transactions into blocks when 50 are
//!   waiting or the oldest has waited `CHAINPAY_BLOCK_INTERVAL_S`;
//! - SMS outbox: sends queued messages through Africa's Talking (0.5 s);
//! - webhooks: sends merchants' due webhook deliveries (0.25 s);
//! - payment requests: expires those past their time (5 s);
//! - M-Pesa sweeper: asks STK Query about deposits whose callback is overdue
//!   (expiring them at `MPESA_QUERY_DEADLINE_S`), and Transaction Status
//!   about payouts whose answer is overdue;
//! - reconciliation: every `CHAINPAY_RECON_INTERVAL_S`, once across instances;
//! - Daraja simulator (simulator mode only): settles prompts and payouts;
//! - housekeeping: prunes finished USSD sessions, idle rate-limit windows,
//!   expired revocations and quotes, week-old idempotency records (10 min);
//! - sanctions re-screening: screens users against a changed list (10 s, or
//!   at once when an operator adds an entry);
//! - FX feed: the simulated random walk, when configured;
//! - read replica: measures `DATABASE_READ_URL`'s lag (1 s), when configured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chainpay_core::fx::{RandomWalk, RateSource};
use futures::future::BoxFuture;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rust_decimal::Decimal;
use sqlx::PgPool;
use tokio::sync::{watch, Mutex, Notify};
use tokio::task::JoinHandle;

use crate::audit::chain;
use crate::chain::seal;
use crate::compliance::sanctions;
use crate::config::FxFeed;
use crate::sms;
use crate::state::AppState;

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
/// How often due webhook deliveries are sent.
const WEBHOOK_PERIOD: Duration = Duration::from_millis(250);
/// How often payment requests past their time are expired.
const REQUEST_EXPIRY_PERIOD: Duration = Duration::from_secs(5);
/// How often vouchers past their expiry are refunded.
const VOUCHER_EXPIRY_PERIOD: Duration = Duration::from_secs(5);
/// How often the read replica's lag is measured.
const REPLICA_CHECK_PERIOD: Duration = Duration::from_secs(1);
/// How often the reconciliation job looks whether a run is due.
const RECON_POLL_PERIOD: Duration = Duration::from_secs(30);
/// The longest a pass that talks only to the database may take. Each such
/// pass works in batches of milliseconds, each its own transaction, so a
/// pass cut short keeps what it committed and the next one goes on; the
/// bound is for a database server gone silent, on which a read would
/// otherwise wait until the kernel gives up on the socket (without end once
/// the server has acknowledged the query: sqlx sets no TCP keepalive).
const PASS_PATIENCE: Duration = Duration::from_secs(60);
/// The longest a pass that may rightly take minutes may take: one that waits
/// on upstream services (Daraja, Africa's Talking, merchants' endpoints;
/// each call bounded by its client's timeout, each item given up after
/// `bounded::ITEM_PATIENCE`; what a pass cut short sends again is what a
/// crash would) or whose statements scan whole tables (housekeeping,
/// re-screening).
const LONG_PASS_PATIENCE: Duration = Duration::from_secs(15 * 60);
/// Advisory lock of the FX feed, so instances take turns.
const FX_FEED_LOCK: i64 = 0x4348_4149_4e46_5846;

/// One background job: what it is called, how often it runs, and one pass
/// of its work. A pass that fails, or outlasts its patience, is logged with
/// its cause and tried again next period.
///
/// Generic over what a pass is given (the application state, in the
/// gateway) so the runner can be tested alone.
struct Job<S = AppState> {
    name: &'static str,
    period: Duration,
    /// How long a pass may take before it is abandoned, as shutdown
    /// abandons one.
    patience: Duration,
    /// Runs early when notified (the sanctions list changed, say).
    wake: Option<fn(&S) -> &Notify>,
    tick: Tick<S>,
}

type Tick<S> = Box<dyn Fn(S) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

impl Job {
    fn new(
        name: &'static str,
        period: Duration,
        tick: impl Fn(AppState) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync + 'static,
    ) -> Self {
        Self::given(name, period, tick)
    }
}

impl<S> Job<S> {
    /// A job whose passes are given `S`.
    fn given(
        name: &'static str,
        period: Duration,
        tick: impl Fn(S) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name,
            period,
            patience: PASS_PATIENCE,
            wake: None,
            tick: Box::new(tick),
        }
    }

    /// The job's passes may take `patience` rather than [`PASS_PATIENCE`].
    fn patient(self, patience: Duration) -> Self {
        Self { patience, ..self }
    }
}

/// The jobs these settings call for.
fn jobs(state: &AppState) -> Vec<Job> {
    let started = std::time::Instant::now();
    let mut jobs = vec![
        Job::new("audit_seal", AUDIT_SEAL_PERIOD, |state| {
            Box::pin(async move { chain::seal(&state.pool).await.map(|_| ()) })
        }),
        Job::new("block_seal", BLOCK_SEAL_PERIOD, |state| {
            Box::pin(seal_blocks(state))
        }),
        Job::new("sms_outbox", SMS_PERIOD, |state| Box::pin(send_sms(state)))
            .patient(LONG_PASS_PATIENCE),
        Job::new("mpesa_sweep", MPESA_SWEEP_PERIOD, |state| {
            Box::pin(async move {
                // Each recovery runs whatever the others' trouble, side by
                // side: deposits whose STK Query hangs cannot hold up
                // payouts' recovery until the pass is given up.
                let (deposits, reports, payouts) = tokio::join!(
                    crate::mpesa::deposits::sweep(&state),
                    crate::mpesa::paid_reports::sweep(&state),
                    crate::mpesa::payout_status::recover(&state)
                );
                deposits?;
                reports?;
                payouts?;
                Ok(())
            })
        })
        .patient(LONG_PASS_PATIENCE),
        // A run outliving this is taken by other instances to have died,
        // and one of them may start another.
        Job::new("reconciliation", recon_period(state), move |state| {
            Box::pin(reconcile(state, started))
        })
        .patient(crate::reconciliation::RUN_TIMEOUT),
        Job::new("webhooks", WEBHOOK_PERIOD, |state| {
            Box::pin(async move {
                Ok(crate::merchants::webhooks::deliver_due(&state)
                    .await
                    .map(|_| ())?)
            })
        })
        .patient(LONG_PASS_PATIENCE),
        Job::new("voucher_expiry", VOUCHER_EXPIRY_PERIOD, |state| {
            Box::pin(async move { Ok(crate::vouchers::expire_due(&state).await.map(|_| ())?) })
        }),
        Job::new("payment_request_expiry", REQUEST_EXPIRY_PERIOD, |state| {
            Box::pin(async move {
                Ok(crate::merchants::requests::expire_due(&state)
                    .await
                    .map(|_| ())?)
            })
        }),
        Job::new("housekeeping", HOUSEKEEPING_PERIOD, |state| {
            Box::pin(async move { Ok(crate::housekeeping::prune(&state.pool).await.map(|_| ())?) })
        })
        .patient(LONG_PASS_PATIENCE),
        Job {
            wake: Some(|state| &state.jobs.rescreen),
            ..Job::new("sanctions_rescreen", RESCREEN_PERIOD, |state| {
                Box::pin(rescreen(state))
            })
            .patient(LONG_PASS_PATIENCE)
        },
    ];
    if state.settings.database_read_url.is_some() {
        jobs.push(Job::new("read_replica", REPLICA_CHECK_PERIOD, |state| {
            Box::pin(async move { state.reads.check().await })
        }));
    }
    if state.settings.mpesa.env == crate::config::MpesaEnv::Simulator {
        jobs.push(
            Job::new("daraja_simulator", DARAJA_SIM_PERIOD, |state| {
                Box::pin(async move { crate::sim::daraja::settle_due(&state).await })
            })
            .patient(LONG_PASS_PATIENCE),
        );
    }
    if state.settings.fx_feed == FxFeed::Simulated {
        let walk = Arc::new(Mutex::new(RandomWalk::new(
            StdRng::from_entropy(),
            Decimal::new(3, 3),
        )));
        let period = Duration::from_secs(u64::from(state.settings.fx_feed_interval_s));
        jobs.push(Job::new("fx_feed", period, move |state| {
            Box::pin(fx_step(state, walk.clone()))
        }));
    }
    jobs
}

/// Starts every job; they stop when `shutdown` turns true.
pub fn spawn_all(state: &AppState, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    jobs(state)
        .into_iter()
        .map(|job| {
            // Every job's failure series from the start, at zero, so a
            // first failure shows as an increase.
            for why in [FAILED, ABANDONED] {
                state
                    .metrics
                    .job_failures
                    .with_label_values(&[job.name, why]);
            }
            tokio::spawn(every(job, state.clone(), shutdown.clone()))
        })
        .collect()
}

/// Why a pass failed, as `chainpay_job_pass_failures_total` labels it: it
/// returned an error, or it outlasted its patience.
const FAILED: &str = "error";
const ABANDONED: &str = "abandoned";

fn recon_period(state: &AppState) -> Duration {
    Duration::from_secs(u64::from(state.settings.recon_interval_s)).min(RECON_POLL_PERIOD)
}

/// The scheduled reconciliation, when it is due; Account Balance is asked
/// only then. On a database that has never had a scheduled run, the first
/// comes an interval after this instance started.
async fn reconcile(state: AppState, started: std::time::Instant) -> anyhow::Result<()> {
    let interval = u64::from(state.settings.recon_interval_s);
    let just_started = started.elapsed().as_secs() < interval;
    let balance = crate::reconciliation::float::ask(&state);
    crate::reconciliation::run_if_due(
        &state.pool,
        &state.keys.master,
        interval,
        just_started,
        balance,
        &state.metrics,
    )
    .await?;
    Ok(())
}

async fn seal_blocks(state: AppState) -> anyhow::Result<()> {
    let interval = Duration::from_secs(u64::from(state.settings.block_interval_s));
    seal::seal_due(&state.pool, &state.sealer, interval).await?;
    Ok(())
}

async fn send_sms(state: AppState) -> anyhow::Result<()> {
    if state.self_url.get().is_none() {
        return Ok(());
    }
    let patience = Duration::from_millis(u64::from(state.settings.posting_patience_ms));
    sms::worker::send_due(&state.pool, state.sms()?, &state.keys.master, patience).await?;
    Ok(())
}

async fn rescreen(state: AppState) -> anyhow::Result<()> {
    let rules = state.rules.get(&state.pool).await?;
    while sanctions::rescreen_stale(&state.pool, &state.sanctions, rules.sanctions_threshold)
        .await?
        > 0
    {}
    Ok(())
}

async fn fx_step(state: AppState, walk: Arc<Mutex<RandomWalk<StdRng>>>) -> anyhow::Result<()> {
    let period = Duration::from_secs(u64::from(state.settings.fx_feed_interval_s));
    let mut walk = walk.lock().await;
    if fx_tick(&state.pool, &mut *walk, period).await? {
        state.rules.invalidate().await;
    }
    Ok(())
}

/// What a job's passes are given: it counts their failures.
trait Counts: Clone {
    /// Counts a pass of `job` that failed: `error` or `abandoned`.
    fn count_failure(&self, job: &'static str, why: &'static str);
}

impl Counts for AppState {
    fn count_failure(&self, job: &'static str, why: &'static str) {
        self.metrics
            .job_failures
            .with_label_values(&[job, why])
            .inc();
    }
}

/// Runs the job now and then every period (or when woken) until shutdown.
async fn every<S: Counts>(job: Job<S>, state: S, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        // A pass is abandoned the moment shutdown is asked for, or once it
        // has taken its patience: each is one database transaction (or
        // idempotent steps), so dropping it rolls back, and waiting for a
        // slow upstream or a silent database must not hold the job.
        let pass = tokio::select! {
            result = tokio::time::timeout(job.patience, (job.tick)(state.clone())) => result,
            _ = shutdown.changed() => return,
        };
        match pass {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                state.count_failure(job.name, FAILED);
                tracing::warn!(
                    job = job.name,
                    error = format!("{error:#}"),
                    "background job failed; retrying next period"
                );
            }
            Err(_) => {
                state.count_failure(job.name, ABANDONED);
                tracing::error!(
                    job = job.name,
                    patience_s = job.patience.as_secs(),
                    "background job pass outlasted its patience and was abandoned; retrying next period"
                );
            }
        }
        let woken = async {
            match job.wake {
                Some(notify) => notify(&state).notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(job.period) => {}
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
    let current: BTreeMap<String, Decimal> =
        sqlx::query!("SELECT currency, usd_mid FROM fx_rates ORDER BY currency FOR UPDATE")
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Passes run, and those abandoned, of a test job.
    #[derive(Default)]
    struct Passes {
        run: AtomicUsize,
        abandoned: AtomicUsize,
    }

    impl Counts for Arc<Passes> {
        fn count_failure(&self, _job: &'static str, why: &'static str) {
            if why == ABANDONED {
                self.abandoned.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// A job whose first pass never ends (a read on a silent server) and
    /// whose later passes count themselves.
    fn hanging_once() -> (Job<Arc<Passes>>, Arc<Passes>) {
        let passes = Arc::new(Passes::default());
        let job = Job::given(
            "hangs_once",
            Duration::from_secs(1),
            |passes: Arc<Passes>| {
                Box::pin(async move {
                    if passes.run.fetch_add(1, Ordering::SeqCst) == 0 {
                        std::future::pending::<()>().await;
                    }
                    Ok(())
                })
            },
        );
        (job, passes)
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_that_never_ends_is_abandoned_after_its_patience_and_the_job_goes_on() {
        let (job, passes) = hanging_once();
        let (_stop, shutdown) = watch::channel(false);
        let runner = tokio::spawn(every(job, passes.clone(), shutdown));
        tokio::time::sleep(PASS_PATIENCE - Duration::from_secs(1)).await;
        assert_eq!(passes.run.load(Ordering::SeqCst), 1, "still in the first");
        assert_eq!(passes.abandoned.load(Ordering::SeqCst), 0);
        // The patience, then one period, then the next pass.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(passes.run.load(Ordering::SeqCst) >= 2, "the job went on");
        assert_eq!(passes.abandoned.load(Ordering::SeqCst), 1, "counted");
        runner.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_patient_job_is_given_longer() {
        let (job, passes) = hanging_once();
        let job = job.patient(LONG_PASS_PATIENCE);
        let (_stop, shutdown) = watch::channel(false);
        let runner = tokio::spawn(every(job, passes.clone(), shutdown));
        tokio::time::sleep(LONG_PASS_PATIENCE - Duration::from_secs(1)).await;
        assert_eq!(passes.run.load(Ordering::SeqCst), 1, "still in the first");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(passes.run.load(Ordering::SeqCst) >= 2, "the job went on");
        runner.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_a_job_mid_pass() {
        let (job, passes) = hanging_once();
        let (stop, shutdown) = watch::channel(false);
        let runner = tokio::spawn(every(job, passes, shutdown));
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), runner)
            .await
            .expect("the job stops at once")
            .unwrap();
    }
}
