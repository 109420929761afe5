//! Bad input never panics: property-generated documents are fed to every type
//! and pure decision the reconcilers use (spec round trips, node status,
//! product facts, the policy, entry naming, kubeconfig checking).

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::api::{DataFlowNode, DataProduct, FederationSpec, InterCityLinkSpec};
use crate::catalog::kubeconfig::check_kubeconfig;
use crate::catalog::{entry_name, listing};
use crate::policy::{node_facts, product_facts, visibility};
use crate::probe::node_status::{desired_status as node_status, needs_write as needs_node_write};
use crate::probe::{FailureKind, Health, ProbeOutcome};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        prop::sample::select(vec![
            "CN-HK",
            "HK",
            "CN",
            "Selected",
            "CoreData",
            "SecurityAssessment",
            "GBAStandardContract",
            "PersonalInformation",
            "HubAndSpoke",
            "http://127.0.0.1:1/",
            "2026-01-01T00:00:00Z"
        ])
        .prop_map(Value::from),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "city",
                    "province",
                    "jurisdiction",
                    "endpoint",
                    "url",
                    "probe",
                    "intervalSeconds",
                    "catalog",
                    "namespace",
                    "kubeconfigSecretRef",
                    "location",
                    "latitude",
                    "longitude",
                    "title",
                    "classification",
                    "anonymization",
                    "method",
                    "assessmentReference",
                    "processor",
                    "subjects",
                    "individuals",
                    "sensitiveIndividuals",
                    "sector",
                    "dataCategories",
                    "greaterBayArea",
                    "freeTradeZone",
                    "visibility",
                    "scope",
                    "nodeSelector",
                    "matchLabels",
                    "matchExpressions",
                    "crossBorder",
                    "exemption",
                    "mechanisms",
                    "type",
                    "reference",
                    "issuedAt",
                    "validUntil",
                    "recipients",
                    "jurisdictions",
                    "from",
                    "to",
                    "topology",
                    "mode",
                    "hubs",
                    "keywords",
                ])
                .prop_map(String::from),
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug>(
    value: &Value,
) -> Result<(), TestCaseError> {
    if let Ok(parsed) = serde_json::from_value::<T>(value.clone()) {
        let again: T = serde_json::from_value(serde_json::to_value(&parsed).unwrap()).unwrap();
        prop_assert_eq!(parsed, again);
    }
    Ok(())
}

/// A valid spec of `kind` with the generated document's fields laid over it,
/// so most cases parse and reach the decisions with odd but typed values.
fn overlaid(kind: &str, overlay: Value) -> Value {
    let mut spec = match kind {
        "DataFlowNode" => {
            json!({"city": "c", "province": "CN-SH", "endpoint": {"url": "http://127.0.0.1:1/"}})
        }
        _ => json!({"title": "t", "classification": "Public"}),
    };
    if let (Some(base), Value::Object(extra)) = (spec.as_object_mut(), overlay) {
        base.extend(extra);
    }
    spec
}

fn object(kind: &str, namespace: Option<&str>, overlay: Value) -> Value {
    let spec = overlaid(kind, overlay);
    json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": kind,
        "metadata": {"name": "x", "namespace": namespace, "uid": "u", "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"region": "a"}},
        "spec": spec,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_specs_round_trip(spec in document()) {
        round_trips::<InterCityLinkSpec>(&spec)?;
        round_trips::<FederationSpec>(&spec)?;
        round_trips::<crate::api::DataFlowNodeSpec>(&spec)?;
        round_trips::<crate::api::DataProductSpec>(&spec)?;
    }

    #[test]
    fn node_decisions_never_panic(spec in document(), failures in 0u32..10, rtt in proptest::option::of(0u64..100_000)) {
        // Rejected cases count: if too few generated specs parse, proptest fails
        // instead of passing without exercising anything.
        let node = serde_json::from_value::<DataFlowNode>(object("DataFlowNode", None, spec));
        prop_assume!(node.is_ok());
        if let Ok(node) = node {
            let mut health = Health::default();
            for _ in 0..failures {
                health.observe(&ProbeOutcome::Failure { kind: FailureKind::Timeout, message: "late".into() }, 3, std::time::Duration::from_secs(1));
            }
            if let Some(ms) = rtt {
                health.observe(&ProbeOutcome::Success { rtt: std::time::Duration::from_millis(ms), status: 200 }, 3, std::time::Duration::from_secs(1));
            }
            let status = node_status(&node, &health, std::time::Duration::from_secs(1), k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
            needs_node_write(node.status.as_ref(), &status);
            let _ = node.home_namespace();
        }
    }

    #[test]
    fn product_decisions_never_panic(spec in document(), publisher_spec in document(), target_spec in document()) {
        let product = serde_json::from_value::<DataProduct>(object("DataProduct", Some("dfn-x"), spec));
        let publisher = serde_json::from_value::<DataFlowNode>(object("DataFlowNode", None, publisher_spec));
        let target = serde_json::from_value::<DataFlowNode>(object("DataFlowNode", None, target_spec));
        prop_assume!(product.is_ok() && publisher.is_ok() && target.is_ok());
        if let (Ok(product), Ok(publisher), Ok(target)) = (product, publisher, target) {
            let entry = listing(&product, "x");
            prop_assert_eq!(entry.content_hash.len(), 32);
            prop_assert!(entry_name("x", &product.metadata.name.clone().unwrap_or_default()).len() <= 253);
            if let Ok(facts) = product_facts(&product) {
                let context = crate::policy::Context::default();
                visibility(&facts, &node_facts(&publisher), &node_facts(&target), context, k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
            }
        }
    }

    #[test]
    fn kubeconfig_checking_never_panics(text in ".{0,400}", document in document()) {
        let _ = check_kubeconfig(&text, false);
        let _ = check_kubeconfig(&serde_json::to_string(&document).unwrap(), true);
    }
}
