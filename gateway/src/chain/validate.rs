//! Validating the whole chain from the stored rows.
//!
//! Blocks are read in pages of [`PAGE_BLOCKS`] with their entries and
//! transactions, so memory stays bounded however long the chain is. For each
//! block: the index follows the previous one, `previous_hash` is the previous
//! block's hash, every leaf is rebuilt from its transaction row and matches
//! the stored leaf hash, the Merkle root of the rebuilt leaves matches, the
//! header is the canonical form of the block's fields, `block_hash` is its
//! SHA3-256, and the signature verifies under the sealer's public key.
//! Finally no transaction may be outside both the chain and the queue.

use std::collections::HashMap;

use chainpay_core::chain::block::{verify_signature, BlockHeader, GENESIS_PREVIOUS_HASH};
use chainpay_core::chain::merkle;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::leaf::LeafRow;

/// Blocks read per round trip.
const PAGE_BLOCKS: i64 = 200;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ChainReport {
    pub valid: bool,
    pub blocks_checked: i64,
    pub transactions_checked: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_invalid_block: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

struct Walk {
    blocks_checked: i64,
    transactions_checked: i64,
}

impl Walk {
    fn invalid(&self, block: i64, reason: String) -> ChainReport {
        ChainReport {
            valid: false,
            blocks_checked: self.blocks_checked,
            transactions_checked: self.transactions_checked,
            first_invalid_block: Some(block),
            reason: Some(reason),
        }
    }
}

struct Entry {
    leaf_index: i32,
    tx_id: Uuid,
    leaf_hash: String,
    row: Option<LeafRow>,
}

/// A stored block, as validation reads it.
struct BlockRow {
    block_index: i64,
    previous_hash: String,
    merkle_root: String,
    sealed_at: chrono::DateTime<chrono::Utc>,
    tx_count: i32,
    sealer: String,
    header: String,
    block_hash: String,
    signature: String,
}

/// Walks the whole chain, page by page, and names the first invalid block.
pub async fn validate(pool: &PgPool) -> anyhow::Result<ChainReport> {
    let authorities: HashMap<String, String> =
        sqlx::query!("SELECT name, public_key FROM chain_authorities")
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| (row.name, row.public_key))
            .collect();
    let mut walk = Walk {
        blocks_checked: 0,
        transactions_checked: 0,
    };
    let mut expected_index = 0i64;
    let mut previous_hash = GENESIS_PREVIOUS_HASH.to_owned();
    loop {
        let blocks = sqlx::query_as!(
            BlockRow,
            "SELECT block_index, previous_hash, merkle_root, sealed_at, tx_count, sealer, header, block_hash, signature
             FROM blocks WHERE block_index >= $1 ORDER BY block_index LIMIT $2",
            expected_index,
            PAGE_BLOCKS
        )
        .fetch_all(pool)
        .await?;
        let Some(last) = blocks.last().map(|b| b.block_index) else {
            break;
        };
        let mut entries = entries_of(pool, expected_index, last).await?;
        for block in &blocks {
            if block.block_index != expected_index {
                let reason = format!("block {expected_index} is missing");
                return Ok(walk.invalid(expected_index, reason));
            }
            let leaves = entries.remove(&block.block_index).unwrap_or_default();
            if let Err(reason) = check_block(block, &leaves, &previous_hash, &authorities) {
                return Ok(walk.invalid(block.block_index, reason));
            }
            previous_hash = block.block_hash.clone();
            expected_index += 1;
            walk.blocks_checked += 1;
            walk.transactions_checked += leaves.len() as i64;
        }
    }
    if let Some(reason) = stray_transactions(pool, expected_index).await? {
        return Ok(walk.invalid(reason.0, reason.1));
    }
    Ok(ChainReport {
        valid: true,
        blocks_checked: walk.blocks_checked,
        transactions_checked: walk.transactions_checked,
        first_invalid_block: None,
        reason: None,
    })
}

/// Checks one block against its predecessor's hash, its rebuilt leaves,
/// its header and its sealer's signature; `Err` says what is wrong.
fn check_block(
    block: &BlockRow,
    leaves: &[Entry],
    previous_hash: &str,
    authorities: &HashMap<String, String>,
) -> Result<(), String> {
    if block.previous_hash != previous_hash {
        return Err("previous_hash does not match the previous block's hash".into());
    }
    if leaves.len() != usize::try_from(block.tx_count).unwrap_or(usize::MAX) {
        return Err(format!(
            "the block says {} transactions but has {}",
            block.tx_count,
            leaves.len()
        ));
    }
    let hashes = rebuilt_leaves(leaves)?;
    if hex::encode(merkle::root(&hashes)) != block.merkle_root {
        return Err("the Merkle root does not match the block's transactions".into());
    }
    let header = BlockHeader {
        index: block.block_index,
        previous_hash: block.previous_hash.clone(),
        merkle_root: block.merkle_root.clone(),
        timestamp: block.sealed_at,
        tx_count: block.tx_count,
        sealer: block.sealer.clone(),
    };
    let block_hash = header.hash();
    if header.canonical() != block.header || hex::encode(block_hash) != block.block_hash {
        return Err("the block hash does not match its header".into());
    }
    let signed = authorities
        .get(&block.sealer)
        .is_some_and(|key| verify_signature(key, &block_hash, &block.signature));
    if !signed {
        return Err(format!("the signature of {} does not verify", block.sealer));
    }
    Ok(())
}

/// Each leaf rebuilt from its transaction row, checked against the stored hash.
fn rebuilt_leaves(leaves: &[Entry]) -> Result<Vec<merkle::Hash>, String> {
    let mut hashes = Vec::with_capacity(leaves.len());
    for (position, entry) in leaves.iter().enumerate() {
        if usize::try_from(entry.leaf_index).ok() != Some(position) {
            return Err(format!("leaf {position} is missing"));
        }
        let Some(row) = &entry.row else {
            return Err(format!("transaction {} is missing", entry.tx_id));
        };
        let leaf = row
            .leaf()
            .map_err(|e| format!("transaction {}: {e}", entry.tx_id))?;
        let rebuilt = merkle::leaf_hash(&leaf);
        if hex::encode(rebuilt) != entry.leaf_hash {
            return Err(format!(
                "transaction {} does not match its leaf",
                entry.tx_id
            ));
        }
        hashes.push(rebuilt);
    }
    Ok(hashes)
}

/// After the last block: an entry of a block that does not exist, or a
/// transaction in no block and not queued, is a break in the chain.
async fn stray_transactions(
    pool: &PgPool,
    next_index: i64,
) -> anyhow::Result<Option<(i64, String)>> {
    if let Some(orphan) = orphaned_entry(pool, next_index).await? {
        return Ok(Some((orphan, format!("block {orphan} is missing"))));
    }
    let unchained = sqlx::query_scalar!(
        "SELECT t.tx_id FROM transactions t
         WHERE NOT EXISTS (SELECT 1 FROM block_entries e WHERE e.tx_id = t.tx_id)
           AND NOT EXISTS (SELECT 1 FROM chain_pending p WHERE p.tx_id = t.tx_id)
         LIMIT 1"
    )
    .fetch_optional(pool)
    .await?;
    Ok(unchained.map(|tx_id| {
        (
            next_index,
            format!("transaction {tx_id} is in no block and not queued"),
        )
    }))
}

/// The entries of blocks `first..=last` with their transaction rows, by block.
async fn entries_of(
    pool: &PgPool,
    first: i64,
    last: i64,
) -> sqlx::Result<HashMap<i64, Vec<Entry>>> {
    let rows = sqlx::query!(
        r#"SELECT e.block_index, e.leaf_index, e.tx_id, e.leaf_hash,
                  t.tx_id AS "row_tx_id?", t.tx_type AS "tx_type?", t.amount AS "amount?", t.fee AS "fee?",
                  t.currency AS "currency?", t.from_user_id, t.to_user_id, t.created_at AS "created_at?",
                  t.to_currency, t.converted_amount, trim_scale(t.rate)::text AS rate
           FROM block_entries e LEFT JOIN transactions t ON t.tx_id = e.tx_id
           WHERE e.block_index BETWEEN $1 AND $2
           ORDER BY e.block_index, e.leaf_index"#,
        first,
        last
    )
    .fetch_all(pool)
    .await?;
    let mut by_block: HashMap<i64, Vec<Entry>> = HashMap::new();
    for r in rows {
        let row = match (
            r.row_tx_id,
            r.tx_type,
            r.amount,
            r.fee,
            r.currency,
            r.created_at,
        ) {
            (
                Some(tx_id),
                Some(tx_type),
                Some(amount),
                Some(fee),
                Some(currency),
                Some(created_at),
            ) => Some(LeafRow {
                tx_id,
                tx_type,
                amount,
                fee,
                currency,
                from_user_id: r.from_user_id,
                to_user_id: r.to_user_id,
                created_at,
                to_currency: r.to_currency,
                converted_amount: r.converted_amount,
                rate: r.rate,
            }),
            _ => None,
        };
        by_block.entry(r.block_index).or_default().push(Entry {
            leaf_index: r.leaf_index,
            tx_id: r.tx_id,
            leaf_hash: r.leaf_hash,
            row,
        });
    }
    Ok(by_block)
}

/// A block index at or past the end of the chain that still has entries:
/// the trace of a removed block.
async fn orphaned_entry(pool: &PgPool, end: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"SELECT min(block_index) AS "index" FROM block_entries WHERE block_index >= $1"#,
        end
    )
    .fetch_one(pool)
    .await
}
