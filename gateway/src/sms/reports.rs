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
    // A message reported twice in one batch gets one merged report (one
    // UPDATE cannot change a row twice): a final status is never undone by
    // a later progress report, and a reason once given is kept.
    let mut latest: Vec<Report> = Vec::with_capacity(batch.len());
    for waiting in &batch {
        let report = &waiting.report;
        match latest
            .iter_mut()
            .find(|r| r.at_message_id == report.at_message_id)
        {
            Some(merged) => {
                if is_final(&report.status) || !is_final(&merged.status) {
                    merged.status = report.status.clone();
                }
                if report.failure_reason.is_some() {
                    merged.failure_reason = report.failure_reason.clone();
                }
            }
            None => latest.push(report.clone()),
        }
    }
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

/// Delivered, or failed for good: what no later report changes.
fn is_final(status: &str) -> bool {
    matches!(status, "Success" | "Failed" | "Rejected")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_success_failed_and_rejected_are_final() {
        assert!(is_final("Success") && is_final("Failed") && is_final("Rejected"));
        assert!(!is_final("Buffered") && !is_final("Sent") && !is_final("Submitted"));
    }
}
