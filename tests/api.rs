//! The flowfed API against a real API server: the CRDs install, the examples
//! apply, and every invalid manifest is rejected by the API server itself with
//! the message of the rule it breaks, while valid edge cases are accepted.

use std::collections::BTreeSet;

use flowfed::api::{DataFlowNode, DataProduct, Federation, InterCityLink};
use flowfed_tests::{Plane, install_crds, repo_root, unique};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

async fn client() -> kube::Client {
    static CRDS: OnceCell<()> = OnceCell::const_new();
    let client = Plane::hub().client().await.expect("hub client");
    CRDS.get_or_init(|| async { install_crds(&client).await.expect("install CRDs") })
        .await;
    client
}

fn dynamic_api(client: &kube::Client, kind: &str, namespace: Option<&str>) -> Api<DynamicObject> {
    let plural = match kind {
        "DataFlowNode" => "dataflownodes",
        "InterCityLink" => "intercitylinks",
        "Federation" => "federations",
        "DataProduct" => "dataproducts",
        "CatalogEntry" => "catalogentries",
        "DataProcessor" => "dataprocessors",
        "FreeTradeZone" => "freetradezones",
        other => panic!("unknown kind {other}"),
    };
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("flowfed.io", "v1alpha1", kind),
        plural,
    );
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Creates `manifest` (a full object) and returns the API server's error text, if any.
async fn create(client: &kube::Client, manifest: &Value) -> Result<(), String> {
    let object: DynamicObject =
        serde_json::from_value(manifest.clone()).expect("manifest is an object");
    let kind = manifest["kind"].as_str().unwrap();
    let api = dynamic_api(client, kind, manifest["metadata"]["namespace"].as_str());
    api.create(&PostParams::default(), &object)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Deep-merges `patch` into `base` (objects merge, everything else replaces; null removes).
fn merged(base: &Value, patch: &Value) -> Value {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            let mut out = b.clone();
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let next = out
                        .get(k)
                        .map(|old| merged(old, v))
                        .unwrap_or_else(|| v.clone());
                    out.insert(k.clone(), next);
                }
            }
            Value::Object(out)
        }
        _ => patch.clone(),
    }
}

fn node(name: &str, spec: Value) -> Value {
    let base = json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode",
        "metadata": {"name": name},
        "spec": {"city": "Hangzhou", "province": "CN-ZJ", "endpoint": {"url": "http://127.0.0.1:1/healthz"}}
    });
    merged(&base, &json!({"spec": spec}))
}

fn link(name: &str, spec: Value) -> Value {
    let base = json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "InterCityLink",
        "metadata": {"name": name}, "spec": {"from": "hangzhou", "to": "ningbo"}
    });
    merged(&base, &json!({"spec": spec}))
}

fn federation(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "flowfed.io/v1alpha1", "kind": "Federation", "metadata": {"name": name}, "spec": spec})
}

fn product(namespace: &str, name: &str, spec: Value) -> Value {
    let base = json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"title": "Air quality", "classification": "Public"}
    });
    merged(&base, &json!({"spec": spec}))
}

fn processor(name: &str, spec: Value) -> Value {
    let base = json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProcessor",
        "metadata": {"name": name},
        "spec": {"node": "shanghai", "legalName": "Example Data Co., Ltd."}
    });
    merged(&base, &json!({"spec": spec}))
}

fn zone(name: &str, spec: Value) -> Value {
    let base = json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "FreeTradeZone",
        "metadata": {"name": name},
        "spec": {"displayName": "Lingang", "reference": "FTZ-2024-1", "sectors": ["finance"]}
    });
    merged(&base, &json!({"spec": spec}))
}

async fn product_namespace(client: &kube::Client) -> String {
    let name = unique("dfn-api");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

#[tokio::test]
async fn invalid_manifests_are_rejected_with_a_message_that_says_what_to_fix() {
    let client = client().await;
    let ns = product_namespace(&client).await;
    let n = || unique("bad");
    let many_hubs: Vec<String> = (0..65).map(|i| format!("hub-{i}")).collect();
    let many_keywords: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
    let huge_description = "x".repeat(1 << 20);

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "province not ISO 3166-2",
            node(&n(), json!({"province": "Shanghai"})),
            "province must be an ISO 3166-2 code",
        ),
        (
            "jurisdiction lower-case",
            node(&n(), json!({"jurisdiction": "cn"})),
            "jurisdiction must be two upper-case letters",
        ),
        (
            "Hong Kong left in CN",
            node(&n(), json!({"province": "CN-HK"})),
            "jurisdiction does not match province",
        ),
        (
            "mainland node claiming HK",
            node(&n(), json!({"jurisdiction": "HK"})),
            "jurisdiction does not match province",
        ),
        (
            "ftp endpoint",
            node(
                &n(),
                json!({"endpoint": {"url": "ftp://gw.example/healthz"}}),
            ),
            "endpoint.url must be an absolute http",
        ),
        (
            "endpoint without host",
            node(&n(), json!({"endpoint": {"url": "https:///healthz"}})),
            "endpoint.url must be an absolute http",
        ),
        (
            "timeout not below interval",
            node(
                &n(),
                json!({"probe": {"intervalSeconds": 5, "timeoutSeconds": 5}}),
            ),
            "probe.timeoutSeconds must be less than probe.intervalSeconds",
        ),
        (
            "interval zero",
            node(
                &n(),
                json!({"probe": {"intervalSeconds": 0, "timeoutSeconds": 1}}),
            ),
            "should be greater than or equal to 1",
        ),
        (
            "threshold too high",
            node(&n(), json!({"probe": {"failureThreshold": 1000}})),
            "should be less than or equal to 100",
        ),
        (
            "latitude beyond the pole",
            node(
                &n(),
                json!({"location": {"latitude": 95.0, "longitude": 120.0}}),
            ),
            "should be less than or equal to 90",
        ),
        (
            "longitude out of range",
            node(
                &n(),
                json!({"location": {"latitude": 30.0, "longitude": -181.0}}),
            ),
            "should be greater than or equal to -180",
        ),
        (
            "caBundle with insecureSkipVerify",
            node(
                &n(),
                json!({"endpoint": {"caBundle": "-----BEGIN CERTIFICATE-----", "insecureSkipVerify": true}}),
            ),
            "set either caBundle or insecureSkipVerify",
        ),
        (
            "node name not a DNS label",
            node("shanghai.pudong", json!({})),
            "node name must be a DNS label",
        ),
        (
            "city missing",
            node(&n(), json!({"city": null})),
            "spec.city: Required value",
        ),
        (
            "memberNamespace without kubeconfig",
            node(&n(), json!({"catalog": {"memberNamespace": "catalog"}})),
            "memberNamespace is only used with catalog.kubeconfigSecretRef",
        ),
        (
            "catalog namespace not a DNS label",
            node(&n(), json!({"catalog": {"namespace": "DFN_Bad"}})),
            "catalog.namespace must be a DNS label",
        ),
        (
            "link to itself",
            link(&n(), json!({"from": "hangzhou", "to": "hangzhou"})),
            "from and to must differ",
        ),
        (
            "zero latency objective",
            link(&n(), json!({"latencySLOMillis": 0})),
            "should be greater than or equal to 1",
        ),
        (
            "link probe not a URL",
            link(&n(), json!({"probe": {"url": "not a url at all"}})),
            "probe.url must be an absolute http",
        ),
        (
            "hub-and-spoke without hubs",
            federation(&n(), json!({"topology": {"mode": "HubAndSpoke"}})),
            "needs at least one node name in topology.hubs",
        ),
        (
            "zero spoke uplinks",
            federation(
                &n(),
                json!({"topology": {"mode": "HubAndSpoke", "hubs": ["beijing"], "spokeUplinks": 0}}),
            ),
            "should be greater than or equal to 1",
        ),
        (
            "unknown topology mode",
            federation(&n(), json!({"topology": {"mode": "Ring"}})),
            "Unsupported value: \"Ring\"",
        ),
        (
            "duplicate hubs",
            federation(
                &n(),
                json!({"topology": {"mode": "HubAndSpoke", "hubs": ["beijing", "beijing"]}}),
            ),
            "Duplicate value",
        ),
        (
            "too many hubs",
            federation(
                &n(),
                json!({"topology": {"mode": "HubAndSpoke", "hubs": many_hubs}}),
            ),
            "Too many",
        ),
        (
            "coverage beyond 34 regions",
            federation(&n(), json!({"coverage": {"provincesTarget": 40}})),
            "should be less than or equal to 34",
        ),
        (
            "Selected without selector",
            product(&ns, &n(), json!({"visibility": {"scope": "Selected"}})),
            "visibility.scope Selected needs a visibility.nodeSelector",
        ),
        (
            "contract without reference",
            product(
                &ns,
                &n(),
                json!({"classification": "ImportantData", "crossBorder": {"mechanisms": [{"type": "StandardContract"}]}}),
            ),
            "spec.crossBorder.mechanisms[0].reference: Required value",
        ),
        (
            "personal data without subjects",
            product(&ns, &n(), json!({"classification": "PersonalInformation"})),
            "spec.subjects (individuals, sensitiveIndividuals) is required",
        ),
        (
            "exemption on non-personal data",
            product(
                &ns,
                &n(),
                json!({"classification": "ImportantData", "crossBorder": {"exemption": "Emergency"}}),
            ),
            "spec.crossBorder.exemption applies to personal information only",
        ),
        (
            "anonymization on non-personal data",
            product(
                &ns,
                &n(),
                json!({"classification": "Public", "anonymization": {"method": "k-anonymity", "assessmentReference": "A-1"}}),
            ),
            "spec.anonymization applies to personal information only",
        ),
        (
            "anonymization without evidence",
            product(
                &ns,
                &n(),
                json!({"classification": "PersonalInformation", "subjects": {"individuals": 5}, "anonymization": {"method": "hashing"}}),
            ),
            "spec.anonymization.assessmentReference: Required value",
        ),
        (
            "security assessment without dates",
            product(
                &ns,
                &n(),
                json!({"classification": "ImportantData", "crossBorder": {"mechanisms": [{"type": "SecurityAssessment", "reference": "SA-1"}]}}),
            ),
            "needs issuedAt and validUntil",
        ),
        (
            "certificate valid for 5 years",
            product(
                &ns,
                &n(),
                json!({"classification": "PersonalInformation", "subjects": {"individuals": 5}, "crossBorder": {"mechanisms": [{"type": "Certification", "reference": "PIC-1", "issuedAt": "2026-01-01T00:00:00Z", "validUntil": "2031-01-01T00:00:00Z"}]}}),
            ),
            "at most 3 years later",
        ),
        (
            "unknown exemption",
            product(
                &ns,
                &n(),
                json!({"classification": "PersonalInformation", "subjects": {"individuals": 5}, "crossBorder": {"exemption": "Research"}}),
            ),
            "Unsupported value: \"Research\"",
        ),
        (
            "recipient jurisdiction in lower case",
            product(
                &ns,
                &n(),
                json!({"classification": "ImportantData", "crossBorder": {"mechanisms": [{"type": "StandardContract", "reference": "SC-1", "recipients": {"jurisdictions": ["hk"]}}]}}),
            ),
            "recipients.jurisdictions must be two upper-case letters",
        ),
        (
            "core data everywhere",
            product(&ns, &n(), json!({"classification": "CoreData"})),
            "CoreData stays at its publishing node",
        ),
        (
            "core data abroad",
            product(
                &ns,
                &n(),
                json!({"classification": "CoreData", "visibility": {"scope": "Selected", "nodeSelector": {}}, "crossBorder": {"mechanisms": [{"type": "StandardContract", "reference": "X"}]}}),
            ),
            "CoreData never crosses a border",
        ),
        (
            "catalog in kube-system",
            node(&n(), json!({"catalog": {"namespace": "kube-system"}})),
            "catalog.namespace cannot be a system namespace",
        ),
        (
            "greater bay area in Shanghai",
            node(
                &n(),
                json!({"city": "Shanghai", "province": "CN-SH", "greaterBayArea": true, "endpoint": {"url": "https://gw.example/"}}),
            ),
            "greaterBayArea applies only to nodes in provinces CN-GD, CN-HK or CN-MO",
        ),
        (
            "processor credit code too short",
            processor(&n(), json!({"creditCode": "91310000"})),
            "spec.creditCode must be an 18-character unified social credit code",
        ),
        (
            "processor without a node",
            processor(&n(), json!({"node": null})),
            "spec.node: Required value",
        ),
        (
            "zone list outside its sectors",
            zone(
                &n(),
                json!({"negativeList": [{"sector": "health", "category": "records"}]}),
            ),
            "every negativeList item's sector must be one of spec.sectors",
        ),
        (
            "unknown classification",
            product(&ns, &n(), json!({"classification": "Secret"})),
            "Unsupported value: \"Secret\"",
        ),
        (
            "classification missing",
            product(&ns, &n(), json!({"classification": null})),
            "spec.classification: Required value",
        ),
        (
            "thousands of keywords",
            product(&ns, &n(), json!({"keywords": many_keywords})),
            "Too many",
        ),
        (
            "1 MB description",
            product(&ns, &n(), json!({"description": huge_description})),
            "Too long",
        ),
        (
            "script access URL",
            product(&ns, &n(), json!({"accessUrl": "javascript:alert(1)"})),
            "accessUrl must be an absolute http",
        ),
        (
            "validUntil not a time",
            product(
                &ns,
                &n(),
                json!({"classification": "ImportantData", "crossBorder": {"mechanisms": [{"type": "StandardContract", "reference": "X", "validUntil": "tomorrow"}]}}),
            ),
            "date-time",
        ),
    ];
    assert!(cases.len() >= 20);

    let mut failures = Vec::new();
    for (what, manifest, fragment) in &cases {
        match create(&client, manifest).await {
            Ok(()) => failures.push(format!(
                "{what}: accepted, expected rejection with {fragment:?}"
            )),
            Err(message) if !message.contains(fragment) => failures.push(format!(
                "{what}: rejected with {message:?}, expected {fragment:?}"
            )),
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn immutable_fields_cannot_change() {
    let client = client().await;
    let ns = product_namespace(&client).await;
    let link_name = unique("link");
    create(&client, &link(&link_name, json!({}))).await.unwrap();
    let links = dynamic_api(&client, "InterCityLink", None);
    let err = links
        .patch(
            &link_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"to": "suzhou"}})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("to is immutable"), "{err}");
    let err = links
        .patch(
            &link_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"from": "nanjing"}})),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("from is immutable"), "{err}");

    let product_name = unique("dp");
    create(&client, &product(&ns, &product_name, json!({})))
        .await
        .unwrap();
    let products = dynamic_api(&client, "DataProduct", Some(&ns));
    let err = products
        .patch(
            &product_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"classification": "ImportantData"}})),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("classification is immutable"),
        "{err}"
    );
    // Other fields stay editable.
    products
        .patch(
            &product_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"title": "Air quality v2"}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn valid_edge_cases_are_accepted_with_defaults_applied() {
    let client = client().await;
    let ns = product_namespace(&client).await;
    let ipv6 = unique("ipv6");
    let accepted = vec![
        node(
            &ipv6,
            json!({"endpoint": {"url": "https://[2001:db8::10]:8443/healthz"}}),
        ),
        node(
            &unique("tight-probe"),
            json!({"probe": {"intervalSeconds": 2, "timeoutSeconds": 1, "failureThreshold": 1}}),
        ),
        node(
            &unique("pole"),
            json!({"location": {"latitude": 90.0, "longitude": -180.0}}),
        ),
        node(
            &unique("hk"),
            json!({"city": "Hong Kong", "province": "CN-HK", "jurisdiction": "HK"}),
        ),
        node(
            &unique("macao"),
            json!({"city": "Macao", "province": "CN-MO", "jurisdiction": "MO"}),
        ),
        node(
            &unique("singapore"),
            json!({"city": "Singapore", "province": "SG-01", "jurisdiction": "SG"}),
        ),
        node(
            &unique("member"),
            json!({"catalog": {"kubeconfigSecretRef": {"namespace": "flowfed-system", "name": "kc", "key": "kubeconfig"}, "memberNamespace": "catalog"}}),
        ),
        link(
            &unique("to-nowhere"),
            json!({"to": "no-such-node", "probe": {"url": "http://[::1]:9/x"}}),
        ),
        federation(&unique("empty"), json!({})),
        federation(
            &unique("one-hub"),
            json!({"topology": {"mode": "HubAndSpoke", "hubs": ["beijing"], "spokeUplinks": 1}}),
        ),
        product(&ns, &unique("minimal"), json!({})),
        product(
            &ns,
            &unique("anonymized"),
            json!({"classification": "SensitivePersonalInformation", "subjects": {"individuals": 5000, "sensitiveIndividuals": 5000}, "anonymization": {"method": "k-anonymity (k=20)", "standard": "GB/T 42460-2023", "assessmentReference": "ANON-7"}}),
        ),
        product(
            &ns,
            &unique("many-keywords"),
            json!({"keywords": (0..64).map(|i| format!("k{i}")).collect::<Vec<_>>()}),
        ),
        product(
            &ns,
            &unique("core-local"),
            json!({"classification": "CoreData", "visibility": {"scope": "Selected", "nodeSelector": {"matchLabels": {"region": "jjj"}}}}),
        ),
        product(
            &ns,
            &unique("no-expiry"),
            json!({"classification": "PersonalInformation", "subjects": {"individuals": 1}, "crossBorder": {"mechanisms": [{"type": "StandardContract", "reference": "SC-1"}]}}),
        ),
        product(
            &ns,
            &unique("hr-sensitive"),
            json!({"classification": "SensitivePersonalInformation", "subjects": {"individuals": 20, "sensitiveIndividuals": 20}, "crossBorder": {"exemption": "HumanResources"}}),
        ),
        product(
            &ns,
            &unique("three-years"),
            json!({"classification": "ImportantData", "crossBorder": {"mechanisms": [{"type": "SecurityAssessment", "reference": "SA-1", "issuedAt": "2026-03-01T00:00:00Z", "validUntil": "2029-03-01T00:00:00Z", "recipients": {"jurisdictions": ["HK", "SG"]}}]}}),
        ),
        node(
            &unique("shenzhen"),
            json!({"city": "Shenzhen", "province": "CN-GD", "greaterBayArea": true, "freeTradeZone": "qianhai"}),
        ),
        processor(
            &unique("processor"),
            json!({"creditCode": "91310000MA1FL1234X", "criticalInformationInfrastructure": true, "outboundOutsideFlowfed": {"year": 2026, "individuals": 120000}}),
        ),
        zone(
            &unique("lingang"),
            json!({"sectors": ["finance", "shipping"], "negativeList": [{"sector": "finance", "category": "accounts"}]}),
        ),
    ];
    for manifest in &accepted {
        if let Err(message) = create(&client, manifest).await {
            panic!(
                "valid manifest {} rejected: {message}",
                manifest["metadata"]["name"]
            );
        }
    }

    let stored = Api::<DataFlowNode>::all(client.clone())
        .get(&ipv6)
        .await
        .unwrap();
    assert_eq!(
        stored.spec.jurisdiction, "CN",
        "jurisdiction defaults to CN"
    );
    assert_eq!(
        (
            stored.spec.probe.interval_seconds,
            stored.spec.probe.timeout_seconds,
            stored.spec.probe.failure_threshold
        ),
        (10, 3, 3)
    );
    assert_eq!(stored.home_namespace(), format!("dfn-{ipv6}"));
}

#[tokio::test]
async fn examples_apply_on_a_fresh_cluster() {
    let client = client().await;
    let plane = Plane::hub();
    // The products' namespaces exist first, so the dry run can judge the products.
    let namespaces = repo_root().join("examples/products/00-namespaces.yaml");
    let created = plane
        .kubectl(&["apply", "-f", namespaces.to_str().unwrap()])
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    for folder in ["examples/national", "examples/products"] {
        let path = repo_root().join(folder);
        let dry = plane
            .kubectl(&["apply", "--dry-run=server", "-f", path.to_str().unwrap()])
            .unwrap();
        assert!(
            dry.status.success(),
            "dry run of {folder}: {}",
            String::from_utf8_lossy(&dry.stderr)
        );
        let out = plane
            .kubectl(&["apply", "-f", path.to_str().unwrap()])
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl apply -f {folder}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let nodes = Api::<DataFlowNode>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let national: Vec<_> = nodes
        .items
        .iter()
        .filter(|n| n.spec.endpoint.url.starts_with("http://127.0.10."))
        .collect();
    let provinces: BTreeSet<_> = national.iter().map(|n| n.spec.province.as_str()).collect();
    let jurisdictions: BTreeSet<_> = national
        .iter()
        .map(|n| n.spec.jurisdiction.as_str())
        .collect();
    assert!(national.len() >= 25, "{} nodes", national.len());
    assert!(provinces.len() >= 16, "{} provinces", provinces.len());
    assert!(
        jurisdictions.is_superset(&BTreeSet::from(["CN", "HK", "MO"])),
        "{jurisdictions:?}"
    );
    assert!(national.iter().all(|n| n.spec.location.is_some()));
    assert!(
        !Api::<InterCityLink>::all(client.clone())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        Api::<Federation>::all(client.clone())
            .get_opt("national")
            .await
            .unwrap()
            .is_some()
    );

    let products = Api::<DataProduct>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let classes: BTreeSet<_> = products
        .items
        .iter()
        .map(|p| p.spec.classification)
        .collect();
    assert_eq!(
        classes.len(),
        5,
        "examples cover every classification: {classes:?}"
    );

    let listed = plane.kubectl(&["get", "flowfed", "-o", "name"]).unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for kind in ["dataflownode", "intercitylink", "federation"] {
        assert!(
            listed.contains(&format!("{kind}.flowfed.io/")),
            "kubectl get flowfed misses {kind}"
        );
    }
    let all_ns = plane
        .kubectl(&["get", "flowfed", "-A", "-o", "name"])
        .unwrap();
    assert!(String::from_utf8_lossy(&all_ns.stdout).contains("dataproduct.flowfed.io/"));
}

#[tokio::test]
async fn kubectl_explain_shows_the_field_docs() {
    client().await;
    let out = Plane::hub()
        .kubectl(&["explain", "dfn.spec.probe"])
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("Seconds between probes"), "{text}");
    assert!(text.contains("failureThreshold"), "{text}");
    let printed = Plane::hub().kubectl(&["get", "icl"]).unwrap();
    assert!(printed.status.success());
}
