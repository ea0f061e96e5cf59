//! The posting engine: transfers decided and committed in batches.
//!
//! Each instance runs `CHAINPAY_POSTING_WORKERS` workers. A worker takes
//! every transfer request waiting (up to `CHAINPAY_POSTING_BATCH`) and
//! decides them together in one database transaction ([`batch`]): one
//! statement per table for the whole batch, senders, idempotency keys and
//! accounts locked in one fixed order, each transfer decided in Rust in
//! arrival order against the balances and rolling windows the earlier ones
//! left, so a refusal never aborts its neighbours. The round trips and the
//! commit's WAL flush are paid once per batch, while each transfer still
//! gets everything it gets alone: its balanced journal entry, signature,
//! chain entry, audit row, both SMS and idempotency record; a refusal its
//! audit row, report and saved answer.
//!
//! If a batch cannot commit (a deadlock with another writer, a backstop
//! constraint, a lost connection) nothing of it was written, and each of its
//! transfers runs alone through [`super::run`], which decides it as before.
//! If the commit's answer is lost and the batch's transfers cannot be found,
//! whether it took effect is unknown: each request gets an error (a keyed
//! retry replays whichever it was) and nothing is decided again. Every step
//! on a batch's connection waits at most `CHAINPAY_POSTING_PATIENCE_MS`
//! from its oldest request's arrival at the engine (a server that went
//! silent would otherwise hold the worker until the kernel gives up on the
//! socket): past it, before the commit, nothing was written and each
//! request gets an error; during it, as when the commit's answer is lost.
//! Either way the connection is closed. A request whose patience is spent
//! before its batch starts is answered with an error rather than posted
//! after its caller's request timed out. (A transfer run alone after its
//! batch failed has no such bound once it starts.)
//! Under light load a batch is one transfer, decided at once. Under load
//! (the worker's last batch held more than one), a batch stays open for
//! `CHAINPAY_POSTING_WINDOW_US` (1 ms) or until it is full.

mod batch;
mod phases;
mod write;

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::time::{Duration, Instant};

use super::transfer::SendOrder;
use super::{replay, Reply};
use crate::audit::REQUEST_ID;
use crate::config::Settings;
use crate::error::Error;
use crate::idempotency::IdempotencyKey;
use crate::state::AppState;
use batch::{Failed, Verdict};

/// Transfers waiting for a worker, per worker and batch, before a request
/// waits to be queued.
const QUEUED_BATCHES_PER_WORKER: usize = 4;

/// Transfers of a failed batch decided alone at once (each holds a pooled
/// connection).
const ALONE_AT_ONCE: usize = 4;

/// One instance's posting engine; its workers start with the first transfer.
#[derive(Default)]
pub struct Engine {
    queue: OnceLock<mpsc::Sender<Job>>,
}

/// A transfer waiting for its batch, and where its answer goes.
pub struct Job {
    pub state: AppState,
    pub order: SendOrder,
    pub key: Option<IdempotencyKey>,
    /// The HTTP request's id, for the audit rows.
    pub request_id: Option<String>,
    /// When it reached the engine: its patience counts from here.
    arrived: Instant,
    reply: oneshot::Sender<Reply>,
}

impl Engine {
    /// Decides `order` in the next batch and answers as [`super::run`] would.
    pub async fn send(
        &self,
        state: &AppState,
        order: SendOrder,
        key: Option<IdempotencyKey>,
    ) -> Reply {
        let queue = self.queue.get_or_init(|| start(&state.settings));
        let (reply, answer) = oneshot::channel();
        let job = Job {
            state: state.clone(),
            order,
            key,
            request_id: REQUEST_ID.try_with(Clone::clone).ok(),
            arrived: Instant::now(),
            reply,
        };
        if queue.send(job).await.is_err() {
            return Reply::fresh(Err(Error::internal("the posting engine has stopped")));
        }
        answer.await.unwrap_or_else(|_| {
            Reply::fresh(Err(Error::internal(
                "the posting engine dropped a transfer",
            )))
        })
    }
}

/// Starts the workers. Jobs carry the state, so the workers hold nothing
/// that keeps the queue open: they end when the last state is dropped.
fn start(settings: &Settings) -> mpsc::Sender<Job> {
    let workers = settings.posting_workers.max(1) as usize;
    let most = settings.posting_batch.max(1) as usize;
    let window = Duration::from_micros(u64::from(settings.posting_window_us));
    let patience = Duration::from_millis(u64::from(settings.posting_patience_ms));
    let (queue, jobs) = mpsc::channel(workers * most * QUEUED_BATCHES_PER_WORKER);
    let jobs = Arc::new(Mutex::new(jobs));
    for _ in 0..workers {
        tokio::spawn(work(jobs.clone(), most, window, patience));
    }
    queue
}

/// Takes whatever is waiting (at least one job, at most `most`), posts it
/// within `patience`, and again, until the queue closes.
async fn work(
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    most: usize,
    window: Duration,
    patience: Duration,
) {
    let mut last_batch = 0;
    loop {
        let mut taken = Vec::with_capacity(most);
        {
            let mut queue = jobs.lock().await;
            if queue.recv_many(&mut taken, most).await == 0 {
                return;
            }
            let open_until = stays_open(last_batch, window).map(|w| Instant::now() + w);
            gather(&mut queue, &mut taken, most, open_until).await;
        }
        last_batch = taken.len();
        // A panic fails this batch's requests (their answers are dropped)
        // but not the worker.
        if AssertUnwindSafe(post(taken, patience))
            .catch_unwind()
            .await
            .is_err()
        {
            tracing::error!("a transfer batch panicked; its requests were answered with an error");
        }
    }
}

/// How long a batch stays open for more transfers: the whole `window` when
/// the worker's last batch held more than one (the instance is under load,
/// and every transfer that joins shares the batch's round trips, locks and
/// commit), none otherwise, so a lone transfer under light load is never
/// kept waiting. Measured on two cores (README, Benchmarks): a 1 ms window
/// doubled the batches of two instances on one database and took a fifth of
/// PostgreSQL's CPU per transfer off one.
fn stays_open(last_batch: usize, window: Duration) -> Option<Duration> {
    (last_batch > 1 && !window.is_zero()).then_some(window)
}

/// Rounds of letting the runtime run before a batch is closed.
const GATHER_ROUNDS: usize = 4;

/// Lets the requests already being handled on this instance join the batch:
/// yields to the runtime (microseconds, not a timer) and takes what arrived,
/// until a round brings nothing or the batch is full. Then, while the batch
/// is `open_until` a deadline (under load, see [`stays_open`]), takes what
/// arrives until the deadline or until the batch is full (tokio's timer
/// rounds the deadline up to its next millisecond).
async fn gather<T>(
    queue: &mut mpsc::Receiver<T>,
    taken: &mut Vec<T>,
    most: usize,
    open_until: Option<Instant>,
) {
    for _ in 0..GATHER_ROUNDS {
        let before = taken.len();
        tokio::task::yield_now().await;
        while taken.len() < most {
            match queue.try_recv() {
                Ok(job) => taken.push(job),
                Err(_) => break,
            }
        }
        if taken.len() == before || taken.len() >= most {
            break;
        }
    }
    let Some(deadline) = open_until else {
        return;
    };
    while taken.len() < most {
        match tokio::time::timeout_at(deadline, queue.recv()).await {
            Ok(Some(job)) => taken.push(job),
            Ok(None) | Err(_) => return,
        }
    }
}

async fn post(jobs: Vec<Job>, patience: Duration) {
    // A request that has gone (timed out, disconnected) is not decided: its
    // caller was told nothing moved, and may have tried again.
    let jobs: Vec<Job> = jobs
        .into_iter()
        .filter(|job| !job.reply.is_closed())
        .collect();
    let Some(state) = jobs.first().map(|job| job.state.clone()) else {
        return;
    };
    // Patience counts from each request's arrival, not the batch's start: a
    // request that waited in the queue has less of it left, and its answer
    // must come before the request times out (a transfer posted after its
    // caller was told to retry could be paid twice). One whose patience is
    // spent is answered as a batch given up is; the rest are timed from the
    // oldest of them.
    let now = Instant::now();
    let (jobs, spent): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|job| job.arrived + patience > now);
    answer_all(spent, batch::no_answer);
    let Some(oldest) = jobs.iter().map(|job| job.arrived).min() else {
        return;
    };
    let left = (oldest + patience).saturating_duration_since(now);
    match batch::commit(&state, &jobs, left).await {
        Ok(verdicts) => {
            // Every decided answer goes out before any replay is read; the
            // replays share one more patience.
            let mut replays = Vec::new();
            for (job, verdict) in jobs.into_iter().zip(verdicts) {
                match verdict {
                    Verdict::Done(outcome) => {
                        let _ = job.reply.send(Reply::fresh(*outcome));
                    }
                    Verdict::Replay => replays.push(job),
                }
            }
            let until = Instant::now() + patience;
            for job in replays {
                let reply = match &job.key {
                    Some(key) => tokio::time::timeout_at(until, replay(&state, key))
                        .await
                        .unwrap_or_else(|_| Err(batch::no_answer()))
                        .unwrap_or_else(|e| Reply::fresh(Err(e))),
                    None => Reply::fresh(Err(Error::internal("a replay without a key"))),
                };
                let _ = job.reply.send(reply);
            }
        }
        Err(Failed::NotWritten(error)) => {
            tracing::warn!(error = %error, transfers = jobs.len(), "transfer batch not committed; running each alone");
            futures::stream::iter(jobs)
                .for_each_concurrent(ALONE_AT_ONCE, |job| alone(job, patience))
                .await;
        }
        Err(Failed::GaveUp(error)) => {
            tracing::error!(error = %error, transfers = jobs.len(), patience_ms = patience.as_millis(), "transfer batch: the database did not answer in time; nothing written, answering with an error");
            answer_all(jobs, batch::no_answer);
        }
        Err(Failed::Unknown(error)) => {
            tracing::error!(error = %error, transfers = jobs.len(), "transfer batch: commit unconfirmed; answering with an error");
            answer_all(jobs, || {
                Error::internal("the transfer's commit was not confirmed")
            });
        }
    }
}

/// Answers every job of a batch that has no verdicts with `error`.
fn answer_all(jobs: Vec<Job>, error: impl Fn() -> Error) {
    for job in jobs {
        let _ = job.reply.send(Reply::fresh(Err(error())));
    }
}

/// Runs one transfer in a transaction of its own, under its request's id,
/// unless its request has gone meanwhile (as [`post`] leaves such a request
/// undecided: its caller was told nothing moved) or its patience is spent
/// (it is answered as a batch given up is).
async fn alone(job: Job, patience: Duration) {
    if job.reply.is_closed() {
        return;
    }
    if job.arrived + patience <= Instant::now() {
        let _ = job.reply.send(Reply::fresh(Err(batch::no_answer())));
        return;
    }
    let run = super::run(&job.state, &job.order, job.key);
    let reply = match job.request_id {
        Some(id) => REQUEST_ID.scope(id, run).await,
        None => run.await,
    };
    let _ = job.reply.send(reply);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_waits_only_after_a_batch_of_several() {
        let window = Duration::from_millis(1);
        assert_eq!(stays_open(0, window), None, "the first batch");
        assert_eq!(stays_open(1, window), None, "after a lone transfer");
        assert_eq!(stays_open(2, window), Some(window));
        assert_eq!(stays_open(9, Duration::ZERO), None, "a window of 0");
    }

    /// Sends `jobs` after `after`, one by one.
    fn arriving(queue: mpsc::Sender<u32>, after: Duration, jobs: std::ops::Range<u32>) {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            for job in jobs {
                queue.send(job).await.unwrap();
            }
        });
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_batch_takes_what_arrives_before_its_deadline() {
        let (queue, mut jobs) = mpsc::channel(16);
        arriving(queue.clone(), Duration::from_micros(400), 1..4);
        arriving(queue, Duration::from_millis(5), 4..6);
        let began = Instant::now();
        let mut taken = vec![0];
        gather(
            &mut jobs,
            &mut taken,
            16,
            Some(began + Duration::from_millis(2)),
        )
        .await;
        assert_eq!(taken, [0, 1, 2, 3], "the late ones wait for the next batch");
        assert!(began.elapsed() >= Duration::from_millis(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_batch_closes_as_soon_as_it_is_full() {
        let (queue, mut jobs) = mpsc::channel(16);
        arriving(queue, Duration::from_micros(300), 1..10);
        let began = Instant::now();
        let mut taken = vec![0];
        gather(
            &mut jobs,
            &mut taken,
            4,
            Some(began + Duration::from_secs(60)),
        )
        .await;
        assert_eq!(taken, [0, 1, 2, 3]);
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "{:?}",
            began.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_batch_takes_only_what_is_waiting() {
        let (queue, mut jobs) = mpsc::channel(16);
        queue.send(1).await.unwrap();
        arriving(queue, Duration::from_millis(1), 2..4);
        let began = Instant::now();
        let mut taken = vec![0];
        gather(&mut jobs, &mut taken, 16, None).await;
        assert_eq!(taken, [0, 1]);
        assert_eq!(began.elapsed(), Duration::ZERO, "no timer");
    }
}
