//! `flowfed policy explain`: the cross-border rules, offline, over manifests.
//!
//! Reads nodes, processors, zones and products from files or directories (YAML
//! streams, other kinds ignored) and decides every (product, node) with the
//! very steps the catalog reconciler plans with ([`facts::gather`],
//! [`plan::decisions`]), so the answer here is the answer in the cluster. The
//! publisher comes from the product's namespace, as in the cluster; the time
//! can be set to explain an expiry or the turn of the year ahead of time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use crate::api::{DataFlowNode, DataProcessor, DataProduct, FreeTradeZone};
use crate::controller::catalog::facts::{self, Surroundings, Unplannable};
use crate::controller::catalog::plan;

/// One line of the answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// `namespace/name` of the product.
    pub product: String,
    pub node: String,
    pub visible: bool,
    pub reason: String,
    /// The rule of the table that decided (0: no rule applies, e.g. no publisher).
    pub rule: u8,
}

/// Everything the rules read, as found in manifests.
#[derive(Default)]
pub struct Manifests {
    pub nodes: Vec<Arc<DataFlowNode>>,
    pub processors: Vec<Arc<DataProcessor>>,
    pub zones: Vec<Arc<FreeTradeZone>>,
    pub products: Vec<Arc<DataProduct>>,
}

impl Manifests {
    /// Reads every `.yaml`, `.yml` and `.json` file of `paths` (directories
    /// recursively, in name order).
    pub fn read(paths: &[PathBuf]) -> anyhow::Result<Self> {
        let mut manifests = Manifests::default();
        for file in files(paths)? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            manifests
                .add_stream(&text)
                .with_context(|| format!("in {}", file.display()))?;
        }
        Ok(manifests)
    }

    /// Adds the objects of one YAML stream.
    pub fn add_stream(&mut self, text: &str) -> anyhow::Result<()> {
        for document in serde_yaml::Deserializer::from_str(text) {
            let value = serde_yaml::Value::deserialize(document)?;
            let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
            let (kind, api_version) = (field("kind").unwrap_or_default(), field("apiVersion"));
            if api_version.as_deref() != Some("flowfed.io/v1alpha1") {
                continue;
            }
            let named = |e: serde_yaml::Error| anyhow::anyhow!("a {kind} that does not parse: {e}");
            match kind.as_str() {
                "DataFlowNode" => self
                    .nodes
                    .push(Arc::new(serde_yaml::from_value(value).map_err(named)?)),
                "DataProcessor" => self
                    .processors
                    .push(Arc::new(serde_yaml::from_value(value).map_err(named)?)),
                "FreeTradeZone" => self
                    .zones
                    .push(Arc::new(serde_yaml::from_value(value).map_err(named)?)),
                "DataProduct" => self
                    .products
                    .push(Arc::new(serde_yaml::from_value(value).map_err(named)?)),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The files `paths` name, directories expanded.
fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            entries.sort();
            let manifests: Vec<PathBuf> = entries
                .into_iter()
                .filter(|p| p.is_dir() || is_manifest(p))
                .collect();
            found.extend(files(&manifests)?);
        } else {
            found.push(path.clone());
        }
    }
    Ok(found)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Every (product, node) decision at `now`, products and nodes in name order.
pub fn explain(manifests: &Manifests, now: Timestamp) -> Vec<Line> {
    let mut nodes = manifests.nodes.clone();
    nodes.sort_by_key(|n| n.name_any());
    let around = Surroundings {
        nodes: &nodes,
        products: &manifests.products,
        processors: &manifests.processors,
        zones: &manifests.zones,
        now,
    };
    let mut products = manifests.products.clone();
    products.sort_by_key(|p| (p.namespace(), p.name_any()));
    let mut lines = Vec::new();
    for product in &products {
        let name = format!(
            "{}/{}",
            product.namespace().unwrap_or_default(),
            product.name_any()
        );
        let line = |node: String, visible: bool, reason: &str, rule: u8| Line {
            product: name.clone(),
            node,
            visible,
            reason: reason.to_owned(),
            rule,
        };
        match facts::gather(product, around) {
            Ok(facts) => lines.extend(plan::decisions(&facts, now).into_iter().map(
                |(node, decision)| {
                    let reason = decision.reason.as_str();
                    line(node.name_any(), decision.visible, reason, decision.rule)
                },
            )),
            Err(Unplannable::NoPublisher(problem) | Unplannable::InvalidSelector(problem)) => {
                let unlisted = nodes
                    .iter()
                    .map(|n| line(n.name_any(), false, problem.reason, 0));
                lines.extend(unlisted);
            }
        }
    }
    lines
}

/// The answer as a table, one line per (product, node).
pub fn table(lines: &[Line]) -> String {
    let width = |column: fn(&Line) -> usize, title: &str| {
        lines.iter().map(column).max().unwrap_or(0).max(title.len())
    };
    let product = width(|l| l.product.len(), "PRODUCT");
    let node = width(|l| l.node.len(), "NODE");
    let reason = width(|l| l.reason.len(), "REASON");
    let mut out = format!(
        "{:product$}  {:node$}  {:7}  {:reason$}  RULE\n",
        "PRODUCT", "NODE", "VISIBLE", "REASON"
    );
    for l in lines {
        let visible = if l.visible { "yes" } else { "no" };
        out.push_str(&format!(
            "{:product$}  {:node$}  {:7}  {:reason$}  {}\n",
            l.product, l.node, visible, l.reason, l.rule
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETWORK: &str = r#"
apiVersion: flowfed.io/v1alpha1
kind: DataFlowNode
metadata: {name: hangzhou}
spec: {city: Hangzhou, province: CN-ZJ, endpoint: {url: "https://gw.example/"}}
---
apiVersion: flowfed.io/v1alpha1
kind: DataFlowNode
metadata: {name: hong-kong}
spec: {city: Hong Kong, province: CN-HK, jurisdiction: HK, endpoint: {url: "https://gw.example/"}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ignored}
---
apiVersion: flowfed.io/v1alpha1
kind: DataProcessor
metadata: {name: payments}
spec: {node: hangzhou, legalName: Payments Co.}
---
apiVersion: flowfed.io/v1alpha1
kind: DataProduct
metadata: {name: scores, namespace: dfn-hangzhou}
spec:
  title: Scores
  classification: PersonalInformation
  processor: payments
  subjects: {individuals: 70000}
  crossBorder:
    mechanisms: [{type: StandardContract, reference: SC-1, validUntil: "2030-01-01T00:00:00Z"}]
---
apiVersion: flowfed.io/v1alpha1
kind: DataProduct
metadata: {name: payouts, namespace: dfn-hangzhou}
spec: {title: Payouts, classification: PersonalInformation, processor: payments, subjects: {individuals: 40000}}
"#;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn decision<'a>(lines: &'a [Line], product: &str, node: &str) -> (bool, &'a str, u8) {
        let line = lines
            .iter()
            .find(|l| l.product == product && l.node == node)
            .expect("a line per (product, node)");
        (line.visible, line.reason.as_str(), line.rule)
    }

    #[test]
    fn a_processor_over_100000_needs_a_mechanism_for_every_product() {
        let mut manifests = Manifests::default();
        manifests.add_stream(NETWORK).unwrap();
        let lines = explain(&manifests, at("2027-03-01T00:00:00Z"));
        assert_eq!(lines.len(), 4, "2 products x 2 nodes");
        assert_eq!(
            decision(&lines, "dfn-hangzhou/scores", "hong-kong"),
            (true, "Mechanism", 14)
        );
        assert_eq!(
            decision(&lines, "dfn-hangzhou/payouts", "hong-kong"),
            (false, "NoCrossBorderMechanism", 14)
        );
        assert_eq!(
            decision(&lines, "dfn-hangzhou/payouts", "hangzhou"),
            (true, "OwnNode", 1)
        );
    }

    #[test]
    fn the_time_can_be_set_to_explain_an_expiry_ahead() {
        let mut manifests = Manifests::default();
        manifests.add_stream(NETWORK).unwrap();
        let lines = explain(&manifests, at("2030-01-01T00:00:00Z"));
        assert_eq!(
            decision(&lines, "dfn-hangzhou/scores", "hong-kong"),
            (false, "MechanismExpired", 15)
        );
        let text = table(&lines);
        assert!(text.starts_with("PRODUCT"), "{text}");
        assert!(text.contains("MechanismExpired"), "{text}");
    }

    #[test]
    fn a_product_outside_every_home_namespace_is_listed_nowhere() {
        let mut manifests = Manifests::default();
        let stray = NETWORK.replace(
            "namespace: dfn-hangzhou}\nspec: {title: Payouts",
            "namespace: elsewhere}\nspec: {title: Payouts",
        );
        manifests.add_stream(&stray).unwrap();
        let lines = explain(&manifests, at("2027-03-01T00:00:00Z"));
        assert_eq!(
            decision(&lines, "elsewhere/payouts", "hangzhou"),
            (false, "NoPublisherNode", 0)
        );
    }
}
