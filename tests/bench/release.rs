//! Phase 2: release to visible. Single products published one at a time to 25
//! and to 50 nodes; p50/p99 from publish to the last entry seen by an
//! independent watcher, next to the floor `N / W_raw + L1`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{EntryWatcher, publish};
use crate::raw::RawLimit;
use crate::{Sizes, percentile};

/// Measures release-to-visible and records it in `results`.
pub async fn measure(
    admin: &kube::Client,
    watcher: &EntryWatcher,
    sizes: &Sizes,
    raw: &RawLimit,
    results: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<()> {
    let (w_raw, l1_ms, bursts) = (raw.w_raw, raw.l1_ms, &raw.bursts);
    // 2. Release to visible, once a first release has warmed the operator up
    // (its caches, connections and the API server's CRD handlers).
    let uid = publish(admin, "n00", "warmup", Some("a")).await?;
    watcher
        .wait_for_product(&uid, sizes.bulk_nodes, Duration::from_secs(120))
        .await?;
    let mut release = serde_json::Map::new();
    for (targets, selector) in [(25usize, Some("a")), (50, None)] {
        let mut latencies = Vec::new();
        for i in 0..sizes.release_samples {
            let name = format!("release-{targets}-{i}");
            let started = Instant::now();
            let uid = publish(admin, "n00", &name, selector).await?;
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
    Ok(())
}
