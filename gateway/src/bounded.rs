//! Background work done item by item — an item claimed (or locked), an
//! upstream service called about it, the answer recorded — each item
//! bounded in time.
//!
//! Each call has its client's own timeout, but the database steps around it
//! have none: on a server gone silent (README, Reliability) a step would
//! wait until the kernel gave up on the socket, and the job with it. An item
//! that outlasts [`ITEM_PATIENCE`] is given up as a crash would give it up,
//! and the job's next pass takes it (or the next) on another connection:
//! an STK Query or Transaction Status question is asked again (a read), a
//! webhook delivery is sent again once its lease ends (delivery is at least
//! once; receivers tell repeats by `webhook-id`), and a payout's submission
//! runs in a task of its own (`withdrawals::submit_detached`), so giving up
//! on it never cuts Safaricom's answer from its record.

use std::future::Future;
use std::time::Duration;

use crate::error::Error;

/// How long one item may take: about twice the slowest a Daraja call can
/// rightly be (a token fetch and the call itself, each three tries of up to
/// 20 s: about two minutes), with the database steps around it; a
/// merchant's webhook endpoint has 10 s.
pub const ITEM_PATIENCE: Duration = Duration::from_secs(240);

/// `work`'s result, or an error once it has taken [`ITEM_PATIENCE`].
pub async fn item<T>(work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::time::timeout(ITEM_PATIENCE, work)
        .await
        .unwrap_or_else(|_| {
            Err(Error::internal(format!(
                "an item of background work was given up after {ITEM_PATIENCE:?}"
            )))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_item_that_never_ends_is_given_up_after_its_patience() {
        let started = tokio::time::Instant::now();
        let given_up = item(std::future::pending::<Result<(), Error>>()).await;
        assert!(matches!(given_up, Err(Error::Internal(_))));
        assert!(started.elapsed() >= ITEM_PATIENCE);
        assert!(started.elapsed() < ITEM_PATIENCE + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_item_within_its_patience_keeps_its_result() {
        let done = item(async {
            tokio::time::sleep(ITEM_PATIENCE - Duration::from_secs(1)).await;
            Ok(7)
        })
        .await;
        assert_eq!(done.unwrap(), 7);
    }
}
