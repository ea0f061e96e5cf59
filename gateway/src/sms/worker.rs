//! Sending the outbox.
//!
//! Each message is taken with `FOR UPDATE SKIP LOCKED` inside its own short
//! transaction, sent, and its outcome recorded before the commit, so any
//! number of instances (and [`CONCURRENCY`] senders within each) share the
//! work and none sends a message another is sending. Once Africa's Talking has accepted a message it is never sent
//! again; refusals it calls final are not retried; anything else (network
//! trouble, its 5xx codes) is retried with exponential backoff.

use chainpay_core::africastalking::sms::Recipient;

use chainpay_core::crypto::aead::MasterKey;

use crate::clients::africastalking::{SmsClient, SmsError};
use crate::sms::outbox::SEALED_CONTEXT;
use sqlx::{PgConnection, PgPool};

/// Most messages sent per pass (a pass ends sooner when nothing is due).
const BATCH: usize = 2_000;
/// Messages in flight at once per instance: Africa's Talking's round trip
/// and each commit's flush overlap instead of queueing behind each other.
/// Each holds a pooled connection while its message is out.
const CONCURRENCY: usize = 8;
/// Attempts before a message is given up as FAILED.
pub const MAX_ATTEMPTS: i32 = 8;

/// Seconds to wait after the `attempts`-th failure: 5, 10, 20 ... capped at 10 minutes.
pub fn backoff_seconds(attempts: i32) -> f64 {
    (5.0 * 2f64.powi(attempts.clamp(0, 16) - 1)).min(600.0)
}

/// Sends what is due; returns how many messages were handled.
pub async fn send_due(
    pool: &PgPool,
    client: &SmsClient,
    master: &MasterKey,
) -> anyhow::Result<usize> {
    use futures::stream::{FuturesUnordered, StreamExt};
    // Up to CONCURRENCY senders: after each message sent the senders are
    // topped up again, so one slow answer holds up only its own slot and a
    // sender that found nothing due (the queue briefly empty, or the rest
    // locked by another instance) is back as soon as there is work again;
    // the pass ends when every sender finds nothing. An error stops new
    // sends, but what is in flight is let finish: dropped mid-send, a
    // message Africa's Talking accepted would be sent again.
    let mut senders: FuturesUnordered<_> = (0..CONCURRENCY)
        .map(|_| send_one(pool, client, master))
        .collect();
    let (mut started, mut handled, mut failure) = (CONCURRENCY, 0, None);
    while let Some(outcome) = senders.next().await {
        match outcome {
            Ok(true) => {
                handled += 1;
                while senders.len() < CONCURRENCY && started < BATCH && failure.is_none() {
                    senders.push(send_one(pool, client, master));
                    started += 1;
                }
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "SMS sender failed");
                failure = Some(error);
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(handled),
    }
}

/// Takes the next due message, sends it and records what became of it in
/// the same short transaction. `false` when nothing is due.
async fn send_one(pool: &PgPool, client: &SmsClient, master: &MasterKey) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    let due = sqlx::query!(
        "SELECT id, to_phone, message, sealed_message, attempts FROM sms_outbox
         WHERE status = 'QUEUED' AND next_attempt_at <= now()
         ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(message) = due else {
        return Ok(false);
    };
    let attempts = message.attempts + 1;
    // A message with a secret goes out as sealed; the masked copy stays.
    let opened = message.sealed_message.as_ref().map(|sealed| {
        master
            .open(sealed, SEALED_CONTEXT)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    });
    let text = match opened {
        None => message.message,
        Some(Some(text)) => text,
        Some(None) => {
            // Sealed under another key: it can never be sent, and must not
            // block the messages behind it.
            tracing::error!(
                sms_id = message.id,
                "sealed SMS cannot be opened; giving up on it"
            );
            sqlx::query!(
                "UPDATE sms_outbox SET status = 'FAILED', failure_reason = 'sealed message cannot be opened',
                        sealed_message = NULL WHERE id = $1",
                message.id
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(true);
        }
    };
    let sent = client.send(&message.to_phone, &text).await;
    record(&mut tx, message.id, attempts, sent).await?;
    tx.commit().await?;
    Ok(true)
}

/// Once Africa's Talking has accepted a message it is never sent again;
/// a refusal it calls final is not retried; anything else waits and retries.
async fn record(
    conn: &mut PgConnection,
    id: i64,
    attempts: i32,
    sent: Result<Recipient, SmsError>,
) -> sqlx::Result<()> {
    match sent {
        Ok(recipient) if recipient.accepted() => {
            sqlx::query!(
                "UPDATE sms_outbox SET status = 'SENT', attempts = $2, at_message_id = $3, at_status = $4,
                        at_status_code = $5, sent_at = now(), sealed_message = NULL WHERE id = $1",
                id,
                attempts,
                recipient.message_id,
                recipient.status,
                recipient.status_code
            )
            .execute(conn)
            .await?;
        }
        Ok(recipient) if !recipient.retryable() => {
            tracing::warn!(
                sms_id = id,
                status_code = recipient.status_code,
                "SMS refused for good"
            );
            sqlx::query!(
                "UPDATE sms_outbox SET status = 'REJECTED', attempts = $2, at_status = $3, at_status_code = $4,
                        failure_reason = $3, sealed_message = NULL WHERE id = $1",
                id,
                attempts,
                recipient.status,
                recipient.status_code
            )
            .execute(conn)
            .await?;
        }
        outcome => {
            let reason = match &outcome {
                Ok(recipient) => format!("{} ({})", recipient.status, recipient.status_code),
                Err(SmsError::Unreachable(e)) | Err(SmsError::Refused { body: e, .. }) => e.clone(),
            };
            tracing::warn!(sms_id = id, attempts, reason = %reason, "SMS not sent; will retry");
            sqlx::query!(
                "UPDATE sms_outbox SET attempts = $2, failure_reason = $3,
                        status = CASE WHEN $2::int >= $4::int THEN 'FAILED' ELSE 'QUEUED' END,
                        sealed_message = CASE WHEN $2::int >= $4::int THEN NULL ELSE sealed_message END,
                        next_attempt_at = now() + make_interval(secs => $5) WHERE id = $1",
                id,
                attempts,
                reason,
                MAX_ATTEMPTS,
                backoff_seconds(attempts)
            )
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_ten_minutes() {
        assert_eq!(backoff_seconds(1), 5.0);
        assert_eq!(backoff_seconds(2), 10.0);
        assert_eq!(backoff_seconds(4), 40.0);
        assert_eq!(backoff_seconds(12), 600.0);
    }
}
