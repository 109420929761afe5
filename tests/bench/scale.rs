//! Phase 4, on a second plane of the same build: 1,000 nodes and 5,000 links
//! with gateways simulated by one server on many loopback addresses: time from
//! operator start to every status correct, API writes per second once idle,
//! peak RSS; then the same with 10,000 products.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowfed_tests::{Gateway, Plane};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use crate::Sizes;
use crate::harness::{
    EntryWatcher, Operator, busiest, create, install_chart, mutating_requests,
    mutating_requests_by_kind, node_manifest, resource, wait_namespaces_set_up,
};

/// 1,000 nodes and 5,000 links, then 10,000 products, on a fresh plane.
pub async fn measure(binary: &Path, sizes: &Sizes) -> anyhow::Result<Value> {
    let plane = Plane::start("bench-scale")?;
    let admin = plane.client().await?;
    let kubeconfig = install_chart(&plane).await?;
    println!(
        "\nscale: {} nodes, {} links",
        sizes.scale_nodes, sizes.scale_links
    );
    let (gateways, links) = build_network(&admin, sizes).await?;
    let n = sizes.scale_nodes;
    let baseline_before = mutating_requests(&admin).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let baseline = (mutating_requests(&admin).await? - baseline_before) / 10.0;

    let mut operator = Operator::start(binary, &kubeconfig, &[])?;
    let (interconnected, convergence) = converge(&admin, &mut operator, n, links).await?;
    println!(
        "  federation interconnected with every node ready and link up after {interconnected:.1} s; every node's catalog view reported after {convergence:.1} s"
    );
    let cluster_settled = Instant::now();
    wait_namespaces_set_up(&admin).await?;
    println!(
        "  the controller manager finished setting up the operator's namespaces {:.1} s after convergence",
        cluster_settled.elapsed().as_secs_f64()
    );
    let status_changes = StatusChanges::start(admin.clone());
    let idle = idle_writes(&admin, &status_changes).await?;
    let idle_net = (idle.rate - baseline).max(0.0);
    let rss_network = operator.peak_rss_mb();
    println!(
        "  converged in {convergence:.1} s; idle writes {:.2}/s ({idle_net:.2}/s above the plane's own {baseline:.2}/s); peak RSS {rss_network:.0} MB",
        idle.rate
    );

    let products = with_products(&admin, sizes).await?;
    let idle_products = idle_writes(&admin, &status_changes).await?;
    let rss_products = operator.peak_rss_mb();
    println!(
        "  + {} products ({} entries) synced in {:.1} s; idle writes {:.2}/s; peak RSS {rss_products:.0} MB",
        sizes.scale_products, products.entries, products.sync_s, idle_products.rate
    );
    operator.stop();
    drop(gateways);

    Ok(json!({
        "nodes": n, "links": links,
        "convergence_s": convergence,
        "interconnected_s": interconnected,
        "idle_writes_per_s": idle_net,
        "idle_writes_raw_per_s": idle.rate,
        "idle_writes_by_request": idle.by_request.iter().cloned().collect::<BTreeMap<_, _>>(),
        "idle_node_status_changes": idle.status_fields,
        "plane_baseline_writes_per_s": baseline,
        "peak_rss_mb": rss_network,
        "with_products": {"products": sizes.scale_products, "entries": products.entries, "sync_s": products.sync_s, "counted_s": products.counted_s, "idle_writes_per_s": (idle_products.rate - baseline).max(0.0), "peak_rss_mb": rss_products},
    }))
}

/// The nodes (one gateway each, on its own loopback address), a ring of links
/// plus random chords, and one federation over all of it. Returns the
/// gateways (they serve while held) and the number of links.
async fn build_network(
    admin: &kube::Client,
    sizes: &Sizes,
) -> anyhow::Result<(Vec<Gateway>, usize)> {
    // One server answering on many loopback addresses.
    let mut gateways = Vec::new();
    for i in 0..sizes.scale_nodes {
        let addr: std::net::SocketAddr =
            format!("127.1.{}.{}:18080", i / 250, i % 250 + 1).parse()?;
        gateways.push(Gateway::start_at(addr).await?);
    }
    futures::stream::iter(0..sizes.scale_nodes)
        .map(|i| {
            let admin = admin.clone();
            let url = gateways[i].url();
            async move {
                create(
                    &admin,
                    node_manifest(&format!("s{i:04}"), &url, &format!("r{}", i / 5), 30),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    // A ring (so the network is connected) plus random chords, no pair twice.
    let mut pairs = std::collections::BTreeSet::new();
    let n = sizes.scale_nodes;
    for i in 0..n {
        pairs.insert((i.min((i + 1) % n), i.max((i + 1) % n)));
    }
    let mut seed = 0x9e3779b97f4a7c15u64;
    while pairs.len() < sizes.scale_links.max(n) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (a, b) = (
            (seed % n as u64) as usize,
            ((seed >> 32) % n as u64) as usize,
        );
        if a != b {
            pairs.insert((a.min(b), a.max(b)));
        }
    }
    let links = pairs.len();
    futures::stream::iter(pairs)
        .map(|(a, b)| {
            let admin = admin.clone();
            async move {
                create(
                    &admin,
                    json!({
                        "apiVersion": "flowfed.io/v1alpha1", "kind": "InterCityLink",
                        "metadata": {"name": format!("s{a:04}--s{b:04}")},
                        "spec": {"from": format!("s{a:04}"), "to": format!("s{b:04}")}
                    }),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    create(admin, json!({"apiVersion": "flowfed.io/v1alpha1", "kind": "Federation", "metadata": {"name": "scale"}, "spec": {}})).await?;
    Ok((gateways, links))
}

/// Seconds from operator start until the federation is interconnected with
/// every node ready and link up, and until every node reports its catalog view.
async fn converge(
    admin: &kube::Client,
    operator: &mut Operator,
    n: usize,
    links: usize,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let federations: Api<DynamicObject> =
        Api::all_with(admin.clone(), &resource("Federation", "federations"));
    loop {
        let status = federations.get("scale").await?.data["status"].clone();
        let done = status["interconnected"] == json!(true)
            && status["nodes"]["ready"].as_u64() == Some(n as u64)
            && status["links"]["up"].as_u64() == Some(links as u64);
        operator.peak_rss_mb();
        if done {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "scale network did not converge: {status}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let interconnected = started.elapsed().as_secs_f64();
    // Every node's status also carries its catalog view (CatalogSynced).
    let nodes: Api<DynamicObject> =
        Api::all_with(admin.clone(), &resource("DataFlowNode", "dataflownodes"));
    loop {
        let listed = nodes.list(&ListParams::default()).await?.items;
        let synced = listed
            .iter()
            .filter(|node| {
                node.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "CatalogSynced" && c["status"] == "True")
            })
            .count();
        if synced == n {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "{synced} of {n} nodes report their catalog view"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok((interconnected, started.elapsed().as_secs_f64()))
}

/// API writes while nothing changes, after a 10 s settle.
struct Idle {
    /// Mutating requests per second.
    rate: f64,
    /// The busiest kinds of request, per second.
    by_request: Vec<(String, f64)>,
    /// Node status fields that changed meanwhile.
    status_fields: BTreeMap<String, usize>,
}

async fn idle_writes(admin: &kube::Client, status_changes: &StatusChanges) -> anyhow::Result<Idle> {
    const WINDOW: f64 = 30.0;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = mutating_requests_by_kind(admin).await?;
    status_changes.take();
    tokio::time::sleep(Duration::from_secs_f64(WINDOW)).await;
    let status_fields = status_changes.take();
    let after = mutating_requests_by_kind(admin).await?;
    let rate = (after.values().sum::<f64>() - before.values().sum::<f64>()) / WINDOW;
    let by_request = busiest(&before, &after, WINDOW);
    for (kind, rate) in &by_request {
        println!("    idle: {rate:>6.2}/s {kind}");
    }
    println!("    node status fields changed while idle: {status_fields:?}");
    Ok(Idle {
        rate,
        by_request,
        status_fields,
    })
}

/// What syncing the products cost.
struct ProductSync {
    entries: usize,
    /// Until every entry was seen by an independent watcher.
    sync_s: f64,
    /// Until every node's catalogEntries counted them.
    counted_s: f64,
}

/// Publishes the products, each visible in its publisher's region (5 nodes).
async fn with_products(admin: &kube::Client, sizes: &Sizes) -> anyhow::Result<ProductSync> {
    let n = sizes.scale_nodes;
    let nodes: Api<DynamicObject> =
        Api::all_with(admin.clone(), &resource("DataFlowNode", "dataflownodes"));
    // The same network with products: each visible in its publisher's region (5 nodes).
    let products = sizes.scale_products;
    let watcher = EntryWatcher::start(admin.clone());
    let started = Instant::now();
    futures::stream::iter(0..products)
        .map(|i| {
            let admin = admin.clone();
            async move {
                let node = i % n;
                create(&admin, json!({
                    "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
                    "metadata": {"name": format!("p{i}"), "namespace": format!("dfn-s{node:04}")},
                    "spec": {"title": format!("p{i}"), "classification": "Public",
                             "visibility": {"scope": "Selected", "nodeSelector": {"matchLabels": {"group": format!("r{}", node / 5)}}}}
                }))
                .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let region_size = |node: usize| (node / 5 * 5..(node / 5 * 5 + 5).min(n)).len();
    let expected: usize = (0..products).map(|i| region_size(i % n)).sum();
    watcher
        .wait_for_count(expected, Duration::from_secs(3600))
        .await?;
    let products_s = started.elapsed().as_secs_f64();
    // Every node's catalogEntries counts them too.
    loop {
        let counted: u64 = nodes
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter_map(|node| node.data["status"]["catalogEntries"].as_u64())
            .sum();
        if counted == expected as u64 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "nodes count {counted} of {expected} entries"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let counted_s = started.elapsed().as_secs_f64();
    println!("  every node's catalogEntries counted them after {counted_s:.1} s");
    Ok(ProductSync {
        entries: expected,
        sync_s: products_s,
        counted_s,
    })
}

/// Which node status fields change, counted from a watch: tells what the idle
/// status writes carry. Conditions count by type; timestamps are left out.
pub struct StatusChanges {
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusChanges {
    pub fn start(client: kube::Client) -> StatusChanges {
        let counts: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            let api: Api<DynamicObject> =
                Api::all_with(client, &resource("DataFlowNode", "dataflownodes"));
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            futures::pin_mut!(stream);
            let mut last: HashMap<String, BTreeMap<String, Value>> = HashMap::new();
            while let Some(event) = stream.next().await {
                let Ok(watcher::Event::Apply(node) | watcher::Event::InitApply(node)) = event
                else {
                    continue;
                };
                let fields = status_fields(&node.data["status"]);
                let name = node.metadata.name.clone().unwrap_or_default();
                if let Some(previous) = last.insert(name, fields.clone()) {
                    let mut counts = shared.lock().unwrap();
                    for (field, value) in &fields {
                        if previous.get(field) != Some(value) {
                            *counts.entry(field.clone()).or_default() += 1;
                        }
                    }
                }
            }
        });
        StatusChanges { counts, task }
    }

    pub fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

impl Drop for StatusChanges {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A node status as comparable fields: top-level fields, and each condition
/// by type without its transition time.
pub fn status_fields(status: &Value) -> BTreeMap<String, Value> {
    let mut fields = BTreeMap::new();
    for (key, value) in status.as_object().into_iter().flatten() {
        if key == "lastProbeTime" {
            continue;
        }
        if key == "conditions" {
            for condition in value.as_array().into_iter().flatten() {
                let mut condition = condition.clone();
                condition
                    .as_object_mut()
                    .map(|c| c.remove("lastTransitionTime"));
                fields.insert(
                    format!("conditions[{}]", condition["type"].as_str().unwrap_or("")),
                    condition,
                );
            }
        } else {
            fields.insert(key.clone(), value.clone());
        }
    }
    fields
}
