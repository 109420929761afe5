//! Ledger metrics: records appended, the tree's size, the last checkpoint, and
//! per node how far its witness lags and whether it refused a checkpoint.

use prometheus::{Gauge, GaugeVec, IntCounter, IntGauge, Opts, Registry};

/// The ledger's metrics, set by the ledger's appender and witness rounds.
#[derive(Clone)]
pub struct LedgerMetrics {
    /// Records stored in the ledger by this process.
    pub records_total: IntCounter,
    /// Records in the ledger (the Merkle tree's size).
    pub tree_size: IntGauge,
    /// When the last checkpoint was signed and stored (Unix seconds).
    pub last_checkpoint_seconds: Gauge,
    /// 1 while the stored log verifies with the signing key, 0 when it does not
    /// (the ledger then appends nothing).
    pub verified: IntGauge,
    /// Records the node's witness has not yet accepted.
    pub witness_lag: GaugeVec,
    /// 1 while the node's witness refuses the ledger's checkpoint.
    pub witness_inconsistent: GaugeVec,
}

impl LedgerMetrics {
    pub fn register(registry: &Registry) -> Self {
        let metrics = LedgerMetrics {
            records_total: IntCounter::new(
                "flowfed_ledger_records_total",
                "Listing-change records this process stored in the ledger.",
            )
            .expect("valid metric"),
            tree_size: IntGauge::new(
                "flowfed_ledger_tree_size",
                "Records in the ledger: the size of its Merkle tree.",
            )
            .expect("valid metric"),
            last_checkpoint_seconds: Gauge::new(
                "flowfed_ledger_last_checkpoint_timestamp_seconds",
                "When the ledger's last signed checkpoint was stored (Unix time).",
            )
            .expect("valid metric"),
            verified: IntGauge::new(
                "flowfed_ledger_verified",
                "1 while the stored ledger verifies with the signing key; 0 stops appending.",
            )
            .expect("valid metric"),
            witness_lag: GaugeVec::new(
                Opts::new(
                    "flowfed_ledger_witness_lag_records",
                    "Records of the ledger the node's witness has not yet accepted.",
                ),
                &["node"],
            )
            .expect("valid metric"),
            witness_inconsistent: GaugeVec::new(
                Opts::new(
                    "flowfed_ledger_witness_inconsistent",
                    "1 while the node's witness refuses the ledger's checkpoint (not an extension of the one it holds).",
                ),
                &["node"],
            )
            .expect("valid metric"),
        };
        registry
            .register(Box::new(metrics.records_total.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(metrics.tree_size.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(metrics.last_checkpoint_seconds.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(metrics.verified.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(metrics.witness_lag.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(metrics.witness_inconsistent.clone()))
            .expect("unique metric");
        metrics
    }
}
