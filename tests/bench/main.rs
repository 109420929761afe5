//! `flowfed-bench` (`make bench`): how close flowfed comes to the physical write
//! limit of the API server it writes to, all measured in one run.
//!
//! 1. raw: a plain kube-rs load generator creates small CatalogEntry objects at
//!    concurrency 1..64; its plateau is `W_raw`, its single-write latency `L1`.
//! 2. release-to-visible: single products published one at a time to 25 and to
//!    50 nodes; p50/p99 from publish to the last entry seen by an independent
//!    watcher, next to the floor `N / W_raw + L1`.
//! 3. bulk: 2,000 products to 25 node namespaces (50,000 entries): `W_op`,
//!    `eta = W_op / W_raw`, write amplification (mutating API requests per
//!    entry, from the API server's own `apiserver_request_total`), operator
//!    CPU-seconds per 1,000 entries.
//! 4. scale (a second plane of the same build): 1,000 nodes and 5,000 links
//!    with gateways simulated by one server on many loopback addresses: time from
//!    operator start to every status correct, API writes per second once idle,
//!    peak RSS; then the same with 10,000 products.
//!
//! The operator runs as a separate release-mode process with the Helm chart's
//! ServiceAccount identity. Prints a table and writes `bench/results.json`.
//! Never fails on time. Sizes can be reduced with FLOWFED_BENCH_* variables for
//! a quick run (see docs/benchmarks.md).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use flowfed::api::CatalogEntry;
use flowfed_tests::{Gateway, Plane, repo_root};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Sizes {
    bulk_products: usize,
    bulk_nodes: usize,
    release_samples: usize,
    scale_nodes: usize,
    scale_links: usize,
    scale_products: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes = Sizes {
        bulk_products: env_usize("FLOWFED_BENCH_PRODUCTS", 2000),
        bulk_nodes: 25,
        release_samples: env_usize("FLOWFED_BENCH_RELEASES", 200),
        scale_nodes: env_usize("FLOWFED_BENCH_SCALE_NODES", 1000),
        scale_links: env_usize("FLOWFED_BENCH_SCALE_LINKS", 5000),
        scale_products: env_usize("FLOWFED_BENCH_SCALE_PRODUCTS", 10000),
    };
    let binary = std::env::var_os("FLOWFED_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release/flowfed"));
    anyhow::ensure!(
        binary.exists(),
        "{} missing: build it with cargo build --release -p flowfed",
        binary.display()
    );
    let mut results = serde_json::Map::new();
    results.insert("machine".into(), machine());

    let plane = Plane::start("bench")?;
    let admin = plane.client().await?;
    let operator_kubeconfig = install_chart(&plane).await?;

    // 1. Raw write limit.
    let raw_started = (Instant::now(), cpu_by_process(&plane, None));
    let (w_raw, l1_ms, curve) = raw_write_limit(&admin).await?;
    let raw_cores: BTreeMap<&str, f64> = cpu_by_process(&plane, None)
        .into_iter()
        .map(|(process, seconds)| {
            let before = raw_started.1.get(process).unwrap_or(&0.0);
            (
                process,
                (seconds - before) / raw_started.0.elapsed().as_secs_f64(),
            )
        })
        .collect();
    results.insert("raw_cores".into(), json!(raw_cores));
    results.insert("w_raw".into(), json!(w_raw));
    results.insert("l1_ms".into(), json!(l1_ms));
    results.insert("raw_curve".into(), json!(curve));
    println!("\nraw write limit: W_raw = {w_raw:.0} objects/s, L1 = {l1_ms:.2} ms");
    for (c, w) in &curve {
        println!("  concurrency {c:>2}: {w:>7.0} objects/s");
    }
    println!("  cores used over the whole curve: {raw_cores:.2?}");
    let w_apply = raw_apply_limit(&admin, 32).await?;
    results.insert("w_raw_apply".into(), json!(w_apply));
    println!(
        "  server-side apply of the same objects at concurrency 32: {w_apply:.0} objects/s ({:.2} of W_raw)",
        w_apply / w_raw
    );
    // The API server alone, writing N entries in one burst, as a release does:
    // its p99 is the slowest of N writes, which a median-based floor leaves out.
    let mut bursts = BTreeMap::new();
    for targets in [25usize, 50] {
        let latencies = raw_bursts(&admin, targets, sizes.release_samples).await?;
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        println!("  bursts of {targets} writes: p50 {p50:.1} ms, p99 {p99:.1} ms");
        bursts.insert(targets.to_string(), json!({"p50_ms": p50, "p99_ms": p99}));
    }

    // The network for the catalog phases: 50 nodes, 25 of them in group a.
    let gateway = Gateway::start("127.0.0.1").await?;
    for i in 0..50 {
        let group = if i < sizes.bulk_nodes { "a" } else { "b" };
        create(
            &admin,
            node_manifest(&format!("n{i:02}"), &gateway.url(), group, 3600),
        )
        .await?;
    }
    let watcher = EntryWatcher::start(admin.clone());
    let mut operator = Operator::start(&binary, &operator_kubeconfig)?;
    wait_namespaces(&admin, 50).await?;

    // 2. Release to visible, once a first release has warmed the operator up
    // (its caches, connections and the API server's CRD handlers).
    let uid = publish(&admin, "n00", "warmup", Some("a")).await?;
    watcher
        .wait_for_product(&uid, sizes.bulk_nodes, Duration::from_secs(120))
        .await?;
    let mut release = serde_json::Map::new();
    for (targets, selector) in [(25usize, Some("a")), (50, None)] {
        let mut latencies = Vec::new();
        for i in 0..sizes.release_samples {
            let name = format!("release-{targets}-{i}");
            let started = Instant::now();
            let uid = publish(&admin, "n00", &name, selector).await?;
            watcher
                .wait_for_product(&uid, targets, Duration::from_secs(60))
                .await?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        latencies.sort_by(f64::total_cmp);
        let floor = targets as f64 / w_raw * 1000.0 + l1_ms;
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        println!(
            "release-to-visible at {targets} nodes: p50 {p50:.1} ms, p99 {p99:.1} ms, floor {floor:.1} ms (p50/floor {:.1}x)",
            p50 / floor
        );
        let burst = &bursts[&targets.to_string()];
        println!(
            "  the API server alone, same {targets} writes in one burst: p50 {:.1} ms, p99 {:.1} ms",
            burst["p50_ms"].as_f64().unwrap_or_default(),
            burst["p99_ms"].as_f64().unwrap_or_default()
        );
        release.insert(
            targets.to_string(),
            json!({"p50_ms": p50, "p99_ms": p99, "floor_ms": floor, "samples": latencies.len(), "raw_burst": burst}),
        );
    }
    results.insert("release_to_visible".into(), Value::Object(release));

    // 3. Bulk propagation.
    let entries_expected = sizes.bulk_products * sizes.bulk_nodes;
    let seen_before = watcher.count();
    let kinds_before = mutating_requests_by_kind(&admin).await?;
    let writes_before: f64 = kinds_before.values().sum();
    let cpu_before = operator.cpu_seconds()?;
    let cores_before = cpu_by_process(&plane, Some(&operator));
    let started = Instant::now();
    futures::stream::iter(0..sizes.bulk_products)
        .map(|i| {
            let admin = admin.clone();
            async move {
                publish(
                    &admin,
                    &format!("n{:02}", i % sizes.bulk_nodes),
                    &format!("bulk-{i}"),
                    Some("a"),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    watcher
        .wait_for_count(seen_before + entries_expected, Duration::from_secs(1800))
        .await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = operator.cpu_seconds()? - cpu_before;
    // Let the last status writes land before counting requests.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kinds_after = mutating_requests_by_kind(&admin).await?;
    let writes = kinds_after.values().sum::<f64>() - writes_before - sizes.bulk_products as f64;
    let w_op = entries_expected as f64 / elapsed;
    let eta = w_op / w_raw;
    let amplification = writes / entries_expected as f64;
    let cpu_per_1000 = cpu / entries_expected as f64 * 1000.0;
    println!(
        "bulk: {} products x {} nodes = {entries_expected} entries in {elapsed:.1} s: W_op = {w_op:.0}/s, eta = {eta:.2}, write amplification {amplification:.2}, {cpu_per_1000:.2} CPU-s per 1000 entries",
        sizes.bulk_products, sizes.bulk_nodes
    );
    let cores: BTreeMap<&str, f64> = cpu_by_process(&plane, Some(&operator))
        .into_iter()
        .map(|(process, seconds)| {
            (
                process,
                (seconds - cores_before.get(process).unwrap_or(&0.0)) / elapsed,
            )
        })
        .collect();
    println!("    cores used during the bulk sync: {cores:.2?}");
    results.insert("bulk_cores".into(), json!(cores));
    let by_kind = busiest(&kinds_before, &kinds_after, entries_expected as f64);
    for (kind, per_entry) in &by_kind {
        println!("    {per_entry:>6.3} per entry: {kind}");
    }
    results.insert("w_op".into(), json!(w_op));
    results.insert("eta".into(), json!(eta));
    results.insert("write_amplification".into(), json!(amplification));
    results.insert("cpu_s_per_1000".into(), json!(cpu_per_1000));
    results.insert("bulk".into(), json!({"products": sizes.bulk_products, "nodes": sizes.bulk_nodes, "entries": entries_expected, "seconds": elapsed}));
    operator.stop();
    drop(plane);

    // 4. Scale, on a fresh plane.
    let scale = scale(&binary, &sizes).await?;
    for key in ["convergence_s", "idle_writes_per_s", "peak_rss_mb"] {
        results.insert(key.into(), scale[key].clone());
    }
    results.insert("scale".into(), scale);

    let out = repo_root().join("bench/results.json");
    std::fs::create_dir_all(out.parent().unwrap())?;
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&Value::Object(results.clone()))? + "\n",
    )?;
    print_table(&results);
    println!("\nwrote {}", out.display());
    Ok(())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    json!({"cpus": cpus, "cpu": model, "memory": memory})
}

fn print_table(results: &serde_json::Map<String, Value>) {
    println!("\n{:<34} {:>14}", "figure", "value");
    for (key, label) in [
        ("w_raw", "W_raw (objects/s)"),
        ("l1_ms", "L1 (ms)"),
        ("w_op", "W_op (entries/s)"),
        ("eta", "eta = W_op / W_raw"),
        ("write_amplification", "writes per entry"),
        ("cpu_s_per_1000", "CPU-s per 1000 entries"),
        ("convergence_s", "scale convergence (s)"),
        ("idle_writes_per_s", "idle API writes (/s)"),
        ("peak_rss_mb", "operator peak RSS (MB)"),
    ] {
        println!(
            "{label:<34} {:>14.3}",
            results.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
        );
    }
    if let Some(release) = results.get("release_to_visible").and_then(Value::as_object) {
        for (nodes, r) in release {
            println!(
                "{:<34} {:>14}",
                format!("release-to-visible @{nodes} p50/p99/floor"),
                format!(
                    "{:.0}/{:.0}/{:.0} ms",
                    r["p50_ms"].as_f64().unwrap_or(0.0),
                    r["p99_ms"].as_f64().unwrap_or(0.0),
                    r["floor_ms"].as_f64().unwrap_or(0.0)
                )
            );
        }
    }
}

/// Installs the chart (CRDs, RBAC) and returns a kubeconfig with the chart's
/// ServiceAccount token, for the operator.
async fn install_chart(plane: &Plane) -> anyhow::Result<PathBuf> {
    plane.helm_install("flowfed-system", &[])?;
    let path = plane.kubeconfig.with_file_name("operator.kubeconfig");
    std::fs::write(
        &path,
        plane.service_account_kubeconfig("flowfed-system", "flowfed")?,
    )?;
    Ok(path)
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("flowfed.io", "v1alpha1", kind),
        plural,
    )
}

async fn create(client: &kube::Client, manifest: Value) -> anyhow::Result<DynamicObject> {
    let (kind, plural) = match manifest["kind"].as_str() {
        Some("DataFlowNode") => ("DataFlowNode", "dataflownodes"),
        Some("InterCityLink") => ("InterCityLink", "intercitylinks"),
        Some("Federation") => ("Federation", "federations"),
        Some("DataProduct") => ("DataProduct", "dataproducts"),
        Some("CatalogEntry") => ("CatalogEntry", "catalogentries"),
        other => bail!("unknown kind {other:?}"),
    };
    let api: Api<DynamicObject> = match manifest["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource(kind, plural)),
        None => Api::all_with(client.clone(), &resource(kind, plural)),
    };
    Ok(api
        .create(&PostParams::default(), &serde_json::from_value(manifest)?)
        .await?)
}

fn node_manifest(name: &str, url: &str, group: &str, interval: u32) -> Value {
    json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode",
        "metadata": {"name": name, "labels": {"group": group}},
        "spec": {"city": name, "province": "CN-SH", "endpoint": {"url": url},
                 "probe": {"intervalSeconds": interval, "timeoutSeconds": 2, "failureThreshold": 3}}
    })
}

/// Publishes a Public product at `node`, visible to group `selector` or everywhere.
async fn publish(
    client: &kube::Client,
    node: &str,
    name: &str,
    selector: Option<&str>,
) -> anyhow::Result<String> {
    let visibility = match selector {
        Some(group) => {
            json!({"scope": "Selected", "nodeSelector": {"matchLabels": {"group": group}}})
        }
        None => json!({"scope": "AllRegions"}),
    };
    let created = create(
        client,
        json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": name, "namespace": format!("dfn-{node}")},
            "spec": {"title": name, "classification": "Public", "keywords": ["bench"], "visibility": visibility}
        }),
    )
    .await?;
    created.metadata.uid.context("created product has a uid")
}

async fn wait_namespaces(client: &kube::Client, count: usize) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let have = api
            .list_metadata(&ListParams::default().labels("flowfed.io/node"))
            .await?
            .items
            .len();
        if have >= count {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {have} of {count} home namespaces after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates small CatalogEntry objects at rising concurrency; returns the plateau
/// (best throughput), the median latency of single writes, and the curve.
async fn raw_write_limit(client: &kube::Client) -> anyhow::Result<(f64, f64, Vec<(usize, f64)>)> {
    let ns = "bench-raw";
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    let api: Api<CatalogEntry> = Api::namespaced(client.clone(), ns);
    // Warm up connections and the API server's CRD handler before measuring.
    for i in 0..50 {
        api.create(&PostParams::default(), &raw_entry(&format!("warmup-{i}")))
            .await?;
    }
    let mut curve = Vec::new();
    let mut l1_ms = 0.0;
    for concurrency in [1usize, 2, 4, 8, 16, 32, 64] {
        let (throughput, latencies) = sustained(concurrency, |i| {
            create_raw(&api, format!("c{concurrency}-{i}"))
        })
        .await?;
        if concurrency == 1 {
            l1_ms = percentile(&latencies, 0.5);
            println!(
                "  single writes: p50 {l1_ms:.2} ms, p99 {:.2} ms (the API server's own tail)",
                percentile(&latencies, 0.99)
            );
        }
        curve.push((concurrency, throughput));
    }
    let w_raw = curve.iter().map(|(_, w)| *w).fold(0.0, f64::max);
    Ok((w_raw, l1_ms, curve))
}

/// `samples` bursts of `size` concurrent creates: the time each burst took to
/// complete, in ms (sorted).
async fn raw_bursts(
    client: &kube::Client,
    size: usize,
    samples: usize,
) -> anyhow::Result<Vec<f64>> {
    let api: Api<CatalogEntry> = Api::namespaced(client.clone(), "bench-raw");
    let mut took = Vec::with_capacity(samples);
    for sample in 0..samples {
        let started = Instant::now();
        futures::future::try_join_all(
            (0..size).map(|i| create_raw(&api, format!("burst{size}-{sample}-{i}"))),
        )
        .await?;
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    Ok(took)
}

/// How long each point of the raw write curve is measured: long enough that
/// one slow second does not make the plateau.
const RAW_WINDOW: Duration = Duration::from_secs(3);

/// Runs `write(i)` for i = 0, 1, ... with `concurrency` in flight for
/// [`RAW_WINDOW`]: writes per second, and every latency in ms (sorted).
async fn sustained<F, T>(
    concurrency: usize,
    write: impl Fn(usize) -> F,
) -> anyhow::Result<(f64, Vec<f64>)>
where
    F: std::future::Future<Output = Result<T, kube::Error>>,
{
    let started = Instant::now();
    let timed = |i| {
        let write = write(i);
        async move {
            let t = Instant::now();
            write.await?;
            anyhow::Ok(t.elapsed().as_secs_f64() * 1000.0)
        }
    };
    let mut latencies: Vec<f64> = futures::stream::iter(0..)
        .take_while(|_| std::future::ready(started.elapsed() < RAW_WINDOW))
        .map(timed)
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let throughput = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok((throughput, latencies))
}

/// Server-side apply of the same small entries at `concurrency`: what the API
/// server's own apply path costs next to a plain create.
async fn raw_apply_limit(client: &kube::Client, concurrency: usize) -> anyhow::Result<f64> {
    let api: Api<CatalogEntry> = Api::namespaced(client.clone(), "bench-raw");
    let (throughput, _) = sustained(concurrency, |i| {
        let api = api.clone();
        async move {
            let name = format!("apply-{i}");
            api.patch(
                &name,
                &kube::api::PatchParams::apply("bench").force(),
                &kube::api::Patch::Apply(&raw_entry(&name)),
            )
            .await
        }
    })
    .await?;
    Ok(throughput)
}

/// Creates the small entry `name`, as the raw load generator does.
fn create_raw(
    api: &Api<CatalogEntry>,
    name: String,
) -> impl std::future::Future<Output = Result<CatalogEntry, kube::Error>> + use<> {
    let api = api.clone();
    async move { api.create(&PostParams::default(), &raw_entry(&name)).await }
}

fn raw_entry(name: &str) -> CatalogEntry {
    serde_json::from_value(json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "CatalogEntry",
        "metadata": {"name": name, "labels": {"flowfed.io/product-uid": "raw"}},
        "spec": {"product": {"node": "raw", "namespace": "raw", "name": name, "uid": "raw"},
                 "title": name, "classification": "Public", "publishedAt": "2026-01-01T00:00:00Z",
                 "contentHash": "0123456789abcdef0123456789abcdef"}
    }))
    .expect("a valid entry")
}

/// Mutating requests the API server has served, from its own metrics.
async fn mutating_requests(client: &kube::Client) -> anyhow::Result<f64> {
    Ok(mutating_requests_by_kind(client).await?.values().sum())
}

/// Mutating API requests so far, from the API server's own
/// `apiserver_request_total`, by "VERB resource[/subresource]".
async fn mutating_requests_by_kind(client: &kube::Client) -> anyhow::Result<BTreeMap<String, f64>> {
    const MUTATING: [&str; 6] = [
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "APPLY",
        "DELETECOLLECTION",
    ];
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    let label = |line: &str, name: &str| -> String {
        line.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned()
    };
    let mut by_kind = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let verb = label(line, "verb");
        if !MUTATING.contains(&verb.as_str()) {
            continue;
        }
        let mut resource = label(line, "resource");
        let subresource = label(line, "subresource");
        if !subresource.is_empty() {
            resource = format!("{resource}/{subresource}");
        }
        let count = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        *by_kind.entry(format!("{verb} {resource}")).or_insert(0.0) += count;
    }
    Ok(by_kind)
}

/// Waits until the controller manager has given every namespace its default
/// ServiceAccount and root CA ConfigMap: its catch-up after the operator
/// creates 1,000 namespaces is the cluster's work, not the operator's, and
/// would otherwise be counted as idle writes.
async fn wait_namespaces_set_up(client: &kube::Client) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let namespaces = Api::<Namespace>::all(client.clone())
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len();
        let accounts = Api::<ServiceAccount>::all(client.clone())
            .list_metadata(&ListParams::default().fields("metadata.name=default"))
            .await?
            .items
            .len();
        let root_cas = Api::<ConfigMap>::all(client.clone())
            .list_metadata(&ListParams::default().fields("metadata.name=kube-root-ca.crt"))
            .await?
            .items
            .len();
        if accounts >= namespaces && root_cas >= namespaces {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "namespaces not set up: {accounts} ServiceAccounts, {root_cas} root CA ConfigMaps for {namespaces} namespaces"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// CPU seconds (user + system) process `pid` has used.
fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("stat format")?
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// CPU seconds used so far by the plane's etcd and API server, the operator
/// and this process: where the machine's cores go during a phase.
fn cpu_by_process(plane: &Plane, operator: Option<&Operator>) -> BTreeMap<&'static str, f64> {
    let component = |name| process_cpu_seconds(plane.component_pid(name)?).ok();
    let mut cpu = BTreeMap::new();
    for (label, seconds) in [
        ("kube-apiserver", component("kube-apiserver")),
        ("etcd", component("etcd")),
        ("operator", operator.and_then(|o| o.cpu_seconds().ok())),
        (
            "benchmark (load and watcher)",
            process_cpu_seconds(std::process::id()).ok(),
        ),
    ] {
        if let Some(seconds) = seconds {
            cpu.insert(label, seconds);
        }
    }
    cpu
}

/// The busiest kinds of mutating request between two counts, per second.
fn busiest(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    seconds: f64,
) -> Vec<(String, f64)> {
    let mut rates: Vec<(String, f64)> = after
        .iter()
        .map(|(kind, n)| {
            (
                kind.clone(),
                (n - before.get(kind).unwrap_or(&0.0)) / seconds,
            )
        })
        .filter(|(_, rate)| *rate > 0.0)
        .collect();
    rates.sort_by(|a, b| b.1.total_cmp(&a.1));
    rates.truncate(6);
    rates
}

/// Which node status fields change, counted from a watch: tells what the idle
/// status writes carry. Conditions count by type; timestamps are left out.
struct StatusChanges {
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusChanges {
    fn start(client: kube::Client) -> StatusChanges {
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

    fn take(&self) -> BTreeMap<String, usize> {
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
fn status_fields(status: &Value) -> BTreeMap<String, Value> {
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

/// Entries seen (namespace/name) and entries per product uid.
#[derive(Default)]
struct Seen {
    entries: HashSet<String>,
    per_product: HashMap<String, usize>,
}

/// An independent watcher of every CatalogEntry: counts distinct entries and
/// entries per product.
struct EntryWatcher {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EntryWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EntryWatcher {
    fn start(client: kube::Client) -> EntryWatcher {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            let api: Api<CatalogEntry> = Api::all(client);
            let stream = watcher(
                api,
                watcher::Config::default().labels("flowfed.io/product-uid!=raw"),
            )
            .default_backoff();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let objects = match event {
                    Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => vec![e],
                    _ => continue,
                };
                let mut seen = shared.lock().unwrap();
                for entry in objects {
                    let key = format!(
                        "{}/{}",
                        entry.metadata.namespace.clone().unwrap_or_default(),
                        entry.metadata.name.clone().unwrap_or_default()
                    );
                    if seen.entries.insert(key) {
                        *seen
                            .per_product
                            .entry(entry.spec.product.uid.clone())
                            .or_default() += 1;
                    }
                }
            }
        });
        EntryWatcher { seen, task }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().entries.len()
    }

    async fn wait_for_count(&self, count: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while self.count() < count {
            anyhow::ensure!(
                Instant::now() < deadline,
                "watcher saw {} of {count} entries",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn wait_for_product(
        &self,
        uid: &str,
        targets: usize,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self
                .seen
                .lock()
                .unwrap()
                .per_product
                .get(uid)
                .copied()
                .unwrap_or(0)
                >= targets
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "product {uid} not visible at {targets} nodes"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// The operator as a release-mode process.
struct Operator {
    child: std::process::Child,
    peak_rss_kb: Arc<Mutex<u64>>,
}

impl Operator {
    fn start(binary: &Path, kubeconfig: &Path) -> anyhow::Result<Operator> {
        let port = flowfed_tests::free_port();
        let child = std::process::Command::new(binary)
            .args(["run", "--http-addr", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()?;
        Ok(Operator {
            child,
            peak_rss_kb: Arc::default(),
        })
    }

    fn status_field(&self, field: &str) -> Option<u64> {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// User + system CPU seconds so far.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        process_cpu_seconds(self.child.id())
    }

    fn peak_rss_mb(&self) -> f64 {
        let hwm = self.status_field("VmHWM:").unwrap_or(0);
        let mut peak = self.peak_rss_kb.lock().unwrap();
        *peak = (*peak).max(hwm);
        *peak as f64 / 1024.0
    }

    fn stop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 1,000 nodes and 5,000 links, then 10,000 products, on a fresh plane.
async fn scale(binary: &Path, sizes: &Sizes) -> anyhow::Result<Value> {
    let plane = Plane::start("bench-scale")?;
    let admin = plane.client().await?;
    let kubeconfig = install_chart(&plane).await?;
    println!(
        "\nscale: {} nodes, {} links",
        sizes.scale_nodes, sizes.scale_links
    );

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
    create(&admin, json!({"apiVersion": "flowfed.io/v1alpha1", "kind": "Federation", "metadata": {"name": "scale"}, "spec": {}})).await?;

    let baseline_before = mutating_requests(&admin).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let baseline = (mutating_requests(&admin).await? - baseline_before) / 10.0;

    let mut operator = Operator::start(binary, &kubeconfig)?;
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
    let convergence = started.elapsed().as_secs_f64();
    println!(
        "  federation interconnected with every node ready and link up after {interconnected:.1} s; every node's catalog view reported after {convergence:.1} s"
    );
    let cluster_settled = Instant::now();
    wait_namespaces_set_up(&admin).await?;
    println!(
        "  the controller manager finished setting up the operator's namespaces {:.1} s after convergence",
        cluster_settled.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_window = 30.0;
    let status_changes = StatusChanges::start(admin.clone());
    let before = mutating_requests_by_kind(&admin).await?;
    status_changes.take();
    tokio::time::sleep(Duration::from_secs_f64(idle_window)).await;
    let changed_fields = status_changes.take();
    let after = mutating_requests_by_kind(&admin).await?;
    let idle = (after.values().sum::<f64>() - before.values().sum::<f64>()) / idle_window;
    let idle_net = (idle - baseline).max(0.0);
    let idle_kinds = busiest(&before, &after, idle_window);
    let rss_network = operator.peak_rss_mb();
    println!(
        "  converged in {convergence:.1} s; idle writes {idle:.2}/s ({idle_net:.2}/s above the plane's own {baseline:.2}/s); peak RSS {rss_network:.0} MB"
    );
    for (kind, rate) in &idle_kinds {
        println!("    idle: {rate:>6.2}/s {kind}");
    }
    println!("    node status fields changed while idle: {changed_fields:?}");

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
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = mutating_requests_by_kind(&admin).await?;
    status_changes.take();
    tokio::time::sleep(Duration::from_secs_f64(idle_window)).await;
    let after = mutating_requests_by_kind(&admin).await?;
    let idle_products = (after.values().sum::<f64>() - before.values().sum::<f64>()) / idle_window;
    for (kind, rate) in busiest(&before, &after, idle_window) {
        println!("    idle: {rate:>6.2}/s {kind}");
    }
    println!(
        "    node status fields changed while idle: {:?}",
        status_changes.take()
    );
    let rss_products = operator.peak_rss_mb();
    println!(
        "  + {products} products ({expected} entries) synced in {products_s:.1} s; idle writes {idle_products:.2}/s; peak RSS {rss_products:.0} MB"
    );
    operator.stop();
    drop(gateways);

    Ok(json!({
        "nodes": n, "links": links,
        "convergence_s": convergence,
        "interconnected_s": interconnected,
        "idle_writes_per_s": idle_net,
        "idle_writes_raw_per_s": idle,
        "idle_writes_by_request": idle_kinds.iter().cloned().collect::<BTreeMap<_, _>>(),
        "idle_node_status_changes": changed_fields,
        "plane_baseline_writes_per_s": baseline,
        "peak_rss_mb": rss_network,
        "with_products": {"products": products, "entries": expected, "sync_s": products_s, "counted_s": counted_s, "idle_writes_per_s": (idle_products - baseline).max(0.0), "peak_rss_mb": rss_products},
    }))
}
