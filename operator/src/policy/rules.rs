//! The rule table of docs/policy.md, first match decides. Each function below
//! is one row or a group of rows; `visibility` walks them in order.

use k8s_openapi::jiff::Timestamp;

use super::{
    Classification, Context, Decision, MechanismFacts, NodeFacts, ProcessorTier, ProductFacts,
    Reason, ZoneFacts,
};
use crate::api::Mechanism;

/// A decision by rule `rule`.
fn decide(visible: bool, reason: Reason, rule: u8, citation: &'static str) -> Decision {
    Decision {
        visible,
        reason,
        rule,
        citation,
    }
}

fn is_jurisdiction(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// May `product`, published at `publisher`, be listed at `target` at `now`?
pub fn visibility(
    product: &ProductFacts,
    publisher: &NodeFacts,
    target: &NodeFacts,
    context: Context,
    now: Timestamp,
) -> Decision {
    use Classification::*;
    if target.name == publisher.name {
        return decide(true, Reason::OwnNode, 1, "the publishing node");
    }
    if product
        .selected
        .as_ref()
        .is_some_and(|q| !q.matches(&target.labels))
    {
        return decide(false, Reason::NotSelected, 2, "spec.visibility");
    }
    if product.classification == CoreData {
        let citation = "network policy: core data stays at its node";
        return decide(false, Reason::CoreDataStaysAtPublisher, 3, citation);
    }
    if !is_jurisdiction(&target.jurisdiction) || !is_jurisdiction(&publisher.jurisdiction) {
        return decide(false, Reason::UnknownJurisdiction, 4, "deny by default");
    }
    if target.jurisdiction == publisher.jurisdiction {
        return decide(true, Reason::SameJurisdiction, 5, "no border crossed");
    }
    if product.classification == Public {
        return decide(true, Reason::PublicData, 6, "PIPL Art 4, DSL Art 21");
    }
    if product.is_personal() && product.anonymized {
        return decide(true, Reason::Anonymized, 7, "PIPL Art 4, Art 73(4)");
    }
    match publisher.jurisdiction.as_str() {
        "HK" => from_hong_kong(product),
        "MO" => from_macao(product, publisher, target, now),
        "CN" => from_mainland(product, publisher, target, context, now),
        _ => decide(false, Reason::NoRegimeForPublisher, 10, "deny by default"),
    }
}

/// Rule 8: Hong Kong has no statutory transfer gate in force (PDPO s.33).
fn from_hong_kong(product: &ProductFacts) -> Decision {
    if product.is_personal() {
        decide(true, Reason::NoTransferGate, 8, "PDPO s.33 not in force")
    } else {
        no_regime_for_important_data(8)
    }
}

/// Important data from Hong Kong or Macao: no regime to apply, so it stays.
fn no_regime_for_important_data(rule: u8) -> Decision {
    let citation = "no regime for important data outside the mainland";
    decide(false, Reason::NoRegimeForClassification, rule, citation)
}

/// Rule 9: Macao's Law 8/2005 Art 19-20 (a notification or authorization), or
/// a GBA standard contract to a mainland GBA node.
fn from_macao(
    product: &ProductFacts,
    publisher: &NodeFacts,
    target: &NodeFacts,
    now: Timestamp,
) -> Decision {
    if !product.is_personal() {
        return no_regime_for_important_data(9);
    }
    let gba = publisher.greater_bay_area && target.greater_bay_area && target.jurisdiction == "CN";
    let accepted = |kind| match kind {
        Mechanism::MacaoNotification | Mechanism::MacaoAuthorization => true,
        Mechanism::GBAStandardContract => gba,
        _ => false,
    };
    match mechanism_outcome(product, target, now, accepted) {
        Outcome::Covered => decide(
            true,
            Reason::MacaoMechanism,
            9,
            "Macao Law 8/2005 Art 19-20",
        ),
        Outcome::Expired => decide(false, Reason::MechanismExpired, 15, "Law 8/2005 Art 20"),
        Outcome::NotCovering => decide(false, Reason::RecipientNotCovered, 15, "Law 8/2005 Art 20"),
        Outcome::None | Outcome::WrongKind => {
            let citation = "Macao Law 8/2005 Art 20";
            decide(false, Reason::NoCrossBorderMechanism, 9, citation)
        }
    }
}

/// Rules 11-14 (and 15) for a mainland publisher.
fn from_mainland(
    product: &ProductFacts,
    publisher: &NodeFacts,
    target: &NodeFacts,
    context: Context,
    now: Timestamp,
) -> Decision {
    if off_negative_list(product, publisher, context) {
        let citation = "Provisions Art 6 (free trade zone negative list)";
        return decide(true, Reason::OffNegativeList, 11, citation);
    }
    if product.classification == Classification::ImportantData {
        return important_data(product, target, now);
    }
    if product.exemption.is_some() {
        return decide(true, Reason::Exempted, 13, "Provisions Art 4, Art 5(1)-(3)");
    }
    let Some(processor) = context
        .processor
        .filter(|p| p.node == publisher.name && Some(&p.name) == product.processor.as_ref())
    else {
        return decide(
            false,
            Reason::NoProcessor,
            14,
            "PIPL Art 38: a processor transfers",
        );
    };
    personal_by_tier(product, publisher, target, processor, now)
}

/// Rule 11: the publisher and its processor are in the same existing zone,
/// the processor is not CII, the product's sector is one the zone covers, and
/// none of its categories is on the zone's list for that sector.
fn off_negative_list(product: &ProductFacts, publisher: &NodeFacts, context: Context) -> bool {
    let Some(processor) = context.processor else {
        return false;
    };
    let Some(zone_name) = publisher.free_trade_zone.as_ref() else {
        return false;
    };
    let zone: Option<&ZoneFacts> = context.zones.iter().find(|z| &z.name == zone_name);
    let (Some(zone), Some(sector)) = (zone, product.sector.as_ref()) else {
        return false;
    };
    processor.free_trade_zone.as_ref() == Some(zone_name)
        && processor.node == publisher.name
        && product.processor.as_ref() == Some(&processor.name)
        && !processor.critical_information_infrastructure
        && zone.sectors.contains(sector)
        && !product
            .data_categories
            .iter()
            .any(|c| zone.negative_list.contains(&(sector.clone(), c.clone())))
}

/// Rule 12: important data leaves only under a security assessment.
fn important_data(product: &ProductFacts, target: &NodeFacts, now: Timestamp) -> Decision {
    let citation = "DSL Art 31, Provisions Art 7";
    let accepted = |kind| kind == Mechanism::SecurityAssessment;
    match mechanism_outcome(product, target, now, accepted) {
        Outcome::Covered => decide(true, Reason::SecurityAssessment, 12, citation),
        Outcome::Expired => decide(false, Reason::MechanismExpired, 15, citation),
        Outcome::NotCovering => decide(false, Reason::RecipientNotCovered, 15, citation),
        Outcome::None => decide(false, Reason::NoCrossBorderMechanism, 12, citation),
        Outcome::WrongKind => decide(false, Reason::MechanismNotSufficient, 12, citation),
    }
}

/// Rule 14: personal data by its processor's tier (Provisions Art 5(4), 7, 8),
/// and the GBA standard contract between GBA nodes.
fn personal_by_tier(
    product: &ProductFacts,
    publisher: &NodeFacts,
    target: &NodeFacts,
    processor: &super::ProcessorFacts,
    now: Timestamp,
) -> Decision {
    let tier = processor.tier;
    if tier == ProcessorTier::Exempt {
        return decide(true, Reason::BelowThresholds, 14, "Provisions Art 5(4)");
    }
    let gba = publisher.greater_bay_area
        && target.greater_bay_area
        && matches!(target.jurisdiction.as_str(), "HK" | "MO");
    let gba_stands = gba && !processor.critical_information_infrastructure;
    let accepted = |kind| match kind {
        Mechanism::SecurityAssessment => true,
        Mechanism::Certification | Mechanism::StandardContract => {
            tier == ProcessorTier::ContractOrCertification
        }
        Mechanism::GBAStandardContract => gba_stands,
        Mechanism::MacaoNotification | Mechanism::MacaoAuthorization => false,
    };
    let citation = match tier {
        ProcessorTier::SecurityAssessment => "PIPL Art 38, 40; Provisions Art 7",
        _ => "PIPL Art 38; Provisions Art 8",
    };
    match mechanism_outcome(product, target, now, accepted) {
        Outcome::Covered => decide(true, Reason::Mechanism, 14, citation),
        Outcome::Expired => decide(false, Reason::MechanismExpired, 15, citation),
        Outcome::NotCovering => decide(false, Reason::RecipientNotCovered, 15, citation),
        Outcome::None => decide(false, Reason::NoCrossBorderMechanism, 14, citation),
        Outcome::WrongKind => {
            let kinds = || product.mechanisms.iter().map(|m| m.kind);
            let reason = if kinds().any(|k| k == Mechanism::GBAStandardContract) && !gba {
                Reason::NotInGreaterBayArea
            } else if tier == ProcessorTier::SecurityAssessment
                && kinds().any(|k| {
                    matches!(
                        k,
                        Mechanism::StandardContract
                            | Mechanism::Certification
                            | Mechanism::GBAStandardContract
                    )
                })
            {
                Reason::VolumeRequiresSecurityAssessment
            } else {
                Reason::MechanismNotSufficient
            };
            decide(false, reason, 14, citation)
        }
    }
}

/// What a product's mechanisms amount to for one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// An accepted mechanism, in force, names the target.
    Covered,
    /// An accepted mechanism names the target but has expired (rule 15).
    Expired,
    /// Accepted mechanisms exist, but none names the target (rule 15).
    NotCovering,
    /// No mechanism at all.
    None,
    /// Mechanisms, none of a kind accepted here.
    WrongKind,
}

fn mechanism_outcome(
    product: &ProductFacts,
    target: &NodeFacts,
    now: Timestamp,
    accepted: impl Fn(Mechanism) -> bool,
) -> Outcome {
    if product.mechanisms.is_empty() {
        return Outcome::None;
    }
    let usable: Vec<&MechanismFacts> = product
        .mechanisms
        .iter()
        .filter(|m| accepted(m.kind))
        .collect();
    if usable.is_empty() {
        return Outcome::WrongKind;
    }
    let covering: Vec<&&MechanismFacts> = usable.iter().filter(|m| m.covers(target)).collect();
    if covering.is_empty() {
        return Outcome::NotCovering;
    }
    let in_force = |m: &&&MechanismFacts| m.expires().is_none_or(|until| now < until);
    if covering.iter().any(in_force) {
        Outcome::Covered
    } else {
        Outcome::Expired
    }
}
