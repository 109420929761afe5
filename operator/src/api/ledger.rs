//! The ledger's two kinds. `LedgerBlock`: the hub's append-only log of
//! listing changes, in blocks, each with the signed checkpoint after it.
//! `LedgerCheckpoint`: what a witness (a member cluster, or a hub node
//! namespace without one) last accepted. Both are written only by flowfed;
//! `flowfed ledger verify` checks them (see docs/ledger.md).

use kube::CustomResource;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Most records in one block: with records of about 1 KiB a block stays far
/// below the API server's 1.5 MiB request limit.
pub const MAX_BLOCK_RECORDS: usize = 256;
/// Most record bytes in one block.
pub const MAX_BLOCK_BYTES: usize = 512 * 1024;

/// Records of the ledger, with the tree size and root after them and the
/// signed checkpoint of that tree. Written only by flowfed, never changed.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flowfed.io",
    version = "v1alpha1",
    kind = "LedgerBlock",
    namespaced,
    plural = "ledgerblocks",
    shortname = "lgb",
    category = "flowfed",
    doc = "A block of flowfed's ledger: listing changes as RFC 9162 Merkle tree leaves, with the signed checkpoint after them. Written only by flowfed; `flowfed ledger verify` checks every block.",
    printcolumn(name = "Index", type_ = "integer", json_path = ".spec.index"),
    printcolumn(name = "Records", type_ = "integer", json_path = ".spec.recordCount"),
    printcolumn(name = "Tree size", type_ = "integer", json_path = ".spec.treeSize"),
    printcolumn(name = "Root", type_ = "string", json_path = ".spec.rootHash"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct LedgerBlockSpec {
    /// Position of the block in the log, from 0.
    pub index: u64,
    /// Index of the block's first record (the tree size before it).
    pub first_record: u64,
    /// Number of records in the block.
    pub record_count: u64,
    /// The records, each the exact bytes of its Merkle tree leaf (JSON).
    #[schemars(length(max = 256), inner(length(max = 65536)))]
    pub records: Vec<String>,
    /// Tree size after the block.
    pub tree_size: u64,
    /// Root hash of the tree after the block (base64).
    #[schemars(length(max = 64))]
    pub root_hash: String,
    /// The signed checkpoint of that tree (C2SP tlog-checkpoint signed note).
    #[schemars(length(max = 4096))]
    pub checkpoint: String,
    /// The key that signed the checkpoint (note verifier key).
    #[schemars(length(max = 256))]
    pub verifier_key: String,
}

impl LedgerBlock {
    /// The name of block `index`: sorting names sorts blocks.
    pub fn name_of(index: u64) -> String {
        format!("ledger-{index:012}")
    }
}

/// The latest checkpoint of the hub's ledger a witness accepted, with the
/// consistency proof that showed it extends the one it held before.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flowfed.io",
    version = "v1alpha1",
    kind = "LedgerCheckpoint",
    namespaced,
    plural = "ledgercheckpoints",
    shortname = "lgc",
    category = "flowfed",
    doc = "The latest checkpoint of flowfed's ledger this cluster or namespace has witnessed, accepted only as an extension (RFC 9162 consistency proof) of the one it held. Written only by flowfed.",
    printcolumn(name = "Tree size", type_ = "integer", json_path = ".spec.treeSize"),
    printcolumn(name = "Root", type_ = "string", json_path = ".spec.rootHash"),
    printcolumn(name = "Key", type_ = "string", json_path = ".spec.verifierKey")
)]
#[serde(rename_all = "camelCase")]
pub struct LedgerCheckpointSpec {
    /// The node this witness belongs to.
    #[schemars(length(max = 63))]
    pub node: String,
    /// Tree size of the accepted checkpoint.
    pub tree_size: u64,
    /// Root hash of the accepted checkpoint (base64).
    #[schemars(length(max = 64))]
    pub root_hash: String,
    /// The accepted checkpoint (signed note).
    #[schemars(length(max = 4096))]
    pub checkpoint: String,
    /// The key the witness trusts: the one that signed its first checkpoint.
    #[schemars(length(max = 256))]
    pub verifier_key: String,
    /// Tree size the witness held before this checkpoint.
    pub previous_tree_size: u64,
    /// The consistency proof from the previous tree to this one (base64 hashes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128), inner(length(max = 64)))]
    pub consistency_proof: Vec<String>,
}

impl LedgerCheckpoint {
    /// Every witness object has this name, one per namespace.
    pub const NAME: &'static str = "flowfed-ledger";
}
