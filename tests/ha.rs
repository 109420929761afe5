//! High availability with real processes: two `flowfed run --leader-election`
//! replicas share one Lease; only the holder writes, a SIGKILLed leader is
//! replaced within the lease duration, and a SIGTERMed leader finishes, releases
//! the Lease and exits within its grace period. With the hub API server gone
//! for longer than the Lease, the leader stops leading before the Lease could
//! pass, and once it is back exactly one replica leads again.

use std::time::{Duration, Instant};

use flowfed::api::{DataFlowNode, NodePhase};
use flowfed::runtime::LEASE_SECONDS;
use flowfed_tests::{Gateway, OperatorProcess, Plane, install_crds, unique, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::json;

const LEASE: &str = "flowfed-leader";

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

async fn leader_gauge(replica: &OperatorProcess) -> Option<i64> {
    let (_, body) = replica.get("/metrics").await?;
    body.lines()
        .find_map(|l| l.strip_prefix("flowfed_leader "))
        .and_then(|v| v.trim().parse().ok())
}

/// `flowfed run` with leader election, as replica `name`.
fn replica(kubeconfig: &std::path::Path, name: &str) -> OperatorProcess {
    OperatorProcess::start(
        kubeconfig,
        &[
            "--leader-election",
            "--lease-namespace",
            "flowfed-system",
            "--identity",
            name,
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn one_leader_writes_a_killed_leader_is_replaced_and_a_stopped_one_hands_over() {
    let plane = Plane::start(&unique("ha")).unwrap();
    let client = plane.client().await.unwrap();
    install_crds(&client).await.unwrap();
    let operator_kubeconfig = plane.operator_kubeconfig().unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "flowfed-system");

    let spawn = |name: &str| replica(&operator_kubeconfig, name);
    let mut replicas = vec![("a", spawn("a")), ("b", spawn("b"))];

    // Exactly one leader; both ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(h) = holder(&leases).await {
            break h;
        }
        assert!(Instant::now() < deadline, "nobody took the lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    for (name, replica) in &replicas {
        loop {
            let ready = replica
                .get("/readyz")
                .await
                .is_some_and(|(status, _)| status == 200);
            let gauge = leader_gauge(replica).await;
            if ready && gauge == Some(i64::from(*name == first)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {name}: ready {ready}, leader gauge {gauge:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The leader does the work.
    let mut gateway = Gateway::start("127.0.0.71").await.unwrap();
    let node: DataFlowNode = serde_json::from_value(json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode", "metadata": {"name": "lhasa"},
        "spec": {"city": "Lhasa", "province": "CN-XZ", "endpoint": {"url": gateway.url()},
                 "probe": {"intervalSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 2}}
    }))
    .unwrap();
    let nodes: Api<DataFlowNode> = Api::all(client.clone());
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let phase_is = |phase: NodePhase| {
        move |n: &DataFlowNode| n.status.as_ref().is_some_and(|s| s.phase == phase)
    };
    wait_for(
        &nodes,
        "lhasa",
        Duration::from_secs(30),
        phase_is(NodePhase::Ready),
    )
    .await
    .unwrap();
    let managers: Vec<String> = nodes
        .get("lhasa")
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.iter().any(|m| m == "flowfed.io/node-controller"),
        "{managers:?}"
    );

    // SIGKILL the leader: the standby takes over within the lease duration and a few seconds.
    let index = replicas
        .iter()
        .position(|(name, _)| *name == first)
        .unwrap();
    let (_, mut killed) = replicas.remove(index);
    let killed_at = Instant::now();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let (second, survivor) = &mut replicas[0];
    let bound = Duration::from_secs(LEASE_SECONDS + 5);
    loop {
        if holder(&leases).await.as_deref() == Some(*second)
            && leader_gauge(survivor).await == Some(1)
        {
            break;
        }
        assert!(killed_at.elapsed() < bound, "no takeover within {bound:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "takeover after SIGKILL: {:?} (bound {bound:?})",
        killed_at.elapsed()
    );

    // The new leader works: an outage is noticed.
    gateway.stop();
    wait_for(
        &nodes,
        "lhasa",
        Duration::from_secs(30),
        phase_is(NodePhase::Unreachable),
    )
    .await
    .unwrap();

    // SIGTERM: finish, release the lease, exit within the grace period.
    let took = survivor.terminate(Duration::from_secs(10)).unwrap();
    println!("leader exited {took:?} after SIGTERM");
    assert!(
        survivor
            .child
            .try_wait()
            .unwrap()
            .is_some_and(|s| s.success()),
        "clean exit after SIGTERM"
    );
    assert_eq!(
        holder(&leases).await,
        None,
        "the lease is released on shutdown"
    );
}

#[tokio::test]
async fn after_the_hub_api_server_is_gone_longer_than_the_lease_one_replica_leads_again() {
    let plane = Plane::start(&unique("ha-restart")).unwrap();
    let client = plane.client().await.unwrap();
    install_crds(&client).await.unwrap();
    let operator_kubeconfig = plane.operator_kubeconfig().unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "flowfed-system");
    let spawn = |name: &str| replica(&operator_kubeconfig, name);
    let mut replicas = [("a", spawn("a")), ("b", spawn("b"))];
    let leaders = |gauges: &[Option<i64>]| gauges.iter().filter(|g| **g == Some(1)).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while holder(&leases).await.is_none() {
        assert!(Instant::now() < deadline, "nobody took the lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The API server goes away for longer than the Lease: the leader's
    // renewal fails, and it stops leading before the Lease could expire.
    plane.stop_component("kube-apiserver").unwrap();
    let stopped = Instant::now();
    loop {
        let mut gauges = Vec::new();
        for (_, replica) in &replicas {
            gauges.push(leader_gauge(replica).await);
        }
        if leaders(&gauges) == 0 {
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(LEASE_SECONDS),
            "a replica still leads {LEASE_SECONDS} s after losing the API server: {gauges:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "no leader {:?} after the API server stopped",
        stopped.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(LEASE_SECONDS + 5).saturating_sub(stopped.elapsed()))
        .await;
    plane.start_component("kube-apiserver").unwrap();

    // Both replicas are still there, and exactly one leads again.
    let restarted = Instant::now();
    let bound = Duration::from_secs(2 * LEASE_SECONDS + 10);
    loop {
        for (name, replica) in &mut replicas {
            assert!(
                replica.child.try_wait().unwrap().is_none(),
                "replica {name} exited"
            );
        }
        let mut gauges = Vec::new();
        for (_, replica) in &replicas {
            gauges.push(leader_gauge(replica).await);
        }
        let holder = holder(&leases).await;
        let leader = replicas
            .iter()
            .zip(&gauges)
            .find(|(_, gauge)| **gauge == Some(1))
            .map(|((name, _), _)| *name);
        if leaders(&gauges) == 1 && holder.as_deref() == leader {
            println!(
                "{leader:?} leads again {:?} after the restart",
                restarted.elapsed()
            );
            break;
        }
        assert!(
            restarted.elapsed() < bound,
            "no single leader {bound:?} after the restart: gauges {gauges:?}, holder {holder:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (_, replica) in &replicas {
        let (status, _) = replica.get("/healthz").await.expect("answers");
        assert_eq!(status, 200, "healthy once the election works again");
    }
}
