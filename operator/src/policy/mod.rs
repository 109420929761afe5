//! Cross-border visibility rules: may a product published at one node be listed
//! in another node's catalog, and if not, why.
//!
//! Pure: plain facts in, a decision out, deny by default. The rules, as in
//! docs/policy.md:
//!
//! 1. A product is always listed at its own node.
//! 2. `visibility.scope: Selected` lists it only at nodes matching its selector.
//! 3. Within one jurisdiction everything is visible except `CoreData`, which
//!    stays at its publishing node.
//! 4. Across jurisdictions: `Public` data, and anonymized data that is not
//!    `ImportantData`/`CoreData`, is visible. Personal information needs an
//!    unexpired `SecurityAssessment`, `Certification` or `StandardContract`
//!    (`Exempt`, with a reason, only for non-sensitive personal information);
//!    `ImportantData` needs an unexpired `SecurityAssessment`; `CoreData` never
//!    crosses. A mechanism is valid until `validUntil`, exclusive.

pub mod facts;
mod selector;

pub use facts::{node_facts, product_facts};
pub use selector::{LabelQuery, Requirement};

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

pub use crate::api::{Classification, Mechanism};

/// The facts of a product that the rules read.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductFacts {
    pub classification: Classification,
    pub anonymized: bool,
    /// `None` for AllRegions; a label query for Selected.
    pub selected: Option<LabelQuery>,
    pub cross_border: Option<CrossBorderFacts>,
}

/// The declared legal basis for cross-border listing.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossBorderFacts {
    pub mechanism: Mechanism,
    pub has_reference: bool,
    pub has_exemption_reason: bool,
    pub valid_until: Option<Timestamp>,
}

/// The facts of a node that the rules read.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFacts {
    pub name: String,
    pub jurisdiction: String,
    pub labels: BTreeMap<String, String>,
}

/// Why a product is not listed at a node. The names are the reasons shown in
/// status, events and the `flowfed_catalog_blocked` metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockReason {
    /// The node does not match `visibility.nodeSelector`.
    NotSelected,
    /// CoreData is listed only at its publishing node.
    CoreDataStaysAtPublisher,
    /// Personal or important data without a cross-border mechanism.
    NoCrossBorderMechanism,
    /// The mechanism's `validUntil` has passed.
    MechanismExpired,
    /// The mechanism does not cover this classification (Exempt for sensitive
    /// data, anything but SecurityAssessment for ImportantData).
    MechanismNotSufficient,
    /// A mechanism without its reference, or an exemption without its reason.
    MechanismIncomplete,
    /// A node without a recognisable jurisdiction: denied by default.
    UnknownJurisdiction,
}

impl BlockReason {
    pub const ALL: [BlockReason; 7] = [
        BlockReason::NotSelected,
        BlockReason::CoreDataStaysAtPublisher,
        BlockReason::NoCrossBorderMechanism,
        BlockReason::MechanismExpired,
        BlockReason::MechanismNotSufficient,
        BlockReason::MechanismIncomplete,
        BlockReason::UnknownJurisdiction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::NotSelected => "NotSelected",
            BlockReason::CoreDataStaysAtPublisher => "CoreDataStaysAtPublisher",
            BlockReason::NoCrossBorderMechanism => "NoCrossBorderMechanism",
            BlockReason::MechanismExpired => "MechanismExpired",
            BlockReason::MechanismNotSufficient => "MechanismNotSufficient",
            BlockReason::MechanismIncomplete => "MechanismIncomplete",
            BlockReason::UnknownJurisdiction => "UnknownJurisdiction",
        }
    }
}

/// The decision for one (product, target node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Visible,
    Blocked(BlockReason),
}

fn is_jurisdiction(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// May `product`, published at `publisher`, be listed at `target` at time `now`?
pub fn visibility(
    product: &ProductFacts,
    publisher: &NodeFacts,
    target: &NodeFacts,
    now: Timestamp,
) -> Decision {
    use BlockReason::*;
    use Classification::*;

    if target.name == publisher.name {
        return Decision::Visible;
    }
    if let Some(query) = &product.selected
        && !query.matches(&target.labels)
    {
        return Decision::Blocked(NotSelected);
    }
    if product.classification == CoreData {
        return Decision::Blocked(CoreDataStaysAtPublisher);
    }
    if !is_jurisdiction(&publisher.jurisdiction) || !is_jurisdiction(&target.jurisdiction) {
        return Decision::Blocked(UnknownJurisdiction);
    }
    if publisher.jurisdiction == target.jurisdiction {
        return Decision::Visible;
    }
    // Across a border.
    let personal = matches!(
        product.classification,
        PersonalInformation | SensitivePersonalInformation
    );
    if product.classification == Public || (product.anonymized && personal) {
        return Decision::Visible;
    }
    let Some(basis) = &product.cross_border else {
        return Decision::Blocked(NoCrossBorderMechanism);
    };
    let sufficient = match (product.classification, basis.mechanism) {
        (ImportantData, Mechanism::SecurityAssessment) => true,
        (ImportantData, _) => false,
        (PersonalInformation, _) => true,
        (SensitivePersonalInformation, Mechanism::Exempt) => false,
        (SensitivePersonalInformation, _) => true,
        (Public | CoreData, _) => unreachable!("decided above"),
    };
    if !sufficient {
        return Decision::Blocked(MechanismNotSufficient);
    }
    let complete = match basis.mechanism {
        Mechanism::Exempt => basis.has_exemption_reason,
        _ => basis.has_reference,
    };
    if !complete {
        return Decision::Blocked(MechanismIncomplete);
    }
    if basis.valid_until.is_some_and(|until| now >= until) {
        return Decision::Blocked(MechanismExpired);
    }
    Decision::Visible
}

/// When a decision for this product can next change by the clock alone (its
/// mechanism expiring), if that is still ahead of `now`.
pub fn next_change(product: &ProductFacts, now: Timestamp) -> Option<Timestamp> {
    product
        .cross_border
        .as_ref()?
        .valid_until
        .filter(|until| *until > now)
}

#[cfg(test)]
mod tests;
