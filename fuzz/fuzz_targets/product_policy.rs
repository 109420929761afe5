//! Fuzzes the catalog's decisions from a product spec as a user could apply it
//! (any JSON the types accept): product facts, the visibility policy at nodes
//! in and across jurisdictions, the expiry clock, and the entry it lists.
//! Nothing panics, and every decision keeps the rules of docs/policy.md.

#![no_main]

use flowfed::api::{Classification, DataProduct};
use flowfed::catalog::{content_hash, entry_name, listing};
use flowfed::policy::{BlockReason, Decision, NodeFacts, next_change, product_facts, visibility};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use libfuzzer_sys::fuzz_target;

fn node(name: &str, jurisdiction: &str, labels: &[(&str, &str)]) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        jurisdiction: jurisdiction.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    let Ok(product) = serde_json::from_value::<DataProduct>(serde_json::json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": "fuzzed", "namespace": "dfn-shanghai", "uid": "u-1",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
    })) else {
        return;
    };
    let Ok(facts) = product_facts(&product) else {
        return;
    };
    let publisher = node("shanghai", "CN", &[("region", "east"), ("zone", "lingang")]);
    let targets = [
        node("beijing", "CN", &[("region", "north")]),
        node("suzhou", "CN", &[("region", "east")]),
        node("hongkong", "HK", &[("region", "gba")]),
        node("macao", "MO", &[("region", "gba")]),
        node("singapore", "SG", &[]),
        node("nowhere", "cn", &[("region", "east")]),
    ];
    let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
    let later = now + SignedDuration::from_hours(24 * 365 * 10);

    assert_eq!(
        visibility(&facts, &publisher, &publisher, now),
        Decision::Visible,
        "a product is always listed at its own node"
    );
    let change = next_change(&facts, now);
    assert!(change.is_none_or(|at| at > now));
    for target in &targets {
        let decision = visibility(&facts, &publisher, target, now);
        if decision != Decision::Visible {
            continue;
        }
        assert_ne!(
            facts.classification,
            Classification::CoreData,
            "core data left its node"
        );
        if let Some(query) = &facts.selected {
            assert!(
                query.matches(&target.labels),
                "listed at an unselected node"
            );
        }
        assert_eq!(target.jurisdiction.len(), 2);
        let abroad = target.jurisdiction != publisher.jurisdiction;
        let personal = matches!(
            facts.classification,
            Classification::PersonalInformation | Classification::SensitivePersonalInformation
        );
        if abroad
            && facts.classification != Classification::Public
            && !(facts.anonymized && personal)
        {
            let basis = facts
                .cross_border
                .as_ref()
                .expect("crossed without a mechanism");
            assert!(
                basis.valid_until.is_none_or(|until| until > now),
                "crossed on an expired mechanism"
            );
            // The clock alone can only take it away at its expiry.
            match visibility(&facts, &publisher, target, later) {
                Decision::Visible => assert!(basis.valid_until.is_none_or(|until| until > later)),
                Decision::Blocked(reason) => {
                    assert_eq!(reason, BlockReason::MechanismExpired);
                    assert!(change.is_some_and(|at| at <= later));
                }
            }
        }
    }

    let entry = listing(&product, &publisher.name);
    assert_eq!(entry.content_hash, content_hash(&entry));
    assert_eq!(entry.classification, facts.classification);
    assert!(entry_name(&publisher.name, "fuzzed").len() <= 253);
});
