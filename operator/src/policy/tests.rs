//! Table tests name the rule of docs/policy.md each case exercises; property
//! tests check what must hold for every product: stricter products are never
//! visible in more places, node order does not matter, and a mechanism's
//! expiry withdraws exactly at `validUntil`.

use proptest::prelude::*;

use super::*;
use Classification::{PersonalInformation, Public};

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

const NOW: i64 = 1_800_000_000;

fn node(name: &str, jurisdiction: &str) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        jurisdiction: jurisdiction.into(),
        labels: BTreeMap::from([("region".into(), name.into())]),
    }
}

fn product(classification: Classification) -> ProductFacts {
    ProductFacts {
        classification,
        anonymized: false,
        selected: None,
        cross_border: None,
    }
}

fn with(mechanism: Mechanism, valid_until: Option<i64>) -> Option<CrossBorderFacts> {
    Some(CrossBorderFacts {
        mechanism,
        has_reference: true,
        has_exemption_reason: true,
        valid_until: valid_until.map(at),
    })
}

#[test]
fn the_rules_table() {
    use BlockReason::*;
    use Classification::{CoreData, ImportantData, SensitivePersonalInformation};
    use Decision::*;
    let shanghai = node("shanghai", "CN");
    let beijing = node("beijing", "CN");
    let hong_kong = node("hong-kong", "HK");
    let nowhere = node("nowhere", "");
    let future = Some(NOW + 86_400);
    let past = Some(NOW - 1);

    let cases: Vec<(&str, ProductFacts, &NodeFacts, Decision)> = vec![
        (
            "rule 1: own node lists even core data",
            product(CoreData),
            &shanghai,
            Visible,
        ),
        (
            "rule 3: same jurisdiction, personal info",
            product(PersonalInformation),
            &beijing,
            Visible,
        ),
        (
            "rule 3: same jurisdiction, important data",
            product(ImportantData),
            &beijing,
            Visible,
        ),
        (
            "rule 3: same jurisdiction, sensitive info",
            product(SensitivePersonalInformation),
            &beijing,
            Visible,
        ),
        (
            "rule 3: core data stays home",
            product(CoreData),
            &beijing,
            Blocked(CoreDataStaysAtPublisher),
        ),
        (
            "rule 4: public crosses",
            product(Public),
            &hong_kong,
            Visible,
        ),
        (
            "rule 4: personal info needs a mechanism",
            product(PersonalInformation),
            &hong_kong,
            Blocked(NoCrossBorderMechanism),
        ),
        (
            "rule 4: anonymized personal info crosses",
            ProductFacts {
                anonymized: true,
                ..product(PersonalInformation)
            },
            &hong_kong,
            Visible,
        ),
        (
            "rule 4: anonymized sensitive info crosses",
            ProductFacts {
                anonymized: true,
                ..product(SensitivePersonalInformation)
            },
            &hong_kong,
            Visible,
        ),
        (
            "rule 4: anonymization does not lift important data",
            ProductFacts {
                anonymized: true,
                ..product(ImportantData)
            },
            &hong_kong,
            Blocked(NoCrossBorderMechanism),
        ),
        (
            "rule 4: anonymization does not lift core data",
            ProductFacts {
                anonymized: true,
                ..product(CoreData)
            },
            &hong_kong,
            Blocked(CoreDataStaysAtPublisher),
        ),
        (
            "rule 4: standard contract for personal info",
            ProductFacts {
                cross_border: with(Mechanism::StandardContract, future),
                ..product(PersonalInformation)
            },
            &hong_kong,
            Visible,
        ),
        (
            "rule 4: certification for sensitive info",
            ProductFacts {
                cross_border: with(Mechanism::Certification, None),
                ..product(SensitivePersonalInformation)
            },
            &hong_kong,
            Visible,
        ),
        (
            "rule 4: assessment for sensitive info",
            ProductFacts {
                cross_border: with(Mechanism::SecurityAssessment, future),
                ..product(SensitivePersonalInformation)
            },
            &hong_kong,
            Visible,
        ),
        (
            "rule 4: exemption for personal info",
            ProductFacts {
                cross_border: with(Mechanism::Exempt, None),
                ..product(PersonalInformation)
            },
            &hong_kong,
            Visible,
        ),
        (
            "rule 4: no exemption for sensitive info",
            ProductFacts {
                cross_border: with(Mechanism::Exempt, None),
                ..product(SensitivePersonalInformation)
            },
            &hong_kong,
            Blocked(MechanismNotSufficient),
        ),
        (
            "rule 4: exemption needs its reason",
            ProductFacts {
                cross_border: Some(CrossBorderFacts {
                    mechanism: Mechanism::Exempt,
                    has_reference: false,
                    has_exemption_reason: false,
                    valid_until: None,
                }),
                ..product(PersonalInformation)
            },
            &hong_kong,
            Blocked(MechanismIncomplete),
        ),
        (
            "rule 4: a contract needs its reference",
            ProductFacts {
                cross_border: Some(CrossBorderFacts {
                    mechanism: Mechanism::StandardContract,
                    has_reference: false,
                    has_exemption_reason: false,
                    valid_until: None,
                }),
                ..product(PersonalInformation)
            },
            &hong_kong,
            Blocked(MechanismIncomplete),
        ),
        (
            "rule 4: important data under assessment",
            ProductFacts {
                cross_border: with(Mechanism::SecurityAssessment, future),
                ..product(ImportantData)
            },
            &hong_kong,
            Visible,
        ),
        (
            "rule 4: important data not under certification",
            ProductFacts {
                cross_border: with(Mechanism::Certification, future),
                ..product(ImportantData)
            },
            &hong_kong,
            Blocked(MechanismNotSufficient),
        ),
        (
            "rule 4: important data not under contract",
            ProductFacts {
                cross_border: with(Mechanism::StandardContract, future),
                ..product(ImportantData)
            },
            &hong_kong,
            Blocked(MechanismNotSufficient),
        ),
        (
            "rule 4: core data never crosses",
            ProductFacts {
                cross_border: with(Mechanism::SecurityAssessment, future),
                ..product(CoreData)
            },
            &hong_kong,
            Blocked(CoreDataStaysAtPublisher),
        ),
        (
            "rule 4: expired contract",
            ProductFacts {
                cross_border: with(Mechanism::StandardContract, past),
                ..product(PersonalInformation)
            },
            &hong_kong,
            Blocked(MechanismExpired),
        ),
        (
            "rule 4: expired assessment",
            ProductFacts {
                cross_border: with(Mechanism::SecurityAssessment, past),
                ..product(ImportantData)
            },
            &hong_kong,
            Blocked(MechanismExpired),
        ),
        (
            "rule 3: an expired mechanism does not matter at home",
            ProductFacts {
                cross_border: with(Mechanism::StandardContract, past),
                ..product(PersonalInformation)
            },
            &beijing,
            Visible,
        ),
        (
            "rule 2: selected scope excludes others",
            ProductFacts {
                selected: Some(LabelQuery(vec![Requirement::Equals(
                    "region".into(),
                    "beijing".into(),
                )])),
                ..product(Public)
            },
            &hong_kong,
            Blocked(NotSelected),
        ),
        (
            "rule 2: selected scope includes matches",
            ProductFacts {
                selected: Some(LabelQuery(vec![Requirement::Equals(
                    "region".into(),
                    "beijing".into(),
                )])),
                ..product(Public)
            },
            &beijing,
            Visible,
        ),
        (
            "rule 2: selection does not override the border",
            ProductFacts {
                selected: Some(LabelQuery::default()),
                ..product(SensitivePersonalInformation)
            },
            &hong_kong,
            Blocked(NoCrossBorderMechanism),
        ),
        (
            "deny by default: unknown jurisdiction",
            product(Public),
            &nowhere,
            Blocked(UnknownJurisdiction),
        ),
    ];
    for (rule, facts, target, expected) in cases {
        assert_eq!(
            visibility(&facts, &shanghai, target, at(NOW)),
            expected,
            "{rule}"
        );
    }
}

#[test]
fn macao_and_hong_kong_are_separate_jurisdictions() {
    let hk = node("hong-kong", "HK");
    let mo = node("macao", "MO");
    assert_eq!(
        visibility(&product(PersonalInformation), &hk, &mo, at(NOW)),
        Decision::Blocked(BlockReason::NoCrossBorderMechanism)
    );
}

#[test]
fn next_change_is_the_expiry_while_it_is_ahead() {
    let p = ProductFacts {
        cross_border: with(Mechanism::StandardContract, Some(NOW + 10)),
        ..product(PersonalInformation)
    };
    assert_eq!(next_change(&p, at(NOW)), Some(at(NOW + 10)));
    assert_eq!(next_change(&p, at(NOW + 10)), None);
    assert_eq!(next_change(&product(Public), at(NOW)), None);
}

fn classification() -> impl Strategy<Value = Classification> {
    prop::sample::select(Classification::ALL.to_vec())
}

fn mechanism() -> impl Strategy<Value = Mechanism> {
    prop::sample::select(vec![
        Mechanism::SecurityAssessment,
        Mechanism::Certification,
        Mechanism::StandardContract,
        Mechanism::Exempt,
    ])
}

fn product_facts() -> impl Strategy<Value = ProductFacts> {
    (
        classification(),
        any::<bool>(),
        proptest::option::of(prop::collection::vec("[a-c]", 0..3)),
        proptest::option::of((
            mechanism(),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(-100i64..100),
        )),
    )
        .prop_map(
            |(classification, anonymized, regions, basis)| ProductFacts {
                classification,
                anonymized,
                selected: regions.map(|r| {
                    LabelQuery(vec![Requirement::In(
                        "region".into(),
                        r.into_iter().collect(),
                    )])
                }),
                cross_border: basis.map(
                    |(mechanism, has_reference, has_exemption_reason, until)| CrossBorderFacts {
                        mechanism,
                        has_reference,
                        has_exemption_reason,
                        valid_until: until.map(|d| at(NOW + d)),
                    },
                ),
            },
        )
}

fn nodes() -> impl Strategy<Value = Vec<NodeFacts>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["CN", "HK", "MO", "SG", ""]),
            "[a-c]",
        ),
        1..12,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (jurisdiction, region))| NodeFacts {
                name: format!("n{i}"),
                jurisdiction: jurisdiction.into(),
                labels: BTreeMap::from([("region".into(), region)]),
            })
            .collect()
    })
}

fn visible_set(product: &ProductFacts, nodes: &[NodeFacts], now: Timestamp) -> Vec<String> {
    let mut names: Vec<String> = nodes
        .iter()
        .filter(|n| visibility(product, &nodes[0], n, now) == Decision::Visible)
        .map(|n| n.name.clone())
        .collect();
    names.sort();
    names
}

fn strictness(c: Classification) -> u8 {
    Classification::ALL.iter().position(|x| *x == c).unwrap() as u8
}

proptest! {
    #[test]
    fn a_stricter_product_is_never_visible_in_more_places(p in product_facts(), nodes in nodes(), stricter in classification(), drop_anonymized in any::<bool>(), drop_basis in any::<bool>()) {
        prop_assume!(strictness(stricter) >= strictness(p.classification));
        let strict = ProductFacts {
            classification: stricter,
            anonymized: p.anonymized && !drop_anonymized,
            cross_border: if drop_basis { None } else { p.cross_border.clone() },
            ..p.clone()
        };
        let loose = visible_set(&p, &nodes, at(NOW));
        let tight = visible_set(&strict, &nodes, at(NOW));
        prop_assert!(tight.iter().all(|n| loose.contains(n)), "{tight:?} not within {loose:?}");
    }

    #[test]
    fn the_result_does_not_depend_on_node_order(p in product_facts(), mut nodes in nodes(), rotate in any::<prop::sample::Index>()) {
        let publisher = nodes[0].clone();
        let decide = |nodes: &[NodeFacts]| {
            let mut d: Vec<(String, Decision)> = nodes.iter().map(|n| (n.name.clone(), visibility(&p, &publisher, n, at(NOW)))).collect();
            d.sort_by(|a, b| a.0.cmp(&b.0));
            d
        };
        let before = decide(&nodes);
        let k = rotate.index(nodes.len());
        nodes.rotate_left(k);
        prop_assert_eq!(before, decide(&nodes));
    }

    #[test]
    fn expiry_withdraws_exactly_at_valid_until(p in product_facts(), nodes in nodes()) {
        let Some(until) = p.cross_border.as_ref().and_then(|b| b.valid_until) else { return Ok(()) };
        let just_before = until.checked_sub(k8s_openapi::jiff::SignedDuration::from_nanos(1)).unwrap();
        let before = visible_set(&p, &nodes, just_before);
        let after = visible_set(&p, &nodes, until);
        prop_assert!(after.iter().all(|n| before.contains(n)));
        for name in before.iter().filter(|n| !after.contains(n)) {
            let target = nodes.iter().find(|n| &n.name == name).unwrap();
            prop_assert_eq!(visibility(&p, &nodes[0], target, until), Decision::Blocked(BlockReason::MechanismExpired));
        }
        // Nothing changes again after the expiry.
        prop_assert_eq!(after, visible_set(&p, &nodes, until.checked_add(k8s_openapi::jiff::SignedDuration::from_hours(24 * 365)).unwrap()));
    }
}
