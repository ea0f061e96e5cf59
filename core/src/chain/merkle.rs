//! RFC 9162 §2.1 Merkle trees over SHA3-256.
//!
//! Leaf hash `H(0x00 ‖ leaf)`, interior node `H(0x01 ‖ left ‖ right)`, the
//! split at the largest power of two strictly below the number of leaves (no
//! duplicated last node, unlike Bitcoin's tree), and the empty tree hashes to
//! `H()`.

use sha3::{Digest, Sha3_256};

pub type Hash = [u8; 32];

/// `H(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha3_256::new();
    hasher.update([0x00]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// `H(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha3_256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Largest power of two strictly less than `n` (`n >= 2`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of leaves given by their leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha3_256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` (RFC 9162 `PATH(m, D[n])`), bottom-up.
/// `None` if the index is outside the tree.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    collect_path(leaves, index, &mut path);
    Some(path)
}

fn collect_path(leaves: &[Hash], index: usize, path: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if index < k {
        collect_path(&leaves[..k], index, path);
        path.push(root(&leaves[k..]));
    } else {
        collect_path(&leaves[k..], index - k, path);
        path.push(root(&leaves[..k]));
    }
}

/// Verifies an inclusion proof as RFC 9162 §2.1.3.2 specifies.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    path: &[Hash],
    root: &Hash,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let (mut fn_, mut sn, mut r) = (index, tree_size - 1, *leaf_hash);
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// Parses a 64-character hex hash.
pub fn parse_hash(hex_hash: &str) -> Option<Hash> {
    hex::decode(hex_hash).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn the_empty_tree_is_the_hash_of_nothing_and_one_leaf_is_its_own_root() {
        assert_eq!(
            hex::encode(root(&[])),
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
        );
        let one = leaves(1);
        assert_eq!(root(&one), one[0]);
    }

    #[test]
    fn three_leaves_split_two_and_one_without_duplicating_the_last() {
        let l = leaves(3);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
    }

    #[test]
    fn every_proof_of_every_tree_size_up_to_64_verifies() {
        for n in 1..=64 {
            let l = leaves(n);
            let r = root(&l);
            for (i, leaf) in l.iter().enumerate() {
                let path = inclusion_proof(&l, i).unwrap();
                assert!(
                    verify_inclusion(leaf, i as u64, n as u64, &path, &r),
                    "n={n} i={i}"
                );
            }
        }
    }

    #[test]
    fn proofs_fail_for_another_leaf_index_size_or_root() {
        let l = leaves(7);
        let r = root(&l);
        let path = inclusion_proof(&l, 5).unwrap();
        assert!(!verify_inclusion(&l[4], 5, 7, &path, &r));
        assert!(!verify_inclusion(&l[5], 4, 7, &path, &r));
        assert!(!verify_inclusion(&l[5], 5, 6, &path, &r));
        assert!(!verify_inclusion(&l[5], 5, 7, &path, &leaf_hash(b"x")));
        assert!(!verify_inclusion(&l[5], 7, 7, &path, &r));
        assert!(inclusion_proof(&l, 7).is_none());
    }
}
