//! A control plane set up for catalog tests: nodes, processors and products by
//! short name, and where a product is listed.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flowfed::api::{CatalogEntry, DataFlowNode, DataProcessor, DataProduct};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::{Plane, install_crds, unique};

/// How long a catalog change may take to show everywhere in tests.
pub const CATALOG_CONVERGE: Duration = Duration::from_secs(30);

/// A control plane for catalog tests, with flowfed's CRDs and the chart's
/// identity; node names carry a per-test prefix.
pub struct Catalog {
    pub plane: Plane,
    pub client: kube::Client,
    pub id: String,
}

impl Catalog {
    pub async fn new() -> Catalog {
        let plane = Plane::start(&unique("cat")).expect("control plane");
        let client = plane.client().await.expect("client");
        install_crds(&client).await.expect("CRDs");
        plane.operator_kubeconfig().expect("the chart's identity");
        Catalog {
            plane,
            client,
            id: unique("c"),
        }
    }

    /// A member cluster of its own, its kubeconfig in Secret `secret` of the
    /// operator's namespace (for a node's `kubeconfigSecretRef`).
    pub async fn member_plane(&self, label: &str, secret: &str) -> Plane {
        let member = Plane::start(&unique(label)).expect("member plane");
        let manifest: Secret = serde_json::from_value(json!({
            "metadata": {"name": secret},
            "stringData": {"kubeconfig": member.kubeconfig_yaml().expect("member kubeconfig")}
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), super::OPERATOR_NAMESPACE)
            .create(&PostParams::default(), &manifest)
            .await
            .unwrap();
        member
    }

    pub fn name(&self, node: &str) -> String {
        format!("{}-{node}", self.id)
    }

    pub async fn add_node(
        &self,
        node: &str,
        province: &str,
        jurisdiction: &str,
        catalog: serde_json::Value,
    ) -> String {
        let name = self.name(node);
        let manifest = json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode",
            "metadata": {"name": name, "labels": {"region": node}},
            "spec": {
                "city": node, "province": province, "jurisdiction": jurisdiction,
                // Nothing listens here: the catalog does not depend on reachability.
                "endpoint": {"url": "http://127.0.0.1:9/healthz"},
                "probe": {"intervalSeconds": 60, "timeoutSeconds": 1},
                "catalog": catalog,
            }
        });
        Api::<DataFlowNode>::all(self.client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(manifest).unwrap(),
            )
            .await
            .unwrap();
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("dfn-{name}")}})).unwrap();
        let _ = Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await;
        name
    }

    /// A DataProcessor `name` publishing at `node`, with `spec` laid over it.
    pub async fn add_processor(&self, node: &str, name: &str, spec: serde_json::Value) {
        let mut manifest = json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProcessor",
            "metadata": {"name": name},
            "spec": {"node": self.name(node), "legalName": format!("{name} Co., Ltd.")},
        });
        if let (Some(base), serde_json::Value::Object(extra)) =
            (manifest["spec"].as_object_mut(), spec)
        {
            base.extend(extra);
        }
        Api::<DataProcessor>::all(self.client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(manifest).unwrap(),
            )
            .await
            .unwrap();
    }

    pub async fn publish(&self, node: &str, product: &str, spec: serde_json::Value) -> DataProduct {
        let manifest = json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": product, "namespace": format!("dfn-{}", self.name(node))},
            "spec": spec,
        });
        self.products(node)
            .create(
                &PostParams::default(),
                &serde_json::from_value(manifest).unwrap(),
            )
            .await
            .unwrap()
    }

    pub fn products(&self, node: &str) -> Api<DataProduct> {
        Api::namespaced(self.client.clone(), &format!("dfn-{}", self.name(node)))
    }

    pub fn entries(&self, node: &str) -> Api<CatalogEntry> {
        Api::namespaced(self.client.clone(), &format!("dfn-{}", self.name(node)))
    }

    /// Nodes (short names) whose hub catalog lists an entry for `product`.
    pub async fn listed_at(&self, product_uid: &str) -> BTreeSet<String> {
        let all: Api<CatalogEntry> = Api::all(self.client.clone());
        let entries = all
            .list(&ListParams::default().labels(&format!("flowfed.io/product-uid={product_uid}")))
            .await
            .unwrap();
        entries
            .items
            .iter()
            .map(|e| {
                e.labels()["flowfed.io/target-node"]
                    .trim_start_matches(&format!("{}-", self.id))
                    .to_owned()
            })
            .collect()
    }

    pub async fn wait_listed(&self, product: &DataProduct, expected: &[&str]) {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        let uid = product.uid().unwrap();
        let deadline = Instant::now() + CATALOG_CONVERGE;
        loop {
            let listed = self.listed_at(&uid).await;
            if listed == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} listed at {listed:?}, expected {expected:?}",
                product.name_any()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
