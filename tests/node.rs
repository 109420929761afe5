//! flowfed as users run it: the image `make image` builds, loaded into a real
//! node (containerd, kubelet, kube-proxy), installed with Helm into a namespace
//! that enforces the `restricted` Pod Security level, running as the chart's
//! Pod with in-cluster configuration and the chart's RBAC. Then the two things a
//! platform team does to a running operator: lose a replica, and upgrade.
//!
//! One node runs per machine, so this binary's tests share one plane.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flowfed::api::conditions::types;
use flowfed::api::{CatalogEntry, DataProduct};
use flowfed_tests::{Plane, has_condition, operator_image, repo_root, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

const NAMESPACE: &str = "flowfed-system";
const SYNC: Duration = Duration::from_secs(120);

fn node_plane() -> &'static Plane {
    static PLANE: OnceLock<Plane> = OnceLock::new();
    PLANE.get_or_init(|| Plane::start_with_node("node").expect("a plane with a node"))
}

fn kubectl(plane: &Plane, args: &[&str]) -> String {
    let out = plane.kubectl(args).unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn helm(plane: &Plane, args: &[&str]) {
    let out = Command::new(flowfed_tests::tool("helm").unwrap())
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `helm upgrade` of the release, keeping its values but `set`.
fn upgrade(plane: &Plane, set: &str) {
    let args = ["upgrade", "flowfed", "charts/flowfed", "-n", NAMESPACE];
    helm(
        plane,
        &[&args[..], &["--reuse-values", "--set", set]].concat(),
    );
}

/// `kubectl rollout status` of the operator's Deployment, running.
fn rollout(plane: &Plane) -> std::process::Child {
    plane
        .kubectl_command()
        .args([
            "rollout",
            "status",
            "deployment/flowfed",
            "-n",
            NAMESPACE,
            "--timeout=180s",
        ])
        .spawn()
        .unwrap()
}

async fn lease_holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("flowfed-leader")
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
}

/// The operator Pods that run and are not being deleted.
async fn operator_pods(client: &kube::Client) -> BTreeSet<String> {
    Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels("app.kubernetes.io/name=flowfed"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|pod| pod.metadata.name)
        .collect()
}

/// Entries the catalog holds for `product` (hub namespaces), by node namespace.
async fn entries_of(client: &kube::Client, uid: &str) -> BTreeSet<String> {
    Api::<CatalogEntry>::all(client.clone())
        .list(&ListParams::default().labels(&format!("flowfed.io/product-uid={uid}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.metadata.namespace)
        .collect()
}

async fn all_entries(client: &kube::Client) -> usize {
    Api::<CatalogEntry>::all(client.clone())
        .list_metadata(&ListParams::default().labels("app.kubernetes.io/managed-by=flowfed"))
        .await
        .unwrap()
        .items
        .len()
}

async fn synced(products: &Api<DataProduct>, name: &str) -> DataProduct {
    wait_for(products, name, SYNC, |p| {
        has_condition(p, types::SYNCED, "True")
            && p.status.as_ref().unwrap().observed_generation == p.metadata.generation
    })
    .await
    .unwrap()
}

async fn publish(client: &kube::Client, name: &str) {
    let product: DataProduct = serde_json::from_value(json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": name, "namespace": "dfn-beijing"},
        "spec": {"title": name, "classification": "Public"}
    }))
    .unwrap();
    Api::<DataProduct>::namespaced(client.clone(), "dfn-beijing")
        .patch(
            name,
            &PatchParams::apply("node-test"),
            &Patch::Apply(&product),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_chart_runs_the_operator_as_a_restricted_pod_that_syncs_fails_over_and_rolls() {
    let plane = node_plane();
    let admin = plane.client().await.unwrap();
    let image = operator_image().unwrap();
    plane.import_image(&image.archive).unwrap();

    // The release namespace enforces the restricted Pod Security Standard.
    kubectl(plane, &["create", "namespace", NAMESPACE]);
    kubectl(
        plane,
        &[
            "label",
            "namespace",
            NAMESPACE,
            "pod-security.kubernetes.io/enforce=restricted",
        ],
    );
    plane.helm_install(NAMESPACE, &[]).unwrap();
    assert!(
        rollout(plane).wait().unwrap().success(),
        "the chart rolled out"
    );
    let pods = operator_pods(&admin).await;
    assert_eq!(pods.len(), 1, "one operator Pod: {pods:?}");
    let pod = pods.first().unwrap();
    let ready = kubectl(
        plane,
        &[
            "get",
            "pod",
            pod,
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status} {.spec.containers[0].image} {.spec.securityContext.runAsUser}",
        ],
    );
    assert_eq!(ready, format!("True {} 65532", image.name));

    // The national example, reconciled by the Pod with its in-cluster identity.
    for dir in ["examples/national/", "examples/products/"] {
        let path = repo_root().join(dir);
        kubectl(plane, &["apply", "-f", path.to_str().unwrap()]);
    }
    let products: Api<DataProduct> = Api::namespaced(admin.clone(), "dfn-shanghai-lingang");
    let port = synced(&products, "port-logistics-index").await;
    let uid = port.metadata.uid.clone().unwrap();
    let visible = port.status.unwrap().visible_in;
    assert!(visible.len() > 20, "visible at {visible:?}");
    let entries = entries_of(&admin, &uid).await;
    assert_eq!(entries.len(), visible.len(), "one entry per visible node");

    // A product update replaces its entries (PUT: the chart must grant update).
    products
        .patch(
            "port-logistics-index",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "2.2"}})),
        )
        .await
        .unwrap();
    let guangzhou: Api<CatalogEntry> = Api::namespaced(admin.clone(), "dfn-guangzhou");
    let entry_name = "shanghai-lingang.port-logistics-index";
    wait_for(&guangzhou, entry_name, SYNC, |e| {
        e.spec.version.as_deref() == Some("2.2")
    })
    .await
    .unwrap();

    // A tampered entry is put back under the same identity.
    guangzhou
        .patch(
            entry_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"title": "tampered"}})),
        )
        .await
        .unwrap();
    let title = port_title(&products).await;
    wait_for(&guangzhou, entry_name, SYNC, |e| e.spec.title == title)
        .await
        .unwrap();

    // Two replicas: killing the leader hands the Lease over and the sync goes on.
    upgrade(plane, "replicaCount=2");
    assert!(
        rollout(plane).wait().unwrap().success(),
        "two replicas rolled out"
    );
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NAMESPACE);
    let leader = lease_holder(&leases).await.expect("a leader");
    assert!(
        operator_pods(&admin).await.contains(&leader),
        "the Lease names a Pod: {leader}"
    );
    kubectl(
        plane,
        &["delete", "pod", &leader, "-n", NAMESPACE, "--wait=false"],
    );
    let after_failover: Vec<String> = (0..5).map(|i| format!("failover-{i}")).collect();
    for name in &after_failover {
        publish(&admin, name).await;
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let new_leader = loop {
        match lease_holder(&leases).await {
            Some(holder) if holder != leader => break holder,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the Lease never left {leader}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("leader {leader} deleted; {new_leader} took over");
    let beijing: Api<DataProduct> = Api::namespaced(admin.clone(), "dfn-beijing");
    for name in &after_failover {
        let product = synced(&beijing, name).await;
        let visible = product.status.unwrap().visible_in.len();
        let uid = product.metadata.uid.unwrap();
        assert_eq!(entries_of(&admin, &uid).await.len(), visible, "{name}");
    }

    // An upgrade that changes a value rolls the Pods without losing an entry.
    let before = all_entries(&admin).await;
    let old_pods = operator_pods(&admin).await;
    upgrade(plane, "operator.logLevel=debug");
    let mut rollout = rollout(plane);
    let mut lowest = before;
    while rollout.try_wait().unwrap().is_none() {
        lowest = lowest.min(all_entries(&admin).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(rollout.wait().unwrap().success(), "the rollout finished");
    let new_pods = operator_pods(&admin).await;
    assert!(
        new_pods.is_disjoint(&old_pods),
        "every Pod was replaced: {old_pods:?} -> {new_pods:?}"
    );
    assert_eq!(lowest, before, "no entry was lost during the roll");
    publish(&admin, "after-roll").await;
    synced(&beijing, "after-roll").await;

    // Deleting a product withdraws it everywhere, under the chart's identity.
    beijing
        .delete("after-roll", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + SYNC;
    while beijing.get_opt("after-roll").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the product's deletion never finished"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn port_title(products: &Api<DataProduct>) -> String {
    products
        .get("port-logistics-index")
        .await
        .unwrap()
        .spec
        .title
}

/// The files of an OCI archive's only layer, and its image config.
fn unpack(archive: &std::path::Path) -> (Vec<String>, serde_json::Value) {
    let dir = std::env::temp_dir().join(format!("flowfed-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&dir)
        .status();
    assert!(status.unwrap().success());
    let read_json = |digest: &str| -> serde_json::Value {
        let path = dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = read_json(index["manifests"][0]["digest"].as_str().unwrap());
    let config = read_json(manifest["config"]["digest"].as_str().unwrap());
    let layer = dir.join("blobs/sha256").join(
        manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&layer)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let files = String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    (files, config)
}

#[test]
fn the_image_is_reproducible_small_non_root_and_has_no_shell() {
    let first = operator_image().unwrap();
    let again = flowfed_tests::build_operator_image().unwrap();
    assert_eq!(
        first.digest, again.digest,
        "two builds of one commit, one digest"
    );
    let recorded = std::fs::read_to_string(first.archive.with_file_name("digest")).unwrap();
    assert_eq!(recorded.trim(), first.digest, "target/image/digest");

    let size = std::fs::metadata(&first.archive).unwrap().len();
    println!("{}: {} bytes", first.name, size);
    assert!(size < 25_000_000, "the image is {size} bytes");

    let (files, config) = unpack(&first.archive);
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"], json!(["/flowfed"]));
    assert_eq!(config["os"], "linux");
    let expected = [
        "etc",
        "etc/group",
        "etc/passwd",
        "etc/ssl",
        "etc/ssl/certs",
        "etc/ssl/certs/ca-certificates.crt",
        "flowfed",
    ];
    assert_eq!(
        files, expected,
        "no shell, no package manager: only these files"
    );
}
