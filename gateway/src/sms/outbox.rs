//! Queuing messages in the caller's transaction, so a movement and its
//! confirmations commit together (and a crash after commit loses none).

use chainpay_core::crypto::aead::MasterKey;
use sqlx::PgConnection;
use uuid::Uuid;

/// Longest message queued: six concatenated SMS parts.
const MAX_MESSAGE_CHARS: usize = 918;

pub async fn queue(
    conn: &mut PgConnection,
    to_phone: &str,
    message: &str,
    tx_id: Option<Uuid>,
) -> sqlx::Result<()> {
    queue_all(conn, &[(to_phone, message)], tx_id).await
}

/// Queues several messages in one round trip (a movement's confirmations).
/// The text as the outbox keeps it: at most six SMS parts.
pub fn clip(text: &str) -> String {
    text.chars().take(MAX_MESSAGE_CHARS).collect()
}

pub async fn queue_all(
    conn: &mut PgConnection,
    messages: &[(&str, &str)],
    tx_id: Option<Uuid>,
) -> sqlx::Result<()> {
    let phones: Vec<String> = messages
        .iter()
        .map(|(phone, _)| (*phone).to_owned())
        .collect();
    let texts: Vec<String> = messages.iter().map(|(_, text)| clip(text)).collect();
    sqlx::query!(
        "INSERT INTO sms_outbox (to_phone, message, tx_id)
         SELECT phone, message, $3 FROM unnest($1::text[], $2::text[]) AS m (phone, message)",
        &phones,
        &texts,
        tx_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What a sealed message is bound to: it opens only as an outbox message.
pub const SEALED_CONTEXT: &[u8] = b"sms_outbox.sealed_message";

/// Queues a message that carries a secret (a voucher code): operators see
/// `masked`; `full` is sealed under the master key, sent, then erased.
pub async fn queue_sealed(
    conn: &mut PgConnection,
    master: &MasterKey,
    to_phone: &str,
    masked: &str,
    full: &str,
    tx_id: Option<Uuid>,
) -> sqlx::Result<()> {
    let masked: String = masked.chars().take(MAX_MESSAGE_CHARS).collect();
    let full: String = full.chars().take(MAX_MESSAGE_CHARS).collect();
    let sealed = master.seal(full.as_bytes(), SEALED_CONTEXT);
    sqlx::query!(
        "INSERT INTO sms_outbox (to_phone, message, sealed_message, tx_id) VALUES ($1, $2, $3, $4)",
        to_phone,
        masked,
        sealed,
        tx_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An Africa's Talking delivery report about one of our messages.
#[derive(Debug, Clone)]
pub struct Report {
    pub at_message_id: String,
    /// `Success` is final delivery; `Failed` and `Rejected` are final
    /// failures; anything else (`Sent`, `Submitted`, `Buffered`) is progress.
    pub status: String,
    pub failure_reason: Option<String>,
}

/// Applies delivery reports to the messages they are about, in one
/// statement; returns the ids of the messages it found. Each message
/// appears once in `reports` (see [`super::reports`]).
pub async fn apply_delivery_reports(
    conn: &mut PgConnection,
    reports: &[Report],
) -> sqlx::Result<Vec<String>> {
    let ids: Vec<String> = reports.iter().map(|r| r.at_message_id.clone()).collect();
    let statuses: Vec<String> = reports.iter().map(|r| r.status.clone()).collect();
    let reasons: Vec<Option<String>> = reports.iter().map(|r| r.failure_reason.clone()).collect();
    sqlx::query_scalar!(
        // A message delivered stays delivered, and one failed by a report
        // stays failed unless one says it was delivered after all: a late
        // or repeated report (progress after the end, a stray failure)
        // changes nothing.
        r#"UPDATE sms_outbox o SET
               at_status = CASE WHEN o.status = 'DELIVERED'
                                  OR (o.status = 'FAILED' AND o.at_status IN ('Failed', 'Rejected') AND r.status <> 'Success')
                                THEN o.at_status ELSE r.status END,
               status = CASE WHEN o.status = 'DELIVERED' THEN o.status
                             WHEN r.status = 'Success' THEN 'DELIVERED'
                             WHEN r.status IN ('Failed', 'Rejected') THEN 'FAILED' ELSE o.status END,
               delivered_at = CASE WHEN o.status <> 'DELIVERED' AND r.status = 'Success' THEN now() ELSE o.delivered_at END,
               failure_reason = CASE WHEN o.status = 'DELIVERED' THEN o.failure_reason
                                     ELSE coalesce(r.failure_reason, o.failure_reason) END
           FROM unnest($1::text[], $2::text[], $3::text[]) AS r (at_message_id, status, failure_reason)
           WHERE o.at_message_id = r.at_message_id AND o.status IN ('SENT', 'DELIVERED', 'FAILED')
           RETURNING o.at_message_id AS "at_message_id!""#,
        &ids,
        &statuses,
        &reasons as &[Option<String>],
    )
    .fetch_all(conn)
    .await
}
