//! Phase 1, the baseline: a plain kube-rs load generator creates small
//! CatalogEntry objects at concurrency 1..64. Its plateau is `W_raw`, its
//! single-write latency `L1`; everything flowfed does is measured against them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowfed::api::CatalogEntry;
use flowfed_tests::Plane;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::harness::cpu_by_process;
use crate::{Sizes, percentile};

/// The API server's own write limit, measured in this run.
pub struct RawLimit {
    /// Best create throughput, objects per second.
    pub w_raw: f64,
    /// Median latency of a single write, ms.
    pub l1_ms: f64,
    /// p50/p99 of N writes in one burst, by N.
    pub bursts: BTreeMap<String, Value>,
}

/// Measures the raw write limit and records it in `results`.
pub async fn measure(
    plane: &Plane,
    admin: &kube::Client,
    sizes: &Sizes,
    results: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<RawLimit> {
    // 1. Raw write limit.
    let raw_started = (Instant::now(), cpu_by_process(plane, None));
    let (w_raw, l1_ms, curve) = raw_write_limit(admin).await?;
    let raw_cores: BTreeMap<&str, f64> = cpu_by_process(plane, None)
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
    let w_apply = raw_apply_limit(admin, 32).await?;
    results.insert("w_raw_apply".into(), json!(w_apply));
    println!(
        "  server-side apply of the same objects at concurrency 32: {w_apply:.0} objects/s ({:.2} of W_raw)",
        w_apply / w_raw
    );
    // The API server alone, writing N entries in one burst, as a release does:
    // its p99 is the slowest of N writes, which a median-based floor leaves out.
    let mut bursts = BTreeMap::new();
    for targets in [25usize, 50] {
        let latencies = raw_bursts(admin, targets, sizes.release_samples).await?;
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        println!("  bursts of {targets} writes: p50 {p50:.1} ms, p99 {p99:.1} ms");
        bursts.insert(targets.to_string(), json!({"p50_ms": p50, "p99_ms": p99}));
    }
    Ok(RawLimit {
        w_raw,
        l1_ms,
        bursts,
    })
}

/// Creates small CatalogEntry objects at rising concurrency; returns the plateau
/// (best throughput), the median latency of single writes, and the curve.
pub async fn raw_write_limit(
    client: &kube::Client,
) -> anyhow::Result<(f64, f64, Vec<(usize, f64)>)> {
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
pub async fn raw_bursts(
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
pub const RAW_WINDOW: Duration = Duration::from_secs(3);

/// Runs `write(i)` for i = 0, 1, ... with `concurrency` in flight for
/// [`RAW_WINDOW`]: writes per second, and every latency in ms (sorted).
pub async fn sustained<F, T>(
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
pub async fn raw_apply_limit(client: &kube::Client, concurrency: usize) -> anyhow::Result<f64> {
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
pub fn create_raw(
    api: &Api<CatalogEntry>,
    name: String,
) -> impl std::future::Future<Output = Result<CatalogEntry, kube::Error>> + use<> {
    let api = api.clone();
    async move { api.create(&PostParams::default(), &raw_entry(&name)).await }
}

pub fn raw_entry(name: &str) -> CatalogEntry {
    serde_json::from_value(json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "CatalogEntry",
        "metadata": {"name": name, "labels": {"flowfed.io/product-uid": "raw"}},
        "spec": {"product": {"node": "raw", "namespace": "raw", "name": name, "uid": "raw"},
                 "title": name, "classification": "Public", "publishedAt": "2026-01-01T00:00:00Z",
                 "contentHash": "0123456789abcdef0123456789abcdef"}
    }))
    .expect("a valid entry")
}
