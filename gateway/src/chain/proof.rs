//! RFC 9162 inclusion proofs for a transaction's receipt.

use chainpay_core::chain::merkle;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::leaf::LeafRow;

/// Everything a receipt holder needs to check that their transaction is in
/// the chain: rebuild `leaf_hash = H(0x00 ‖ leaf)`, fold `audit_path` into
/// `merkle_root` (RFC 9162 §2.1.3.2), and compare with the block.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    pub tx_id: Uuid,
    pub block_index: i64,
    pub leaf_index: i64,
    pub tree_size: i64,
    /// The canonical transaction bytes, as UTF-8.
    pub leaf: String,
    pub leaf_hash: String,
    /// Sibling hashes from the leaf upwards, hex.
    pub audit_path: Vec<String>,
    pub merkle_root: String,
    pub block_hash: String,
}

/// Why there is no proof.
pub enum NoProof {
    Unknown,
    Pending,
}

pub async fn inclusion_proof(
    pool: &PgPool,
    tx_id: Uuid,
) -> anyhow::Result<Result<InclusionProof, NoProof>> {
    let entry = sqlx::query!(
        "SELECT e.block_index, e.leaf_index, b.merkle_root, b.block_hash
         FROM block_entries e JOIN blocks b ON b.block_index = e.block_index WHERE e.tx_id = $1",
        tx_id
    )
    .fetch_optional(pool)
    .await?;
    let Some(entry) = entry else {
        let pending = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM chain_pending WHERE tx_id = $1) AS "pending!""#,
            tx_id
        )
        .fetch_one(pool)
        .await?;
        return Ok(Err(if pending {
            NoProof::Pending
        } else {
            NoProof::Unknown
        }));
    };
    let stored: Vec<String> = sqlx::query_scalar!(
        "SELECT leaf_hash FROM block_entries WHERE block_index = $1 ORDER BY leaf_index",
        entry.block_index
    )
    .fetch_all(pool)
    .await?;
    let leaves = stored
        .iter()
        .map(|hash| {
            merkle::parse_hash(hash).ok_or_else(|| anyhow::anyhow!("stored leaf hash is not hex"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let leaf_index = usize::try_from(entry.leaf_index)?;
    let path = merkle::inclusion_proof(&leaves, leaf_index)
        .ok_or_else(|| anyhow::anyhow!("leaf {leaf_index} is outside its block"))?;
    let row = sqlx::query_as!(
        LeafRow,
        r#"SELECT tx_id, tx_type, amount, fee, currency, from_user_id, to_user_id, created_at,
                  to_currency, converted_amount, trim_scale(rate)::text AS rate
           FROM transactions WHERE tx_id = $1"#,
        tx_id
    )
    .fetch_one(pool)
    .await?;
    Ok(Ok(InclusionProof {
        tx_id,
        block_index: entry.block_index,
        leaf_index: i64::from(entry.leaf_index),
        tree_size: leaves.len() as i64,
        leaf: String::from_utf8(row.leaf()?)?,
        leaf_hash: stored[leaf_index].clone(),
        audit_path: path.iter().map(hex::encode).collect(),
        merkle_root: entry.merkle_root,
        block_hash: entry.block_hash,
    }))
}
