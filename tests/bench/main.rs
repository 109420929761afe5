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

mod bulk;
mod harness;
mod raw;
mod release;
mod scale;

use std::path::PathBuf;

use flowfed_tests::{Gateway, Plane, repo_root};
use serde_json::{Value, json};

use harness::{EntryWatcher, Operator, create, install_chart, node_manifest, wait_namespaces};

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

    let raw = raw::measure(&plane, &admin, &sizes, &mut results).await?;

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
    let mut operator = Operator::start(&binary, &operator_kubeconfig, &[])?;
    wait_namespaces(&admin, 50).await?;

    release::measure(&admin, &watcher, &sizes, &raw, &mut results).await?;
    let plain = bulk::measure(
        &plane, &admin, &watcher, &operator, &sizes, raw.w_raw, "bulk",
    )
    .await?;
    operator.stop();
    results.extend(plain.figures.clone());

    // 3b. The same bulk sync with the ledger on, as the chart runs it, then
    // once more without: the ledger's cost is against the mean of the plain
    // runs around it, so the hub filling up counts against neither.
    let mut operator = Operator::start(&binary, &operator_kubeconfig, &LEDGER_ARGS)?;
    ledger_caught_up(&admin).await?;
    operator.wait_idle().await?;
    let ledger = bulk::measure(
        &plane, &admin, &watcher, &operator, &sizes, raw.w_raw, "ledger",
    )
    .await?;
    operator.stop();
    let mut operator = Operator::start(&binary, &operator_kubeconfig, &[])?;
    operator.wait_idle().await?;
    let after = bulk::measure(
        &plane, &admin, &watcher, &operator, &sizes, raw.w_raw, "after",
    )
    .await?;
    operator.stop();
    let plain_eta = (plain.eta + after.eta) / 2.0;
    let plain_amplification = (plain.amplification + after.amplification) / 2.0;
    let ledger_cost = json!({
        "eta": ledger.eta,
        "eta_without": plain_eta,
        "write_amplification": ledger.amplification,
        "write_amplification_without": plain_amplification,
        "eta_delta_points": (ledger.eta - plain_eta) * 100.0,
        "write_amplification_delta": ledger.amplification - plain_amplification,
        "ledger_requests_per_entry": ledger.ledger_per_entry,
    });
    println!(
        "ledger cost: eta {:.2} / {:.2} without (runs before and after: {:.2}, {:.2}), {:+.1} points; writes per entry {:.4} / {:.4} without, {:+.4} (the ledger's own requests {:.4})",
        ledger.eta,
        plain_eta,
        plain.eta,
        after.eta,
        (ledger.eta - plain_eta) * 100.0,
        ledger.amplification,
        plain_amplification,
        ledger.amplification - plain_amplification,
        ledger.ledger_per_entry
    );
    results.insert("ledger".into(), ledger_cost);
    drop(plane);

    // 4. Scale, on a fresh plane.
    let scale = scale::measure(&binary, &sizes).await?;
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

/// Waits until a freshly started ledger has recorded every product already
/// published (its one-off first records), so the bulk sync measures steady
/// running only.
async fn ledger_caught_up(admin: &kube::Client) -> anyhow::Result<()> {
    use flowfed::api::{DataProduct, LedgerBlock};
    use kube::api::{Api, ListParams};
    let products = Api::<DataProduct>::all(admin.clone())
        .list_metadata(&ListParams::default())
        .await?
        .items
        .len() as u64;
    let blocks: Api<LedgerBlock> = Api::namespaced(admin.clone(), "flowfed-system");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let recorded = blocks
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|b| b.spec.tree_size)
            .max()
            .unwrap_or(0);
        if recorded >= products {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the ledger recorded {recorded} of {products} products in 10 minutes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// `flowfed run` flags that keep the ledger, with the key the chart made.
const LEDGER_ARGS: [&str; 4] = [
    "--ledger-key-secret",
    "flowfed-ledger-key",
    "--lease-namespace",
    "flowfed-system",
];

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
