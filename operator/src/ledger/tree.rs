//! The RFC 9162 Merkle tree over the ledger's leaves, kept as the hashes
//! `tlog_tiles` stores (Go's `sumdb/tlog` layout: about two per leaf), so
//! the root at any size, inclusion proofs and consistency proofs come from
//! a well-kept implementation rather than our own arithmetic.

use tlog_tiles::tlog::{self, Hash, HashReader};

/// Every hash of a tree of `size` leaves.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    stored: Vec<Hash>,
    size: u64,
}

impl HashReader for Tree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog::Error> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.stored.get(i).copied())
                    .ok_or(tlog::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl Tree {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf (the record's bytes).
    pub fn append(&mut self, leaf: &[u8]) {
        self.append_hash(tlog::record_hash(leaf));
    }

    /// Appends one leaf known only by its hash (a record left out of an export).
    pub fn append_hash(&mut self, leaf_hash: Hash) {
        let hashes = tlog::stored_hashes_for_record_hash(self.size, leaf_hash, self)
            .expect("a tree holds every hash its next leaf needs");
        self.stored.extend(hashes);
        self.size += 1;
    }

    /// The root hash of the tree's first `size` leaves.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        (size <= self.size).then(|| tlog::tree_hash(size, self).expect("hashes of a prefix"))
    }

    /// The root hash of the whole tree.
    pub fn root(&self) -> Hash {
        tlog::tree_hash(self.size, self).expect("hashes of the tree")
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn prove_inclusion(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        (index < size && size <= self.size)
            .then(|| tlog::prove_record(size, index, self).expect("hashes of a prefix"))
    }

    /// The consistency proof from the tree of `old` leaves to that of `new`.
    pub fn prove_consistency(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        (0 < old && old <= new && new <= self.size)
            .then(|| tlog::prove_tree(new, old, self).expect("hashes of a prefix"))
    }
}

/// Whether `proof` shows leaf `leaf` at `index` in the tree (`size`, `root`).
pub fn includes(root: Hash, size: u64, index: u64, leaf: &[u8], proof: &[Hash]) -> bool {
    tlog::check_record(&proof.to_vec(), size, root, index, tlog::record_hash(leaf)).is_ok()
}

/// Whether `proof` shows the tree (`new_size`, `new_root`) extends
/// (`old_size`, `old_root`).
pub fn extends(
    (old_size, old_root): (u64, Hash),
    (new_size, new_root): (u64, Hash),
    proof: &[Hash],
) -> bool {
    if old_size == new_size {
        return old_root == new_root && proof.is_empty();
    }
    tlog::check_tree(&proof.to_vec(), new_size, new_root, old_size, old_root).is_ok()
}

/// The hash of a leaf (RFC 9162: SHA-256 of 0x00 and the leaf).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    tlog::record_hash(leaf)
}

/// A hash as the ledger writes it (base64).
pub fn encode(hash: &Hash) -> String {
    hash.to_string()
}

/// A hash as the ledger writes it, read back.
pub fn decode(text: &str) -> Option<Hash> {
    Hash::parse_hash(text).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hex(hash: Hash) -> String {
        hash.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The test leaves of RFC 6962's reference implementations.
    const LEAVES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];

    #[test]
    fn roots_match_the_reference_vectors() {
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut tree = Tree::default();
        for (leaf, root) in LEAVES.iter().zip(expected) {
            tree.append(leaf);
            assert_eq!(hex(tree.root()), root, "root at size {}", tree.size());
        }
        assert_eq!(
            hex(tree.root_at(0).unwrap()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    fn tree_of(leaves: u64) -> Tree {
        let mut tree = Tree::default();
        for i in 0..leaves {
            tree.append(format!("leaf {i}").as_bytes());
        }
        tree
    }

    proptest! {
        #[test]
        fn every_leaf_is_proven_in_every_tree_that_holds_it(size in 1u64..80, pick in any::<u64>()) {
            let tree = tree_of(size);
            let index = pick % size;
            let proof = tree.prove_inclusion(index, size).unwrap();
            let leaf = format!("leaf {index}");
            prop_assert!(includes(tree.root(), size, index, leaf.as_bytes(), &proof));
            prop_assert!(!includes(tree.root(), size, index, b"another leaf", &proof));
        }

        #[test]
        fn a_grown_tree_extends_every_prefix_and_a_rewritten_one_does_not(
            new in 1u64..80,
            pick in any::<u64>(),
            rewritten in any::<u64>(),
        ) {
            let tree = tree_of(new);
            let old = pick % new + 1;
            let proof = tree.prove_consistency(old, new).unwrap();
            let held = (old, tree.root_at(old).unwrap());
            prop_assert!(extends(held, (new, tree.root()), &proof));
            // The same sizes, one earlier leaf rewritten.
            let changed = rewritten % old;
            let mut forged = Tree::default();
            for i in 0..new {
                let leaf = if i == changed { "forged".to_owned() } else { format!("leaf {i}") };
                forged.append(leaf.as_bytes());
            }
            let forged_proof = forged.prove_consistency(old, new).unwrap();
            prop_assert!(!extends(held, (new, forged.root()), &forged_proof));
        }
    }

    #[test]
    fn a_hash_reads_back_as_written() {
        let root = tree_of(3).root();
        assert_eq!(decode(&encode(&root)), Some(root));
        assert_eq!(decode("not base64!"), None);
    }
}
