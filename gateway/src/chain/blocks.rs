//! Reading blocks back as the API shows them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

/// A block, in the contract's shape.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Block {
    pub index: i64,
    pub previous_hash: String,
    pub merkle_root: String,
    pub timestamp: DateTime<Utc>,
    pub tx_count: i32,
    pub sealer: String,
    /// The canonical header string; `block_hash = SHA3-256(header)`.
    pub header: String,
    pub block_hash: String,
    /// Ed25519 signature of the raw `block_hash` bytes by `sealer`, hex.
    pub signature: String,
    /// The block's leaves in Merkle order (single-block reads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactions: Option<Vec<BlockEntry>>,
}

/// One leaf of a block. The transaction id is shown to admins only: the
/// public sees hashes and counts, never which transactions a block holds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BlockEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_id: Option<Uuid>,
    pub leaf_hash: String,
}

/// Chain totals.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChainStats {
    /// Blocks in the chain, genesis included.
    pub height: i64,
    /// Transactions sealed into blocks.
    pub transactions: i64,
    /// Transactions committed and waiting for the next block.
    pub pending: i64,
    /// `block_hash` of the newest block.
    pub head_hash: Option<String>,
}

/// A `blocks` row.
struct BlockRow {
    block_index: i64,
    previous_hash: String,
    merkle_root: String,
    sealed_at: DateTime<Utc>,
    tx_count: i32,
    sealer: String,
    header: String,
    block_hash: String,
    signature: String,
}

impl Block {
    /// The block as the public may see it: leaf hashes without transaction ids.
    pub fn public(mut self) -> Self {
        for entry in self.transactions.iter_mut().flatten() {
            entry.tx_id = None;
        }
        self
    }
}

impl BlockRow {
    fn into_block(self, transactions: Option<Vec<BlockEntry>>) -> Block {
        Block {
            index: self.block_index,
            previous_hash: self.previous_hash,
            merkle_root: self.merkle_root,
            timestamp: self.sealed_at,
            tx_count: self.tx_count,
            sealer: self.sealer,
            header: self.header,
            block_hash: self.block_hash,
            signature: self.signature,
            transactions,
        }
    }
}

/// The newest `n` blocks, newest first.
pub async fn latest(pool: &PgPool, n: i64) -> sqlx::Result<Vec<Block>> {
    let rows = sqlx::query_as!(
        BlockRow,
        "SELECT block_index, previous_hash, merkle_root, sealed_at, tx_count, sealer, header, block_hash, signature
         FROM blocks ORDER BY block_index DESC LIMIT $1",
        n
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|row| row.into_block(None)).collect())
}

/// One block with its leaves.
pub async fn by_index(pool: &PgPool, index: i64) -> sqlx::Result<Option<Block>> {
    let row = sqlx::query_as!(
        BlockRow,
        "SELECT block_index, previous_hash, merkle_root, sealed_at, tx_count, sealer, header, block_hash, signature
         FROM blocks WHERE block_index = $1",
        index
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let entries = sqlx::query_as!(
        BlockEntry,
        r#"SELECT tx_id AS "tx_id?", leaf_hash FROM block_entries WHERE block_index = $1 ORDER BY leaf_index"#,
        index
    )
    .fetch_all(pool)
    .await?;
    Ok(Some(row.into_block(Some(entries))))
}

/// Transactions sealed into the blocks below some index, remembered so that
/// the next count reads only the blocks sealed since (a block never
/// changes): the public stats route costs a few index lookups however long
/// the chain, not a scan of every block.
#[derive(Debug, Default)]
pub struct SealedCount(std::sync::Mutex<Counted>);

#[derive(Debug, Default, Clone, Copy)]
struct Counted {
    /// Blocks counted: those with an index below this.
    below: i64,
    transactions: i64,
}

impl SealedCount {
    fn get(&self) -> Counted {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, counted: Counted) {
        let mut known = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counted.below > known.below {
            *known = counted;
        }
    }
}

/// The chain's totals (blocks run from the genesis block, index 0, without
/// gaps).
pub async fn stats(pool: &PgPool, sealed: &SealedCount) -> sqlx::Result<ChainStats> {
    let mut counted = sealed.get();
    let mut row = totals(pool, counted.below).await?;
    if row.height < counted.below {
        // Read from a replica behind what was counted: counted afresh.
        counted = Counted::default();
        row = totals(pool, 0).await?;
    }
    let transactions = counted.transactions + row.since;
    sealed.remember(Counted {
        below: row.height,
        transactions,
    });
    Ok(ChainStats {
        height: row.height,
        transactions,
        pending: row.pending,
        head_hash: row.head_hash,
    })
}

/// The chain's height, the transactions of the blocks from index `from`,
/// what waits for the next block, and the head.
struct Totals {
    height: i64,
    since: i64,
    pending: i64,
    head_hash: Option<String>,
}

async fn totals(pool: &PgPool, from: i64) -> sqlx::Result<Totals> {
    sqlx::query_as!(
        Totals,
        r#"SELECT (SELECT coalesce(max(block_index) + 1, 0) FROM blocks) AS "height!",
                  (SELECT coalesce(sum(tx_count), 0) FROM blocks WHERE block_index >= $1)::bigint AS "since!",
                  (SELECT count(*) FROM chain_pending) AS "pending!",
                  (SELECT block_hash FROM blocks ORDER BY block_index DESC LIMIT 1) AS head_hash"#,
        from
    )
    .fetch_one(pool)
    .await
}
