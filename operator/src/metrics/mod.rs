//! Every flowfed metric, in one registry, with the `flowfed_` prefix.
//!
//! Network gauges (nodes, links, federations) are not pushed by the
//! controllers: a collector reads them from the watch caches and the live probe
//! table at scrape time, so a deleted node's series vanish with it and an RTT
//! is always the latest, without a status write. Counters and histograms that
//! record events (reconciles, catalog writes) are ordinary registered metrics.

use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

mod catalog;
mod ledger;
mod network;

pub use catalog::CatalogCollector;
pub use ledger::LedgerMetrics;
pub use network::NetworkCollector;

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    /// The collectors of the current leadership term (see [`TermCollectors`]).
    term: Arc<TermCollectors>,
    /// Reconciles by controller and result (`success` or an error category).
    pub reconcile_total: IntCounterVec,
    /// Reconcile wall time by controller.
    pub reconcile_duration_seconds: HistogramVec,
    /// Time from a product's release (creation or spec change) to its last entry written.
    pub catalog_release_to_visible_seconds: Histogram,
    /// 1 while this replica holds the leader Lease (or runs without election).
    pub leader: IntGauge,
    /// The ledger's records, tree and witnesses.
    pub ledger: LedgerMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconcile_total = IntCounterVec::new(
            Opts::new(
                "flowfed_reconcile_total",
                "Reconciles by controller and result (success or error category).",
            ),
            &["controller", "result"],
        )
        .expect("valid metric");
        let reconcile_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "flowfed_reconcile_duration_seconds",
                "Reconcile wall time by controller.",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]),
            &["controller"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(reconcile_total.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(reconcile_duration_seconds.clone()))
            .expect("unique metric");
        let catalog_release_to_visible_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "flowfed_catalog_release_to_visible_seconds",
                "Time from a product's release (creation or spec change) to its last catalog entry written.",
            )
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
        )
        .expect("valid metric");
        registry
            .register(Box::new(catalog_release_to_visible_seconds.clone()))
            .expect("unique metric");
        let leader = IntGauge::new(
            "flowfed_leader",
            "1 while this replica runs the controllers (holds the leader Lease), else 0.",
        )
        .expect("valid metric");
        leader.set(1);
        registry
            .register(Box::new(leader.clone()))
            .expect("unique metric");
        let term = Arc::new(TermCollectors::default());
        registry
            .register(Box::new(TermCollectorsHandle(term.clone())))
            .expect("term collectors registered once");
        let ledger = LedgerMetrics::register(&registry);
        Metrics {
            ledger,
            registry,
            term,
            reconcile_total,
            reconcile_duration_seconds,
            catalog_release_to_visible_seconds,
            leader,
        }
    }

    /// Sets the collector that reads catalog state at scrape time, for this
    /// leadership term.
    pub fn register_catalog(&self, collector: CatalogCollector) {
        *self.term.catalog.lock().expect("term collectors lock") = Some(collector);
    }

    /// Sets the collector that reads network state at scrape time, for this
    /// leadership term.
    pub fn register_network(&self, collector: NetworkCollector) {
        *self.term.network.lock().expect("term collectors lock") = Some(collector);
    }

    /// Ends a leadership term: a standby exports no network or catalog state
    /// (it watches nothing), and the next term sets its own collectors.
    pub fn end_term(&self) {
        *self.term.network.lock().expect("term collectors lock") = None;
        *self.term.catalog.lock().expect("term collectors lock") = None;
    }

    /// Records one reconcile.
    pub fn observe_reconcile(&self, controller: &str, result: &str, seconds: f64) {
        self.reconcile_total
            .with_label_values(&[controller, result])
            .inc();
        self.reconcile_duration_seconds
            .with_label_values(&[controller])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The collectors that read a leadership term's caches. A replica may lead
/// several times in its life, each time with new caches, while a registry
/// takes each collector once: so one handle is registered, and it delegates.
#[derive(Default)]
struct TermCollectors {
    network: Mutex<Option<NetworkCollector>>,
    catalog: Mutex<Option<CatalogCollector>>,
}

struct TermCollectorsHandle(Arc<TermCollectors>);

impl Collector for TermCollectorsHandle {
    /// None up front: the families depend on the term's collectors.
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = Vec::new();
        if let Some(network) = self
            .0
            .network
            .lock()
            .expect("term collectors lock")
            .as_ref()
        {
            families.extend(network.collect());
        }
        if let Some(catalog) = self
            .0
            .catalog
            .lock()
            .expect("term collectors lock")
            .as_ref()
        {
            families.extend(catalog.collect());
        }
        families
    }
}
