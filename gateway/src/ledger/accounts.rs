//! Looking up the accounts a movement touches.

use chainpay_core::ledger::TransferAccounts;
use sqlx::PgConnection;
use uuid::Uuid;

/// Shards of the fee revenue account per currency (see the accounts migration).
pub const FEE_REVENUE_SHARDS: u128 = 8;

/// The fee revenue shard a transaction posts to: spread by its id so that
/// concurrent transfers rarely wait on the same row lock.
pub fn fee_shard(tx_id: Uuid) -> i16 {
    (tx_id.as_u128() % FEE_REVENUE_SHARDS) as i16
}

/// Both wallets and the fee shard of a transfer, or `None` if a wallet is missing.
pub async fn transfer_accounts(
    conn: &mut PgConnection,
    source_user: Uuid,
    target_user: Uuid,
    currency: &str,
    shard: i16,
) -> sqlx::Result<Option<TransferAccounts>> {
    let rows = sqlx::query!(
        r#"
        SELECT id, kind, user_id FROM accounts
        WHERE currency = $3
          AND ((kind = 'wallet' AND user_id IN ($1, $2))
               OR (kind = 'fee_revenue' AND shard = $4))
        "#,
        source_user,
        target_user,
        currency,
        shard,
    )
    .fetch_all(conn)
    .await?;
    let find = |pred: &dyn Fn(&str, Option<Uuid>) -> bool| {
        rows.iter().find(|r| pred(&r.kind, r.user_id)).map(|r| r.id)
    };
    Ok(Some(TransferAccounts {
        source_wallet: match find(&|k, u| k == "wallet" && u == Some(source_user)) {
            Some(id) => id,
            None => return Ok(None),
        },
        target_wallet: match find(&|k, u| k == "wallet" && u == Some(target_user)) {
            Some(id) => id,
            None => return Ok(None),
        },
        fee_revenue: match find(&|k, _| k == "fee_revenue") {
            Some(id) => id,
            None => return Ok(None),
        },
    }))
}

/// A user's wallet in `currency`.
pub async fn wallet_id(
    conn: &mut PgConnection,
    user_id: Uuid,
    currency: &str,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        "SELECT id FROM accounts WHERE kind = 'wallet' AND user_id = $1 AND currency = $2",
        user_id,
        currency
    )
    .fetch_optional(conn)
    .await
}

/// The float account of `channel` (treasury, mpesa, agent) in `currency`.
pub async fn float_id(
    conn: &mut PgConnection,
    channel: &str,
    currency: &str,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        "SELECT id FROM accounts WHERE kind = 'float' AND channel = $1 AND currency = $2 AND shard = 0",
        channel,
        currency
    )
    .fetch_optional(conn)
    .await
}

/// Whether ChainPay supports `currency`.
pub async fn currency_exists(conn: &mut PgConnection, currency: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM currencies WHERE code = $1) AS "exists!""#,
        currency
    )
    .fetch_one(conn)
    .await
}
