//! The trusted-sharing ledger, pure: records of listing changes as leaves of
//! an RFC 9162 Merkle tree, signed checkpoints (C2SP), the witness's rule and
//! the verification `flowfed ledger verify` runs. The controller's ledger
//! writer appends blocks and updates witnesses; the threat model and formats
//! are in docs/ledger.md.

pub mod checkpoint;
pub mod log;
pub mod record;
pub mod tree;
pub mod verify;
pub mod witness;
