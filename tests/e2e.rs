//! End to end, as a platform team would run it: `helm install` into a real
//! control plane, the operator running with the chart's ServiceAccount identity
//! (a TokenRequest token) through the interconnection and catalog scenarios,
//! `kubectl auth can-i` proving the role is no wider than needed, and a real
//! Prometheus scraping the operator while every dashboard and alert expression
//! is evaluated against it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use flowfed::api::conditions::types;
use flowfed::api::{CatalogEntry, DataFlowNode, DataProduct, Federation};
use flowfed_tests::{
    Gateway, Plane, has_condition, repo_root, start_operator_with_ledger, unique, wait_for,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const NAMESPACE: &str = "flowfed-system";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:flowfed-system:flowfed";
const CONVERGE: Duration = Duration::from_secs(60);

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn helm_installed_operator_runs_with_its_own_identity_and_prometheus_sees_everything() {
    let plane = Plane::start(&unique("e2e")).unwrap();
    let admin = plane.client().await.unwrap();

    // helm install: CRDs, RBAC, Deployment, dashboards.
    plane
        .helm_install(NAMESPACE, &["--set", "networkPolicy.enabled=true"])
        .unwrap();
    let crds = run(plane.kubectl_command().args(["get", "crd", "-o", "name"]));
    assert_eq!(
        crds.lines().filter(|l| l.contains("flowfed.io")).count(),
        flowfed::api::crds().len()
    );
    let dashboards = run(plane.kubectl_command().args([
        "get",
        "configmap",
        "-n",
        NAMESPACE,
        "-l",
        "grafana_dashboard=1",
        "-o",
        "name",
    ]));
    assert_eq!(dashboards.lines().count(), 3);

    // The role is no wider than needed.
    let can = |args: &[&str]| {
        let out = plane
            .kubectl(&[&["auth", "can-i", "--as", SERVICE_ACCOUNT][..], args].concat())
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    for allowed in [
        &["patch", "dataflownodes.flowfed.io", "--subresource=status"][..],
        &["patch", "intercitylinks.flowfed.io"],
        &["delete", "catalogentries.flowfed.io", "-n", "dfn-anything"],
        &["get", "secrets", "-n", NAMESPACE],
        &["create", "events.events.k8s.io", "-n", "default"],
        &["patch", "leases.coordination.k8s.io", "-n", NAMESPACE],
        &["patch", "dataprocessors.flowfed.io", "--subresource=status"],
        &["watch", "freetradezones.flowfed.io"],
    ] {
        assert!(can(allowed), "the operator needs {allowed:?}");
    }
    for denied in [
        &["list", "secrets", "--all-namespaces"][..],
        &["get", "secrets", "-n", "default"],
        &["create", "pods", "-n", NAMESPACE],
        &["delete", "dataflownodes.flowfed.io"],
        &["update", "dataflownodes.flowfed.io"],
        &["delete", "dataproducts.flowfed.io", "-n", "dfn-anything"],
        &["create", "customresourcedefinitions"],
        &["delete", "namespaces"],
        &["impersonate", "users"],
        &["escalate", "clusterroles"],
        &["bind", "clusterroles"],
        &["patch", "leases.coordination.k8s.io", "-n", "kube-system"],
        &["patch", "dataprocessors.flowfed.io"],
        &["create", "freetradezones.flowfed.io"],
    ] {
        assert!(!can(denied), "the operator must not be allowed {denied:?}");
    }

    // A member cluster for Hong Kong, its kubeconfig in the release namespace.
    let member = Plane::start(&unique("e2e-member")).unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "hk-kubeconfig"}, "stringData": {"kubeconfig": member.kubeconfig_yaml().unwrap()}
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    // The operator, as the chart's ServiceAccount.
    let operator = start_operator_with_ledger(&plane).await.unwrap();
    let mut gateways = Vec::new();
    for ip in ["127.0.0.61", "127.0.0.62", "127.0.0.63"] {
        gateways.push(Gateway::start(ip).await.unwrap());
    }
    let nodes = [
        ("beijing", "CN-BJ", "CN", (39.9, 116.4), json!({})),
        ("tianjin", "CN-TJ", "CN", (39.1, 117.2), json!({})),
        (
            "hong-kong",
            "CN-HK",
            "HK",
            (22.3, 114.2),
            json!({"kubeconfigSecretRef": {"namespace": NAMESPACE, "name": "hk-kubeconfig", "key": "kubeconfig"}}),
        ),
    ];
    for (i, (name, province, jurisdiction, (lat, lon), catalog)) in nodes.iter().enumerate() {
        let node = json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode", "metadata": {"name": name},
            "spec": {"city": name, "province": province, "jurisdiction": jurisdiction,
                     "location": {"latitude": lat, "longitude": lon}, "endpoint": {"url": gateways[i].url()},
                     "probe": {"intervalSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 2}, "catalog": catalog}
        });
        Api::<DataFlowNode>::all(admin.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(node).unwrap(),
            )
            .await
            .unwrap();
    }
    let federation = json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "Federation", "metadata": {"name": "national"},
        "spec": {"topology": {"mode": "HubAndSpoke", "hubs": ["beijing"], "spokeUplinks": 1}, "coverage": {"provincesTarget": 3}}
    });
    Api::<Federation>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(federation).unwrap(),
        )
        .await
        .unwrap();
    let national = wait_for(
        &Api::<Federation>::all(admin.clone()),
        "national",
        CONVERGE,
        |f| {
            f.status
                .as_ref()
                .is_some_and(|s| s.interconnected && s.links.total == 2)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        national.status.unwrap().critical_nodes,
        vec!["beijing".to_string()]
    );

    // The operator created the home namespaces; a product published in one is
    // listed in the hub and in Hong Kong's member cluster.
    wait_for(
        &Api::<Namespace>::all(admin.clone()),
        "dfn-beijing",
        CONVERGE,
        |_| true,
    )
    .await
    .unwrap();
    let product = json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": "air-quality", "namespace": "dfn-beijing"},
        "spec": {"title": "Air quality", "classification": "Public"}
    });
    let products: Api<DataProduct> = Api::namespaced(admin.clone(), "dfn-beijing");
    products
        .create(
            &PostParams::default(),
            &serde_json::from_value(product).unwrap(),
        )
        .await
        .unwrap();
    wait_for(
        &Api::<CatalogEntry>::namespaced(admin.clone(), "dfn-tianjin"),
        "beijing.air-quality",
        CONVERGE,
        |_| true,
    )
    .await
    .unwrap();
    let member_entries: Api<CatalogEntry> =
        Api::namespaced(member.client().await.unwrap(), "flowfed-catalog");
    wait_for(&member_entries, "beijing.air-quality", CONVERGE, |_| true)
        .await
        .unwrap();
    let synced = wait_for(&products, "air-quality", CONVERGE, |p| {
        p.status.as_ref().is_some_and(|s| s.visible_count == 3)
    })
    .await
    .unwrap();
    assert!(has_condition(&synced, types::SYNCED, "True"));

    // A real Prometheus scrapes the operator; every dashboard and alert expression
    // parses and returns data.
    let prometheus = Prometheus::start(operator.http_addr).await;
    let mut expressions = dashboard_expressions();
    assert!(
        expressions.len() >= 20,
        "{} dashboard expressions",
        expressions.len()
    );
    let deadline = Instant::now() + CONVERGE;
    loop {
        let mut empty = Vec::new();
        for expr in &expressions {
            if prometheus.query(expr).await.is_empty() {
                empty.push(expr.clone());
            }
        }
        if empty.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dashboard expressions without data: {empty:#?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        expressions = empty;
    }
    for (alert, expr) in alert_expressions() {
        prometheus.query(&expr).await; // parses (query() fails the test on an error)
        for metric in metric_names(&expr) {
            let series = prometheus
                .query(&format!("{{__name__=\"{metric}\"}}"))
                .await;
            assert!(
                !series.is_empty(),
                "alert {alert} reads {metric}, which has no data"
            );
        }
    }
    // Hong Kong's member cluster witnesses the ledger.
    let member_client = member.client().await.unwrap();
    let witness: Api<flowfed::api::LedgerCheckpoint> =
        Api::namespaced(member_client, "flowfed-catalog");
    wait_for(
        &witness,
        flowfed::api::LedgerCheckpoint::NAME,
        CONVERGE,
        |c| c.spec.tree_size > 0,
    )
    .await
    .unwrap();
    let rules = prometheus.get("/api/v1/rules").await;
    let groups = rules["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    for rule in groups.iter().flat_map(|g| g["rules"].as_array().unwrap()) {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    operator.stop().await.unwrap();
}

/// A Prometheus (Debian's package) scraping one target every second.
struct Prometheus {
    base: String,
    _process: tokio::process::Child,
    _storage: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Prometheus {
    async fn start(target: std::net::SocketAddr) -> Prometheus {
        let dir = std::env::temp_dir().join(unique("flowfed-prometheus"));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = repo_root().join("alerts/flowfed.rules.yaml");
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [{rules:?}]\nscrape_configs:\n  - job_name: flowfed\n    static_configs: [{{targets: ['{target}']}}]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = tokio::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus installed (Debian package)");
        let prometheus = Prometheus {
            base: format!("http://127.0.0.1:{port}"),
            _process: process,
            _storage: TempDir(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reqwest::get(format!("{}/-/ready", prometheus.base))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "prometheus not ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        prometheus
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The instant result of `expr`; fails the test when Prometheus rejects it.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let client = reqwest::Client::new();
        let body: Value = client
            .post(format!("{}/api/v1/query", self.base))
            .form(&[("query", expr)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Every PromQL expression of every panel of every shipped dashboard, with
/// Grafana's `$__rate_interval` replaced by a window Prometheus understands.
fn dashboard_expressions() -> Vec<String> {
    let mut expressions = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("dashboards")).unwrap() {
        let dashboard: Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        assert!(
            dashboard.get("uid").is_none(),
            "dashboards carry no hard-coded uid"
        );
        for panel in dashboard["panels"].as_array().unwrap() {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "panel {} uses the datasource variable",
                panel["title"]
            );
            for target in panel["targets"].as_array().unwrap() {
                expressions.push(
                    target["expr"]
                        .as_str()
                        .unwrap()
                        .replace("$__rate_interval", "1m"),
                );
            }
        }
    }
    expressions
}

/// (alert name, expression) of every alert rule.
fn alert_expressions() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(Path::new(&repo_root()).join("alerts/flowfed.rules.yaml")).unwrap();
    let rules: Value = serde_yaml::from_str(&text).unwrap();
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| {
            (
                r["alert"].as_str().unwrap().to_owned(),
                r["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The flowfed series names an expression reads (histogram buckets included).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find("flowfed_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}
