//! Sealing queued transactions into signed blocks.
//!
//! One block holds at most [`BLOCK_CAPACITY`] transactions, in commit order.
//! Sealing runs under a transaction-scoped advisory lock: any number of
//! instances may try at once, and each waits for the one before it, reads
//! the head it left and extends it, so the chain stays one line.

use std::time::Duration;

use chainpay_core::chain::block::{BlockHeader, GENESIS_PREVIOUS_HASH};
use chainpay_core::chain::merkle;
use chainpay_core::transaction::now_micros;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::authority::Sealer;
use super::blocks::Block;
use super::leaf::LeafRow;
use super::SEAL_LOCK;

/// Transactions per block; reaching it seals a block at once.
pub const BLOCK_CAPACITY: i64 = 50;

struct Head {
    index: i64,
    block_hash: String,
    sealed_at: chrono::DateTime<chrono::Utc>,
}

async fn head(conn: &mut PgConnection) -> sqlx::Result<Option<Head>> {
    sqlx::query_as!(
        Head,
        r#"SELECT block_index AS index, block_hash, sealed_at FROM blocks ORDER BY block_index DESC LIMIT 1"#
    )
    .fetch_optional(conn)
    .await
}

/// Writes block `header.index` with `leaves` (tx id, leaf hash) and
/// removes them from the queue.
async fn write_block(
    conn: &mut PgConnection,
    sealer: &Sealer,
    index: i64,
    previous: Option<&Head>,
    leaves: Vec<(Uuid, merkle::Hash)>,
) -> anyhow::Result<Block> {
    let hashes: Vec<merkle::Hash> = leaves.iter().map(|(_, hash)| *hash).collect();
    // Timestamps never run backwards along the chain, whatever the clocks of
    // the instances that sealed it.
    let timestamp = previous.map_or_else(now_micros, |p| now_micros().max(p.sealed_at));
    let header = BlockHeader {
        index,
        previous_hash: previous.map_or_else(
            || GENESIS_PREVIOUS_HASH.to_owned(),
            |p| p.block_hash.clone(),
        ),
        merkle_root: hex::encode(merkle::root(&hashes)),
        timestamp,
        tx_count: i32::try_from(leaves.len())?,
        sealer: sealer.name.clone(),
    };
    let block_hash = header.hash();
    let block = Block {
        index,
        previous_hash: header.previous_hash.clone(),
        merkle_root: header.merkle_root.clone(),
        timestamp,
        tx_count: header.tx_count,
        sealer: sealer.name.clone(),
        header: header.canonical(),
        block_hash: hex::encode(block_hash),
        signature: sealer.key.sign(&block_hash),
        transactions: None,
    };
    sqlx::query!(
        "INSERT INTO blocks (block_index, previous_hash, merkle_root, sealed_at, tx_count, sealer, header, block_hash, signature)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        block.index,
        block.previous_hash,
        block.merkle_root,
        block.timestamp,
        block.tx_count,
        block.sealer,
        block.header,
        block.block_hash,
        block.signature
    )
    .execute(&mut *conn)
    .await?;
    if !leaves.is_empty() {
        let tx_ids: Vec<Uuid> = leaves.iter().map(|(id, _)| *id).collect();
        let leaf_hashes: Vec<String> = hashes.iter().map(hex::encode).collect();
        let positions: Vec<i32> = (0..leaves.len() as i32).collect();
        let written = sqlx::query!(
            "INSERT INTO block_entries (block_index, leaf_index, tx_id, tx_seq, leaf_hash)
             SELECT $1, leaf.position, leaf.tx_id, t.seq, leaf.hash
             FROM unnest($2::int[], $3::uuid[], $4::text[]) AS leaf (position, tx_id, hash)
             JOIN transactions t ON t.tx_id = leaf.tx_id",
            index,
            &positions,
            &tx_ids,
            &leaf_hashes
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
        anyhow::ensure!(
            written == tx_ids.len() as u64,
            "block {index}: {written} of {} leaves found their transaction",
            tx_ids.len()
        );
        sqlx::query!("DELETE FROM chain_pending WHERE tx_id = ANY($1)", &tx_ids)
            .execute(&mut *conn)
            .await?;
    }
    Ok(block)
}

/// Creates block 0 if the chain is empty.
pub async fn ensure_genesis(pool: &PgPool, sealer: &Sealer) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", SEAL_LOCK)
        .execute(&mut *tx)
        .await?;
    if head(&mut tx).await?.is_none() {
        let genesis = write_block(&mut tx, sealer, 0, None, Vec::new()).await?;
        tracing::info!(block_hash = %genesis.block_hash, sealer = %sealer.name, "sealed the genesis block");
    }
    tx.commit().await?;
    Ok(())
}

/// Seals the oldest queued transactions (up to a block's capacity) into the
/// next block. `None` when nothing is queued.
pub async fn seal_next(pool: &PgPool, sealer: &Sealer) -> anyhow::Result<Option<Block>> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", SEAL_LOCK)
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query_as!(
        LeafRow,
        r#"SELECT t.tx_id, t.tx_type, t.amount, t.fee, t.currency, t.from_user_id, t.to_user_id, t.created_at,
                  t.to_currency, t.converted_amount, trim_scale(t.rate)::text AS rate
           FROM chain_pending p JOIN transactions t ON t.tx_id = p.tx_id
           ORDER BY p.seq LIMIT $1"#,
        BLOCK_CAPACITY
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let previous = head(&mut tx)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the chain has no genesis block"))?;
    let mut leaves = Vec::with_capacity(rows.len());
    for row in &rows {
        leaves.push((row.tx_id, merkle::leaf_hash(&row.leaf()?)));
    }
    let block = write_block(&mut tx, sealer, previous.index + 1, Some(&previous), leaves).await?;
    tx.commit().await?;
    tracing::info!(
        index = block.index,
        tx_count = block.tx_count,
        "sealed a block"
    );
    Ok(Some(block))
}

/// Seals while a full block is queued, or everything once the oldest queued
/// transaction has waited `interval`. Returns the number of blocks sealed.
pub async fn seal_due(pool: &PgPool, sealer: &Sealer, interval: Duration) -> anyhow::Result<usize> {
    let mut sealed = 0;
    loop {
        let queue = sqlx::query!(
            r#"SELECT (SELECT count(*) FROM (SELECT 1 FROM chain_pending LIMIT $1) q) AS "count!",
                      coalesce((SELECT extract(epoch FROM now() - t.created_at)
                                FROM chain_pending p JOIN transactions t ON t.tx_id = p.tx_id
                                ORDER BY p.seq LIMIT 1), 0)::float8 AS "oldest_s!""#,
            BLOCK_CAPACITY
        )
        .fetch_one(pool)
        .await?;
        let due = queue.count >= BLOCK_CAPACITY
            || (queue.count > 0 && queue.oldest_s >= interval.as_secs_f64());
        if !due || seal_next(pool, sealer).await?.is_none() {
            return Ok(sealed);
        }
        sealed += 1;
    }
}
