//! The test control plane is a real cluster: versioned, RBAC-enforcing, with
//! garbage collection and namespace deletion from kube-controller-manager,
//! able to lose and regain its API server without losing data, and, with a
//! node, running Pods that reach it through the `kubernetes` Service.

use std::time::Duration;

use flowfed_tests::{Plane, kubectl_image, node_leftovers, unique, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn config_map(name: &str, owner: Option<&ConfigMap>) -> ConfigMap {
    let owner_references = owner.map(|o| {
        vec![OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: o.metadata.name.clone().unwrap(),
            uid: o.metadata.uid.clone().unwrap(),
            ..Default::default()
        }]
    });
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn api_server_reports_the_pinned_release() -> anyhow::Result<()> {
    let client = Plane::hub().client().await?;
    let version = client.apiserver_version().await?;
    assert!(
        version.git_version.starts_with("v1.36."),
        "unexpected version {}",
        version.git_version
    );
    assert_eq!(version.major, "1");
    Ok(())
}

#[tokio::test]
async fn controller_manager_collects_garbage_and_deletes_namespaces() -> anyhow::Result<()> {
    let client = Plane::hub().client().await?;
    let ns = unique("gc");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(&PostParams::default(), &namespace(&ns))
        .await?;

    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let owner = maps
        .create(&PostParams::default(), &config_map("owner", None))
        .await?;
    let dependent = maps
        .create(
            &PostParams::default(),
            &config_map("dependent", Some(&owner)),
        )
        .await?;
    // The uid from the create: the collector may be done before a read.
    let uid = dependent.metadata.uid;
    maps.delete("owner", &DeleteParams::default()).await?;
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            maps.clone(),
            "dependent",
            conditions::is_deleted(&uid.unwrap()),
        ),
    )
    .await??;

    namespaces.delete(&ns, &DeleteParams::default()).await?;
    let ns_uid = namespaces.get(&ns).await.ok().and_then(|n| n.metadata.uid);
    if let Some(ns_uid) = ns_uid {
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(namespaces, &ns, conditions::is_deleted(&ns_uid)),
        )
        .await??;
    }
    Ok(())
}

#[tokio::test]
async fn rbac_is_enforced_for_identities_without_bindings() -> anyhow::Result<()> {
    let plane = Plane::hub();
    let out = plane.kubectl(&[
        "auth",
        "can-i",
        "list",
        "secrets",
        "--as",
        "system:serviceaccount:default:nobody",
    ])?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    Ok(())
}

#[tokio::test]
async fn api_server_restarts_on_the_same_port_with_its_data() -> anyhow::Result<()> {
    // A plane of its own, so stopping its API server cannot disturb other tests.
    let plane = Plane::start("restart")?;
    let client = plane.client().await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    maps.create(&PostParams::default(), &config_map("survivor", None))
        .await?;

    plane.stop_component("kube-apiserver")?;
    assert!(
        maps.get("survivor").await.is_err(),
        "API server still answering after stop"
    );
    plane.start_component("kube-apiserver")?;

    let survivor = maps.get("survivor").await?;
    assert_eq!(survivor.metadata.name.as_deref(), Some("survivor"));
    plane.stop();
    assert!(
        !plane.kubeconfig.exists(),
        "plane state left behind after stop"
    );
    Ok(())
}

#[tokio::test]
async fn member_planes_are_independent_of_the_hub() -> anyhow::Result<()> {
    let member = Plane::start("member")?;
    let hub = Plane::hub().client().await?;
    let member_client = member.client().await?;
    let ns = unique("only-in-member");
    Api::<Namespace>::all(member_client)
        .create(&PostParams::default(), &namespace(&ns))
        .await?;
    assert!(Api::<Namespace>::all(hub).get_opt(&ns).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn a_node_runs_restricted_pods_that_reach_the_api_server_and_leaves_nothing_behind()
-> anyhow::Result<()> {
    let plane = Plane::start_with_node(&unique("kubelet"))?;
    let run = |args: &[&str]| -> anyhow::Result<String> {
        let out = plane.kubectl(args)?;
        anyhow::ensure!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };

    let nodes = run(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}",
    ])?;
    assert_eq!(nodes.trim(), format!("{}-node=True", plane.name));

    // A plain Pod under the restricted level: kubectl with in-cluster
    // configuration, through the `kubernetes` Service.
    let image = kubectl_image()?;
    plane.import_image(&image.archive)?;
    run(&["create", "namespace", "restricted"])?;
    run(&[
        "label",
        "namespace",
        "restricted",
        "pod-security.kubernetes.io/enforce=restricted",
    ])?;
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reach-api", "namespace": "restricted"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "kubectl", "image": image.name, "imagePullPolicy": "Never",
                "args": ["get", "--raw", "/version"],
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}}
            }]
        }
    });
    let pods: Api<Pod> = Api::namespaced(plane.client().await?, "restricted");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod.clone())?,
    )
    .await?;
    let done = wait_for(&pods, "reach-api", Duration::from_secs(120), |p| {
        p.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed")
    })
    .await?;
    let logs = run(&["logs", "-n", "restricted", "reach-api"])?;
    assert_eq!(
        done.status.and_then(|s| s.phase).as_deref(),
        Some("Succeeded"),
        "logs: {logs}"
    );
    assert!(logs.contains("\"gitVersion\": \"v1.36."), "logs: {logs}");
    let env = run(&[
        "get",
        "pod",
        "reach-api",
        "-n",
        "restricted",
        "-o",
        "jsonpath={.status.podIP}",
    ])?;
    assert!(
        env.starts_with("10.244.0."),
        "a Pod address on the node's bridge: {env}"
    );

    // The level is enforced: a privileged Pod is refused by the API server.
    let mut privileged = pod;
    privileged["metadata"]["name"] = json!("privileged");
    privileged["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let refused = pods
        .create(&PostParams::default(), &serde_json::from_value(privileged)?)
        .await
        .expect_err("a privileged Pod is refused");
    assert!(refused.to_string().contains("restricted"), "{refused}");

    assert!(
        !node_leftovers(&plane.name).is_empty(),
        "the node made host state"
    );
    let name = plane.name.clone();
    plane.stop();
    let left = node_leftovers(&name);
    assert!(
        left.is_empty(),
        "left behind after plane.sh down:\n{}",
        left.join("\n")
    );
    Ok(())
}
