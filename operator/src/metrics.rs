//! Every flowfed metric, in one registry, with the `flowfed_` prefix.
//!
//! Network gauges (nodes, links, federations) are not pushed by the
//! controllers: a collector reads them from the watch caches and the live probe
//! table at scrape time, so a deleted node's series vanish with it and an RTT
//! is always the latest, without a status write. Counters and histograms that
//! record events (reconciles, catalog writes) are ordinary registered metrics.

use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::api::{
    CatalogEntry, DataFlowNode, DataProduct, Federation, InterCityLink, LinkState, NodePhase,
    TARGET_NODE_LABEL,
};
use crate::catalog::member::Members;
use crate::policy::BlockReason;
use crate::probe::{Endpoint, HealthTable};

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
        Metrics {
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

/// Reads node, link and federation gauges from the caches at scrape time.
pub struct NetworkCollector {
    nodes: Store<DataFlowNode>,
    links: Store<InterCityLink>,
    federations: Store<Federation>,
    health: Arc<HealthTable>,
    gauges: Mutex<NetworkGauges>,
    descs: Vec<Desc>,
}

struct NetworkGauges {
    node_info: GaugeVec,
    node_up: GaugeVec,
    node_rtt: GaugeVec,
    link_up: GaugeVec,
    link_rtt: GaugeVec,
    interconnected: GaugeVec,
    components: GaugeVec,
    critical_nodes: GaugeVec,
    critical_links: GaugeVec,
    link_critical: GaugeVec,
    provinces_covered: GaugeVec,
    provinces_target: GaugeVec,
}

impl NetworkGauges {
    fn new() -> Self {
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            GaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        NetworkGauges {
            node_info: gauge(
                "flowfed_node_info",
                "Static facts of each node (always 1): city, province, jurisdiction, coordinates.",
                &[
                    "node",
                    "city",
                    "province",
                    "jurisdiction",
                    "latitude",
                    "longitude",
                ],
            ),
            node_up: gauge(
                "flowfed_node_up",
                "1 when the node's gateway answers probes (Ready or Degraded), else 0.",
                &["node"],
            ),
            node_rtt: gauge(
                "flowfed_node_rtt_seconds",
                "Smoothed probe round-trip time of the node's gateway.",
                &["node"],
            ),
            link_up: gauge(
                "flowfed_link_up",
                "1 when the link carries traffic (Up or Degraded), else 0.",
                &["link", "from", "to"],
            ),
            link_rtt: gauge(
                "flowfed_link_rtt_seconds",
                "Round-trip time of the link.",
                &["link"],
            ),
            interconnected: gauge(
                "flowfed_federation_interconnected",
                "1 when every member node is Ready and all are connected.",
                &["federation"],
            ),
            components: gauge(
                "flowfed_federation_components",
                "Connected components of the federation's network.",
                &["federation"],
            ),
            critical_nodes: gauge(
                "flowfed_federation_critical_nodes",
                "Nodes whose loss would split the federation.",
                &["federation"],
            ),
            critical_links: gauge(
                "flowfed_federation_critical_links",
                "Links whose loss would split the federation.",
                &["federation"],
            ),
            link_critical: gauge(
                "flowfed_link_critical",
                "1 for a link whose loss would split a federation (a bridge).",
                &["link"],
            ),
            provinces_covered: gauge(
                "flowfed_federation_provinces_covered",
                "Provincial-level regions with a Ready member node.",
                &["federation"],
            ),
            provinces_target: gauge(
                "flowfed_federation_provinces_target",
                "The federation's coverage.provincesTarget.",
                &["federation"],
            ),
        }
    }

    fn all(&self) -> [&GaugeVec; 12] {
        [
            &self.node_info,
            &self.node_up,
            &self.node_rtt,
            &self.link_up,
            &self.link_rtt,
            &self.interconnected,
            &self.components,
            &self.critical_nodes,
            &self.critical_links,
            &self.link_critical,
            &self.provinces_covered,
            &self.provinces_target,
        ]
    }
}

impl NetworkCollector {
    pub fn new(
        nodes: Store<DataFlowNode>,
        links: Store<InterCityLink>,
        federations: Store<Federation>,
        health: Arc<HealthTable>,
    ) -> Self {
        let gauges = NetworkGauges::new();
        let descs = gauges
            .all()
            .iter()
            .flat_map(|g| g.desc().into_iter().cloned())
            .collect();
        NetworkCollector {
            nodes,
            links,
            federations,
            health,
            gauges: Mutex::new(gauges),
            descs,
        }
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

impl Collector for NetworkCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let gauges = self.gauges.lock().expect("gauges lock");
        for g in gauges.all() {
            g.reset();
        }
        for node in self.nodes.state() {
            let name = node.name_any();
            let (lat, lon) = node
                .spec
                .location
                .map(|l| (l.latitude.to_string(), l.longitude.to_string()))
                .unwrap_or_default();
            gauges
                .node_info
                .with_label_values(&[
                    &name,
                    &node.spec.city,
                    &node.spec.province,
                    &node.spec.jurisdiction,
                    &lat,
                    &lon,
                ])
                .set(1.0);
            let live = self.health.health(Endpoint::Node(&name));
            let phase = live
                .as_ref()
                .map(|h| h.phase)
                .or(node.status.as_ref().map(|s| s.phase))
                .unwrap_or_default();
            let up = matches!(phase, NodePhase::Ready | NodePhase::Degraded);
            gauges
                .node_up
                .with_label_values(&[&name])
                .set(f64::from(u8::from(up)));
            let rtt = live
                .and_then(|h| h.smoothed_rtt_millis)
                .or(node.status.as_ref().and_then(|s| s.rtt_millis));
            if let (true, Some(ms)) = (up, rtt) {
                gauges.node_rtt.with_label_values(&[&name]).set(ms / 1000.0);
            }
        }
        for link in self.links.state() {
            let name = link.name_any();
            let status = link.status.clone().unwrap_or_default();
            if status.duplicate_of.is_some() {
                continue;
            }
            let up = matches!(status.state, LinkState::Up | LinkState::Degraded);
            gauges
                .link_up
                .with_label_values(&[&name, &link.spec.from, &link.spec.to])
                .set(f64::from(u8::from(up)));
            // Live: the channel probe's RTT, or the sum of both gateways' live RTTs.
            let live = match &link.spec.probe {
                Some(_) => self
                    .health
                    .health(Endpoint::Link(&name))
                    .and_then(|h| h.smoothed_rtt_millis),
                None => {
                    let rtt = |node: &str| {
                        self.health
                            .health(Endpoint::Node(node))
                            .and_then(|h| h.smoothed_rtt_millis)
                    };
                    rtt(&link.spec.from)
                        .zip(rtt(&link.spec.to))
                        .map(|(a, b)| a + b)
                }
            };
            if let (true, Some(ms)) = (up, live.or(status.rtt_millis)) {
                gauges.link_rtt.with_label_values(&[&name]).set(ms / 1000.0);
            }
        }
        for federation in self.federations.state() {
            let Some(status) = &federation.status else {
                continue;
            };
            let name = federation.name_any();
            gauges
                .interconnected
                .with_label_values(&[&name])
                .set(f64::from(u8::from(status.interconnected)));
            gauges
                .components
                .with_label_values(&[&name])
                .set(f64::from(status.components));
            gauges
                .critical_nodes
                .with_label_values(&[&name])
                .set(status.critical_nodes.len() as f64);
            gauges
                .provinces_covered
                .with_label_values(&[&name])
                .set(f64::from(status.provinces_covered));
            gauges
                .critical_links
                .with_label_values(&[&name])
                .set(status.critical_links.len() as f64);
            for link in &status.critical_links {
                gauges.link_critical.with_label_values(&[link]).set(1.0);
            }
            if let Some(coverage) = federation.spec.coverage {
                gauges
                    .provinces_target
                    .with_label_values(&[&name])
                    .set(f64::from(coverage.provinces_target));
            }
        }
        gauges.all().iter().flat_map(|g| g.collect()).collect()
    }
}

/// Reads catalog gauges at scrape time: entries per node, blocks per reason,
/// member clusters up.
pub struct CatalogCollector {
    nodes: Store<DataFlowNode>,
    entries: Store<CatalogEntry>,
    products: Store<DataProduct>,
    members: Arc<Members>,
    gauges: Mutex<[GaugeVec; 3]>,
    descs: Vec<Desc>,
}

impl CatalogCollector {
    pub fn new(
        nodes: Store<DataFlowNode>,
        entries: Store<CatalogEntry>,
        products: Store<DataProduct>,
        members: Arc<Members>,
    ) -> Self {
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            GaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let gauges = [
            gauge(
                "flowfed_catalog_entries",
                "Catalog entries listed in each node's catalog view.",
                &["node"],
            ),
            gauge(
                "flowfed_catalog_blocked",
                "(product, node) pairs the cross-border rules block, by reason.",
                &["reason"],
            ),
            gauge(
                "flowfed_member_cluster_up",
                "1 when the node's member cluster is usable, else 0.",
                &["node"],
            ),
        ];
        let descs = gauges
            .iter()
            .flat_map(|g| g.desc().into_iter().cloned())
            .collect();
        CatalogCollector {
            nodes,
            entries,
            products,
            members,
            gauges: Mutex::new(gauges),
            descs,
        }
    }
}

impl Collector for CatalogCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let gauges = self.gauges.lock().expect("gauges lock");
        let [entries, blocked, member_up] = &*gauges;
        for g in gauges.iter() {
            g.reset();
        }
        let mut hub_counts = std::collections::HashMap::<String, usize>::new();
        for entry in self.entries.state() {
            if let Some(target) = entry.labels().get(TARGET_NODE_LABEL) {
                *hub_counts.entry(target.clone()).or_default() += 1;
            }
        }
        for node in self.nodes.state() {
            let name = node.name_any();
            let count = if node.spec.catalog.kubeconfig_secret_ref.is_some() {
                member_up
                    .with_label_values(&[&name])
                    .set(f64::from(u8::from(self.members.up(&name) == Some(true))));
                self.members.entries(&name).len()
            } else {
                hub_counts.get(&name).copied().unwrap_or(0)
            };
            entries.with_label_values(&[&name]).set(count as f64);
        }
        for reason in BlockReason::ALL
            .iter()
            .filter(|r| **r != BlockReason::NotSelected)
        {
            blocked.with_label_values(&[reason.as_str()]).set(0.0);
        }
        for product in self.products.state() {
            for block in product.status.iter().flat_map(|s| s.blocked.iter()) {
                blocked.with_label_values(&[&block.reason]).inc();
            }
        }
        gauges.iter().flat_map(|g| g.collect()).collect()
    }
}
