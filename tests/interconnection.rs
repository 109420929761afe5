//! Interconnection against a real API server, with real HTTP gateways on
//! 127.0.0.x and [::1]: nodes are probed, links derived, the topology realised,
//! and partitions and weak points reported as gateways die and come back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowfed::api::conditions::types;
use flowfed::api::{
    DataFlowNode, FEDERATION_LABEL, Federation, InterCityLink, LinkState, NodePhase,
};
use flowfed_tests::{Gateway, Plane, condition, install_crds, start_operator, unique, wait_for};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// Probe timing of test nodes: Unreachable after 2 failed probes 2 s apart.
const INTERVAL_S: u64 = 2;
const THRESHOLD: u64 = 2;
const CONVERGE: Duration = Duration::from_secs(30);

struct Network {
    /// A plane of the test's own: one operator per plane, so tests running in
    /// parallel never have two operators managing the same nodes.
    plane: Plane,
    client: kube::Client,
    /// Label value selecting this test's nodes.
    label: String,
}

impl Network {
    async fn new() -> Network {
        let plane = Plane::start(&unique("net")).expect("control plane");
        let client = plane.client().await.expect("client");
        install_crds(&client).await.expect("CRDs");
        Network {
            plane,
            client,
            label: unique("net"),
        }
    }

    fn nodes(&self) -> Api<DataFlowNode> {
        Api::all(self.client.clone())
    }
    fn links(&self) -> Api<InterCityLink> {
        Api::all(self.client.clone())
    }
    fn federations(&self) -> Api<Federation> {
        Api::all(self.client.clone())
    }

    async fn add_node(&self, name: &str, url: &str, province: &str, location: (f64, f64)) {
        let node = serde_json::from_value(json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode",
            "metadata": {"name": name, "labels": {"test-network": self.label}},
            "spec": {
                "city": name, "province": province,
                "location": {"latitude": location.0, "longitude": location.1},
                "endpoint": {"url": url},
                "probe": {"intervalSeconds": INTERVAL_S, "timeoutSeconds": 1, "failureThreshold": THRESHOLD},
            }
        }))
        .unwrap();
        self.nodes()
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
    }

    async fn add_link(&self, name: &str, from: &str, to: &str, extra: serde_json::Value) {
        let mut spec = json!({"from": from, "to": to});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let link = serde_json::from_value(json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "InterCityLink",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        self.links()
            .create(&PostParams::default(), &link)
            .await
            .unwrap();
    }

    async fn add_federation(&self, name: &str, topology: serde_json::Value) {
        let federation = serde_json::from_value(json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "Federation",
            "metadata": {"name": name},
            "spec": {"nodeSelector": {"matchLabels": {"test-network": self.label}}, "topology": topology, "coverage": {"provincesTarget": 4}},
        }))
        .unwrap();
        self.federations()
            .create(&PostParams::default(), &federation)
            .await
            .unwrap();
    }

    async fn phase(&self, node: &str) -> NodePhase {
        self.nodes()
            .get(node)
            .await
            .unwrap()
            .status
            .map(|s| s.phase)
            .unwrap_or_default()
    }
}

fn status(f: &Federation) -> flowfed::api::FederationStatus {
    f.status.clone().unwrap_or_default()
}

#[tokio::test]
async fn a_ring_goes_interconnected_partitions_when_a_gateway_dies_and_recovers() {
    let net = Network::new().await;
    let operator = start_operator(&net.plane).await.unwrap();
    let id = &net.label;

    // Five gateways on 127.0.0.x and one on [::1].
    let mut gateways = Vec::new();
    for ip in [
        "127.0.0.11",
        "127.0.0.12",
        "127.0.0.13",
        "127.0.0.14",
        "127.0.0.15",
        "::1",
    ] {
        gateways.push(Gateway::start(ip).await.unwrap());
    }
    let names: Vec<String> = (1..=6).map(|i| format!("{id}-n{i}")).collect();
    let provinces = ["CN-BJ", "CN-SH", "CN-GD", "CN-SC", "CN-HB", "CN-ZJ"];
    for (i, name) in names.iter().enumerate() {
        net.add_node(
            name,
            &gateways[i].url(),
            provinces[i],
            (30.0 + i as f64, 110.0 + i as f64),
        )
        .await;
    }
    for i in 0..6 {
        let (a, b) = (&names[i], &names[(i + 1) % 6]);
        net.add_link(&format!("{a}--{b}"), a, b, json!({})).await;
    }
    let fed = format!("{id}-ring");
    net.add_federation(&fed, json!({"mode": "Manual"})).await;

    let healthy = wait_for(&net.federations(), &fed, CONVERGE, |f| {
        status(f).interconnected
    })
    .await
    .unwrap();
    let s = status(&healthy);
    assert_eq!(
        (s.nodes.total, s.nodes.ready, s.links.total, s.links.up),
        (6, 6, 6, 6)
    );
    assert_eq!(s.components, 1);
    assert!(
        s.critical_nodes.is_empty() && s.critical_links.is_empty(),
        "a ring has no weak point: {s:?}"
    );
    assert_eq!(s.provinces_covered, 6);
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(net.client.clone());
    let home = namespaces.get(&format!("dfn-{}", names[0])).await.unwrap();
    assert_eq!(
        home.labels().get("flowfed.io/node"),
        Some(&names[0]),
        "home namespace is created and labelled"
    );
    let ipv6_node = net.nodes().get(&names[5]).await.unwrap();
    assert_eq!(
        ipv6_node.status.unwrap().phase,
        NodePhase::Ready,
        "the [::1] gateway is probed too"
    );

    // The first gateway goes dark.
    let started = Instant::now();
    gateways[0].stop();
    wait_for(&net.nodes(), &names[0], CONVERGE, |n| {
        n.status
            .as_ref()
            .is_some_and(|s| s.phase == NodePhase::Unreachable)
    })
    .await
    .unwrap();
    let detection = started.elapsed();
    let bound = Duration::from_secs(INTERVAL_S * THRESHOLD + INTERVAL_S);
    println!("outage detected in {detection:?} (bound {bound:?})");
    assert!(
        detection <= bound + Duration::from_millis(1500),
        "Unreachable after {detection:?}, bound {bound:?}"
    );

    let node = net.nodes().get(&names[0]).await.unwrap();
    let reachable = condition(&node, types::REACHABLE).unwrap();
    assert_eq!(
        (reachable.status.as_str(), reachable.reason.as_str()),
        ("False", "ConnectionRefused")
    );

    for link in [
        format!("{}--{}", names[0], names[1]),
        format!("{}--{}", names[5], names[0]),
    ] {
        wait_for(&net.links(), &link, CONVERGE, |l| {
            l.status
                .as_ref()
                .is_some_and(|s| s.state == LinkState::Down)
        })
        .await
        .unwrap();
    }
    let partitioned = wait_for(&net.federations(), &fed, CONVERGE, |f| {
        status(f).components == 2
    })
    .await
    .unwrap();
    let s = status(&partitioned);
    assert!(!s.interconnected);
    assert_eq!(
        s.partitions,
        vec![vec![names[0].clone()], names[1..].to_vec()]
    );
    // The ring is now a path n2-n3-n4-n5-n6: its inner nodes and every link are critical.
    assert_eq!(s.critical_nodes, names[2..5].to_vec());
    assert_eq!(s.critical_links.len(), 4);
    let interconnected = condition(&partitioned, types::INTERCONNECTED).unwrap();
    assert_eq!(interconnected.reason, "Partitioned");

    // Back online: everything recovers.
    gateways[0].restart().await.unwrap();
    let recovered = wait_for(&net.federations(), &fed, CONVERGE, |f| {
        status(f).interconnected
    })
    .await
    .unwrap();
    assert!(status(&recovered).critical_nodes.is_empty());
    assert_eq!(net.phase(&names[0]).await, NodePhase::Ready);

    // Metrics show the network.
    let body = reqwest_get(&format!("http://{}/metrics", operator.http_addr)).await;
    assert!(
        body.contains(&format!("flowfed_node_up{{node=\"{}\"}} 1", names[0])),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "flowfed_federation_interconnected{{federation=\"{fed}\"}} 1"
        )),
        "{body}"
    );
    assert!(body.contains("flowfed_node_info{"), "{body}");
    assert!(
        body.contains("flowfed_reconcile_total{controller=\"node\",result=\"success\"}"),
        "{body}"
    );

    operator.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_network_causes_no_status_writes() {
    let net = Network::new().await;
    let operator = start_operator(&net.plane).await.unwrap();
    let id = &net.label;
    let a = Gateway::start("127.0.0.21").await.unwrap();
    let b = Gateway::start("127.0.0.22").await.unwrap();
    let (na, nb) = (format!("{id}-a"), format!("{id}-b"));
    net.add_node(&na, &a.url(), "CN-SH", (31.0, 121.0)).await;
    net.add_node(&nb, &b.url(), "CN-ZJ", (30.0, 120.0)).await;
    let link = format!("{na}--{nb}");
    net.add_link(&link, &na, &nb, json!({"latencySLOMillis": 1000}))
        .await;
    let fed = format!("{id}-idle");
    net.add_federation(&fed, json!({"mode": "Manual"})).await;
    wait_for(&net.federations(), &fed, CONVERGE, |f| {
        status(f).interconnected
    })
    .await
    .unwrap();
    for node in [&na, &nb] {
        let has_view = |n: &DataFlowNode| condition(n, types::CATALOG_SYNCED).is_some();
        wait_for(&net.nodes(), node, CONVERGE, has_view)
            .await
            .unwrap();
    }
    // Let the first RTT samples settle, then watch resource versions for 4 probe intervals.
    tokio::time::sleep(Duration::from_secs(INTERVAL_S * 2)).await;
    let versions = |_: ()| async {
        let mut v = BTreeMap::new();
        for n in [&na, &nb] {
            v.insert(
                n.clone(),
                net.nodes().get(n).await.unwrap().resource_version(),
            );
        }
        v.insert(
            link.clone(),
            net.links().get(&link).await.unwrap().resource_version(),
        );
        v.insert(
            fed.clone(),
            net.federations()
                .get(&fed)
                .await
                .unwrap()
                .resource_version(),
        );
        v
    };
    let metrics_url = format!("http://{}/metrics", operator.http_addr);
    let before = versions(()).await;
    let reconciles_before = reconciles(&reqwest_get(&metrics_url).await);
    tokio::time::sleep(Duration::from_secs(INTERVAL_S * 4)).await;
    let after = versions(()).await;
    let reconciles_after = reconciles(&reqwest_get(&metrics_url).await);
    assert_eq!(before, after, "status was rewritten while nothing changed");
    // Two nodes probed every 2 s for 8 s: about 8 node reconciles; links and the
    // federation have nothing to react to.
    for (controller, limit) in [("node", 12.0), ("link", 2.0), ("federation", 2.0)] {
        let delta = reconciles_after.get(controller).unwrap_or(&0.0)
            - reconciles_before.get(controller).unwrap_or(&0.0);
        assert!(
            delta <= limit,
            "{controller} reconciled {delta} times while idle (limit {limit})"
        );
    }
    drop((a, b));
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn probe_failures_have_distinct_reasons() {
    let net = Network::new().await;
    let operator = start_operator(&net.plane).await.unwrap();
    let id = &net.label;
    let erroring = Gateway::start("127.0.0.31").await.unwrap();
    erroring.answer_with(503);
    let slow = Gateway::start("127.0.0.32").await.unwrap();
    slow.delay_answers(Duration::from_secs(3));
    let mut refused = Gateway::start("127.0.0.33").await.unwrap();
    let refused_url = refused.url();
    refused.stop();

    let cases = [
        (format!("{id}-http"), erroring.url(), "HTTPError", "503"),
        (
            format!("{id}-slow"),
            slow.url(),
            "Timeout",
            "no answer within 1000 ms",
        ),
        (
            format!("{id}-refused"),
            refused_url,
            "ConnectionRefused",
            "onnection refused",
        ),
    ];
    for (name, url, _, _) in &cases {
        net.add_node(name, url, "CN-GD", (23.0, 113.0)).await;
    }
    for (name, _, reason, fragment) in &cases {
        let node = wait_for(&net.nodes(), name, CONVERGE, |n| {
            n.status
                .as_ref()
                .is_some_and(|s| s.phase == NodePhase::Unreachable)
        })
        .await
        .unwrap();
        let reachable = condition(&node, types::REACHABLE).unwrap();
        assert_eq!(reachable.reason, *reason, "{name}: {reachable:?}");
        assert!(
            reachable.message.contains(fragment),
            "{name}: {}",
            reachable.message
        );
    }
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn switching_full_mesh_to_hub_and_spoke_prunes_only_owned_links() {
    let net = Network::new().await;
    let operator = start_operator(&net.plane).await.unwrap();
    let id = &net.label;
    let mut gateways = Vec::new();
    for ip in ["127.0.0.41", "127.0.0.42", "127.0.0.43", "127.0.0.44"] {
        gateways.push(Gateway::start(ip).await.unwrap());
    }
    // A hub in Beijing, spokes in Tianjin, Shanghai and Guangzhou.
    let names: Vec<String> = ["hub", "tianjin", "shanghai", "guangzhou"]
        .iter()
        .map(|n| format!("{id}-{n}"))
        .collect();
    let places = [(39.9, 116.4), (39.1, 117.2), (31.2, 121.5), (23.1, 113.3)];
    let provinces = ["CN-BJ", "CN-TJ", "CN-SH", "CN-GD"];
    for i in 0..4 {
        net.add_node(&names[i], &gateways[i].url(), provinces[i], places[i])
            .await;
    }
    // Hand-made links: one the hub-and-spoke topology also wants, one it does not.
    let manual_wanted = format!("{}--{}", names[0], names[1]);
    let manual_unwanted = format!("{}--{}", names[2], names[3]);
    net.add_link(&manual_wanted, &names[0], &names[1], json!({}))
        .await;
    net.add_link(&manual_unwanted, &names[2], &names[3], json!({}))
        .await;
    let manual_uids: Vec<_> = futures::future::join_all(
        [&manual_wanted, &manual_unwanted]
            .map(|l| async { net.links().get(l).await.unwrap().uid() }),
    )
    .await;

    let fed = format!("{id}-mesh");
    net.add_federation(&fed, json!({"mode": "FullMesh"})).await;
    let owned = ListParams::default().labels(&format!("{FEDERATION_LABEL}={fed}"));
    // 6 pairs, 2 of them already linked by hand: the federation creates 4.
    let deadline = Instant::now() + CONVERGE;
    while net.links().list(&owned).await.unwrap().items.len() != 4 {
        assert!(
            Instant::now() < deadline,
            "federation did not create its 4 links"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let meshed = wait_for(&net.federations(), &fed, CONVERGE, |f| {
        status(f).interconnected && status(f).links.total == 6
    })
    .await
    .unwrap();
    assert_eq!(status(&meshed).links.total, 6);
    let reconciled = condition(&meshed, types::TOPOLOGY_RECONCILED).unwrap();
    assert_eq!(reconciled.status, "True");

    net.federations()
        .patch(
            &fed,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"topology": {"mode": "HubAndSpoke", "hubs": [names[0]], "spokeUplinks": 1}}})),
        )
        .await
        .unwrap();
    // Wanted now: hub-tianjin (hand-made, kept), hub-shanghai, hub-guangzhou (owned, kept).
    let deadline = Instant::now() + CONVERGE;
    loop {
        let mut remaining: Vec<String> = net
            .links()
            .list(&owned)
            .await
            .unwrap()
            .items
            .iter()
            .map(|l| l.name_any())
            .collect();
        remaining.sort();
        let mut expected = vec![
            owned_name(&fed, &names[0], &names[2]),
            owned_name(&fed, &names[0], &names[3]),
        ];
        expected.sort();
        if remaining == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "owned links after the switch: {remaining:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (name, uid) in [&manual_wanted, &manual_unwanted].iter().zip(&manual_uids) {
        let link = net.links().get(name).await.unwrap();
        assert_eq!(&link.uid(), uid, "hand-made link {name} was replaced");
        assert!(link.labels().get(FEDERATION_LABEL).is_none());
    }
    let hub_and_spoke = wait_for(&net.federations(), &fed, CONVERGE, |f| {
        status(f).interconnected && status(f).critical_nodes.contains(&names[0])
    })
    .await
    .unwrap();
    // guangzhou-shanghai (hand-made) survives, so only the hub and tianjin's uplink are critical.
    assert_eq!(
        status(&hub_and_spoke).critical_nodes,
        vec![names[0].clone()]
    );
    assert_eq!(
        status(&hub_and_spoke).critical_links,
        vec![manual_wanted.clone()]
    );
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn a_link_to_a_missing_node_is_pending_and_a_duplicate_is_flagged() {
    let net = Network::new().await;
    let operator = start_operator(&net.plane).await.unwrap();
    let id = &net.label;
    let a = Gateway::start("127.0.0.51").await.unwrap();
    let b = Gateway::start("127.0.0.52").await.unwrap();
    let (na, nb) = (format!("{id}-a"), format!("{id}-b"));
    net.add_node(&na, &a.url(), "CN-SH", (31.0, 121.0)).await;
    net.add_node(&nb, &b.url(), "CN-ZJ", (30.0, 120.0)).await;

    let dangling = format!("{id}-dangling");
    let ghost = format!("{id}-ghost");
    net.add_link(&dangling, &na, &ghost, json!({})).await;
    let pending = wait_for(&net.links(), &dangling, CONVERGE, |l| {
        l.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
    })
    .await
    .unwrap();
    assert_eq!(pending.status.as_ref().unwrap().state, LinkState::Pending);
    let endpoints = condition(&pending, types::ENDPOINTS_READY).unwrap();
    assert_eq!(endpoints.reason, "NodeMissing");
    assert!(endpoints.message.contains(&ghost), "{}", endpoints.message);

    // The older link wins even though its name sorts later: creation times have
    // 1 s resolution, so the second link is made more than a second after.
    let original = format!("{id}-z-original");
    net.add_link(&original, &na, &nb, json!({})).await;
    wait_for(&net.links(), &original, CONVERGE, |l| {
        l.status.as_ref().is_some_and(|s| s.state == LinkState::Up)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let duplicate = format!("{id}-a-reverse");
    net.add_link(&duplicate, &nb, &na, json!({})).await;
    let dup = wait_for(&net.links(), &duplicate, CONVERGE, |l| {
        l.status.as_ref().is_some_and(|s| s.duplicate_of.is_some())
    })
    .await
    .unwrap();
    assert_eq!(dup.status.unwrap().duplicate_of, Some(original.clone()));
    let fed = format!("{id}-dup");
    net.add_federation(&fed, json!({"mode": "Manual"})).await;
    let f = wait_for(&net.federations(), &fed, CONVERGE, |f| {
        status(f).interconnected
    })
    .await
    .unwrap();
    assert_eq!(
        status(&f).links.total,
        1,
        "a duplicate is not counted twice"
    );
    operator.stop().await.unwrap();
}

async fn reqwest_get(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// The name a federation gives the link it creates between `a` and `b`.
fn owned_name(federation: &str, a: &str, b: &str) -> String {
    let (first, second) = if a < b { (a, b) } else { (b, a) };
    format!("{federation}.{first}--{second}")
}

/// Successful reconciles per controller, from a /metrics body.
fn reconciles(metrics: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("flowfed_reconcile_total{controller=\""))
        .filter_map(|rest| {
            let (controller, rest) = rest.split_once('"')?;
            let value = rest.rsplit(' ').next()?.parse().ok()?;
            rest.contains("result=\"success\"")
                .then(|| (controller.to_owned(), value))
        })
        .collect()
}

#[tokio::test]
async fn the_national_example_network_interconnects_under_its_federation() {
    let net = Network::new().await;
    let folder = flowfed_tests::repo_root().join("examples/national");
    let applied = net
        .plane
        .kubectl(&["apply", "-f", folder.to_str().unwrap()])
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let mut gateways = Vec::new();
    for addr in flowfed_tests::loopback_endpoints(&[folder.join("nodes.yaml")]).unwrap() {
        gateways.push(Gateway::start_at(addr).await.unwrap());
    }
    assert_eq!(gateways.len(), 30);
    let operator = start_operator(&net.plane).await.unwrap();

    let national = wait_for(
        &net.federations(),
        "national",
        Duration::from_secs(90),
        |f| status(f).interconnected && status(f).links.up == status(f).links.total,
    )
    .await
    .unwrap();
    let s = status(&national);
    assert_eq!((s.nodes.total, s.nodes.ready), (30, 30));
    assert_eq!(s.provinces_covered, 25);
    // Hubs are meshed and every spoke has two hub uplinks, so no single node or
    // link can split the network.
    assert!(
        s.critical_nodes.is_empty() && s.critical_links.is_empty(),
        "{s:?}"
    );
    let conditions = national.status.unwrap().conditions;
    for type_ in ["Interconnected", "CoverageMet", "TopologyReconciled"] {
        let c = conditions.iter().find(|c| c.type_ == type_).unwrap();
        assert_eq!(c.status, "True", "{c:?}");
    }
    let owned = net
        .links()
        .list(&ListParams::default().labels(&format!("{FEDERATION_LABEL}=national")))
        .await
        .unwrap();
    // 6 hub pairs + 26 spokes x 2 uplinks, less the pairs already linked by hand.
    assert!(
        (50..=58).contains(&owned.items.len()),
        "{} federation links",
        owned.items.len()
    );

    let body = reqwest_get(&format!("http://{}/metrics", operator.http_addr)).await;
    assert_eq!(
        body.lines()
            .filter(|l| l.starts_with("flowfed_node_info{"))
            .count(),
        30
    );
    assert!(body.contains("flowfed_federation_interconnected{federation=\"national\"} 1"));
    assert!(body.contains("flowfed_federation_provinces_covered{federation=\"national\"} 25"));
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn a_link_channel_probe_uses_the_links_own_ca_bundle() {
    let net = Network::new().await;
    let operator = start_operator(&net.plane).await.unwrap();
    let id = &net.label;
    let a = Gateway::start("127.0.0.41").await.unwrap();
    let b = Gateway::start("127.0.0.42").await.unwrap();
    let channel = Gateway::start("127.0.0.43").await.unwrap();
    let (from, to) = (format!("{id}-ca-a"), format!("{id}-ca-b"));
    net.add_node(&from, &a.url(), "CN-GD", (23.0, 113.0)).await;
    net.add_node(&to, &b.url(), "CN-GX", (22.8, 108.3)).await;
    // The channel answers; only the link's bundle is unusable. A prober that
    // ignored the link's caBundle would find the channel up.
    let link = format!("{id}-ca");
    net.add_link(
        &link,
        &from,
        &to,
        json!({"probe": {"url": channel.url(), "caBundle": "not a PEM certificate"}}),
    )
    .await;
    let down = wait_for(&net.links(), &link, CONVERGE, |l| {
        l.status
            .as_ref()
            .is_some_and(|s| s.state == flowfed::api::LinkState::Down)
    })
    .await
    .unwrap();
    let established = down
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.reason == "ChannelProbeFailing");
    assert!(established.is_some(), "the channel probe is what fails");
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_mesh_over_too_many_nodes_is_refused_and_a_smaller_one_is_written_whole() {
    let net = Network::new().await;
    let operator = start_operator(&net.plane).await.unwrap();
    let id = &net.label;
    // Links are realised whatever the nodes' health: nothing listens at the
    // endpoint, probed once a minute so 65 nodes add little load to the machine.
    let names: Vec<String> = (0..65).map(|i| format!("{id}-n{i:02}")).collect();
    for name in &names {
        let node = serde_json::from_value(json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode",
            "metadata": {"name": name, "labels": {"test-network": id}},
            "spec": {
                "city": name, "province": "CN-BJ",
                "endpoint": {"url": "http://127.0.0.1:9/healthz"},
                "probe": {"intervalSeconds": 60, "timeoutSeconds": 1},
            }
        }))
        .unwrap();
        net.nodes()
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
    }
    let fed = format!("{id}-mesh");
    net.add_federation(&fed, json!({"mode": "FullMesh"})).await;
    let refused = wait_for(&net.federations(), &fed, CONVERGE, |f| {
        condition(f, types::TOPOLOGY_RECONCILED).is_some_and(|c| c.reason == "FullMeshTooLarge")
    })
    .await
    .unwrap();
    let why = condition(&refused, types::TOPOLOGY_RECONCILED).unwrap();
    assert_eq!(why.status, "False");
    assert!(
        why.message.contains("65 nodes would need 2080 links"),
        "{}",
        why.message
    );
    let owned = ListParams::default().labels(&format!("{FEDERATION_LABEL}={fed}"));
    assert!(net.links().list(&owned).await.unwrap().items.is_empty());

    // Down to 10 nodes (the selector narrowed at once): the mesh's 45 links are written.
    for name in &names[..10] {
        let label = json!({"metadata": {"labels": {"mesh": "small"}}});
        net.nodes()
            .patch(name, &PatchParams::default(), &Patch::Merge(&label))
            .await
            .unwrap();
    }
    let narrowed =
        json!({"spec": {"nodeSelector": {"matchLabels": {"test-network": id, "mesh": "small"}}}});
    net.federations()
        .patch(&fed, &PatchParams::default(), &Patch::Merge(&narrowed))
        .await
        .unwrap();
    let deadline = Instant::now() + CONVERGE;
    loop {
        let links = net.links().list(&owned).await.unwrap().items.len();
        if links == 45 {
            break;
        }
        if Instant::now() >= deadline {
            let nodes = net
                .nodes()
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len();
            let federation = net.federations().get(&fed).await.unwrap();
            panic!(
                "{links} links of the 10-node mesh's 45; {nodes} nodes; {:?}",
                condition(&federation, types::TOPOLOGY_RECONCILED)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for(&net.federations(), &fed, CONVERGE, |f| {
        condition(f, types::TOPOLOGY_RECONCILED).is_some_and(|c| c.status == "True")
    })
    .await
    .unwrap();
    operator.stop().await.unwrap();
}
