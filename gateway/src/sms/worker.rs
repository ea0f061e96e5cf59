//! Sending the outbox.
//!
//! A sender takes up to [`CLAIM`] due messages with `FOR UPDATE SKIP
//! LOCKED` in one short transaction, sends them all at once, records every
//! outcome in one statement and commits, so any number of instances (and
//! [`SENDERS`] senders within each) share the work and none sends a message
//! another is sending. Once Africa's Talking has accepted a message it is
//! never sent again; refusals it calls final are not retried; anything else
//! (network trouble, its 5xx codes) is retried with exponential backoff. A
//! crash mid-send rolls the claim back: those messages go out again (the
//! only way one is sent twice). A claim, or its record, that the database
//! does not answer within the patience given (a server gone silent) is given
//! up as a crash would be; the job's next pass claims on another connection.

use chainpay_core::africastalking::sms::Recipient;

use chainpay_core::crypto::aead::MasterKey;

use crate::clients::africastalking::{SmsClient, SmsError};
use crate::sms::outbox::SEALED_CONTEXT;
use sqlx::{PgConnection, PgPool};
use tokio::time::{timeout, Duration, Instant};

/// Most messages sent per pass (a pass ends sooner when nothing is due).
const BATCH: usize = 4_000;
/// No sender claims again once a pass has run this long, so a pass stays
/// well within its job's patience (`jobs::LONG_PASS_PATIENCE`, fifteen
/// minutes) even when every send waits out Africa's Talking's timeout: a
/// pass cut mid-send would send its claim again.
const PASS_BUDGET: Duration = Duration::from_secs(60);
/// Messages one sender claims, sends at once and records together.
const CLAIM: i64 = 20;
/// Senders at work at once per instance; each holds a pooled connection
/// while its messages are out.
const SENDERS: usize = 2;
/// Attempts before a message is given up as FAILED.
pub const MAX_ATTEMPTS: i32 = 8;

/// Seconds to wait after the `attempts`-th failure: 5, 10, 20 ... capped at 10 minutes.
pub fn backoff_seconds(attempts: i32) -> f64 {
    (5.0 * 2f64.powi(attempts.clamp(0, 16) - 1)).min(600.0)
}

/// Sends what is due, waiting at most `patience` for each claim and each
/// record; returns how many messages were handled.
pub async fn send_due(
    pool: &PgPool,
    client: &SmsClient,
    master: &MasterKey,
    patience: Duration,
) -> anyhow::Result<usize> {
    // Each sender claims again as soon as its last claim is recorded, so one
    // slow answer holds up only its own claim; the pass ends when every
    // sender finds nothing due or the pass's budgets are spent. An error stops
    // that sender only after what it had in flight is recorded: dropped
    // mid-send, messages Africa's Talking accepted would be sent again.
    let began = Instant::now();
    let senders = (0..SENDERS).map(|_| async {
        let mut handled = 0;
        while handled < BATCH / SENDERS && began.elapsed() < PASS_BUDGET {
            let sent = send_claim(pool, client, master, patience).await?;
            if sent == 0 {
                break;
            }
            handled += sent;
        }
        anyhow::Ok(handled)
    });
    let mut handled = 0;
    for outcome in futures::future::join_all(senders).await {
        match outcome {
            Ok(count) => handled += count,
            Err(error) => {
                tracing::warn!(error = format!("{error:#}"), "SMS sender failed");
                return Err(error);
            }
        }
    }
    Ok(handled)
}

/// A claimed message as it goes out.
struct Claimed {
    id: i64,
    to_phone: String,
    /// `None`: sealed under another key, it can never be sent.
    text: Option<String>,
    attempts: i32,
}

/// Claims up to [`CLAIM`] due messages, sends them and records what became
/// of each in the same short transaction; returns how many it handled.
async fn send_claim(
    pool: &PgPool,
    client: &SmsClient,
    master: &MasterKey,
    patience: Duration,
) -> anyhow::Result<usize> {
    let claim = async {
        let mut tx = pool.begin_with(crate::db::BEGIN_ON_PREPARED_PLANS).await?;
        let due = sqlx::query!(
            "SELECT id, to_phone, message, sealed_message, attempts FROM sms_outbox
         WHERE queued AND next_attempt_at <= now()
         ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED",
            CLAIM
        )
        .fetch_all(&mut *tx)
        .await?;
        sqlx::Result::Ok((tx, due))
    };
    let (mut tx, due) = within(patience, "claim", claim).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let claimed: Vec<Claimed> = due
        .into_iter()
        .map(|message| {
            // A message with a secret goes out as sealed; the masked copy stays.
            let text = match &message.sealed_message {
                None => Some(message.message),
                Some(sealed) => master
                    .open(sealed, SEALED_CONTEXT)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok()),
            };
            Claimed {
                id: message.id,
                to_phone: message.to_phone,
                text,
                attempts: message.attempts + 1,
            }
        })
        .collect();
    let outcomes = futures::future::join_all(claimed.iter().map(|message| async {
        match &message.text {
            Some(text) => Outcome::of(message, client.send(&message.to_phone, text).await),
            None => {
                tracing::error!(
                    sms_id = message.id,
                    "sealed SMS cannot be opened; giving up on it"
                );
                Outcome::unopenable(message)
            }
        }
    }))
    .await;
    let recorded = async {
        record(&mut tx, &outcomes).await?;
        tx.commit().await
    };
    within(patience, "record", recorded).await?;
    Ok(outcomes.len())
}

/// `step`'s result, or an error once the database has not answered it
/// within `patience`. Dropping a step mid-transaction rolls it back (sqlx
/// queues the rollback; the pool's bounded ping closes a silent connection).
async fn within<T>(
    patience: Duration,
    step: &str,
    work: impl std::future::Future<Output = sqlx::Result<T>>,
) -> anyhow::Result<T> {
    match timeout(patience, work).await {
        Ok(done) => Ok(done?),
        Err(_) => anyhow::bail!("the database did not answer the SMS {step} within {patience:?}"),
    }
}

/// Text from Africa's Talking as a row can hold it (PostgreSQL's text
/// cannot hold NUL; one such answer must not fail the whole claim).
fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// What became of one message, as its row records it.
struct Outcome {
    id: i64,
    /// `SENT`, `REJECTED`, `FAILED` or `QUEUED` (to be retried).
    status: &'static str,
    attempts: i32,
    at_message_id: Option<String>,
    at_status: Option<String>,
    at_status_code: Option<i32>,
    failure_reason: Option<String>,
    /// Seconds until the next attempt, for a message to be retried.
    retry_in: f64,
}

impl Outcome {
    /// Once Africa's Talking has accepted a message it is never sent again;
    /// a refusal it calls final is not retried; anything else waits and retries.
    fn of(message: &Claimed, sent: Result<Recipient, SmsError>) -> Self {
        let (id, attempts) = (message.id, message.attempts);
        let done = |status, recipient: Recipient, reason| Outcome {
            id,
            status,
            attempts,
            at_message_id: recipient.message_id.map(storable),
            at_status: Some(storable(recipient.status)),
            at_status_code: Some(recipient.status_code),
            failure_reason: reason,
            retry_in: 0.0,
        };
        match sent {
            Ok(recipient) if recipient.accepted() => done("SENT", recipient, None),
            Ok(recipient) if !recipient.retryable() => {
                tracing::warn!(
                    sms_id = id,
                    status_code = recipient.status_code,
                    "SMS refused for good"
                );
                let reason = Some(storable(recipient.status.clone()));
                Outcome {
                    at_message_id: None,
                    ..done("REJECTED", recipient, reason)
                }
            }
            outcome => {
                let reason = match &outcome {
                    Ok(recipient) => format!("{} ({})", recipient.status, recipient.status_code),
                    Err(SmsError::Unreachable(e)) | Err(SmsError::Refused { body: e, .. }) => {
                        e.clone()
                    }
                };
                tracing::warn!(sms_id = id, attempts, reason = %reason, "SMS not sent; will retry");
                let gives_up = attempts >= MAX_ATTEMPTS;
                Outcome {
                    id,
                    status: if gives_up { "FAILED" } else { "QUEUED" },
                    attempts,
                    at_message_id: None,
                    at_status: None,
                    at_status_code: None,
                    failure_reason: Some(storable(reason)),
                    retry_in: backoff_seconds(attempts),
                }
            }
        }
    }

    fn unopenable(message: &Claimed) -> Self {
        Outcome {
            id: message.id,
            status: "FAILED",
            attempts: message.attempts - 1,
            at_message_id: None,
            at_status: None,
            at_status_code: None,
            failure_reason: Some("sealed message cannot be opened".to_owned()),
            retry_in: 0.0,
        }
    }
}

/// Records every outcome in one statement. A message leaving the queue
/// loses its sealed text; one to be retried keeps it and waits.
async fn record(conn: &mut PgConnection, outcomes: &[Outcome]) -> sqlx::Result<()> {
    let column = |f: fn(&Outcome) -> Option<String>| outcomes.iter().map(f).collect::<Vec<_>>();
    sqlx::query!(
        "UPDATE sms_outbox o SET
             status = r.status,
             attempts = r.attempts,
             at_message_id = coalesce(r.at_message_id, o.at_message_id),
             at_status = coalesce(r.at_status, o.at_status),
             at_status_code = coalesce(r.at_status_code, o.at_status_code),
             failure_reason = coalesce(r.failure_reason, o.failure_reason),
             sent_at = CASE WHEN r.status = 'SENT' THEN now() ELSE o.sent_at END,
             sealed_message = CASE WHEN r.status = 'QUEUED' THEN o.sealed_message END,
             next_attempt_at = CASE WHEN r.status = 'QUEUED' THEN now() + make_interval(secs => r.retry_in)
                                    ELSE o.next_attempt_at END
         FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::int[], $7::text[], $8::float8[])
              AS r (id, status, attempts, at_message_id, at_status, at_status_code, failure_reason, retry_in)
         WHERE o.id = r.id",
        &outcomes.iter().map(|o| o.id).collect::<Vec<_>>(),
        &outcomes.iter().map(|o| o.status.to_owned()).collect::<Vec<_>>(),
        &outcomes.iter().map(|o| o.attempts).collect::<Vec<_>>(),
        &column(|o| o.at_message_id.clone()) as &[Option<String>],
        &column(|o| o.at_status.clone()) as &[Option<String>],
        &outcomes.iter().map(|o| o.at_status_code).collect::<Vec<_>>() as &[Option<i32>],
        &column(|o| o.failure_reason.clone()) as &[Option<String>],
        &outcomes.iter().map(|o| o.retry_in).collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
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
