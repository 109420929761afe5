//! Network gauges (nodes, links, federations), read from the watch caches and
//! the live probe table at scrape time.

use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, Opts};

use crate::api::{DataFlowNode, Federation, InterCityLink, LinkState, NodePhase};
use crate::probe::{Endpoint, HealthTable};

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

impl Collector for NetworkCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let gauges = self.gauges.lock().expect("gauges lock");
        for g in gauges.all() {
            g.reset();
        }
        self.collect_nodes(&gauges);
        self.collect_links(&gauges);
        self.collect_federations(&gauges);
        gauges.all().iter().flat_map(|g| g.collect()).collect()
    }
}

impl NetworkCollector {
    fn collect_nodes(&self, gauges: &NetworkGauges) {
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
    }

    fn collect_links(&self, gauges: &NetworkGauges) {
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
    }

    fn collect_federations(&self, gauges: &NetworkGauges) {
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
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;
    use prometheus::proto::MetricFamily;
    use serde_json::json;

    use super::*;

    fn store_of<K>(objects: Vec<K>) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        let (reader, mut writer) = store();
        for object in objects {
            writer.apply_watcher_event(&Event::Apply(object));
        }
        reader
    }

    fn node(name: &str, phase: &str, rtt: f64) -> DataFlowNode {
        serde_json::from_value(json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode",
            "metadata": {"name": name},
            "spec": {"city": name, "province": "CN-BJ", "endpoint": {"url": "https://gw.example/"}},
            "status": {"phase": phase, "rttMillis": rtt},
        }))
        .unwrap()
    }

    /// The value of `family`'s series whose label `key` is `value`.
    fn value(families: &[MetricFamily], family: &str, key: &str, value: &str) -> Option<f64> {
        let family = families.iter().find(|f| f.name() == family)?;
        family
            .get_metric()
            .iter()
            .find(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == key && l.value() == value)
            })
            .map(|m| m.get_gauge().get_value())
    }

    #[test]
    fn scrapes_read_node_link_and_federation_state_from_the_caches() {
        let link: InterCityLink = serde_json::from_value(json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "InterCityLink",
            "metadata": {"name": "beijing--tianjin"},
            "spec": {"from": "beijing", "to": "tianjin"},
            "status": {"state": "Up", "rttMillis": 7.0},
        }))
        .unwrap();
        let federation: Federation = serde_json::from_value(json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "Federation",
            "metadata": {"name": "national"},
            "spec": {"coverage": {"provincesTarget": 2}},
            "status": {"interconnected": false, "components": 2, "provincesCovered": 1,
                       "criticalLinks": ["beijing--tianjin"]},
        }))
        .unwrap();
        let collector = NetworkCollector::new(
            store_of(vec![
                node("beijing", "Ready", 4.0),
                node("tianjin", "Unreachable", 3.0),
            ]),
            store_of(vec![link]),
            store_of(vec![federation]),
            Arc::default(),
        );
        let families = collector.collect();
        assert_eq!(
            value(&families, "flowfed_node_up", "node", "beijing"),
            Some(1.0)
        );
        assert_eq!(
            value(&families, "flowfed_node_up", "node", "tianjin"),
            Some(0.0)
        );
        assert_eq!(
            value(&families, "flowfed_node_rtt_seconds", "node", "beijing"),
            Some(0.004)
        );
        assert_eq!(
            value(&families, "flowfed_node_rtt_seconds", "node", "tianjin"),
            None,
            "no RTT for a node that is down"
        );
        assert_eq!(
            value(&families, "flowfed_link_up", "link", "beijing--tianjin"),
            Some(1.0)
        );
        assert_eq!(
            value(
                &families,
                "flowfed_link_critical",
                "link",
                "beijing--tianjin"
            ),
            Some(1.0)
        );
        let national = |family| value(&families, family, "federation", "national");
        assert_eq!(national("flowfed_federation_interconnected"), Some(0.0));
        assert_eq!(national("flowfed_federation_components"), Some(2.0));
        assert_eq!(national("flowfed_federation_provinces_target"), Some(2.0));
    }

    #[test]
    fn a_node_gone_from_the_cache_leaves_no_series() {
        let (reader, mut writer) = store();
        writer.apply_watcher_event(&Event::Apply(node("beijing", "Ready", 4.0)));
        let collector =
            NetworkCollector::new(reader, store_of(vec![]), store_of(vec![]), Arc::default());
        assert_eq!(
            value(&collector.collect(), "flowfed_node_up", "node", "beijing"),
            Some(1.0)
        );
        writer.apply_watcher_event(&Event::Delete(node("beijing", "Ready", 4.0)));
        assert_eq!(
            value(&collector.collect(), "flowfed_node_up", "node", "beijing"),
            None
        );
    }
}
