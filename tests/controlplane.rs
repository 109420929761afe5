//! The test control plane is a real cluster: versioned, RBAC-enforcing, with
//! garbage collection and namespace deletion from kube-controller-manager, and
//! able to lose and regain its API server without losing data.

use std::time::Duration;

use flowfed_tests::{Plane, unique};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::wait::{await_condition, conditions};

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
    maps.create(
        &PostParams::default(),
        &config_map("dependent", Some(&owner)),
    )
    .await?;
    maps.delete("owner", &DeleteParams::default()).await?;
    let uid = maps.get("dependent").await?.metadata.uid;
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
