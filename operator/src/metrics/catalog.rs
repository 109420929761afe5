//! Catalog gauges (entries per node, blocks per reason, member clusters up,
//! each processor's yearly totals and tier), read from the caches at scrape time.

use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, Opts};

use crate::api::{
    CatalogEntry, DataFlowNode, DataProcessor, DataProduct, ProcessorTier, TARGET_NODE_LABEL,
};
use crate::catalog::member::Members;
use crate::policy::Reason;

/// Reads catalog gauges at scrape time: entries per node, blocks per reason,
/// member clusters up.
pub struct CatalogCollector {
    nodes: Store<DataFlowNode>,
    entries: Store<CatalogEntry>,
    products: Store<DataProduct>,
    processors: Store<DataProcessor>,
    members: Arc<Members>,
    gauges: Mutex<[GaugeVec; 6]>,
    descs: Vec<Desc>,
}

impl CatalogCollector {
    pub fn new(
        nodes: Store<DataFlowNode>,
        entries: Store<CatalogEntry>,
        products: Store<DataProduct>,
        processors: Store<DataProcessor>,
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
            gauge(
                "flowfed_processor_individuals",
                "Individuals whose personal information the processor sends abroad this calendar year (UTC+8).",
                &["processor", "node"],
            ),
            gauge(
                "flowfed_processor_sensitive_individuals",
                "Individuals whose sensitive personal information the processor sends abroad this calendar year.",
                &["processor", "node"],
            ),
            gauge(
                "flowfed_processor_tier",
                "1 for the mechanism tier the processor's volumes require (Exempt, ContractOrCertification, SecurityAssessment).",
                &["processor", "tier"],
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
            processors,
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
        let [entries, blocked, member_up, ..] = &*gauges;
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
        for reason in Reason::BLOCKED
            .iter()
            .filter(|r| **r != Reason::NotSelected)
        {
            blocked.with_label_values(&[reason.as_str()]).set(0.0);
        }
        for product in self.products.state() {
            for block in product.status.iter().flat_map(|s| s.blocked.iter()) {
                blocked.with_label_values(&[&block.reason]).inc();
            }
        }
        self.collect_processors(&gauges);
        gauges.iter().flat_map(|g| g.collect()).collect()
    }
}

impl CatalogCollector {
    fn collect_processors(&self, gauges: &[GaugeVec; 6]) {
        let [.., individuals, sensitive, tiers] = gauges;
        for processor in self.processors.state() {
            let Some(status) = &processor.status else {
                continue;
            };
            let (name, node) = (processor.name_any(), &processor.spec.node);
            individuals
                .with_label_values(&[&name, node])
                .set(status.individuals as f64);
            sensitive
                .with_label_values(&[&name, node])
                .set(status.sensitive_individuals as f64);
            for tier in [
                ProcessorTier::Exempt,
                ProcessorTier::ContractOrCertification,
                ProcessorTier::SecurityAssessment,
            ] {
                let current = f64::from(u8::from(status.tier == Some(tier)));
                tiers
                    .with_label_values(&[&name, tier.as_str()])
                    .set(current);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;

    fn store_of<K>(objects: Vec<serde_json::Value>) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + 'static,
    {
        let (reader, mut writer) = store();
        for object in objects {
            writer.apply_watcher_event(&Event::Apply(serde_json::from_value(object).unwrap()));
        }
        reader
    }

    fn gauge(families: &[MetricFamily], family: &str, label: &str) -> Option<f64> {
        families
            .iter()
            .find(|f| f.name() == family)?
            .get_metric()
            .iter()
            .find(|m| m.get_label().iter().any(|l| l.value() == label))
            .map(|m| m.get_gauge().get_value())
    }

    #[test]
    fn scrapes_count_entries_per_node_and_blocks_per_reason() {
        let nodes = store_of::<DataFlowNode>(vec![json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode",
            "metadata": {"name": "shenzhen"},
            "spec": {"city": "Shenzhen", "province": "CN-GD", "endpoint": {"url": "https://gw.example/"}},
        })]);
        let entry = |name: &str| {
            json!({
                "apiVersion": "flowfed.io/v1alpha1", "kind": "CatalogEntry",
                "metadata": {"name": name, "namespace": "dfn-shenzhen", "labels": {TARGET_NODE_LABEL: "shenzhen"}},
                "spec": {"product": {"node": "beijing", "namespace": "dfn-beijing", "name": name, "uid": name},
                         "title": name, "classification": "Public",
                         "publishedAt": "2026-01-01T00:00:00Z", "contentHash": "h"},
            })
        };
        let entries = store_of::<CatalogEntry>(vec![entry("a"), entry("b")]);
        let products = store_of::<DataProduct>(vec![json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": "patients", "namespace": "dfn-shenzhen"},
            "spec": {"title": "Patients", "classification": "PersonalInformation"},
            "status": {"blocked": [
                {"node": "hongkong", "reason": "NoCrossBorderMechanism"},
                {"node": "macao", "reason": "NoCrossBorderMechanism"},
            ]},
        })]);
        let collector =
            CatalogCollector::new(nodes, entries, products, store_of(vec![]), Arc::default());
        let families = collector.collect();
        assert_eq!(
            gauge(&families, "flowfed_catalog_entries", "shenzhen"),
            Some(2.0)
        );
        let blocked = |reason| gauge(&families, "flowfed_catalog_blocked", reason);
        assert_eq!(blocked("NoCrossBorderMechanism"), Some(2.0));
        assert_eq!(
            blocked("MechanismExpired"),
            Some(0.0),
            "every reason has a series"
        );
        assert_eq!(blocked("NotSelected"), None, "not a block");
    }
}
