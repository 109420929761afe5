//! Table tests name the rule of docs/policy.md each case exercises; property
//! tests compare the table with an independent brute-force formulation of it
//! (a product is visible exactly when some row allows it), and check what must
//! hold for every product: a stricter product is never visible in more places,
//! adding a product never loosens its processor's tier, and no total depends
//! on the order of products or nodes.

use proptest::prelude::*;

use super::*;
use Classification::*;
use Mechanism::*;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

/// 2027-01-15 in UTC.
const NOW: i64 = 1_800_000_000;

fn node(name: &str, jurisdiction: &str) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        jurisdiction: jurisdiction.into(),
        labels: BTreeMap::from([("region".into(), name.into())]),
        ..NodeFacts::default()
    }
}

fn gba(mut node: NodeFacts) -> NodeFacts {
    node.greater_bay_area = true;
    node
}

fn in_zone(mut node: NodeFacts, zone: &str) -> NodeFacts {
    node.free_trade_zone = Some(zone.into());
    node
}

fn product(classification: Classification) -> ProductFacts {
    ProductFacts {
        classification,
        processor: Some("acme".into()),
        subjects: (10, 0),
        ..ProductFacts::default()
    }
}

fn with(mut product: ProductFacts, mechanisms: Vec<MechanismFacts>) -> ProductFacts {
    product.mechanisms = mechanisms;
    product
}

/// A mechanism valid from a year ago until `until` (seconds).
fn mechanism(kind: Mechanism, until: i64) -> MechanismFacts {
    MechanismFacts {
        kind,
        issued_at: Some(at(NOW - 365 * 86_400)),
        valid_until: Some(at(until)),
        recipients: None,
    }
}

fn to(mut mechanism: MechanismFacts, jurisdictions: &[&str]) -> MechanismFacts {
    mechanism.recipients = Some(RecipientFacts {
        jurisdictions: jurisdictions.iter().map(|j| j.to_string()).collect(),
        selector: None,
    });
    mechanism
}

fn processor(tier: ProcessorTier) -> ProcessorFacts {
    ProcessorFacts {
        name: "acme".into(),
        node: "shanghai".into(),
        critical_information_infrastructure: false,
        free_trade_zone: None,
        tier,
    }
}

fn lingang() -> ZoneFacts {
    ZoneFacts {
        name: "lingang".into(),
        sectors: ["finance".to_owned(), "shipping".to_owned()].into(),
        negative_list: [("finance".to_owned(), "accounts".to_owned())].into(),
    }
}

struct Case {
    name: &'static str,
    product: ProductFacts,
    publisher: NodeFacts,
    target: NodeFacts,
    processor: Option<ProcessorFacts>,
    expect: (bool, Reason, u8),
}

fn case(
    name: &'static str,
    product: ProductFacts,
    (publisher, target): (&NodeFacts, &NodeFacts),
    processor: Option<ProcessorFacts>,
    expect: (bool, Reason, u8),
) -> Case {
    Case {
        name,
        product,
        publisher: publisher.clone(),
        target: target.clone(),
        processor,
        expect,
    }
}

#[test]
fn the_rules_table() {
    use ProcessorTier::{ContractOrCertification, Exempt};
    use Reason as R;
    let future = NOW + 86_400;
    let shanghai = node("shanghai", "CN");
    let beijing = node("beijing", "CN");
    let hong_kong = node("hongkong", "HK");
    let macao = node("macao", "MO");
    let singapore = node("singapore", "SG");
    let nowhere = node("nowhere", "");
    let shenzhen = gba(node("shanghai", "CN"));
    let gba_hk = gba(node("hongkong", "HK"));
    let gba_mo = gba(node("macao", "MO"));
    let gba_zhuhai = gba(node("zhuhai", "CN"));
    let lingang_node = in_zone(node("shanghai", "CN"), "lingang");
    let mut in_lingang = processor(ContractOrCertification);
    in_lingang.free_trade_zone = Some("lingang".into());
    let mut cii = processor(ProcessorTier::SecurityAssessment);
    cii.critical_information_infrastructure = true;
    let mut finance = product(PersonalInformation);
    finance.sector = Some("finance".into());
    finance.data_categories = ["transactions".to_owned()].into();
    let mut accounts = finance.clone();
    accounts.data_categories = ["accounts".to_owned()].into();
    let mut anonymized = product(SensitivePersonalInformation);
    anonymized.anonymized = true;
    let mut selected = product(Public);
    selected.selected = Some(LabelQuery(vec![Requirement::Equals(
        "region".into(),
        "beijing".into(),
    )]));
    let mut exempt_sensitive = product(SensitivePersonalInformation);
    exempt_sensitive.exemption = Some(Exemption::HumanResources);
    let mut unnamed = product(PersonalInformation);
    unnamed.processor = None;
    let contract = |tier| Some(processor(tier));

    let cases = vec![
        case(
            "rule 1: own node lists even core data",
            product(CoreData),
            (&shanghai, &shanghai),
            None,
            (true, R::OwnNode, 1),
        ),
        case(
            "rule 2: outside the selector",
            selected.clone(),
            (&shanghai, &hong_kong),
            None,
            (false, R::NotSelected, 2),
        ),
        case(
            "rule 2: inside the selector",
            selected,
            (&shanghai, &beijing),
            None,
            (true, R::SameJurisdiction, 5),
        ),
        case(
            "rule 3: core data stays, even at home",
            product(CoreData),
            (&shanghai, &beijing),
            None,
            (false, R::CoreDataStaysAtPublisher, 3),
        ),
        case(
            "rule 4: unknown jurisdiction",
            product(Public),
            (&shanghai, &nowhere),
            None,
            (false, R::UnknownJurisdiction, 4),
        ),
        case(
            "rule 5: same jurisdiction",
            product(ImportantData),
            (&shanghai, &beijing),
            None,
            (true, R::SameJurisdiction, 5),
        ),
        case(
            "rule 6: public data crosses",
            product(Public),
            (&shanghai, &singapore),
            None,
            (true, R::PublicData, 6),
        ),
        case(
            "rule 7: anonymized personal data crosses",
            anonymized,
            (&shanghai, &hong_kong),
            None,
            (true, R::Anonymized, 7),
        ),
        case(
            "rule 8: Hong Kong has no transfer gate",
            product(SensitivePersonalInformation),
            (&hong_kong, &shanghai),
            None,
            (true, R::NoTransferGate, 8),
        ),
        case(
            "rule 8: no Hong Kong regime for important data",
            product(ImportantData),
            (&hong_kong, &macao),
            None,
            (false, R::NoRegimeForClassification, 8),
        ),
        case(
            "rule 9: Macao needs a notification",
            product(PersonalInformation),
            (&macao, &shanghai),
            None,
            (false, R::NoCrossBorderMechanism, 9),
        ),
        case(
            "rule 9: a DSPDP notification",
            with(
                product(PersonalInformation),
                vec![mechanism(MacaoNotification, future)],
            ),
            (&macao, &hong_kong),
            None,
            (true, R::MacaoMechanism, 9),
        ),
        case(
            "rule 9: a GBA contract from Macao to a mainland GBA node",
            with(
                product(PersonalInformation),
                vec![mechanism(GBAStandardContract, future)],
            ),
            (&gba_mo, &gba_zhuhai),
            None,
            (true, R::MacaoMechanism, 9),
        ),
        case(
            "rule 9: a GBA contract does not reach outside the GBA",
            with(
                product(PersonalInformation),
                vec![mechanism(GBAStandardContract, future)],
            ),
            (&gba_mo, &beijing),
            None,
            (false, R::NoCrossBorderMechanism, 9),
        ),
        case(
            "rule 9: no Macao regime for important data",
            product(ImportantData),
            (&macao, &shanghai),
            None,
            (false, R::NoRegimeForClassification, 9),
        ),
        case(
            "rule 10: no regime for another publisher",
            product(PersonalInformation),
            (&singapore, &shanghai),
            None,
            (false, R::NoRegimeForPublisher, 10),
        ),
        case(
            "rule 11: off the Lingang negative list",
            finance.clone(),
            (&lingang_node, &singapore),
            Some(in_lingang.clone()),
            (true, R::OffNegativeList, 11),
        ),
        case(
            "rule 11: on the negative list falls through to the tier",
            accounts,
            (&lingang_node, &singapore),
            Some(in_lingang.clone()),
            (false, R::NoCrossBorderMechanism, 14),
        ),
        case(
            "rule 11: a CII processor gains nothing from the zone",
            finance,
            (&lingang_node, &singapore),
            Some({
                let mut p = cii.clone();
                p.free_trade_zone = Some("lingang".into());
                p
            }),
            (false, R::NoCrossBorderMechanism, 14),
        ),
        case(
            "rule 12: important data under a security assessment",
            with(
                product(ImportantData),
                vec![mechanism(SecurityAssessment, future)],
            ),
            (&shanghai, &singapore),
            None,
            (true, R::SecurityAssessment, 12),
        ),
        case(
            "rule 12: important data without a mechanism",
            product(ImportantData),
            (&shanghai, &singapore),
            None,
            (false, R::NoCrossBorderMechanism, 12),
        ),
        case(
            "rule 12: a contract is not enough for important data",
            with(
                product(ImportantData),
                vec![mechanism(StandardContract, future)],
            ),
            (&shanghai, &singapore),
            None,
            (false, R::MechanismNotSufficient, 12),
        ),
        case(
            "rule 13: an HR exemption covers sensitive data",
            exempt_sensitive,
            (&shanghai, &singapore),
            contract(ProcessorTier::SecurityAssessment),
            (true, R::Exempted, 13),
        ),
        case(
            "rule 14: no processor",
            unnamed,
            (&shanghai, &singapore),
            None,
            (false, R::NoProcessor, 14),
        ),
        case(
            "rule 14: below every threshold",
            product(PersonalInformation),
            (&shanghai, &singapore),
            contract(Exempt),
            (true, R::BelowThresholds, 14),
        ),
        case(
            "rule 14: over 100,000 a standard contract",
            with(
                product(PersonalInformation),
                vec![mechanism(StandardContract, future)],
            ),
            (&shanghai, &singapore),
            contract(ContractOrCertification),
            (true, R::Mechanism, 14),
        ),
        case(
            "rule 14: over 100,000 and no mechanism",
            product(PersonalInformation),
            (&shanghai, &singapore),
            contract(ContractOrCertification),
            (false, R::NoCrossBorderMechanism, 14),
        ),
        case(
            "rule 14: over 1,000,000 a contract is not enough",
            with(
                product(PersonalInformation),
                vec![mechanism(StandardContract, future)],
            ),
            (&shanghai, &singapore),
            contract(ProcessorTier::SecurityAssessment),
            (false, R::VolumeRequiresSecurityAssessment, 14),
        ),
        case(
            "rule 14: a CII operator under a security assessment",
            with(
                product(PersonalInformation),
                vec![mechanism(SecurityAssessment, future)],
            ),
            (&shanghai, &singapore),
            Some(cii.clone()),
            (true, R::Mechanism, 14),
        ),
        case(
            "rule 14: a GBA contract from Shenzhen to Hong Kong",
            with(
                product(PersonalInformation),
                vec![mechanism(GBAStandardContract, future)],
            ),
            (&shenzhen, &gba_hk),
            contract(ProcessorTier::SecurityAssessment),
            (true, R::Mechanism, 14),
        ),
        case(
            "rule 14: a GBA contract does not stand for a CII operator",
            with(
                product(PersonalInformation),
                vec![mechanism(GBAStandardContract, future)],
            ),
            (&shenzhen, &gba_hk),
            Some({
                let mut p = cii.clone();
                p.node = "shanghai".into();
                p
            }),
            (false, R::VolumeRequiresSecurityAssessment, 14),
        ),
        case(
            "rule 14: a GBA contract outside the GBA",
            with(
                product(PersonalInformation),
                vec![mechanism(GBAStandardContract, future)],
            ),
            (&shanghai, &hong_kong),
            contract(ContractOrCertification),
            (false, R::NotInGreaterBayArea, 14),
        ),
        case(
            "rule 14: a Macao notification is no mainland mechanism",
            with(
                product(PersonalInformation),
                vec![mechanism(MacaoNotification, future)],
            ),
            (&shanghai, &singapore),
            contract(ContractOrCertification),
            (false, R::MechanismNotSufficient, 14),
        ),
        case(
            "rule 15: an expired contract",
            with(
                product(PersonalInformation),
                vec![mechanism(StandardContract, NOW)],
            ),
            (&shanghai, &singapore),
            contract(ContractOrCertification),
            (false, R::MechanismExpired, 15),
        ),
        case(
            "rule 15: a filing that names other recipients",
            with(
                product(PersonalInformation),
                vec![to(mechanism(StandardContract, future), &["HK"])],
            ),
            (&shanghai, &singapore),
            contract(ContractOrCertification),
            (false, R::RecipientNotCovered, 15),
        ),
        case(
            "rule 15: a filing that names the recipient",
            with(
                product(PersonalInformation),
                vec![to(mechanism(StandardContract, future), &["SG"])],
            ),
            (&shanghai, &singapore),
            contract(ContractOrCertification),
            (true, R::Mechanism, 14),
        ),
        case(
            "rule 15: an assessment lasts 3 years whatever it claims",
            with(
                product(ImportantData),
                vec![MechanismFacts {
                    issued_at: Some(at(NOW - 4 * 365 * 86_400)),
                    ..mechanism(SecurityAssessment, future)
                }],
            ),
            (&shanghai, &singapore),
            None,
            (false, R::MechanismExpired, 15),
        ),
    ];
    let zones = [lingang()];
    for c in cases {
        let context = Context {
            processor: c.processor.as_ref(),
            zones: &zones,
        };
        let decision = visibility(&c.product, &c.publisher, &c.target, context, at(NOW));
        assert_eq!(
            (decision.visible, decision.reason, decision.rule),
            c.expect,
            "{}",
            c.name
        );
        assert!(!decision.citation.is_empty(), "{}: a citation", c.name);
    }
}

#[test]
fn every_blocked_reason_is_reached_by_a_table_case_name() {
    let source = include_str!("tests.rs");
    for reason in Reason::BLOCKED {
        assert!(
            source.contains(&format!("R::{}", reason.as_str())),
            "no table case for {}",
            reason.as_str()
        );
    }
}

#[test]
fn volume_thresholds_follow_articles_7_and_8() {
    use ProcessorTier::*;
    let totals = |individuals, sensitive| Totals {
        year: 2027,
        individuals,
        sensitive_individuals: sensitive,
    };
    assert_eq!(tier(&totals(99_999, 0), false), Exempt);
    assert_eq!(tier(&totals(100_000, 0), false), ContractOrCertification);
    assert_eq!(tier(&totals(0, 1), false), ContractOrCertification);
    assert_eq!(
        tier(&totals(999_999, 9_999), false),
        ContractOrCertification
    );
    assert_eq!(tier(&totals(1_000_000, 0), false), SecurityAssessment);
    assert_eq!(tier(&totals(0, 10_000), false), SecurityAssessment);
    assert_eq!(tier(&totals(0, 0), true), SecurityAssessment, "CII");
}

#[test]
fn totals_count_this_years_declared_figures_and_products_that_reach_abroad() {
    let shanghai = node("shanghai", "CN");
    let nodes = [
        shanghai.clone(),
        node("beijing", "CN"),
        node("hongkong", "HK"),
    ];
    let mut abroad = product(PersonalInformation);
    abroad.subjects = (60_000, 2);
    let mut home_only = product(PersonalInformation);
    home_only.subjects = (500_000, 0);
    home_only.selected = Some(LabelQuery(vec![Requirement::Equals(
        "region".into(),
        "beijing".into(),
    )]));
    let mut someone_elses = product(PersonalInformation);
    someone_elses.processor = Some("other".into());
    let products = [
        (&abroad, &shanghai),
        (&home_only, &shanghai),
        (&someone_elses, &shanghai),
    ];
    let declared = |year| {
        Some(Declared {
            year,
            individuals: 50_000,
            sensitive_individuals: 0,
        })
    };
    let now = at(NOW);
    let this_year = totals("acme", declared(2027), products, &nodes, now);
    assert_eq!(
        (
            this_year.year,
            this_year.individuals,
            this_year.sensitive_individuals
        ),
        (2027, 110_000, 2)
    );
    let last_year = totals("acme", declared(2026), products, &nodes, now);
    assert_eq!(
        last_year.individuals, 60_000,
        "last year's figures do not count"
    );
}

#[test]
fn the_year_turns_at_midnight_china_standard_time() {
    // 2026-12-31T16:00:00Z is 2027-01-01T00:00:00+08:00.
    let turn: Timestamp = "2026-12-31T16:00:00Z".parse().unwrap();
    let before = turn - k8s_openapi::jiff::SignedDuration::from_secs(1);
    assert_eq!(year_of(before), 2026);
    assert_eq!(year_of(turn), 2027);
    assert_eq!(next_year_start(before), turn);
    let facts = product(PersonalInformation);
    assert_eq!(next_change(&facts, Some(2026), before), Some(turn));
    assert_eq!(
        next_change(&facts, Some(2025), before),
        None,
        "nothing to expire"
    );
}

#[test]
fn next_change_is_the_nearest_expiry_still_ahead() {
    let facts = with(
        product(PersonalInformation),
        vec![
            mechanism(StandardContract, NOW + 50),
            mechanism(Certification, NOW + 10),
            mechanism(StandardContract, NOW - 10),
        ],
    );
    assert_eq!(next_change(&facts, None, at(NOW)), Some(at(NOW + 10)));
    assert_eq!(next_change(&facts, None, at(NOW + 10)), Some(at(NOW + 50)));
    assert_eq!(next_change(&facts, None, at(NOW + 50)), None);
}

// Property tests.

const JURISDICTIONS: [&str; 5] = ["CN", "HK", "MO", "SG", "cn"];

fn node_facts_strategy(name: &'static str) -> impl Strategy<Value = NodeFacts> {
    node_in(name, JURISDICTIONS.to_vec())
}

/// Publishers are mostly on the mainland, where most of the table lives.
fn publisher_strategy() -> impl Strategy<Value = NodeFacts> {
    node_in(
        "publisher",
        vec!["CN", "CN", "CN", "CN", "HK", "MO", "SG", "cn"],
    )
}

fn node_in(
    name: &'static str,
    jurisdictions: Vec<&'static str>,
) -> impl Strategy<Value = NodeFacts> {
    (
        prop::sample::select(jurisdictions),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec!["east", "south"]),
    )
        .prop_map(move |(jurisdiction, gba, zone, region)| NodeFacts {
            name: name.into(),
            jurisdiction: jurisdiction.into(),
            labels: BTreeMap::from([("region".into(), region.into())]),
            greater_bay_area: gba,
            free_trade_zone: zone.then(|| "lingang".into()),
        })
}

fn mechanism_strategy() -> impl Strategy<Value = MechanismFacts> {
    (
        prop::sample::select(vec![
            SecurityAssessment,
            Certification,
            StandardContract,
            GBAStandardContract,
            MacaoNotification,
            MacaoAuthorization,
        ]),
        -3i64..3,
        prop::option::of(prop::sample::subsequence(JURISDICTIONS.to_vec(), 0..3)),
    )
        .prop_map(|(kind, until, recipients)| MechanismFacts {
            kind,
            issued_at: Some(at(NOW - 86_400)),
            valid_until: Some(at(NOW + until * 1000)),
            recipients: recipients.map(|j| RecipientFacts {
                jurisdictions: j.into_iter().map(String::from).collect(),
                selector: None,
            }),
        })
}

fn product_strategy() -> impl Strategy<Value = ProductFacts> {
    (
        prop::sample::select(Classification::ALL.to_vec()),
        prop::bool::weighted(0.2),
        prop::option::of(prop::sample::select(vec!["east", "south"])),
        prop::bool::weighted(0.8),
        prop::option::of(prop::sample::select(vec!["finance", "health"])),
        prop::option::weighted(
            0.2,
            prop::sample::select(vec![Exemption::ContractPerformance, Exemption::Emergency]),
        ),
        prop::collection::vec(mechanism_strategy(), 0..4),
        (0u64..2_000_000, 0u64..20_000),
    )
        .prop_map(
            |(
                classification,
                anonymized,
                region,
                named,
                sector,
                exemption,
                mechanisms,
                subjects,
            )| {
                ProductFacts {
                    classification,
                    anonymized,
                    selected: region
                        .map(|r| LabelQuery(vec![Requirement::Equals("region".into(), r.into())])),
                    processor: named.then(|| "acme".into()),
                    subjects,
                    sector: sector.map(String::from),
                    data_categories: ["accounts".to_owned()].into(),
                    exemption,
                    mechanisms,
                }
            },
        )
}

fn processor_strategy() -> impl Strategy<Value = ProcessorFacts> {
    (
        prop::sample::select(vec![
            ProcessorTier::Exempt,
            ProcessorTier::ContractOrCertification,
            ProcessorTier::SecurityAssessment,
        ]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(tier, cii, zone)| ProcessorFacts {
            name: "acme".into(),
            node: "publisher".into(),
            critical_information_infrastructure: cii,
            free_trade_zone: zone.then(|| "lingang".into()),
            tier: if cii {
                ProcessorTier::SecurityAssessment
            } else {
                tier
            },
        })
}

/// The table restated as one formula: visible exactly when some row allows
/// it, written from docs/policy.md without the rules module's structure.
fn brute_force(
    p: &ProductFacts,
    from: &NodeFacts,
    t: &NodeFacts,
    processor: Option<&ProcessorFacts>,
    zones: &[ZoneFacts],
    now: Timestamp,
) -> bool {
    let valid = |code: &str| code.len() == 2 && code.chars().all(|c| c.is_ascii_uppercase());
    let personal = matches!(
        p.classification,
        PersonalInformation | SensitivePersonalInformation
    );
    let in_force = |m: &MechanismFacts| {
        let cap = m.issued_at.map(volume::three_years_after);
        let until = match (m.valid_until, cap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        until.is_none_or(|u| now < u)
            && m.recipients.as_ref().is_none_or(|r| {
                r.jurisdictions.is_empty() || r.jurisdictions.contains(&t.jurisdiction)
            })
    };
    let has = |kinds: &[Mechanism]| {
        p.mechanisms
            .iter()
            .any(|m| kinds.contains(&m.kind) && in_force(m))
    };
    let own_processor =
        processor.filter(|x| x.node == from.name && Some(&x.name) == p.processor.as_ref());
    let zone_ok = own_processor.is_some_and(|x| {
        !x.critical_information_infrastructure
            && from.free_trade_zone.is_some()
            && x.free_trade_zone == from.free_trade_zone
            && zones.iter().any(|z| {
                Some(&z.name) == from.free_trade_zone.as_ref()
                    && p.sector.as_ref().is_some_and(|s| {
                        z.sectors.contains(s)
                            && p.data_categories
                                .iter()
                                .all(|c| !z.negative_list.contains(&(s.clone(), c.clone())))
                    })
            })
    });
    let both_gba = from.greater_bay_area && t.greater_bay_area;
    let cn_personal = own_processor.is_some_and(|x| match x.tier {
        ProcessorTier::Exempt => true,
        ProcessorTier::ContractOrCertification => {
            has(&[SecurityAssessment, Certification, StandardContract])
                || (both_gba
                    && ["HK", "MO"].contains(&t.jurisdiction.as_str())
                    && has(&[GBAStandardContract]))
        }
        ProcessorTier::SecurityAssessment => {
            has(&[SecurityAssessment])
                || (!x.critical_information_infrastructure
                    && both_gba
                    && ["HK", "MO"].contains(&t.jurisdiction.as_str())
                    && has(&[GBAStandardContract]))
        }
    });
    t.name == from.name
        || (p.selected.as_ref().is_none_or(|q| q.matches(&t.labels))
            && p.classification != CoreData
            && valid(&t.jurisdiction)
            && valid(&from.jurisdiction)
            && (t.jurisdiction == from.jurisdiction
                || p.classification == Public
                || (personal && p.anonymized)
                || (from.jurisdiction == "HK" && personal)
                || (from.jurisdiction == "MO"
                    && personal
                    && (has(&[MacaoNotification, MacaoAuthorization])
                        || (both_gba && t.jurisdiction == "CN" && has(&[GBAStandardContract]))))
                || (from.jurisdiction == "CN"
                    && (zone_ok
                        || (p.classification == ImportantData && has(&[SecurityAssessment]))
                        || (personal && p.exemption.is_some())
                        || (personal && cn_personal)))))
}

fn strictness(c: Classification) -> u8 {
    match c {
        Public => 0,
        PersonalInformation | SensitivePersonalInformation => 1,
        ImportantData => 2,
        CoreData => 3,
    }
}

fn tier_rank(t: ProcessorTier) -> u8 {
    t as u8
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_table_agrees_with_the_brute_force_formulation(
        p in product_strategy(),
        publisher in publisher_strategy(),
        target in node_facts_strategy("target"),
        processor in prop::option::weighted(0.9, processor_strategy()),
    ) {
        let zones = [lingang()];
        let context = Context { processor: processor.as_ref(), zones: &zones };
        let decision = visibility(&p, &publisher, &target, context, at(NOW));
        let expected = brute_force(&p, &publisher, &target, processor.as_ref(), &zones, at(NOW));
        prop_assert_eq!(decision.visible, expected, "{:?}", decision);
        prop_assert_eq!(!decision.visible, Reason::BLOCKED.contains(&decision.reason));
    }

    #[test]
    fn a_stricter_product_is_never_visible_in_more_places(
        p in product_strategy(),
        publisher in publisher_strategy(),
        targets in prop::collection::vec(node_facts_strategy("target"), 1..6),
        processor in processor_strategy(),
        stricter in prop::sample::select(Classification::ALL.to_vec()),
        drop in 0usize..4,
        raise_tier in any::<bool>(),
    ) {
        // Personal data without its processor never leaves (rule 14) while
        // important data needs none (rule 12): compare products that name theirs.
        let mut p = p;
        p.processor = Some(processor.name.clone());
        let zones = [lingang()];
        let mut strict = p.clone();
        if strictness(stricter) >= strictness(p.classification) {
            strict.classification = stricter;
        }
        if drop < strict.mechanisms.len() {
            strict.mechanisms.remove(drop);
        }
        let mut strict_processor = processor.clone();
        if raise_tier {
            strict_processor.tier = ProcessorTier::SecurityAssessment;
        }
        prop_assume!(tier_rank(strict_processor.tier) >= tier_rank(processor.tier));
        let loose = Context { processor: Some(&processor), zones: &zones };
        let tight = Context { processor: Some(&strict_processor), zones: &zones };
        for (i, target) in targets.iter().enumerate() {
            let mut target = target.clone();
            target.name = format!("target-{i}");
            let before = visibility(&p, &publisher, &target, loose, at(NOW)).visible;
            let after = visibility(&strict, &publisher, &target, tight, at(NOW)).visible;
            prop_assert!(before || !after, "stricter became visible at {}", target.name);
        }
    }

    #[test]
    fn adding_a_product_never_loosens_its_processors_tier(
        products in prop::collection::vec(product_strategy(), 0..8),
        extra in product_strategy(),
        nodes in prop::collection::vec(node_facts_strategy("node"), 1..5),
        cii in any::<bool>(),
    ) {
        let publisher = node("publisher", "CN");
        let now = at(NOW);
        let before = totals("acme", None, products.iter().map(|p| (p, &publisher)), &nodes, now);
        let after = totals(
            "acme",
            None,
            products.iter().chain([&extra]).map(|p| (p, &publisher)),
            &nodes,
            now,
        );
        prop_assert!(after.individuals >= before.individuals);
        prop_assert!(after.sensitive_individuals >= before.sensitive_individuals);
        prop_assert!(tier_rank(tier(&after, cii)) >= tier_rank(tier(&before, cii)));
    }

    #[test]
    fn totals_do_not_depend_on_product_or_node_order(
        mut products in prop::collection::vec(product_strategy(), 0..8),
        mut nodes in prop::collection::vec(node_facts_strategy("node"), 1..5),
        rotate in any::<prop::sample::Index>(),
    ) {
        let publisher = node("publisher", "CN");
        let now = at(NOW);
        let forward = totals("acme", None, products.iter().map(|p| (p, &publisher)), &nodes, now);
        if !products.is_empty() {
            let k = rotate.index(products.len());
            products.rotate_left(k);
        }
        products.reverse();
        nodes.reverse();
        let backward = totals("acme", None, products.iter().map(|p| (p, &publisher)), &nodes, now);
        prop_assert_eq!(forward, backward);
    }
}
