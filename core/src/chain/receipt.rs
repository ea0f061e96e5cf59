//! Verifying a receipt: an inclusion proof and the block it names, checked
//! step by step with only the published bytes and keys. The console runs
//! this in the browser (compiled to wasm) with the code the server's own
//! tests verify proofs with, and shows which step failed when one does.

use sha3::{Digest, Sha3_256};

use super::block::verify_signature;
use super::merkle::{leaf_hash, parse_hash, verify_inclusion, Hash};

/// Everything a receipt holder has: the proof's fields, the block's header,
/// hash and signature, and the sealer's published key.
#[derive(Debug, Clone)]
pub struct Receipt<'a> {
    /// The canonical transaction bytes, as UTF-8.
    pub leaf: &'a str,
    /// The proof's leaf hash (compared with the one rebuilt from `leaf`).
    pub leaf_hash: &'a str,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub audit_path: &'a [String],
    /// The block's canonical header string.
    pub header: &'a str,
    pub block_hash: &'a str,
    pub signature: &'a str,
    /// The sealer's Ed25519 public key, hex (`/blockchain/authorities`).
    pub sealer_key: &'a str,
}

/// One step of the verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `H(0x00 ‖ leaf)` is the proof's leaf hash.
    LeafHash,
    /// Folding the audit path into the leaf hash gives the header's Merkle root.
    MerkleRoot,
    /// `H(header)` is the block hash.
    BlockHash,
    /// The sealer's key verifies the signature of the block hash.
    Signature,
}

impl Step {
    pub const ALL: [Step; 4] = [
        Step::LeafHash,
        Step::MerkleRoot,
        Step::BlockHash,
        Step::Signature,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Step::LeafHash => "the leaf hashes to the proof's leaf hash",
            Step::MerkleRoot => "the audit path leads from the leaf to the block's Merkle root",
            Step::BlockHash => "the header hashes to the block hash",
            Step::Signature => "the sealer's key verifies the block's signature",
        }
    }
}

/// Each step and whether it passed, in order.
pub fn verify(receipt: &Receipt<'_>) -> Vec<(Step, bool)> {
    let rebuilt = leaf_hash(receipt.leaf.as_bytes());
    let path: Option<Vec<Hash>> = receipt.audit_path.iter().map(|h| parse_hash(h)).collect();
    let root = receipt.header.split('|').nth(3).and_then(parse_hash);
    let root_ok = match (path, root) {
        (Some(path), Some(root)) => verify_inclusion(
            &rebuilt,
            receipt.leaf_index,
            receipt.tree_size,
            &path,
            &root,
        ),
        _ => false,
    };
    let header_hash: Hash = Sha3_256::digest(receipt.header.as_bytes()).into();
    let block_ok = hex::encode(header_hash) == receipt.block_hash;
    let signed = verify_signature(receipt.sealer_key, &header_hash, receipt.signature);
    vec![
        (Step::LeafHash, hex::encode(rebuilt) == receipt.leaf_hash),
        (Step::MerkleRoot, root_ok),
        (Step::BlockHash, block_ok),
        (Step::Signature, block_ok && signed),
    ]
}

/// Whether every step passed.
pub fn verified(steps: &[(Step, bool)]) -> bool {
    steps.iter().all(|(_, passed)| *passed)
}

#[cfg(test)]
mod tests {
    use super::super::block::{AuthorityKey, BlockHeader};
    use super::super::merkle::{inclusion_proof, root};
    use super::*;

    fn fixture() -> (Vec<String>, Vec<String>, String, String, String, String) {
        let leaves: Vec<String> = (0..7).map(|n| format!("chainpay-tx-v1|leaf-{n}")).collect();
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_bytes())).collect();
        let path: Vec<String> = inclusion_proof(&hashes, 5)
            .unwrap()
            .iter()
            .map(hex::encode)
            .collect();
        let key = AuthorityKey::generate();
        let header = BlockHeader {
            index: 3,
            previous_hash: "ab".repeat(32),
            merkle_root: hex::encode(root(&hashes)),
            timestamp: chrono::DateTime::from_timestamp(1_764_082_268, 0).unwrap(),
            tx_count: 7,
            sealer: "node-1".into(),
        };
        let hash = header.hash();
        (
            leaves,
            path,
            header.canonical(),
            hex::encode(hash),
            key.sign(&hash),
            key.public_hex(),
        )
    }

    #[test]
    fn a_genuine_receipt_passes_every_step() {
        let (leaves, path, header, block_hash, signature, key) = fixture();
        let receipt = Receipt {
            leaf: &leaves[5],
            leaf_hash: &hex::encode(leaf_hash(leaves[5].as_bytes())),
            leaf_index: 5,
            tree_size: 7,
            audit_path: &path,
            header: &header,
            block_hash: &block_hash,
            signature: &signature,
            sealer_key: &key,
        };
        assert!(verified(&verify(&receipt)));
    }

    #[test]
    fn a_tampered_leaf_fails_at_the_leaf_and_the_root_but_not_the_block() {
        let (leaves, path, header, block_hash, signature, key) = fixture();
        let genuine = hex::encode(leaf_hash(leaves[5].as_bytes()));
        let tampered = leaves[5].replace("leaf-5", "leaf-9");
        let receipt = Receipt {
            leaf: &tampered,
            leaf_hash: &genuine,
            leaf_index: 5,
            tree_size: 7,
            audit_path: &path,
            header: &header,
            block_hash: &block_hash,
            signature: &signature,
            sealer_key: &key,
        };
        let steps = verify(&receipt);
        assert_eq!(
            steps,
            vec![
                (Step::LeafHash, false),
                (Step::MerkleRoot, false),
                (Step::BlockHash, true),
                (Step::Signature, true)
            ]
        );
    }

    #[test]
    fn another_key_fails_the_signature_step() {
        let (leaves, path, header, block_hash, signature, _) = fixture();
        let other = AuthorityKey::generate().public_hex();
        let receipt = Receipt {
            leaf: &leaves[5],
            leaf_hash: &hex::encode(leaf_hash(leaves[5].as_bytes())),
            leaf_index: 5,
            tree_size: 7,
            audit_path: &path,
            header: &header,
            block_hash: &block_hash,
            signature: &signature,
            sealer_key: &other,
        };
        assert_eq!(verify(&receipt)[3], (Step::Signature, false));
    }
}
