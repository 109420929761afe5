//! Fuzzes the catalog's decisions from a product spec as a user could apply it
//! (any JSON the types accept): product facts, the visibility policy at nodes
//! in and across jurisdictions, the expiry clock, and the entry it lists.
//! Nothing panics, and every decision keeps the rules of docs/policy.md.

#![no_main]

use flowfed::api::{Classification, DataProduct, ProcessorTier};
use flowfed::catalog::{content_hash, entry_name, listing};
use flowfed::policy::{
    Context, NodeFacts, ProcessorFacts, Reason, ZoneFacts, next_change, product_facts, visibility,
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use libfuzzer_sys::fuzz_target;

fn node(name: &str, jurisdiction: &str, gba: bool, labels: &[(&str, &str)]) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        jurisdiction: jurisdiction.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        greater_bay_area: gba,
        free_trade_zone: Some("lingang".into()),
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    let Ok(product) = serde_json::from_value::<DataProduct>(serde_json::json!({
        "apiVersion": "flowfed.io/v1alpha1", "kind": "DataProduct",
        "metadata": {"name": "fuzzed", "namespace": "dfn-shenzhen", "uid": "u-1",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
    })) else {
        return;
    };
    let Ok(facts) = product_facts(&product) else {
        return;
    };
    let publisher = node("shenzhen", "CN", true, &[("region", "south")]);
    let targets = [
        node("beijing", "CN", false, &[("region", "north")]),
        node("guangzhou", "CN", true, &[("region", "south")]),
        node("hongkong", "HK", true, &[("region", "gba")]),
        node("macao", "MO", true, &[("region", "gba")]),
        node("singapore", "SG", false, &[]),
        node("nowhere", "cn", false, &[("region", "south")]),
    ];
    let zones = [ZoneFacts {
        name: "lingang".into(),
        sectors: ["finance".to_owned()].into(),
        negative_list: [("finance".to_owned(), "accounts".to_owned())].into(),
    }];
    let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
    let later = now + SignedDuration::from_hours(24 * 365 * 10);
    let change = next_change(&facts, None, now);
    assert!(change.is_none_or(|at| at > now));

    for tier in [
        ProcessorTier::Exempt,
        ProcessorTier::ContractOrCertification,
        ProcessorTier::SecurityAssessment,
    ] {
        let processor = ProcessorFacts {
            name: facts.processor.clone().unwrap_or_default(),
            node: "shenzhen".into(),
            critical_information_infrastructure: tier == ProcessorTier::SecurityAssessment,
            free_trade_zone: Some("lingang".into()),
            tier,
        };
        let context = Context {
            processor: Some(&processor),
            zones: &zones,
        };
        let own = visibility(&facts, &publisher, &publisher, context, now);
        assert!(
            own.visible && own.rule == 1,
            "a product is always listed at its own node"
        );
        for target in &targets {
            let decision = visibility(&facts, &publisher, target, context, now);
            assert!(decision.rule >= 1 && decision.rule <= 15);
            assert_eq!(
                !decision.visible,
                Reason::BLOCKED.contains(&decision.reason),
                "visible decisions carry a visible reason: {decision:?}"
            );
            if !decision.visible {
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
            // The clock alone takes a listing away only at an expiry it announced.
            let afterwards = visibility(&facts, &publisher, target, context, later);
            if !afterwards.visible {
                assert_eq!(afterwards.reason, Reason::MechanismExpired);
                assert!(change.is_some_and(|at| at <= later));
            }
        }
    }

    let entry = listing(&product, &publisher.name);
    assert_eq!(entry.content_hash, content_hash(&entry));
    assert_eq!(entry.classification, facts.classification);
    assert!(entry_name(&publisher.name, "fuzzed").len() <= 253);
});
