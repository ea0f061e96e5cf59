//! Delivery reports applied in batches.
//!
//! Africa's Talking posts one report per message, two per transfer. Each
//! request waits for its report to be committed before it is answered (so a
//! report acknowledged is never lost), but the reports arriving together
//! are applied in one statement and one commit by a single worker per
//! instance: under load a batch holds whatever arrived while the last one
//! committed; alone, a report is a batch of one and waits for nothing.

use std::sync::OnceLock;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::outbox::{self, Report};

/// Most reports applied in one statement.
const MOST: usize = 1_000;

/// One instance's report queue; its worker starts with the first report.
#[derive(Default)]
pub struct Reports {
    queue: OnceLock<mpsc::Sender<Waiting>>,
}

struct Waiting {
    report: Report,
    /// Whether the message was found, once committed.
    known: oneshot::Sender<sqlx::Result<bool>>,
}

impl Reports {
    /// Applies `report`; `false` if it is about no message we sent.
    pub async fn apply(&self, pool: &PgPool, report: Report) -> sqlx::Result<bool> {
        let queue = self.queue.get_or_init(|| start(pool.clone()));
        let (known, answer) = oneshot::channel();
        let gone = || sqlx::Error::WorkerCrashed;
        queue
            .send(Waiting { report, known })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The worker holds the pool, not the state: it ends when the queue's last
/// sender (the state's) is dropped.
fn start(pool: PgPool) -> mpsc::Sender<Waiting> {
    let (queue, mut waiting) = mpsc::channel::<Waiting>(MOST * 4);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MOST);
        while waiting.recv_many(&mut batch, MOST).await > 0 {
            apply_batch(&pool, std::mem::take(&mut batch)).await;
        }
    });
    queue
}

async fn apply_batch(pool: &PgPool, batch: Vec<Waiting>) {
    // A message reported twice in one batch keeps the later report (one
    // UPDATE cannot change a row twice); both requests learn the outcome.
    let mut latest: Vec<Report> = Vec::with_capacity(batch.len());
    for waiting in batch.iter().rev() {
        if !latest
            .iter()
            .any(|r| r.at_message_id == waiting.report.at_message_id)
        {
            latest.push(waiting.report.clone());
        }
    }
    latest.reverse();
    let applied = async {
        let mut conn = pool.acquire().await?;
        outbox::apply_delivery_reports(&mut conn, &latest).await
    }
    .await;
    for waiting in batch {
        let outcome = match &applied {
            Ok(found) => Ok(found.contains(&waiting.report.at_message_id)),
            Err(error) => Err(sqlx::Error::Protocol(format!(
                "delivery reports not applied: {error}"
            ))),
        };
        let _ = waiting.known.send(outcome);
    }
}
