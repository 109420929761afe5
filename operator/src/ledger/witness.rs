//! A witness's rule, pure: accept a checkpoint only as an extension of the
//! one held (RFC 9162 consistency proof), signed by the key it first trusted.
//! A hub that rewrites its log, even with the real key, is caught here.

use tlog_tiles::tlog::Hash;

use super::checkpoint::TreeHead;
use super::tree::{self, extends};

/// What a witness holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub head: TreeHead,
    pub verifier_key: String,
}

/// Why a witness refuses a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the checkpoint the witness holds does not verify: {0}")]
    Unreadable(String),
    #[error("signed by {offered}, but the witness trusts {held}: the ledger's key was replaced")]
    KeyChanged { held: String, offered: String },
    #[error(
        "tree size {offered} is smaller than the {held} the witness holds: records were removed"
    )]
    Shrunk { held: u64, offered: u64 },
    #[error(
        "tree size {offered} (root {offered_root}) does not extend the witnessed tree size {held} (root {held_root}): the log was rewritten"
    )]
    NotAnExtension {
        held: u64,
        held_root: String,
        offered: u64,
        offered_root: String,
    },
}

impl Rejection {
    /// The condition reason on the node.
    pub const REASON: &'static str = "LedgerInconsistent";
}

/// Whether a witness holding `held` accepts `offered`, signed by
/// `offered_key`, with `proof` from the held size to the offered one.
pub fn accept(
    held: Option<&Held>,
    offered: TreeHead,
    offered_key: &str,
    proof: &[Hash],
) -> Result<(), Rejection> {
    let Some(held) = held else {
        return Ok(());
    };
    if held.verifier_key != offered_key {
        return Err(Rejection::KeyChanged {
            held: held.verifier_key.clone(),
            offered: offered_key.to_owned(),
        });
    }
    if offered.size < held.head.size {
        return Err(Rejection::Shrunk {
            held: held.head.size,
            offered: offered.size,
        });
    }
    let old = (held.head.size, held.head.root);
    let consistent = held.head.size == 0 || extends(old, (offered.size, offered.root), proof);
    if consistent {
        Ok(())
    } else {
        Err(Rejection::NotAnExtension {
            held: held.head.size,
            held_root: tree::encode(&held.head.root),
            offered: offered.size,
            offered_root: tree::encode(&offered.root),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::Tree;
    use super::*;

    fn tree(leaves: &[&str]) -> Tree {
        let mut tree = Tree::default();
        for leaf in leaves {
            tree.append(leaf.as_bytes());
        }
        tree
    }

    fn head(tree: &Tree) -> TreeHead {
        TreeHead {
            size: tree.size(),
            root: tree.root(),
        }
    }

    fn held(tree: &Tree) -> Held {
        Held {
            head: head(tree),
            verifier_key: "k".into(),
        }
    }

    #[test]
    fn a_first_checkpoint_is_trusted_and_an_extension_accepted() {
        let grown = tree(&["a", "b", "c", "d", "e"]);
        assert_eq!(accept(None, head(&grown), "k", &[]), Ok(()));
        let before = tree(&["a", "b", "c"]);
        let proof = grown.prove_consistency(3, 5).unwrap();
        assert_eq!(
            accept(Some(&held(&before)), head(&grown), "k", &proof),
            Ok(())
        );
        assert_eq!(accept(Some(&held(&grown)), head(&grown), "k", &[]), Ok(()));
    }

    #[test]
    fn a_rewritten_log_is_refused_even_with_the_real_key() {
        let before = tree(&["a", "b", "c"]);
        let forged = tree(&["a", "B", "c", "d"]);
        let proof = forged.prove_consistency(3, 4).unwrap();
        assert!(matches!(
            accept(Some(&held(&before)), head(&forged), "k", &proof),
            Err(Rejection::NotAnExtension {
                held: 3,
                offered: 4,
                ..
            })
        ));
        // Same size, another root.
        let same_size = tree(&["a", "b", "C"]);
        assert!(accept(Some(&held(&before)), head(&same_size), "k", &[]).is_err());
    }

    proptest::proptest! {
        /// Any proof, honest or not, gets an answer: no panic in the proof check.
        #[test]
        fn any_proof_gets_an_answer(
            held_size in 0u64..300,
            offered_size in 0u64..300,
            seeds in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
        ) {
            let hash = |b: u8| Hash([b; 32]);
            let held = Held {
                head: TreeHead { size: held_size, root: hash(1) },
                verifier_key: "k".into(),
            };
            let proof: Vec<Hash> = seeds.into_iter().map(hash).collect();
            let offered = TreeHead { size: offered_size, root: hash(2) };
            let _ = accept(Some(&held), offered, "k", &proof);
        }
    }

    #[test]
    fn a_shrunk_log_or_a_new_key_is_refused() {
        let before = tree(&["a", "b", "c"]);
        let shorter = tree(&["a", "b"]);
        assert_eq!(
            accept(Some(&held(&before)), head(&shorter), "k", &[]),
            Err(Rejection::Shrunk {
                held: 3,
                offered: 2
            })
        );
        let grown = tree(&["a", "b", "c", "d"]);
        let proof = grown.prove_consistency(3, 4).unwrap();
        assert!(matches!(
            accept(Some(&held(&before)), head(&grown), "other", &proof),
            Err(Rejection::KeyChanged { .. })
        ));
    }
}
