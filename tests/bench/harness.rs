//! What every phase shares: the chart's identity for the operator, manifests,
//! the API server's own request counts, CPU accounting, an independent entry
//! watcher, and the operator as a release-mode process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use flowfed::api::CatalogEntry;
use flowfed_tests::Plane;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

/// Installs the chart (CRDs, RBAC) and returns a kubeconfig with the chart's
/// ServiceAccount token, for the operator.
pub async fn install_chart(plane: &Plane) -> anyhow::Result<PathBuf> {
    plane.helm_install("flowfed-system", &[])?;
    let path = plane.kubeconfig.with_file_name("operator.kubeconfig");
    std::fs::write(
        &path,
        plane.service_account_kubeconfig("flowfed-system", "flowfed")?,
    )?;
    Ok(path)
}

pub fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("flowfed.io", "v1alpha1", kind),
        plural,
    )
}

pub async fn create(client: &kube::Client, manifest: Value) -> anyhow::Result<DynamicObject> {
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

pub fn node_manifest(name: &str, url: &str, group: &str, interval: u32) -> Value {
    json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode",
        "metadata": {"name": name, "labels": {"group": group}},
        "spec": {"city": name, "province": "CN-SH", "endpoint": {"url": url},
                 "probe": {"intervalSeconds": interval, "timeoutSeconds": 2, "failureThreshold": 3}}
    })
}

/// Publishes a Public product at `node`, visible to group `selector` or everywhere.
pub async fn publish(
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

pub async fn wait_namespaces(client: &kube::Client, count: usize) -> anyhow::Result<()> {
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

/// Mutating requests the API server has served, from its own metrics.
pub async fn mutating_requests(client: &kube::Client) -> anyhow::Result<f64> {
    Ok(mutating_requests_by_kind(client).await?.values().sum())
}

/// Mutating API requests so far, from the API server's own
/// `apiserver_request_total`, by "VERB resource[/subresource]".
pub async fn mutating_requests_by_kind(
    client: &kube::Client,
) -> anyhow::Result<BTreeMap<String, f64>> {
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
pub async fn wait_namespaces_set_up(client: &kube::Client) -> anyhow::Result<()> {
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
pub fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
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
pub fn cpu_by_process(plane: &Plane, operator: Option<&Operator>) -> BTreeMap<&'static str, f64> {
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
pub fn busiest(
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

/// Entries seen (namespace/name) and entries per product uid.
#[derive(Default)]
pub struct Seen {
    entries: HashSet<String>,
    per_product: HashMap<String, usize>,
}

/// An independent watcher of every CatalogEntry: counts distinct entries and
/// entries per product.
pub struct EntryWatcher {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EntryWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EntryWatcher {
    pub fn start(client: kube::Client) -> EntryWatcher {
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

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().entries.len()
    }

    pub async fn wait_for_count(&self, count: usize, limit: Duration) -> anyhow::Result<()> {
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

    pub async fn wait_for_product(
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
pub struct Operator {
    child: std::process::Child,
    peak_rss_kb: Arc<Mutex<u64>>,
}

impl Operator {
    /// Starts `flowfed run` with `args` added.
    pub fn start(binary: &Path, kubeconfig: &Path, args: &[&str]) -> anyhow::Result<Operator> {
        let port = flowfed_tests::free_port();
        let child = std::process::Command::new(binary)
            .args(["run", "--http-addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()?;
        Ok(Operator {
            child,
            peak_rss_kb: Arc::default(),
        })
    }

    pub fn status_field(&self, field: &str) -> Option<u64> {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// Waits (two minutes at most) until the operator has done its start-up
    /// work over the objects already there: under a tenth of a core over 2 s.
    pub async fn wait_idle(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut before = self.cpu_seconds()?;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = self.cpu_seconds()?;
            if now - before < 0.2 {
                return Ok(());
            }
            before = now;
        }
        Ok(())
    }

    /// User + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        process_cpu_seconds(self.child.id())
    }

    pub fn peak_rss_mb(&self) -> f64 {
        let hwm = self.status_field("VmHWM:").unwrap_or(0);
        let mut peak = self.peak_rss_kb.lock().unwrap();
        *peak = (*peak).max(hwm);
        *peak as f64 / 1024.0
    }

    pub fn stop(&mut self) {
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
