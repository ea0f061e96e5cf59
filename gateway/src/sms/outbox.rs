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

/// Applies an Africa's Talking delivery report to the message it is about.
/// `Success` is final delivery; `Failed` and `Rejected` are final failures;
/// anything else (`Sent`, `Submitted`, `Buffered`) is progress.
pub async fn apply_delivery_report(
    conn: &mut PgConnection,
    at_message_id: &str,
    status: &str,
    failure_reason: Option<&str>,
) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        r#"UPDATE sms_outbox SET
               at_status = $2,
               status = CASE $2 WHEN 'Success' THEN 'DELIVERED' WHEN 'Failed' THEN 'FAILED' WHEN 'Rejected' THEN 'FAILED' ELSE status END,
               delivered_at = CASE WHEN $2 = 'Success' THEN now() ELSE delivered_at END,
               failure_reason = coalesce($3, failure_reason)
           WHERE at_message_id = $1 AND status IN ('SENT', 'DELIVERED', 'FAILED')"#,
        at_message_id,
        status,
        failure_reason
    )
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}
