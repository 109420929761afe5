//! The cross-border rules on a real control plane, under the chart's identity:
//! the controller and `flowfed policy explain` agree on every (product, node)
//! of the examples; a processor crossing a volume threshold moves all of its
//! products; a zone's negative list decides; a GBA standard contract counts
//! only between GBA nodes; and tenants cannot write processors or zones.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowfed::api::{DataFlowNode, DataProcessor, DataProduct, FreeTradeZone, ProcessorTier};
use flowfed::explain::{Manifests, explain};
use flowfed_tests::{CATALOG_CONVERGE, Catalog, repo_root, start_operator, wait_for};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// Where the controller says a product is (and is not) listed: node to
/// (visible, reason, rule); nodes outside its scope are in neither list.
async fn controller_view(client: &kube::Client) -> BTreeMap<(String, String), (bool, String, u8)> {
    let products = Api::<DataProduct>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut view = BTreeMap::new();
    for product in products.items {
        let name = format!("{}/{}", product.namespace().unwrap(), product.name_any());
        let status = product.status.unwrap_or_default();
        for target in &status.targets {
            view.insert((name.clone(), target.clone()), (true, String::new(), 0));
        }
        for blocked in &status.blocked {
            let decision = (false, blocked.reason.clone(), blocked.rule as u8);
            view.insert((name.clone(), blocked.node.clone()), decision);
        }
    }
    view
}

/// A Singapore node publishing personal data (rule 10).
const SINGAPORE: &str = r#"
apiVersion: flowfed.io/v1alpha1
kind: DataFlowNode
metadata: {name: singapore}
spec: {city: Singapore, province: SG-01, jurisdiction: SG, endpoint: {url: "http://127.0.0.1:9/healthz"}}
---
apiVersion: v1
kind: Namespace
metadata: {name: dfn-singapore}
---
apiVersion: flowfed.io/v1alpha1
kind: DataProduct
metadata: {name: shipping-contacts, namespace: dfn-singapore}
spec: {title: Shipping contacts, classification: PersonalInformation, subjects: {individuals: 300}}
"#;

#[tokio::test]
async fn the_controller_and_policy_explain_agree_on_every_example() {
    let cat = Catalog::new().await;
    let operator = start_operator(&cat.plane).await.unwrap();
    for folder in ["examples/national", "examples/products"] {
        let path = repo_root().join(folder);
        let out = cat
            .plane
            .kubectl(&["apply", "-f", path.to_str().unwrap()])
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Beyond the examples: a publisher outside CN, HK and MO (rule 10). Rule 4
    // (a malformed jurisdiction) cannot reach the cluster: the schema refuses it.
    let apply = cat
        .plane
        .kubectl_stdin(&["apply", "-f", "-"], SINGAPORE)
        .unwrap();
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let mut manifests = Manifests::read(&[repo_root().join("examples")]).unwrap();
    manifests.add_stream(SINGAPORE).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut disagreements;
    loop {
        let now = k8s_openapi::jiff::Timestamp::now();
        let offline = explain(&manifests, now);
        let online = controller_view(&cat.client).await;
        disagreements = Vec::new();
        for line in &offline {
            let key = (line.product.clone(), line.node.clone());
            let expected = match (line.visible, line.reason.as_str()) {
                (true, _) => Some((true, String::new(), 0)),
                (false, "NotSelected") => None,
                (false, reason) => Some((false, reason.to_owned(), line.rule)),
            };
            if online.get(&key) != expected.as_ref() {
                disagreements.push(format!(
                    "{key:?}: explain {expected:?}, controller {:?}",
                    online.get(&key)
                ));
            }
        }
        if disagreements.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    // Every rule of the table decides something in the examples.
    let rules: std::collections::BTreeSet<u8> =
        explain(&manifests, k8s_openapi::jiff::Timestamp::now())
            .iter()
            .map(|l| l.rule)
            .collect();
    assert_eq!(rules, (1..=15).filter(|r| *r != 4).collect());
    operator.stop().await.unwrap();
}

fn listed_abroad(cat: &Catalog) -> impl Fn(&DataProduct) -> Vec<String> + '_ {
    move |p: &DataProduct| {
        let status = p.status.clone().unwrap_or_default();
        let abroad = [
            cat.name("hongkong"),
            cat.name("macao"),
            cat.name("singapore"),
        ];
        status
            .visible_in
            .into_iter()
            .filter(|n| abroad.contains(n))
            .collect()
    }
}

#[tokio::test]
async fn a_processor_crossing_a_threshold_withdraws_its_products_abroad_until_they_have_a_mechanism()
 {
    let cat = Catalog::new().await;
    let operator = start_operator(&cat.plane).await.unwrap();
    cat.add_node("hangzhou", "CN-ZJ", "CN", json!({})).await;
    let hongkong = cat.add_node("hongkong", "CN-HK", "HK", json!({})).await;
    cat.add_processor("hangzhou", "payments", json!({})).await;
    let products = cat.products("hangzhou");
    let abroad = listed_abroad(&cat);
    let personal = |individuals: u32| {
        json!({"title": "Scores", "classification": "PersonalInformation", "processor": "payments",
               "subjects": {"individuals": individuals}})
    };

    // 60,000 individuals: below every threshold, listed abroad without a mechanism.
    cat.publish("hangzhou", "scores", personal(60_000)).await;
    wait_for(&products, "scores", CATALOG_CONVERGE, |p| {
        abroad(p) == [hongkong.clone()]
    })
    .await
    .unwrap();

    // Another 50,000: the processor crosses 100,000, and both products need a mechanism.
    cat.publish("hangzhou", "payouts", personal(50_000)).await;
    let processors: Api<DataProcessor> = Api::all(cat.client.clone());
    let processor = wait_for(&processors, "payments", CATALOG_CONVERGE, |p| {
        p.status.as_ref().and_then(|s| s.tier) == Some(ProcessorTier::ContractOrCertification)
    })
    .await
    .unwrap();
    assert_eq!(processor.status.unwrap().individuals, 110_000);
    for name in ["scores", "payouts"] {
        let product = wait_for(&products, name, CATALOG_CONVERGE, |p| abroad(p).is_empty())
            .await
            .unwrap();
        let blocked = product.status.unwrap().blocked;
        assert_eq!(blocked.len(), 1, "{blocked:?}");
        assert_eq!(
            (blocked[0].reason.as_str(), blocked[0].rule),
            ("NoCrossBorderMechanism", 14)
        );
    }

    // A standard contract brings back the product that has it, and only that one.
    products
        .patch(
            "scores",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"crossBorder": {"mechanisms": [{"type": "StandardContract", "reference": "ZJ-SC-1"}]}}})),
        )
        .await
        .unwrap();
    wait_for(&products, "scores", CATALOG_CONVERGE, |p| {
        abroad(p) == [hongkong.clone()]
    })
    .await
    .unwrap();
    let payouts = products.get("payouts").await.unwrap();
    assert!(abroad(&payouts).is_empty());
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn a_zones_negative_list_decides_what_leaves_the_zone() {
    let cat = Catalog::new().await;
    let operator = start_operator(&cat.plane).await.unwrap();
    cat.add_node("lingang", "CN-SH", "CN", json!({})).await;
    cat.add_node("hongkong", "CN-HK", "HK", json!({})).await;
    let lingang = cat.name("lingang");
    Api::<DataFlowNode>::all(cat.client.clone())
        .patch(
            &lingang,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"freeTradeZone": "lingang"}})),
        )
        .await
        .unwrap();
    let zones: Api<FreeTradeZone> = Api::all(cat.client.clone());
    let zone = json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "FreeTradeZone", "metadata": {"name": "lingang"},
        "spec": {"displayName": "Lingang", "reference": "NL-2024", "sectors": ["shipping"]}
    });
    zones
        .create(
            &PostParams::default(),
            &serde_json::from_value(zone).unwrap(),
        )
        .await
        .unwrap();
    cat.add_processor("lingang", "port", json!({"freeTradeZone": "lingang"}))
        .await;
    cat.publish(
        "lingang",
        "containers",
        json!({
            "title": "Container movements", "classification": "ImportantData", "processor": "port",
            "sector": "shipping", "dataCategories": ["container-movements"]
        }),
    )
    .await;
    let products = cat.products("lingang");
    let abroad = listed_abroad(&cat);
    let hongkong = cat.name("hongkong");
    wait_for(&products, "containers", CATALOG_CONVERGE, |p| {
        abroad(p) == [hongkong.clone()]
    })
    .await
    .unwrap();

    // Listing the category withdraws it abroad: important data needs an assessment again.
    zones
        .patch(
            "lingang",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"negativeList": [{"sector": "shipping", "category": "container-movements"}]}})),
        )
        .await
        .unwrap();
    let product = wait_for(&products, "containers", CATALOG_CONVERGE, |p| {
        abroad(p).is_empty()
    })
    .await
    .unwrap();
    let blocked = &product.status.unwrap().blocked;
    assert_eq!(
        (blocked[0].reason.as_str(), blocked[0].rule),
        ("NoCrossBorderMechanism", 12)
    );
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn a_gba_standard_contract_is_honoured_only_between_gba_nodes() {
    let cat = Catalog::new().await;
    let operator = start_operator(&cat.plane).await.unwrap();
    cat.add_node("shenzhen", "CN-GD", "CN", json!({})).await;
    cat.add_node("hongkong", "CN-HK", "HK", json!({})).await;
    cat.add_node("macao", "CN-MO", "MO", json!({})).await;
    cat.add_node("singapore", "SG-01", "SG", json!({})).await;
    let nodes: Api<DataFlowNode> = Api::all(cat.client.clone());
    for gba in ["shenzhen", "hongkong"] {
        nodes
            .patch(
                &cat.name(gba),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"greaterBayArea": true}})),
            )
            .await
            .unwrap();
    }
    cat.add_processor("shenzhen", "retail", json!({})).await;
    cat.publish("shenzhen", "members", json!({
        "title": "Members", "classification": "PersonalInformation", "processor": "retail",
        "subjects": {"individuals": 150000},
        "crossBorder": {"mechanisms": [{"type": "GBAStandardContract", "reference": "GBA-SC-1"}]}
    }))
    .await;
    let products = cat.products("shenzhen");
    let abroad = listed_abroad(&cat);
    let hongkong = cat.name("hongkong");
    let product = wait_for(&products, "members", CATALOG_CONVERGE, |p| {
        abroad(p) == [hongkong.clone()] && p.status.as_ref().is_some_and(|s| s.blocked.len() == 2)
    })
    .await
    .unwrap();
    let reasons: Vec<(String, String)> = product
        .status
        .unwrap()
        .blocked
        .into_iter()
        .map(|b| (b.node, b.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            (cat.name("macao"), "NotInGreaterBayArea".to_owned()),
            (cat.name("singapore"), "NotInGreaterBayArea".to_owned()),
        ]
    );
    // Macao joins the GBA: the contract now reaches it too.
    nodes
        .patch(
            &cat.name("macao"),
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"greaterBayArea": true}})),
        )
        .await
        .unwrap();
    let macao = cat.name("macao");
    wait_for(&products, "members", CATALOG_CONVERGE, |p| {
        abroad(p) == [hongkong.clone(), macao.clone()]
    })
    .await
    .unwrap();
    operator.stop().await.unwrap();
}

#[tokio::test]
async fn a_tenant_with_edit_in_its_namespace_cannot_create_or_change_processors_or_zones() {
    let cat = Catalog::new().await;
    let namespace = format!(
        "dfn-{}",
        cat.add_node("tenant", "CN-ZJ", "CN", json!({})).await
    );
    cat.add_processor("tenant", "tenant-co", json!({})).await;
    let tenant = format!("system:serviceaccount:{namespace}:publisher");
    let kubectl = |args: &[&str]| cat.plane.kubectl(args).unwrap();
    let binding = kubectl(&[
        "create",
        "rolebinding",
        "publisher-edit",
        "--clusterrole=edit",
        &format!("--serviceaccount={namespace}:publisher"),
        "-n",
        &namespace,
    ]);
    assert!(
        binding.status.success(),
        "{}",
        String::from_utf8_lossy(&binding.stderr)
    );
    let as_tenant = |args: &[&str]| {
        let out = kubectl(&[&["--as", tenant.as_str()][..], args].concat());
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The binding works once the controller manager has aggregated the chart's
    // publisher role into `edit`: the tenant publishes in its namespace.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !as_tenant(&[
        "auth",
        "can-i",
        "create",
        "dataproducts.flowfed.io",
        "-n",
        &namespace,
    ])
    .0
    {
        assert!(
            Instant::now() < deadline,
            "edit never gained the publisher role"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let product = format!(
        r#"{{"apiVersion":"flowfed.io/v1alpha1","kind":"DataProduct","metadata":{{"name":"p","namespace":"{namespace}"}},"spec":{{"title":"P","classification":"Public"}}}}"#
    );
    let created = cat
        .plane
        .kubectl_stdin(&["--as", &tenant, "create", "-f", "-"], &product)
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    // ... but cannot write what decides what leaves the country.
    let processor = r#"{"apiVersion":"flowfed.io/v1alpha1","kind":"DataProcessor","metadata":{"name":"mine"},"spec":{"node":"x","legalName":"Mine","criticalInformationInfrastructure":false}}"#;
    let zone = r#"{"apiVersion":"flowfed.io/v1alpha1","kind":"FreeTradeZone","metadata":{"name":"mine"},"spec":{"displayName":"Mine","reference":"R","sectors":["all"]}}"#;
    for manifest in [processor, zone] {
        let out = cat
            .plane
            .kubectl_stdin(&["--as", &tenant, "create", "-f", "-"], manifest)
            .unwrap();
        assert!(!out.status.success(), "a tenant created {manifest}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));
    }
    let (patched, error) = as_tenant(&[
        "patch",
        "dataprocessor",
        "tenant-co",
        "--type=merge",
        "-p",
        r#"{"spec":{"outboundOutsideFlowfed":null,"criticalInformationInfrastructure":false}}"#,
    ]);
    assert!(!patched && error.contains("forbidden"), "{error}");
    let (status_patched, error) = as_tenant(&[
        "patch",
        "dataprocessor",
        "tenant-co",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"tier":"Exempt"}}"#,
    ]);
    assert!(!status_patched && error.contains("forbidden"), "{error}");
}
