//! Nodes and products for the catalog steps' tests, built from the same JSON
//! a user would apply.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::facts::Surroundings;
use crate::api::{DataFlowNode, DataProduct};

/// A node in `jurisdiction`, its catalog in the hub or, with a Secret name, in
/// a member cluster.
pub fn node(name: &str, jurisdiction: &str, member_secret: Option<&str>) -> Arc<DataFlowNode> {
    let mut catalog = json!({});
    if let Some(secret) = member_secret {
        catalog = json!({"kubeconfigSecretRef": {"namespace": "flowfed-system", "name": secret, "key": "kubeconfig"}});
    }
    let node = json!({
        "apiVersion": "flowfed.io/v1alpha1",
        "kind": "DataFlowNode",
        "metadata": {"name": name, "generation": 1, "uid": format!("uid-{name}")},
        "spec": {
            "city": name,
            "province": format!("{jurisdiction}-XX"),
            "jurisdiction": jurisdiction,
            "endpoint": {"url": format!("https://{name}.example/healthz")},
            "catalog": catalog,
        },
    });
    Arc::new(serde_json::from_value(node).expect("a valid node"))
}

/// Product `name` in `namespace`, its spec `spec` plus a title.
pub fn product(namespace: &str, name: &str, spec: Value) -> DataProduct {
    let mut spec = spec;
    spec["title"] = json!(format!("{name} data"));
    let product = json!({
        "apiVersion": "flowfed.io/v1alpha1",
        "kind": "DataProduct",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("uid-{name}"),
            "generation": 1,
            "resourceVersion": "7",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": spec,
    });
    serde_json::from_value(product).expect("a valid product")
}

/// `nodes` and nothing else around, at `now`.
pub fn around(nodes: &[Arc<DataFlowNode>], now: Timestamp) -> Surroundings<'_> {
    Surroundings {
        nodes,
        products: &[],
        processors: &[],
        zones: &[],
        now,
    }
}
