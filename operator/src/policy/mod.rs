//! Cross-border visibility rules: may a product published at one node be listed
//! in another node's catalog, and if not, why.
//!
//! Pure: plain facts in, a decision out, deny by default. Listing a product in
//! a node's catalog is treated as making it available to recipients in that
//! node's jurisdiction, so it is gated as a transfer would be. The rule table
//! ([`rules`]) is the one in docs/policy.md, first match decides, and every
//! decision carries its reason, its rule number and a citation. A processor's
//! yearly volumes and the tier they require are in [`volume`].

pub mod facts;
mod rules;
mod selector;
pub mod volume;

pub use facts::{declared, node_facts, processor_facts, product_facts, zone_facts};
pub use rules::visibility;
pub use selector::{LabelQuery, Requirement};
pub use volume::{Declared, Totals, next_year_start, tier, totals, year_of};

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;

pub use crate::api::{Classification, Exemption, Mechanism, ProcessorTier};

/// The facts of a product that the rules read.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ProductFacts {
    pub classification: Classification,
    /// Anonymization with its evidence (method and assessment).
    pub anonymized: bool,
    /// `None` for AllRegions; a label query for Selected.
    pub selected: Option<LabelQuery>,
    /// The DataProcessor named by the product.
    pub processor: Option<String>,
    /// Individuals, and sensitive individuals, the data is about.
    pub subjects: (u64, u64),
    pub sector: Option<String>,
    pub data_categories: BTreeSet<String>,
    pub exemption: Option<Exemption>,
    pub mechanisms: Vec<MechanismFacts>,
}

impl ProductFacts {
    /// Personal information of either kind.
    pub fn is_personal(&self) -> bool {
        matches!(
            self.classification,
            Classification::PersonalInformation | Classification::SensitivePersonalInformation
        )
    }
}

/// One mechanism the product declares.
#[derive(Clone, Debug, PartialEq)]
pub struct MechanismFacts {
    pub kind: Mechanism,
    pub issued_at: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    /// The recipients the filing names; `None` covers every foreign node.
    pub recipients: Option<RecipientFacts>,
}

impl MechanismFacts {
    /// A mechanism of `kind` with no dates and no recipients.
    pub fn of(kind: Mechanism) -> Self {
        MechanismFacts {
            kind,
            issued_at: None,
            valid_until: None,
            recipients: None,
        }
    }

    /// When the mechanism stops counting: its `validUntil`, and never more
    /// than 3 years after `issuedAt` for an assessment or a certificate.
    pub fn expires(&self) -> Option<Timestamp> {
        let dated = matches!(
            self.kind,
            Mechanism::SecurityAssessment | Mechanism::Certification
        );
        let capped = match (dated, self.issued_at, self.valid_until) {
            (true, Some(issued), _) => Some(volume::three_years_after(issued)),
            // The schema requires both dates; an undated one never counts.
            (true, None, None) => Some(Timestamp::UNIX_EPOCH),
            _ => None,
        };
        match (self.valid_until, capped) {
            (Some(until), Some(cap)) => Some(until.min(cap)),
            (until, cap) => until.or(cap),
        }
    }

    /// Whether the mechanism names `target` among its recipients.
    pub fn covers(&self, target: &NodeFacts) -> bool {
        self.recipients.as_ref().is_none_or(|r| {
            (r.jurisdictions.is_empty() || r.jurisdictions.contains(&target.jurisdiction))
                && r.selector
                    .as_ref()
                    .is_none_or(|q| q.matches(&target.labels))
        })
    }
}

/// The recipients a mechanism names: a node must match every field given.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RecipientFacts {
    pub jurisdictions: BTreeSet<String>,
    pub selector: Option<LabelQuery>,
}

/// The facts of a node that the rules read.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct NodeFacts {
    pub name: String,
    pub jurisdiction: String,
    pub labels: BTreeMap<String, String>,
    pub greater_bay_area: bool,
    pub free_trade_zone: Option<String>,
}

/// The facts of the product's DataProcessor that the rules read.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessorFacts {
    pub name: String,
    pub node: String,
    pub critical_information_infrastructure: bool,
    pub free_trade_zone: Option<String>,
    /// The tier this year's totals put the processor in.
    pub tier: ProcessorTier,
}

/// A free trade zone's negative list.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ZoneFacts {
    pub name: String,
    pub sectors: BTreeSet<String>,
    /// (sector, category) pairs that still need a mechanism.
    pub negative_list: BTreeSet<(String, String)>,
}

/// What else the rules read for one product: its processor and the zones.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    pub processor: Option<&'a ProcessorFacts>,
    pub zones: &'a [ZoneFacts],
}

/// Why a product is or is not listed at a node. The names of blocked reasons
/// are the ones shown in status, events and `flowfed_catalog_blocked`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    // Visible.
    OwnNode,
    SameJurisdiction,
    PublicData,
    Anonymized,
    NoTransferGate,
    MacaoMechanism,
    OffNegativeList,
    SecurityAssessment,
    Exempted,
    BelowThresholds,
    Mechanism,
    // Blocked.
    NotSelected,
    CoreDataStaysAtPublisher,
    UnknownJurisdiction,
    NoRegimeForClassification,
    NoRegimeForPublisher,
    NoCrossBorderMechanism,
    MechanismNotSufficient,
    NoProcessor,
    VolumeRequiresSecurityAssessment,
    NotInGreaterBayArea,
    MechanismExpired,
    RecipientNotCovered,
}

impl Reason {
    /// Every reason that blocks, in the order of the table.
    pub const BLOCKED: [Reason; 12] = [
        Reason::NotSelected,
        Reason::CoreDataStaysAtPublisher,
        Reason::UnknownJurisdiction,
        Reason::NoRegimeForClassification,
        Reason::NoRegimeForPublisher,
        Reason::NoCrossBorderMechanism,
        Reason::MechanismNotSufficient,
        Reason::NoProcessor,
        Reason::VolumeRequiresSecurityAssessment,
        Reason::NotInGreaterBayArea,
        Reason::MechanismExpired,
        Reason::RecipientNotCovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::OwnNode => "OwnNode",
            Reason::SameJurisdiction => "SameJurisdiction",
            Reason::PublicData => "PublicData",
            Reason::Anonymized => "Anonymized",
            Reason::NoTransferGate => "NoTransferGate",
            Reason::MacaoMechanism => "MacaoMechanism",
            Reason::OffNegativeList => "OffNegativeList",
            Reason::SecurityAssessment => "SecurityAssessment",
            Reason::Exempted => "Exempted",
            Reason::BelowThresholds => "BelowThresholds",
            Reason::Mechanism => "Mechanism",
            Reason::NotSelected => "NotSelected",
            Reason::CoreDataStaysAtPublisher => "CoreDataStaysAtPublisher",
            Reason::UnknownJurisdiction => "UnknownJurisdiction",
            Reason::NoRegimeForClassification => "NoRegimeForClassification",
            Reason::NoRegimeForPublisher => "NoRegimeForPublisher",
            Reason::NoCrossBorderMechanism => "NoCrossBorderMechanism",
            Reason::MechanismNotSufficient => "MechanismNotSufficient",
            Reason::NoProcessor => "NoProcessor",
            Reason::VolumeRequiresSecurityAssessment => "VolumeRequiresSecurityAssessment",
            Reason::NotInGreaterBayArea => "NotInGreaterBayArea",
            Reason::MechanismExpired => "MechanismExpired",
            Reason::RecipientNotCovered => "RecipientNotCovered",
        }
    }
}

/// The decision for one (product, target node): the reason, the rule of the
/// table that decided, and the text it rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub visible: bool,
    pub reason: Reason,
    pub rule: u8,
    pub citation: &'static str,
}

/// When a decision about this product can next change by the clock alone: the
/// nearest mechanism expiry, or the turn of the year (UTC+8) when its
/// processor's declared figures stop counting.
pub fn next_change(
    product: &ProductFacts,
    declared_year: Option<i32>,
    now: Timestamp,
) -> Option<Timestamp> {
    let expiry = product
        .mechanisms
        .iter()
        .filter_map(MechanismFacts::expires)
        .filter(|until| *until > now)
        .min();
    let year_turn = declared_year
        .filter(|year| *year >= year_of(now))
        .map(|_| next_year_start(now));
    match (expiry, year_turn) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
