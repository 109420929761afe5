//! Phase 3: bulk propagation. 2,000 products to 25 node namespaces (50,000
//! entries): `W_op`, `eta = W_op / W_raw`, write amplification (mutating API
//! requests per entry, from the API server's own `apiserver_request_total`)
//! and operator CPU-seconds per 1,000 entries. Run three times: without the
//! ledger, with it, and without again, for the ledger's cost in the same run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowfed_tests::Plane;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::Sizes;
use crate::harness::{
    EntryWatcher, Operator, busiest, cpu_by_process, mutating_requests_by_kind, publish,
};

/// What one bulk sync measured.
pub struct Bulk {
    pub eta: f64,
    pub amplification: f64,
    /// Mutating requests on LedgerBlocks and LedgerCheckpoints per entry.
    pub ledger_per_entry: f64,
    /// Every figure, for results.json.
    pub figures: serde_json::Map<String, Value>,
}

/// Measures one bulk propagation of products named `PREFIX-i`.
pub async fn measure(
    plane: &Plane,
    admin: &kube::Client,
    watcher: &EntryWatcher,
    operator: &Operator,
    sizes: &Sizes,
    w_raw: f64,
    prefix: &str,
) -> anyhow::Result<Bulk> {
    // 3. Bulk propagation.
    let entries_expected = sizes.bulk_products * sizes.bulk_nodes;
    let seen_before = watcher.count();
    let kinds_before = mutating_requests_by_kind(admin).await?;
    let writes_before: f64 = kinds_before.values().sum();
    let cpu_before = operator.cpu_seconds()?;
    let cores_before = cpu_by_process(plane, Some(operator));
    let started = Instant::now();
    futures::stream::iter(0..sizes.bulk_products)
        .map(|i| {
            let admin = admin.clone();
            async move {
                publish(
                    &admin,
                    &format!("n{:02}", i % sizes.bulk_nodes),
                    &format!("{prefix}-{i}"),
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
    let kinds_after = mutating_requests_by_kind(admin).await?;
    let writes = kinds_after.values().sum::<f64>() - writes_before - sizes.bulk_products as f64;
    let w_op = entries_expected as f64 / elapsed;
    let eta = w_op / w_raw;
    let amplification = writes / entries_expected as f64;
    let cpu_per_1000 = cpu / entries_expected as f64 * 1000.0;
    println!(
        "bulk ({prefix}): {} products x {} nodes = {entries_expected} entries in {elapsed:.1} s: W_op = {w_op:.0}/s, eta = {eta:.2}, write amplification {amplification:.2}, {cpu_per_1000:.2} CPU-s per 1000 entries",
        sizes.bulk_products, sizes.bulk_nodes
    );
    let cores: BTreeMap<&str, f64> = cpu_by_process(plane, Some(operator))
        .into_iter()
        .map(|(process, seconds)| {
            (
                process,
                (seconds - cores_before.get(process).unwrap_or(&0.0)) / elapsed,
            )
        })
        .collect();
    println!("    cores used during the bulk sync: {cores:.2?}");
    let mut results = serde_json::Map::new();
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
    let ledger_writes: f64 = kinds_after
        .iter()
        .filter(|(kind, _)| kind.contains("ledgerblocks") || kind.contains("ledgercheckpoints"))
        .map(|(kind, n)| n - kinds_before.get(kind).unwrap_or(&0.0))
        .sum();
    Ok(Bulk {
        eta,
        amplification,
        ledger_per_entry: ledger_writes / entries_expected as f64,
        figures: results,
    })
}
