//! One-point release, all-region visibility, against real control planes: a
//! product published once is listed at every node the cross-border rules allow,
//! in hub namespaces or in a member cluster, kept in place against drift, and
//! withdrawn when its mechanism expires, its node goes, or it is deleted.

use std::time::{Duration, Instant};

use flowfed::api::conditions::types;
use flowfed::api::{CatalogEntry, DataFlowNode, DataProduct};
use flowfed_tests::{
    CATALOG_CONVERGE, Catalog, OPERATOR_NAMESPACE, Plane, condition, has_condition, start_operator,
    unique, wait_for, wait_for_condition,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const CONVERGE: Duration = CATALOG_CONVERGE;

fn synced(p: &DataProduct) -> bool {
    has_condition(p, types::SYNCED, "True")
}

#[tokio::test]
async fn products_are_listed_where_the_rules_allow_and_kept_there() {
    let cat = Catalog::new().await;
    let operator = start_operator(&cat.plane).await.unwrap();
    cat.add_node("shanghai", "CN-SH", "CN", json!({})).await;
    cat.add_node("beijing", "CN-BJ", "CN", json!({})).await;
    cat.add_node("hongkong", "CN-HK", "HK", json!({})).await;
    cat.add_node("macao", "CN-MO", "MO", json!({})).await;

    // Over 100,000 individuals: each of its products needs a mechanism.
    cat.add_processor("shanghai", "shanghai-port", json!({}))
        .await;
    cat.add_processor("beijing", "beijing-telecom", json!({}))
        .await;
    let contract = cat
        .publish("shanghai", "port-index", json!({
            "title": "Port index", "classification": "PersonalInformation", "keywords": ["port"],
            "processor": "shanghai-port", "subjects": {"individuals": 150000},
            "crossBorder": {"mechanisms": [{"type": "StandardContract", "reference": "SH-SC-1", "validUntil": "2099-01-01T00:00:00Z"}]}
        }))
        .await;
    let sensitive = cat
        .publish(
            "shanghai",
            "patients",
            json!({"title": "Patients", "classification": "SensitivePersonalInformation",
                   "processor": "shanghai-port", "subjects": {"individuals": 10, "sensitiveIndividuals": 10}}),
        )
        .await;
    let core = cat
        .publish("beijing", "grid", json!({
            "title": "Grid", "classification": "CoreData", "visibility": {"scope": "Selected", "nodeSelector": {}}
        }))
        .await;
    let anonymized = cat
        .publish(
            "hongkong",
            "flows",
            json!({"title": "Flows", "classification": "PersonalInformation", "subjects": {"individuals": 900000},
                   "anonymization": {"method": "aggregation", "assessmentReference": "HK-ANON-1"}}),
        )
        .await;

    cat.wait_listed(&contract, &["shanghai", "beijing", "hongkong", "macao"])
        .await;
    cat.wait_listed(&sensitive, &["shanghai", "beijing"]).await;
    cat.wait_listed(&core, &["beijing"]).await;
    cat.wait_listed(&anonymized, &["shanghai", "beijing", "hongkong", "macao"])
        .await;

    // Personal information without a mechanism stays on the mainland until a
    // standard contract is filed; then it is listed abroad too.
    let contacts = cat
        .publish(
            "beijing",
            "contacts",
            json!({"title": "Contacts", "classification": "PersonalInformation",
                   "processor": "beijing-telecom", "subjects": {"individuals": 200000}}),
        )
        .await;
    cat.wait_listed(&contacts, &["shanghai", "beijing"]).await;
    cat.products("beijing")
        .patch(
            "contacts",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"crossBorder": {"mechanisms": [{"type": "StandardContract", "reference": "BJ-SC-7"}]}}})),
        )
        .await
        .unwrap();
    cat.wait_listed(&contacts, &["shanghai", "beijing", "hongkong", "macao"])
        .await;

    // Status says where, and why not.
    let status = wait_for(&cat.products("shanghai"), "patients", CONVERGE, synced)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.publisher_node, Some(cat.name("shanghai")));
    assert_eq!(
        status.visible_in,
        vec![cat.name("beijing"), cat.name("shanghai")]
    );
    let reasons: Vec<(String, String)> = status
        .blocked
        .iter()
        .map(|b| (b.node.clone(), b.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (cat.name("hongkong"), "NoCrossBorderMechanism".into()),
            (cat.name("macao"), "NoCrossBorderMechanism".into())
        ]
    );
    assert!(status.release_to_visible_millis.is_some());

    // The entry: deterministic name, copied listing, labels.
    let entry = cat
        .entries("beijing")
        .get(&format!("{}.port-index", cat.name("shanghai")))
        .await
        .unwrap();
    assert_eq!(entry.spec.title, "Port index");
    assert_eq!(entry.spec.product.node, cat.name("shanghai"));
    assert_eq!(
        entry.labels()["flowfed.io/publisher-node"],
        cat.name("shanghai")
    );
    assert_eq!(entry.spec.content_hash.len(), 32);

    // Drift: a deleted entry and an edited entry are put back.
    let entry_name = entry.name_any();
    cat.entries("beijing")
        .delete(&entry_name, &DeleteParams::default())
        .await
        .unwrap();
    cat.entries("macao")
        .patch(
            &entry_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"title": "Tampered"}})),
        )
        .await
        .unwrap();
    wait_for(&cat.entries("beijing"), &entry_name, CONVERGE, |_| true)
        .await
        .unwrap();
    wait_for(&cat.entries("macao"), &entry_name, CONVERGE, |e| {
        e.spec.title == "Port index"
    })
    .await
    .unwrap();

    // A spec change reaches every copy.
    cat.products("shanghai")
        .patch(
            "port-index",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"title": "Port index v2"}})),
        )
        .await
        .unwrap();
    for node in ["shanghai", "beijing", "hongkong", "macao"] {
        wait_for(&cat.entries(node), &entry_name, CONVERGE, |e| {
            e.spec.title == "Port index v2"
        })
        .await
        .unwrap();
    }

    // Unchanged products cause no writes: entry versions stay put over a resync.
    let versions = || async {
        let mut v = Vec::new();
        for node in ["shanghai", "beijing"] {
            v.push(
                cat.entries(node)
                    .get(&entry_name)
                    .await
                    .unwrap()
                    .resource_version(),
            );
        }
        v
    };
    let before = versions().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(before, versions().await);

    // A restart of the operator neither duplicates nor loses entries.
    operator.stop().await.unwrap();
    let operator = start_operator(&cat.plane).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cat.wait_listed(&contract, &["shanghai", "beijing", "hongkong", "macao"])
        .await;
    let total = Api::<CatalogEntry>::all(cat.client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(total, 4 + 2 + 1 + 4 + 4);

    // Metrics.
    let body = reqwest::get(format!("http://{}/metrics", operator.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains(&format!(
            "flowfed_catalog_entries{{node=\"{}\"}} 5",
            cat.name("beijing")
        )),
        "{body}"
    );
    assert!(
        body.contains("flowfed_catalog_blocked{reason=\"NoCrossBorderMechanism\"} 2"),
        "{body}"
    );
    assert!(
        body.contains("flowfed_catalog_blocked{reason=\"CoreDataStaysAtPublisher\"} 3"),
        "{body}"
    );
    assert!(
        body.contains("flowfed_catalog_release_to_visible_seconds_count"),
        "{body}"
    );

    // Deleting a product removes its entries everywhere, then the product.
    cat.products("shanghai")
        .delete("port-index", &DeleteParams::default())
        .await
        .unwrap();
    cat.wait_listed(&contract, &[]).await;
    wait_for(&cat.products("shanghai"), "patients", CONVERGE, |_| true)
        .await
        .unwrap();
    let deadline = Instant::now() + CONVERGE;
    while cat
        .products("shanghai")
        .get_opt("port-index")
        .await
        .unwrap()
        .is_some()
    {
        assert!(Instant::now() < deadline, "product kept by its finalizer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Removing a node removes its catalog view and its products' entries elsewhere.
    Api::<DataFlowNode>::all(cat.client.clone())
        .delete(&cat.name("hongkong"), &DeleteParams::default())
        .await
        .unwrap();
    cat.wait_listed(&anonymized, &[]).await;
    let deadline = Instant::now() + CONVERGE;
    loop {
        let left = cat
            .entries("hongkong")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} entries left in the removed node's view"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let flows = wait_for(&cat.products("hongkong"), "flows", CONVERGE, |p| {
        has_condition(p, types::PUBLISHED, "False")
    })
    .await
    .unwrap();
    let published = condition(&flows, types::PUBLISHED).unwrap();
    assert_eq!(published.reason, "NoPublisherNode");
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn an_expiring_mechanism_withdraws_entries_abroad_at_that_moment() {
    let cat = Catalog::new().await;
    let operator = start_operator(&cat.plane).await.unwrap();
    cat.add_node("shenzhen", "CN-GD", "CN", json!({})).await;
    cat.add_node("guangzhou", "CN-GD", "CN", json!({})).await;
    cat.add_node("hongkong", "CN-HK", "HK", json!({})).await;
    let now = k8s_openapi::jiff::Timestamp::now();
    let valid_until = now + k8s_openapi::jiff::SignedDuration::from_secs(8);
    let issued_at = now - k8s_openapi::jiff::SignedDuration::from_hours(24);
    let product = cat
        .publish("shenzhen", "trade", json!({
            "title": "Trade", "classification": "ImportantData",
            "crossBorder": {"mechanisms": [{"type": "SecurityAssessment", "reference": "SA-1",
                            "issuedAt": issued_at.to_string(), "validUntil": valid_until.to_string()}]}
        }))
        .await;
    cat.wait_listed(&product, &["shenzhen", "guangzhou", "hongkong"])
        .await;
    let until = std::time::SystemTime::from(valid_until);
    let wait = until
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait).await;
    let expired_at = Instant::now();
    cat.wait_listed(&product, &["shenzhen", "guangzhou"]).await;
    let lag = expired_at.elapsed();
    println!("withdrawn {lag:?} after validUntil");
    assert!(
        lag < Duration::from_secs(2),
        "withdrawn {lag:?} after validUntil, not at that moment"
    );
    let status = wait_for(&cat.products("shenzhen"), "trade", CONVERGE, |p| {
        p.status
            .as_ref()
            .is_some_and(|s| s.blocked.iter().any(|b| b.reason == "MechanismExpired"))
    })
    .await
    .unwrap();
    assert_eq!(status.status.unwrap().visible_in.len(), 2);
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn member_clusters_hold_their_own_view_and_bad_kubeconfigs_are_refused() {
    let cat = Catalog::new().await;
    let member = Plane::start(&unique("member")).unwrap();
    let secrets: Api<Secret> = Api::namespaced(cat.client.clone(), OPERATOR_NAMESPACE);
    let secret = |name: &str, kubeconfig: String| -> Secret {
        serde_json::from_value(
            json!({"metadata": {"name": name}, "stringData": {"kubeconfig": kubeconfig}}),
        )
        .unwrap()
    };
    secrets
        .create(
            &PostParams::default(),
            &secret("hk-kubeconfig", member.kubeconfig_yaml().unwrap()),
        )
        .await
        .unwrap();
    let admin: serde_json::Value =
        serde_yaml::from_str(&member.kubeconfig_yaml().unwrap()).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let exec_kubeconfig = serde_json::to_string(&json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "m", "cluster": cluster}],
        "users": [{"name": "evil", "user": {"exec": {
            "command": "/bin/touch", "args": ["/tmp/flowfed-pwned"], "apiVersion": "client.authentication.k8s.io/v1"
        }}}],
        "contexts": [{"name": "m", "context": {"cluster": "m", "user": "evil"}}],
        "current-context": "m",
    }))
    .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &secret("mo-kubeconfig", exec_kubeconfig),
        )
        .await
        .unwrap();

    let operator = start_operator(&cat.plane).await.unwrap();
    cat.add_node("shanghai", "CN-SH", "CN", json!({})).await;
    let hk = cat
        .add_node("hongkong", "CN-HK", "HK", json!({
            "kubeconfigSecretRef": {"namespace": OPERATOR_NAMESPACE, "name": "hk-kubeconfig", "key": "kubeconfig"},
            "memberNamespace": "hk-catalog"
        }))
        .await;
    let mo = cat
        .add_node("macao", "CN-MO", "MO", json!({
            "kubeconfigSecretRef": {"namespace": OPERATOR_NAMESPACE, "name": "mo-kubeconfig", "key": "kubeconfig"}
        }))
        .await;
    let product = cat
        .publish(
            "shanghai",
            "public-air",
            json!({"title": "Air", "classification": "Public"}),
        )
        .await;

    // Hong Kong's copy is in its own cluster, not in the hub.
    let member_client = member.client().await.unwrap();
    let member_entries: Api<CatalogEntry> = Api::namespaced(member_client.clone(), "hk-catalog");
    let entry_name = format!("{}.public-air", cat.name("shanghai"));
    let entry = wait_for(&member_entries, &entry_name, CONVERGE, |_| true)
        .await
        .unwrap();
    assert_eq!(entry.spec.title, "Air");
    cat.wait_listed(&product, &["shanghai"]).await;

    // Macao's kubeconfig runs a program: refused, nothing spawned, the rest syncs.
    let macao = wait_for(
        &Api::<DataFlowNode>::all(cat.client.clone()),
        &mo,
        CONVERGE,
        |n| has_condition(n, types::CATALOG_SYNCED, "False"),
    )
    .await
    .unwrap();
    let condition = condition(&macao, types::CATALOG_SYNCED).unwrap();
    assert_eq!(condition.reason, "RefusedKubeconfig", "{condition:?}");
    assert!(condition.message.contains("exec"), "{}", condition.message);
    assert!(
        !std::path::Path::new("/tmp/flowfed-pwned").exists(),
        "the exec plugin ran"
    );
    let status = wait_for(&cat.products("shanghai"), "public-air", CONVERGE, |p| {
        p.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
    })
    .await
    .unwrap()
    .status
    .unwrap();
    assert!(status.visible_in.contains(&hk), "{status:?}");
    assert!(!status.visible_in.contains(&mo));
    let hk_node = wait_for(
        &Api::<DataFlowNode>::all(cat.client.clone()),
        &hk,
        CONVERGE,
        |n| {
            n.status
                .as_ref()
                .is_some_and(|s| s.catalog_entries == Some(1))
        },
    )
    .await
    .unwrap();
    assert!(has_condition(&hk_node, types::CATALOG_SYNCED, "True"));

    // The member goes down: a new product syncs everywhere else, and reaches the
    // member once it is back.
    member.stop_component("kube-apiserver").unwrap();
    let later = cat
        .publish(
            "shanghai",
            "public-later",
            json!({"title": "Later", "classification": "Public"}),
        )
        .await;
    cat.wait_listed(&later, &["shanghai"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    member.start_component("kube-apiserver").unwrap();
    wait_for(
        &member_entries,
        &format!("{}.public-later", cat.name("shanghai")),
        Duration::from_secs(90),
        |_| true,
    )
    .await
    .unwrap();

    // Deleting the product removes the member's copy too.
    cat.products("shanghai")
        .delete("public-air", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + CONVERGE;
    // Right after its restart the member may briefly answer 404 for the CRD's
    // path while it re-registers it; only a clean "not found" counts.
    while !matches!(member_entries.get_opt(&entry_name).await, Ok(None)) {
        assert!(Instant::now() < deadline, "member copy not removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Macao's refused kubeconfig does not hold the deletion.
    while cat
        .products("shanghai")
        .get_opt("public-air")
        .await
        .unwrap()
        .is_some()
    {
        assert!(Instant::now() < deadline, "product kept by its finalizer");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn a_product_outside_any_home_namespace_is_published_nowhere() {
    let cat = Catalog::new().await;
    let operator = start_operator(&cat.plane).await.unwrap();
    cat.add_node("shanghai", "CN-SH", "CN", json!({})).await;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "tenant-x"}})).unwrap();
    Api::<Namespace>::all(cat.client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let products: Api<DataProduct> = Api::namespaced(cat.client.clone(), "tenant-x");
    let manifest = json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": "impostor", "namespace": "tenant-x"},
        "spec": {"title": "Claims to be Shanghai's", "classification": "Public"},
    });
    products
        .create(
            &PostParams::default(),
            &serde_json::from_value(manifest).unwrap(),
        )
        .await
        .unwrap();
    let p = wait_for(&products, "impostor", CONVERGE, |p| {
        p.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
    })
    .await
    .unwrap();
    let published = condition(&p, types::PUBLISHED).unwrap();
    assert_eq!(
        (published.status.as_str(), published.reason.as_str()),
        ("False", "NoPublisherNode")
    );
    assert!(published.message.contains("tenant-x"));
    assert!(cat.listed_at(&p.uid().unwrap()).await.is_empty());
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn entries_flowfed_did_not_make_are_left_alone_and_its_own_are_kept_labelled() {
    let cat = Catalog::new().await;
    let operator = start_operator(&cat.plane).await.unwrap();
    cat.add_node("shanghai", "CN-SH", "CN", json!({})).await;
    cat.add_node("beijing", "CN-BJ", "CN", json!({})).await;
    let product = cat
        .publish(
            "shanghai",
            "metro-ridership",
            json!({"title": "Metro", "classification": "Public"}),
        )
        .await;
    cat.wait_listed(&product, &["shanghai", "beijing"]).await;

    // Someone else's entry, for a product flowfed has never heard of.
    let foreign: CatalogEntry = serde_json::from_value(json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "CatalogEntry",
        "metadata": {"name": "hand-made"},
        "spec": {"product": {"node": "elsewhere", "namespace": "x", "name": "x", "uid": "not-flowfeds"},
                 "title": "Hand made", "classification": "Public",
                 "publishedAt": "2026-01-01T00:00:00Z", "contentHash": "0123456789abcdef0123456789abcdef"}
    }))
    .unwrap();
    let entries = cat.entries("beijing");
    entries
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();

    // flowfed's entry stripped of its managed-by label is written back whole.
    let own = format!("{}.metro-ridership", cat.name("shanghai"));
    entries
        .patch(
            &own,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": null}}})),
        )
        .await
        .unwrap();
    wait_for(&entries, &own, CONVERGE, |e| {
        e.labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str)
            == Some("flowfed")
    })
    .await
    .unwrap();

    // A full orphan sweep (every 10 s) later, the foreign entry is still there.
    tokio::time::sleep(Duration::from_secs(13)).await;
    assert!(
        entries.get_opt("hand-made").await.unwrap().is_some(),
        "the orphan sweep deleted an entry flowfed did not make"
    );
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn a_member_secret_flowfed_cannot_read_is_reported_and_never_holds_a_deletion() {
    let cat = Catalog::new().await;
    // In `default`, where the chart's role grants no Secret access.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "sz-kubeconfig"},
        "stringData": {"kubeconfig": "apiVersion: v1\nkind: Config\n"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(cat.client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let operator = start_operator(&cat.plane).await.unwrap();
    cat.add_node("beijing", "CN-BJ", "CN", json!({})).await;
    let shenzhen = cat
        .add_node("shenzhen", "CN-GD", "CN", json!({
            "kubeconfigSecretRef": {"namespace": "default", "name": "sz-kubeconfig", "key": "kubeconfig"}
        }))
        .await;
    let nodes = Api::<DataFlowNode>::all(cat.client.clone());
    let condition = wait_for_condition(&nodes, &shenzhen, types::CATALOG_SYNCED, "False", CONVERGE)
        .await
        .unwrap();
    assert_eq!(
        condition.reason, "KubeconfigSecretUnreadable",
        "{condition:?}"
    );
    assert!(
        condition.message.contains("default/sz-kubeconfig"),
        "{}",
        condition.message
    );

    let product = cat
        .publish(
            "beijing",
            "air",
            json!({"title": "Air", "classification": "Public"}),
        )
        .await;
    cat.wait_listed(&product, &["beijing"]).await;
    cat.products("beijing")
        .delete("air", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + CONVERGE;
    while cat
        .products("beijing")
        .get_opt("air")
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the deletion waits on an unreadable Secret"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn the_member_sweep_leaves_entries_flowfed_did_not_make() {
    let cat = Catalog::new().await;
    let member = cat.member_plane("sweep-member", "sweep-kubeconfig").await;
    let operator = start_operator(&cat.plane).await.unwrap();
    cat.add_node("beijing", "CN-BJ", "CN", json!({})).await;
    let nanjing = cat
        .add_node("nanjing", "CN-JS", "CN", json!({
            "kubeconfigSecretRef": {"namespace": OPERATOR_NAMESPACE, "name": "sweep-kubeconfig", "key": "kubeconfig"},
            "memberNamespace": "sweep-catalog"
        }))
        .await;
    let nodes = Api::<DataFlowNode>::all(cat.client.clone());
    wait_for_condition(&nodes, &nanjing, types::CATALOG_SYNCED, "True", CONVERGE)
        .await
        .unwrap();

    // Two entries for a product that does not exist: one labelled as
    // flowfed's (an orphan: the sweep removes it), one someone else made.
    let member_entries: Api<CatalogEntry> =
        Api::namespaced(member.client().await.unwrap(), "sweep-catalog");
    let entry = |name: &str, labels: serde_json::Value| -> CatalogEntry {
        serde_json::from_value(json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "CatalogEntry",
            "metadata": {"name": name, "namespace": "sweep-catalog", "labels": labels},
            "spec": {"product": {"node": "elsewhere", "namespace": "x", "name": "x", "uid": "gone"},
                     "title": name, "classification": "Public",
                     "publishedAt": "2026-01-01T00:00:00Z", "contentHash": "0"}
        }))
        .unwrap()
    };
    for (name, labels) in [
        ("orphan", json!({"app.kubernetes.io/managed-by": "flowfed"})),
        ("hand-made", json!({})),
    ] {
        member_entries
            .create(&PostParams::default(), &entry(name, labels))
            .await
            .unwrap();
    }
    let deadline = Instant::now() + CONVERGE;
    while member_entries.get_opt("orphan").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the member sweep never ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        member_entries.get_opt("hand-made").await.unwrap().is_some(),
        "the sweep deleted an entry flowfed did not make"
    );
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn a_node_cannot_take_over_another_nodes_home_namespace() {
    let cat = Catalog::new().await;
    let operator = start_operator(&cat.plane).await.unwrap();
    let holder = cat.add_node("holder", "CN-SH", "CN", json!({})).await;
    let home = format!("dfn-{holder}");
    let namespaces: Api<Namespace> = Api::all(cat.client.clone());
    let labelled = |n: &Namespace| n.labels().get("flowfed.io/node") == Some(&holder);
    wait_for(&namespaces, &home, CONVERGE, labelled)
        .await
        .unwrap();

    let intruder = cat
        .add_node("intruder", "CN-ZJ", "CN", json!({"namespace": home}))
        .await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::all(cat.client.clone());
    let refused = ListParams::default().fields(&format!(
        "reason=HomeNamespaceFailed,involvedObject.name={intruder}"
    ));
    let deadline = Instant::now() + CONVERGE;
    let event = loop {
        if let Some(event) = events.list(&refused).await.unwrap().items.pop() {
            break event;
        }
        assert!(Instant::now() < deadline, "no HomeNamespaceFailed event");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let note = event.message.unwrap_or_default();
    assert!(note.contains(&holder), "{note}");
    let namespace = namespaces.get(&home).await.unwrap();
    assert!(labelled(&namespace), "the label still names the holder");
    operator.stop().await.unwrap();
}

/// Waits until `api` holds (or not) an entry named `name`, within [`CONVERGE`].
/// A member without the CRD yet holds none.
async fn eventually_present(api: &Api<CatalogEntry>, name: &str, present: bool, what: &str) {
    let deadline = Instant::now() + CONVERGE;
    while api.get_opt(name).await.ok().flatten().is_some() != present {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_view_that_moves_is_cleaned_where_it_was() {
    let cat = Catalog::new().await;
    let member = cat.member_plane("move-member", "move-kubeconfig").await;
    let operator = start_operator(&cat.plane).await.unwrap();
    let beijing = cat.add_node("beijing", "CN-BJ", "CN", json!({})).await;
    let nanjing = cat.add_node("nanjing", "CN-JS", "CN", json!({})).await;
    let product = cat
        .publish(
            "beijing",
            "rainfall",
            json!({"title": "Rainfall", "classification": "Public"}),
        )
        .await;
    cat.wait_listed(&product, &["beijing", "nanjing"]).await;
    let entry = format!("{beijing}.rainfall");
    let member_client = member.client().await.unwrap();
    let in_member = |namespace: &str| -> Api<CatalogEntry> {
        Api::namespaced(member_client.clone(), namespace)
    };
    let nodes = Api::<DataFlowNode>::all(cat.client.clone());
    let move_view = |catalog: serde_json::Value| {
        let nodes = nodes.clone();
        let nanjing = nanjing.clone();
        async move {
            let patch = json!({"spec": {"catalog": catalog}});
            nodes
                .patch(&nanjing, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };

    // Hub to member: the hub entry goes, the member lists it.
    move_view(json!({
        "kubeconfigSecretRef": {"namespace": OPERATOR_NAMESPACE, "name": "move-kubeconfig", "key": "kubeconfig"},
        "memberNamespace": "move-a"
    }))
    .await;
    eventually_present(&in_member("move-a"), &entry, true, "listed in the member").await;
    eventually_present(
        &cat.entries("nanjing"),
        &entry,
        false,
        "hub entry removed after the move",
    )
    .await;

    // Another member namespace: the first is cleaned.
    move_view(json!({"memberNamespace": "move-b"})).await;
    eventually_present(
        &in_member("move-b"),
        &entry,
        true,
        "listed in the new namespace",
    )
    .await;
    eventually_present(
        &in_member("move-a"),
        &entry,
        false,
        "old member namespace cleaned",
    )
    .await;

    // Back to the hub: the member is cleaned, the hub lists it again.
    move_view(json!({"kubeconfigSecretRef": null, "memberNamespace": null})).await;
    eventually_present(
        &cat.entries("nanjing"),
        &entry,
        true,
        "listed in the hub again",
    )
    .await;
    eventually_present(
        &in_member("move-b"),
        &entry,
        false,
        "member cleaned after moving back",
    )
    .await;
    cat.wait_listed(&product, &["beijing", "nanjing"]).await;
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn a_withdrawal_from_a_member_that_is_down_is_pending_until_it_is_back() {
    let cat = Catalog::new().await;
    let member = cat
        .member_plane("pending-member", "pending-kubeconfig")
        .await;
    let operator = start_operator(&cat.plane).await.unwrap();
    let beijing = cat.add_node("beijing", "CN-BJ", "CN", json!({})).await;
    let shenyang = cat
        .add_node("shenyang", "CN-LN", "CN", json!({
            "kubeconfigSecretRef": {"namespace": OPERATOR_NAMESPACE, "name": "pending-kubeconfig", "key": "kubeconfig"},
            "memberNamespace": "pending-catalog"
        }))
        .await;
    let product = cat
        .publish(
            "beijing",
            "snowfall",
            json!({"title": "Snowfall", "classification": "Public"}),
        )
        .await;
    let entry = format!("{beijing}.snowfall");
    let in_member: Api<CatalogEntry> =
        Api::namespaced(member.client().await.unwrap(), "pending-catalog");
    eventually_present(&in_member, &entry, true, "listed in the member").await;

    // The member goes dark, and the product is no longer for Shenyang.
    member.stop_component("kube-apiserver").unwrap();
    let narrowed = json!({"spec": {"visibility": {"scope": "Selected", "nodeSelector": {"matchLabels": {"region": "beijing"}}}}});
    let products = cat.products("beijing");
    products
        .patch(
            "snowfall",
            &PatchParams::default(),
            &Patch::Merge(&narrowed),
        )
        .await
        .unwrap();
    let pending = wait_for(&products, "snowfall", CONVERGE, |p| {
        condition(p, types::SYNCED).is_some_and(|c| c.reason == "WithdrawalPending")
    })
    .await
    .unwrap();
    let synced = condition(&pending, types::SYNCED).unwrap();
    assert_eq!(synced.status, "False");
    assert!(synced.message.contains(&shenyang), "{}", synced.message);

    // Back: the entry is withdrawn without waiting for a resync.
    member.start_component("kube-apiserver").unwrap();
    let back = Instant::now();
    eventually_present(
        &in_member,
        &entry,
        false,
        "withdrawn once the member is back",
    )
    .await;
    wait_for(&products, "snowfall", CONVERGE, synced_now)
        .await
        .unwrap();
    eprintln!("withdrawn {:?} after the member came back", back.elapsed());
    assert_eq!(product.name_any(), "snowfall");
    operator.stop().await.unwrap();
}

fn synced_now(p: &DataProduct) -> bool {
    synced(p)
}
