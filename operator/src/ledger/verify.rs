//! Verification of the whole log and of its witnesses: what `flowfed ledger
//! verify` runs, over blocks read live or from an export. Every block is
//! recomputed from its records; the first thing wrong is named.

use std::collections::BTreeMap;
use std::fmt;

use tlog_tiles::tlog::Hash;

use super::checkpoint::{self, CheckpointError, TreeHead};
use super::record::Record;
use super::tree::{self, Tree};
use crate::api::{LedgerBlock, LedgerBlockSpec, LedgerCheckpointSpec};

/// The first thing wrong with a log or a witness.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    #[error("the log has no blocks")]
    Empty,
    #[error("block {index} is missing (blocks go up to {last})")]
    MissingBlock { index: u64, last: u64 },
    #[error("block {index} appears more than once")]
    DuplicateBlock { index: u64 },
    #[error("block {index} is stored as {name}, not {expected}")]
    Misnamed {
        index: u64,
        name: String,
        expected: String,
    },
    #[error("block {index} starts at record {found}, but the blocks before it end at {expected}")]
    OutOfOrder {
        index: u64,
        found: u64,
        expected: u64,
    },
    #[error("record {record} (block {index}) is not a ledger record: {why}")]
    BadRecord {
        index: u64,
        record: u64,
        why: String,
    },
    #[error(
        "block {index} (records {first}..{end}) does not hash to the tree it claims: its records or its tree size or root were changed"
    )]
    TreeMismatch { index: u64, first: u64, end: u64 },
    #[error("block {index}: {why}")]
    BadCheckpoint { index: u64, why: CheckpointError },
    #[error("block {index}: the checkpoint signs tree size {size}, not the block's {claimed}")]
    CheckpointMismatch { index: u64, size: u64, claimed: u64 },
    #[error("witness {witness}: {why}")]
    Witness { witness: String, why: String },
}

/// A log that verified: its tree, its records and the key that signs it.
#[derive(Debug)]
pub struct VerifiedLog {
    pub tree: Tree,
    /// Every record's leaf, by index (empty where an export left it out).
    pub leaves: Vec<String>,
    /// The verifier key every checkpoint verified with.
    pub verifier_key: String,
    /// The last checkpoint.
    pub head: TreeHead,
    pub blocks: u64,
}

/// A block as stored: its object name and spec. A record an export left
/// out is an empty string in `spec.records`, and its leaf hash is in `omitted`.
pub struct StoredBlock<'a> {
    pub name: &'a str,
    pub spec: &'a LedgerBlockSpec,
    pub omitted: Option<&'a BTreeMap<u64, Hash>>,
}

/// Verifies `blocks` (any order) with `verifier_key`, or with the key that
/// block 0 names when none is given (a changed key then fails the first
/// block it signed).
pub fn verify_log(
    blocks: &[StoredBlock<'_>],
    verifier_key: Option<&str>,
) -> Result<VerifiedLog, Finding> {
    let mut ordered: Vec<&StoredBlock> = blocks.iter().collect();
    ordered.sort_by_key(|b| b.spec.index);
    let last = ordered.last().ok_or(Finding::Empty)?.spec.index;
    let key = match verifier_key {
        Some(key) => key.to_owned(),
        None => ordered[0].spec.verifier_key.clone(),
    };
    let mut tree = Tree::default();
    let mut leaves = Vec::new();
    let mut head = None;
    for (expected_index, block) in (0u64..).zip(&ordered) {
        let index = block.spec.index;
        if index > expected_index {
            return Err(Finding::MissingBlock {
                index: expected_index,
                last,
            });
        }
        if index < expected_index {
            return Err(Finding::DuplicateBlock { index });
        }
        head = Some(verify_block(block, &key, &mut tree, &mut leaves)?);
    }
    Ok(VerifiedLog {
        tree,
        leaves,
        verifier_key: key,
        head: head.expect("at least one block"),
        blocks: last + 1,
    })
}

fn verify_block(
    block: &StoredBlock<'_>,
    key: &str,
    tree: &mut Tree,
    leaves: &mut Vec<String>,
) -> Result<TreeHead, Finding> {
    let spec = block.spec;
    let index = spec.index;
    let expected = LedgerBlock::name_of(index);
    if block.name != expected {
        return Err(Finding::Misnamed {
            index,
            name: block.name.to_owned(),
            expected,
        });
    }
    if spec.first_record != tree.size() {
        return Err(Finding::OutOfOrder {
            index,
            found: spec.first_record,
            expected: tree.size(),
        });
    }
    for (record, leaf) in (spec.first_record..).zip(&spec.records) {
        if let Some(hash) = block.omitted.and_then(|o| o.get(&record)) {
            tree.append_hash(*hash);
            leaves.push(String::new());
            continue;
        }
        if let Err(e) = serde_json::from_str::<Record>(leaf) {
            return Err(Finding::BadRecord {
                index,
                record,
                why: e.to_string(),
            });
        }
        tree.append(leaf.as_bytes());
        leaves.push(leaf.clone());
    }
    let claimed = tree::decode(&spec.root_hash);
    let counted = spec.record_count == spec.records.len() as u64;
    if !counted || spec.tree_size != tree.size() || claimed != Some(tree.root()) {
        return Err(Finding::TreeMismatch {
            index,
            first: spec.first_record,
            end: spec.first_record + spec.records.len() as u64,
        });
    }
    let head = checkpoint::open(&spec.checkpoint, key)
        .map_err(|why| Finding::BadCheckpoint { index, why })?;
    if head.size != tree.size() || head.root != tree.root() {
        return Err(Finding::CheckpointMismatch {
            index,
            size: head.size,
            claimed: tree.size(),
        });
    }
    Ok(head)
}

/// Checks one witness's checkpoint against the verified log: signed by the
/// log's key, no larger than the log, and the log's root at its size.
pub fn verify_witness(
    log: &VerifiedLog,
    witness: &str,
    held: &LedgerCheckpointSpec,
) -> Result<(), Finding> {
    let fail = |why: String| Finding::Witness {
        witness: witness.to_owned(),
        why,
    };
    if held.verifier_key != log.verifier_key {
        return Err(fail(format!(
            "trusts key {}, the log is signed by {}",
            held.verifier_key, log.verifier_key
        )));
    }
    let head = checkpoint::open(&held.checkpoint, &log.verifier_key)
        .map_err(|why| fail(why.to_string()))?;
    match log.tree.root_at(head.size) {
        None => Err(fail(format!(
            "holds tree size {}, beyond the log's {}: blocks were removed",
            head.size,
            log.tree.size()
        ))),
        Some(root) if root != head.root => Err(fail(format!(
            "holds root {} at tree size {}, the log has {}: the log was rewritten",
            tree::encode(&head.root),
            head.size,
            tree::encode(&root)
        ))),
        Some(_) => Ok(()),
    }
}

impl fmt::Display for VerifiedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records in {} blocks, tree size {}, root {}, signed by {}",
            self.leaves.len(),
            self.blocks,
            self.head.size,
            tree::encode(&self.head.root),
            self.verifier_key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::checkpoint::LedgerKey;
    use super::super::log::Log;
    use super::super::record::{ProductId, Record};
    use super::*;

    fn key() -> LedgerKey {
        LedgerKey::from_pem("flowfed.io/ledger/test", &LedgerKey::generate_pem()).unwrap()
    }

    fn leaf(i: u64) -> String {
        let product = ProductId {
            namespace: "dfn-beijing".into(),
            name: format!("p{i}"),
            uid: format!("u{i}"),
        };
        Record::of_change(&product, None, Some(&Default::default()), format!("t{i}"))
            .unwrap()
            .to_leaf()
    }

    /// Three blocks of 2, 3 and 1 records.
    fn log_of(key: &LedgerKey) -> Vec<(String, LedgerBlockSpec)> {
        let mut log = Log::default();
        let mut blocks = Vec::new();
        let mut next = 0;
        for size in [2, 3, 1] {
            let records = (next..next + size).map(leaf).collect();
            next += size;
            let (block, tree) = log.seal(records, key);
            log.stored(tree);
            blocks.push((LedgerBlock::name_of(block.index), block));
        }
        blocks
    }

    fn verify(
        blocks: &[(String, LedgerBlockSpec)],
        key: Option<&str>,
    ) -> Result<VerifiedLog, Finding> {
        let stored: Vec<StoredBlock> = blocks
            .iter()
            .map(|(name, spec)| StoredBlock {
                name,
                spec,
                omitted: None,
            })
            .collect();
        verify_log(&stored, key)
    }

    #[test]
    fn an_untouched_log_verifies_in_any_listing_order() {
        let key = key();
        let mut blocks = log_of(&key);
        blocks.reverse();
        let log = verify(&blocks, Some(key.verifier_key())).unwrap();
        assert_eq!((log.leaves.len(), log.blocks, log.head.size), (6, 3, 6));
        assert_eq!(log.tree.root(), log.head.root);
    }

    #[test]
    fn an_edited_record_names_its_block() {
        let key = key();
        let mut blocks = log_of(&key);
        blocks[1].1.records[2] = blocks[1].1.records[2].replace("p4", "p9");
        assert_eq!(
            verify(&blocks, None).unwrap_err(),
            Finding::TreeMismatch {
                index: 1,
                first: 2,
                end: 5
            }
        );
        blocks[1].1.records[2] = "{not a record".into();
        assert!(matches!(
            verify(&blocks, None).unwrap_err(),
            Finding::BadRecord {
                index: 1,
                record: 4,
                ..
            }
        ));
    }

    #[test]
    fn a_deleted_or_reordered_block_is_named() {
        let key = key();
        let blocks = log_of(&key);
        let without_middle = vec![blocks[0].clone(), blocks[2].clone()];
        assert_eq!(
            verify(&without_middle, None).unwrap_err(),
            Finding::MissingBlock { index: 1, last: 2 }
        );
        // Blocks 1 and 2 swap places (their indexes and names).
        let mut swapped = blocks.clone();
        swapped[1].1.index = 2;
        swapped[1].0 = LedgerBlock::name_of(2);
        swapped[2].1.index = 1;
        swapped[2].0 = LedgerBlock::name_of(1);
        assert_eq!(
            verify(&swapped, None).unwrap_err(),
            Finding::OutOfOrder {
                index: 1,
                found: 5,
                expected: 2
            }
        );
        // A block stored under another block's name.
        let mut renamed = blocks;
        renamed[2].0 = "ledger-x".into();
        assert!(matches!(
            verify(&renamed, None).unwrap_err(),
            Finding::Misnamed { index: 2, .. }
        ));
    }

    #[test]
    fn a_replaced_signing_key_fails_the_first_block_it_signed() {
        let (key, other) = (key(), key());
        let mut blocks = log_of(&key);
        let resigned = other.sign(
            blocks[2].1.tree_size,
            tree::decode(&blocks[2].1.root_hash).unwrap(),
        );
        blocks[2].1.checkpoint = resigned;
        blocks[2].1.verifier_key = other.verifier_key().to_owned();
        assert!(matches!(
            verify(&blocks, None).unwrap_err(),
            Finding::BadCheckpoint {
                index: 2,
                why: CheckpointError::NotSignedBy(_)
            }
        ));
        // With the regulator's pinned key, the whole log is refused at block 0.
        assert!(matches!(
            verify(&log_of(&other), Some(key.verifier_key())).unwrap_err(),
            Finding::BadCheckpoint { index: 0, .. }
        ));
    }

    proptest::proptest! {
        /// Whatever a hub administrator stores, verification answers with a
        /// finding and never panics.
        #[test]
        fn any_stored_block_gets_an_answer(
            records in proptest::collection::vec(".{0,60}", 0..4),
            index in 0u64..3,
            first in 0u64..8,
            tree_size in 0u64..8,
            root in ".{0,50}",
            checkpoint in ".{0,120}",
            key in ".{0,80}",
        ) {
            let spec = LedgerBlockSpec {
                index,
                first_record: first,
                record_count: records.len() as u64,
                records,
                tree_size,
                root_hash: root,
                checkpoint,
                verifier_key: key.clone(),
            };
            let name = LedgerBlock::name_of(index);
            let stored = [StoredBlock { name: &name, spec: &spec, omitted: None }];
            let _ = verify_log(&stored, Some(&key));
            let _ = verify_log(&stored, None);
        }
    }

    #[test]
    fn a_witness_of_another_history_or_a_longer_log_is_named() {
        let key = key();
        let blocks = log_of(&key);
        let log = verify(&blocks, None).unwrap();
        let witness = |size: u64, root| LedgerCheckpointSpec {
            node: "hongkong".into(),
            tree_size: size,
            root_hash: tree::encode(&root),
            checkpoint: key.sign(size, root),
            verifier_key: key.verifier_key().to_owned(),
            previous_tree_size: 0,
            consistency_proof: Vec::new(),
        };
        let honest = witness(5, log.tree.root_at(5).unwrap());
        assert_eq!(verify_witness(&log, "hongkong", &honest), Ok(()));
        let other_history = witness(5, tlog_tiles::tlog::Hash([1; 32]));
        assert!(matches!(
            verify_witness(&log, "hongkong", &other_history),
            Err(Finding::Witness { witness, why }) if witness == "hongkong" && why.contains("rewritten")
        ));
        let beyond = witness(9, tlog_tiles::tlog::Hash([1; 32]));
        assert!(matches!(
            verify_witness(&log, "hongkong", &beyond),
            Err(Finding::Witness { why, .. }) if why.contains("removed")
        ));
    }
}
