//! Step 2, pure: where the product is listed and where the rules keep it from,
//! as a value. Everything the write and report steps do follows from it, and
//! tests assert on it without a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::facts::CatalogFacts;
use crate::api::Mechanism;
use crate::api::{BlockedTarget, CatalogEntrySpec, DataFlowNode, DataProduct};
use crate::catalog::{entry_name, listing};
use crate::policy::{self, Decision, NodeFacts, ProductFacts, Reason};

/// The listing a product should have right now.
#[derive(Clone, Debug)]
pub struct Plan {
    pub publisher: String,
    /// The entry's name, the same in every catalog.
    pub entry_name: String,
    /// The entry every target lists.
    pub entry: CatalogEntrySpec,
    /// Where the product is listed, in node order.
    pub targets: Vec<Arc<DataFlowNode>>,
    /// Where the rules keep it from, sorted (nodes outside its selector are not blocked: they were never asked for).
    pub blocked: Vec<BlockedTarget>,
    /// Hub entries the plan keeps, as (namespace, name).
    pub hub_keep: BTreeSet<(String, String)>,
    /// Nodes whose member cluster keeps the entry.
    pub member_keep: BTreeSet<String>,
    /// When a decision next changes by the clock alone (a mechanism expiring).
    pub next_change: Option<Timestamp>,
    /// Why each target may list the product, by node name.
    pub listed_because: BTreeMap<String, Because>,
}

/// Why a target may list the product: the visible reason and rule, and the
/// product's mechanisms (indexes into `spec.crossBorder.mechanisms`) in
/// force that allow a listing abroad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Because {
    pub reason: Reason,
    pub rule: u8,
    pub mechanisms: Vec<usize>,
}

impl Plan {
    /// The names of the target nodes, sorted.
    pub fn target_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.targets.iter().map(|t| t.name_any()).collect();
        names.sort();
        names
    }
}

/// The decision for every node, in node order: what the plan is made of, and
/// what `flowfed policy explain` prints.
pub fn decisions(facts: &CatalogFacts, now: Timestamp) -> Vec<(&Arc<DataFlowNode>, Decision)> {
    let context = policy::Context {
        processor: facts.processor.as_ref(),
        zones: &facts.zones,
    };
    facts
        .nodes
        .iter()
        .map(|(node, target)| {
            let decision =
                policy::visibility(&facts.product, &facts.publisher_facts, target, context, now);
            (node, decision)
        })
        .collect()
}

/// The plan for `product` given `facts`, at `now`.
pub fn plan(product: &DataProduct, facts: &CatalogFacts, now: Timestamp) -> Plan {
    let publisher = facts.publisher.name_any();
    let entry_name = entry_name(&publisher, &product.name_any());
    let mut targets = Vec::new();
    let mut blocked = Vec::new();
    let mut listed_because = BTreeMap::new();
    for ((node, decision), (_, target)) in decisions(facts, now).into_iter().zip(&facts.nodes) {
        match decision {
            Decision {
                visible: true,
                reason,
                rule,
                ..
            } => {
                let because = Because {
                    reason,
                    rule,
                    mechanisms: mechanisms_allowing(&facts.product, reason, target, now),
                };
                listed_because.insert(node.name_any(), because);
                targets.push(node.clone());
            }
            Decision {
                reason: Reason::NotSelected,
                ..
            } => {}
            Decision { reason, rule, .. } => blocked.push(BlockedTarget {
                node: node.name_any(),
                reason: reason.as_str().to_owned(),
                rule: i32::from(rule),
            }),
        }
    }
    blocked.sort();
    let mut hub_keep = BTreeSet::new();
    let mut member_keep = BTreeSet::new();
    for target in &targets {
        match &target.spec.catalog.kubeconfig_secret_ref {
            None => hub_keep.insert((target.home_namespace(), entry_name.clone())),
            Some(_) => member_keep.insert(target.name_any()),
        };
    }
    Plan {
        entry: listing(product, &publisher),
        publisher,
        entry_name,
        targets,
        blocked,
        hub_keep,
        member_keep,
        next_change: policy::next_change(&facts.product, facts.declared_year, now),
        listed_because,
    }
}

/// The product's mechanisms in force that name `target`, when `reason` is a
/// listing abroad under a mechanism.
fn mechanisms_allowing(
    product: &ProductFacts,
    reason: Reason,
    target: &NodeFacts,
    now: Timestamp,
) -> Vec<usize> {
    let accepted = |kind: Mechanism| match reason {
        Reason::SecurityAssessment => kind == Mechanism::SecurityAssessment,
        Reason::Mechanism | Reason::MacaoMechanism => true,
        _ => false,
    };
    product
        .mechanisms
        .iter()
        .enumerate()
        .filter(|(_, m)| accepted(m.kind) && m.covers(target))
        .filter(|(_, m)| m.expires().is_none_or(|until| now < until))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::facts::{Unplannable, gather};
    use super::super::fixtures::{around, node, product};
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn blocked(plan: &Plan) -> Vec<(&str, &str, i32)> {
        plan.blocked
            .iter()
            .map(|b| (b.node.as_str(), b.reason.as_str(), b.rule))
            .collect()
    }

    #[test]
    fn a_public_product_is_listed_everywhere_in_hub_or_member_catalogs() {
        let nodes = vec![
            node("beijing", "CN", None),
            node("hongkong", "HK", Some("hk-kubeconfig")),
            node("shanghai", "CN", None),
        ];
        let product = product(
            "dfn-beijing",
            "weather",
            serde_json::json!({"classification": "Public"}),
        );
        let plan = plan(
            &product,
            &gather(&product, around(&nodes, at(0))).unwrap(),
            at(0),
        );
        assert_eq!(plan.publisher, "beijing");
        assert_eq!(plan.entry_name, "beijing.weather");
        assert_eq!(plan.target_names(), ["beijing", "hongkong", "shanghai"]);
        assert!(plan.blocked.is_empty());
        let hub: Vec<_> = plan.hub_keep.iter().map(|(ns, _)| ns.as_str()).collect();
        assert_eq!(hub, ["dfn-beijing", "dfn-shanghai"]);
        assert_eq!(plan.member_keep.iter().collect::<Vec<_>>(), ["hongkong"]);
        assert_eq!(plan.entry.product.node, "beijing");
    }

    #[test]
    fn important_data_without_a_mechanism_is_blocked_abroad_only() {
        let nodes = vec![
            node("shenzhen", "CN", None),
            node("guangzhou", "CN", None),
            node("macao", "MO", None),
        ];
        let product = product(
            "dfn-shenzhen",
            "grid",
            serde_json::json!({"classification": "ImportantData"}),
        );
        let plan = plan(
            &product,
            &gather(&product, around(&nodes, at(0))).unwrap(),
            at(0),
        );
        assert_eq!(plan.target_names(), ["guangzhou", "shenzhen"]);
        assert_eq!(blocked(&plan), [("macao", "NoCrossBorderMechanism", 12)]);
        assert_eq!(plan.next_change, None);
    }

    #[test]
    fn a_mechanism_lists_abroad_until_it_expires_and_the_plan_says_when() {
        let nodes = vec![node("shanghai", "CN", None), node("hongkong", "HK", None)];
        let product = product(
            "dfn-shanghai",
            "trades",
            serde_json::json!({
                "classification": "ImportantData",
                "crossBorder": {"mechanisms": [{
                    "type": "SecurityAssessment", "reference": "SA-1",
                    "issuedAt": "1970-01-01T00:00:00Z", "validUntil": "1970-01-01T00:01:40Z",
                }]},
            }),
        );
        let facts = gather(&product, around(&nodes, at(0))).unwrap();
        let before = plan(&product, &facts, at(99));
        assert_eq!(before.target_names(), ["hongkong", "shanghai"]);
        assert_eq!(before.next_change, Some(at(100)));
        let after = plan(&product, &facts, at(100));
        assert_eq!(after.target_names(), ["shanghai"]);
        assert_eq!(blocked(&after), [("hongkong", "MechanismExpired", 15)]);
        assert_eq!(after.next_change, None);
    }

    #[test]
    fn nodes_outside_the_selector_are_neither_targets_nor_blocked() {
        let mut nodes = vec![node("chengdu", "CN", None), node("chongqing", "CN", None)];
        Arc::make_mut(&mut nodes[1])
            .metadata
            .labels
            .get_or_insert_default()
            .insert("tier".into(), "core".into());
        let product = product(
            "dfn-chengdu",
            "grid",
            serde_json::json!({
                "classification": "Public",
                "visibility": {"scope": "Selected", "nodeSelector": {"matchLabels": {"tier": "edge"}}},
            }),
        );
        let plan = plan(
            &product,
            &gather(&product, around(&nodes, at(0))).unwrap(),
            at(0),
        );
        assert_eq!(plan.target_names(), ["chengdu"]);
        assert!(plan.blocked.is_empty());
    }

    #[test]
    fn a_product_outside_every_home_namespace_cannot_be_planned() {
        let nodes = vec![node("beijing", "CN", None)];
        let product = product(
            "default",
            "stray",
            serde_json::json!({"classification": "Public"}),
        );
        let Err(Unplannable::NoPublisher(problem)) = gather(&product, around(&nodes, at(0))) else {
            panic!("a product in no home namespace has no publisher");
        };
        assert_eq!(problem.reason, "NoPublisherNode");
    }

    #[test]
    fn a_namespace_claimed_by_two_nodes_names_both() {
        let mut nodes = vec![node("a", "CN", None), node("b", "CN", None)];
        for n in &mut nodes {
            Arc::make_mut(n).spec.catalog.namespace = Some("shared".into());
        }
        let product = product(
            "shared",
            "p",
            serde_json::json!({"classification": "Public"}),
        );
        let Err(Unplannable::NoPublisher(problem)) = gather(&product, around(&nodes, at(0))) else {
            panic!("two claimants make no publisher");
        };
        assert_eq!(problem.reason, "AmbiguousPublisherNode");
        assert!(problem.message.contains("a, b"), "{}", problem.message);
    }
}
