//! The log being appended to: its tree and the next block's index. Sealing a
//! block appends its records, signs the new tree head and gives the block to
//! store; the controller only writes it.

use super::checkpoint::LedgerKey;
use super::tree::{self, Tree};
use super::verify::VerifiedLog;
use crate::api::LedgerBlockSpec;

/// The log as far as it is stored.
#[derive(Debug, Default)]
pub struct Log {
    pub tree: Tree,
    /// Index of the next block.
    pub next_block: u64,
}

impl From<VerifiedLog> for Log {
    fn from(log: VerifiedLog) -> Self {
        Log {
            tree: log.tree,
            next_block: log.blocks,
        }
    }
}

impl Log {
    /// The next block, holding `records` (leaf bytes), signed with `key`.
    /// The log moves on only when [`Log::stored`] says the block was stored.
    pub fn seal(&self, records: Vec<String>, key: &LedgerKey) -> (LedgerBlockSpec, Tree) {
        let mut tree = self.tree.clone();
        for record in &records {
            tree.append(record.as_bytes());
        }
        let root = tree.root();
        let block = LedgerBlockSpec {
            index: self.next_block,
            first_record: self.tree.size(),
            record_count: records.len() as u64,
            records,
            tree_size: tree.size(),
            root_hash: tree::encode(&root),
            checkpoint: key.sign(tree.size(), root),
            verifier_key: key.verifier_key().to_owned(),
        };
        (block, tree)
    }

    /// Moves on past a block [`Log::seal`] made, once it is stored.
    pub fn stored(&mut self, tree: Tree) {
        self.tree = tree;
        self.next_block += 1;
    }
}
