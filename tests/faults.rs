//! Faults against real control planes: the operator killed mid-sync, the hub's
//! API server restarted, objects deleted while the operator is down, a member
//! cluster answering every request with an error. Each ends with the catalog
//! exactly right: no duplicate entry, no stale entry, nothing lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowfed::api::conditions::types;
use flowfed::api::{CatalogEntry, DataFlowNode, DataProduct};
use flowfed_tests::{
    OPERATOR_NAMESPACE, OperatorProcess, Plane, condition, install_crds, unique, wait_for,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

const NODES: [&str; 4] = ["beijing", "shanghai", "guangzhou", "chengdu"];

async fn setup(label: &str) -> (Plane, kube::Client) {
    let plane = Plane::start(&unique(label)).unwrap();
    let client = plane.client().await.unwrap();
    install_crds(&client).await.unwrap();
    plane.operator_kubeconfig().unwrap();
    for node in NODES {
        let manifest: DataFlowNode = serde_json::from_value(json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode", "metadata": {"name": node},
            "spec": {"city": node, "province": "CN-SH", "endpoint": {"url": "http://127.0.0.1:9/"},
                     "probe": {"intervalSeconds": 3600, "timeoutSeconds": 1}}
        }))
        .unwrap();
        Api::<DataFlowNode>::all(client.clone())
            .create(&PostParams::default(), &manifest)
            .await
            .unwrap();
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("dfn-{node}")}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    (plane, client)
}

async fn publish(client: &kube::Client, node: &str, name: &str) {
    let product: DataProduct = serde_json::from_value(json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": name, "namespace": format!("dfn-{node}")},
        "spec": {"title": name, "classification": "Public"}
    }))
    .unwrap();
    Api::<DataProduct>::namespaced(client.clone(), &format!("dfn-{node}"))
        .create(&PostParams::default(), &product)
        .await
        .unwrap();
}

/// Waits until the hub catalog holds exactly `expected` (product name to
/// number of entries) and nothing else.
async fn converge(client: &kube::Client, expected: &BTreeMap<String, usize>, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let entries = Api::<CatalogEntry>::all(client.clone())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        let mut actual: BTreeMap<String, usize> = BTreeMap::new();
        let mut names = std::collections::BTreeSet::new();
        for entry in &entries {
            assert!(
                names.insert((entry.namespace(), entry.name_any())),
                "duplicate entry {:?}/{}",
                entry.namespace(),
                entry.name_any()
            );
            *actual.entry(entry.spec.product.name.clone()).or_default() += 1;
        }
        if &actual == expected {
            return;
        }
        if Instant::now() >= deadline {
            let missing: Vec<_> = expected
                .iter()
                .filter(|(k, v)| actual.get(*k) != Some(v))
                .take(5)
                .collect();
            let extra: Vec<_> = actual
                .iter()
                .filter(|(k, _)| !expected.contains_key(*k))
                .take(5)
                .collect();
            panic!(
                "catalog not converged after {limit:?}: {} entries; wrong {missing:?}; stale {extra:?}",
                entries.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn killing_the_operator_mid_sync_loses_and_duplicates_nothing() {
    let (plane, client) = setup("kill").await;
    let products = 1000;
    for i in 0..products {
        publish(&client, NODES[i % NODES.len()], &format!("p{i}")).await;
    }
    // Kill it three times at different points of the sync, then let it finish.
    let mut seen_entries = Vec::new();
    for (round, run_for) in [700u64, 1900, 3100].iter().enumerate() {
        let mut operator =
            OperatorProcess::start(&plane.operator_kubeconfig().unwrap(), &[]).unwrap();
        tokio::time::sleep(Duration::from_millis(*run_for)).await;
        operator.child.kill().unwrap();
        operator.child.wait().unwrap();
        let count = Api::<CatalogEntry>::all(client.clone())
            .list_metadata(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        println!("round {round}: killed after {run_for} ms with {count} entries written");
        seen_entries.push(count);
    }
    let _operator = OperatorProcess::start(&plane.operator_kubeconfig().unwrap(), &[]).unwrap();
    let expected: BTreeMap<String, usize> = (0..products)
        .map(|i| (format!("p{i}"), NODES.len()))
        .collect();
    converge(&client, &expected, Duration::from_secs(300)).await;
    assert!(
        seen_entries
            .iter()
            .any(|c| *c > 0 && *c < products * NODES.len()),
        "a kill landed mid-sync: {seen_entries:?}"
    );
}

#[tokio::test]
async fn deletions_while_the_operator_is_down_are_cleaned_up_when_it_returns() {
    let (plane, client) = setup("down").await;
    for i in 0..20 {
        publish(&client, NODES[i % NODES.len()], &format!("p{i}")).await;
    }
    let mut operator = OperatorProcess::start(&plane.operator_kubeconfig().unwrap(), &[]).unwrap();
    let all: BTreeMap<String, usize> = (0..20).map(|i| (format!("p{i}"), NODES.len())).collect();
    converge(&client, &all, Duration::from_secs(60)).await;
    operator.child.kill().unwrap();
    operator.child.wait().unwrap();

    // While it is down: two products deleted, and the node chengdu removed.
    for name in ["p0", "p1"] {
        let node = NODES[name[1..].parse::<usize>().unwrap() % NODES.len()];
        Api::<DataProduct>::namespaced(client.clone(), &format!("dfn-{node}"))
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    Api::<DataFlowNode>::all(client.clone())
        .delete("chengdu", &DeleteParams::default())
        .await
        .unwrap();

    let _operator = OperatorProcess::start(&plane.operator_kubeconfig().unwrap(), &[]).unwrap();
    // p0, p1 gone everywhere; chengdu's view gone; chengdu's products (p3, p7, ...)
    // listed nowhere; the rest at the three remaining nodes.
    let expected: BTreeMap<String, usize> = (2..20)
        .filter(|i| NODES[i % NODES.len()] != "chengdu")
        .map(|i| (format!("p{i}"), NODES.len() - 1))
        .collect();
    converge(&client, &expected, Duration::from_secs(120)).await;
    for name in ["p0", "p1"] {
        let node = NODES[name[1..].parse::<usize>().unwrap() % NODES.len()];
        let api = Api::<DataProduct>::namespaced(client.clone(), &format!("dfn-{node}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while api.get_opt(name).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "{name} kept by its finalizer");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn the_operator_rides_out_a_hub_api_server_restart() {
    let (plane, client) = setup("restart").await;
    let _operator = OperatorProcess::start(&plane.operator_kubeconfig().unwrap(), &[]).unwrap();
    publish(&client, "beijing", "before").await;
    let mut expected = BTreeMap::from([("before".to_string(), NODES.len())]);
    converge(&client, &expected, Duration::from_secs(60)).await;

    plane.stop_component("kube-apiserver").unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    plane.start_component("kube-apiserver").unwrap();

    // Watches resume: a product published after the restart is synced, and an
    // entry deleted by hand is put back.
    let client = plane.client().await.unwrap();
    publish(&client, "shanghai", "after").await;
    expected.insert("after".to_string(), NODES.len());
    converge(&client, &expected, Duration::from_secs(120)).await;
    Api::<CatalogEntry>::namespaced(client.clone(), "dfn-guangzhou")
        .delete("beijing.before", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    converge(&client, &expected, Duration::from_secs(60)).await;
}

/// A "member cluster" that answers every request with 500, remembering when
/// each request came.
async fn erroring_member() -> (std::net::SocketAddr, Arc<Mutex<Vec<Instant>>>) {
    let seen: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move || {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(Instant::now());
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/json")],
                r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcd is on fire","reason":"InternalError","code":500}"#,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// A node whose catalog view lives in the member `kubeconfig` reaches; a
/// member served over plain HTTP needs the node's consent (`plain_http`).
async fn add_member_node(client: &kube::Client, node: &str, kubeconfig: String, plain_http: bool) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": format!("{node}-kubeconfig")},
        "stringData": {"kubeconfig": kubeconfig}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), OPERATOR_NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let manifest: DataFlowNode = serde_json::from_value(json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode", "metadata": {"name": node},
        "spec": {"city": node, "province": "CN-JS", "endpoint": {"url": "http://127.0.0.1:9/"},
                 "probe": {"intervalSeconds": 3600, "timeoutSeconds": 1},
                 "catalog": {
                     "kubeconfigSecretRef": {"namespace": OPERATOR_NAMESPACE, "name": format!("{node}-kubeconfig"), "key": "kubeconfig"},
                     "memberNamespace": "catalog",
                     "allowInsecureMemberTls": plain_http
                 }}
    }))
    .unwrap();
    Api::<DataFlowNode>::all(client.clone())
        .create(&PostParams::default(), &manifest)
        .await
        .unwrap();
}

async fn member_entry_count(entries: &Api<CatalogEntry>) -> usize {
    entries
        .list_metadata(&ListParams::default())
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

/// Resource versions of the products, to tell whether anything wrote them.
async fn product_versions(client: &kube::Client) -> BTreeMap<String, String> {
    Api::<DataProduct>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| (p.name_any(), p.resource_version().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn a_member_answering_only_errors_is_backed_off_and_the_others_keep_syncing() {
    let (plane, client) = setup("erroring").await;
    let healthy = Plane::start(&unique("suzhou")).unwrap();
    let (addr, requests) = erroring_member().await;
    let broken = serde_json::to_string(&json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "wuxi", "cluster": {"server": format!("http://{addr}")}}],
        "users": [{"name": "flowfed", "user": {"token": "not-checked"}}],
        "contexts": [{"name": "wuxi", "context": {"cluster": "wuxi", "user": "flowfed"}}],
        "current-context": "wuxi",
    }))
    .unwrap();
    add_member_node(&client, "suzhou", healthy.kubeconfig_yaml().unwrap(), false).await;
    // The erroring member is a plain HTTP server: the node consents to that.
    add_member_node(&client, "wuxi", broken, true).await;
    let products = 20;
    for i in 0..products {
        publish(&client, NODES[i % NODES.len()], &format!("p{i}")).await;
    }
    let operator = OperatorProcess::start(&plane.operator_kubeconfig().unwrap(), &[]).unwrap();

    // Every other node, hub namespaces and the healthy member alike, gets everything.
    let expected: BTreeMap<String, usize> = (0..products)
        .map(|i| (format!("p{i}"), NODES.len()))
        .collect();
    converge(&client, &expected, Duration::from_secs(60)).await;
    let suzhou: Api<CatalogEntry> = Api::namespaced(healthy.client().await.unwrap(), "catalog");
    let deadline = Instant::now() + Duration::from_secs(60);
    while member_entry_count(&suzhou).await != products {
        assert!(
            Instant::now() < deadline,
            "the healthy member did not get every entry"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p0 = wait_for(
        &Api::<DataProduct>::namespaced(client.clone(), "dfn-beijing"),
        "p0",
        Duration::from_secs(30),
        |p| {
            condition(p, types::SYNCED)
                .is_some_and(|c| c.reason == "MemberUnreachable" && c.message.contains("wuxi"))
        },
    )
    .await
    .unwrap();
    assert!(!p0.status.unwrap().visible_in.contains(&"wuxi".to_string()));

    // Observe the broken member for 40 s from its first request: the backoff
    // doubles (2 s, 4 s, 8 s, 16 s, ...), so the requests thin out however many
    // products want to reach it.
    let first = *requests
        .lock()
        .unwrap()
        .first()
        .expect("the member was asked");
    let settled = first + Duration::from_secs(20);
    tokio::time::sleep_until(settled.into()).await;
    let versions = product_versions(&client).await;

    // A product released now still reaches the healthy member and the hub at once.
    let released = Instant::now();
    publish(&client, "shanghai", "late").await;
    while member_entry_count(&suzhou).await != products + 1 {
        assert!(
            released.elapsed() < Duration::from_secs(10),
            "a release waited on the broken member"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let release_to_healthy = released.elapsed();

    tokio::time::sleep_until((first + Duration::from_secs(40)).into()).await;
    let times = requests.lock().unwrap().clone();
    let between = |from: u64, to: u64| {
        times
            .iter()
            .filter(|t| {
                **t >= first + Duration::from_secs(from) && **t < first + Duration::from_secs(to)
            })
            .count()
    };
    let (early, late) = (between(0, 15), between(25, 40));
    println!(
        "requests to the broken member: {} in 40 s, {early} in the first 15 s, {late} in the last 15 s; \
         release to the healthy member meanwhile {release_to_healthy:?}",
        times.len()
    );
    assert!(
        times.len() <= 12,
        "{} requests in 40 s: not backed off",
        times.len()
    );
    assert!(
        late < early,
        "the request rate did not decay: {early} then {late}"
    );

    // Idle with a failing member, the operator does not keep rewriting statuses
    // (which would wake its own watches and requeue it for ever).
    let mut after = product_versions(&client).await;
    after.remove("late");
    assert_eq!(versions, after, "products rewritten while idle");
    drop(operator);
}
