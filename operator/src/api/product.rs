//! `DataProduct`: a data product published once, at its own node.
//!
//! The publisher node is never taken from the spec: it is the node whose home
//! namespace holds the product, so a tenant cannot publish as another node. The
//! schema rejects what can never be valid (CoreData leaving its node, personal
//! data without its subjects, an exemption or anonymization on non-personal
//! data, an assessment or certificate without dates or valid beyond 3 years)
//! so the publisher hears about it at once; the rest is the policy's to decide.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A data product, listed in the catalog of every node that may see it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flowfed.io",
    version = "v1alpha1",
    kind = "DataProduct",
    namespaced,
    shortname = "dp",
    category = "flowfed",
    status = "DataProductStatus",
    doc = "A data product, published once in its node's home namespace and listed in the catalog of every node the cross-border rules allow.",
    printcolumn(
        name = "Classification",
        type_ = "string",
        json_path = ".spec.classification"
    ),
    printcolumn(
        name = "Visible In",
        type_ = "integer",
        json_path = ".status.visibleCount",
        description = "nodes whose catalog lists the product"
    ),
    printcolumn(
        name = "Blocked",
        type_ = "integer",
        json_path = ".status.blockedCount",
        description = "nodes the cross-border rules keep the product from"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.classification != 'CoreData' || self.visibility.scope != 'AllRegions'").message("CoreData stays at its publishing node: it cannot have visibility.scope AllRegions"))]
#[x_kube(validation = Rule::new("self.classification != 'CoreData' || !has(self.crossBorder)").message("CoreData never crosses a border: remove spec.crossBorder"))]
#[x_kube(validation = Rule::new("!(self.classification in ['PersonalInformation', 'SensitivePersonalInformation']) || has(self.subjects)").message("spec.subjects (individuals, sensitiveIndividuals) is required for PersonalInformation and SensitivePersonalInformation: the processor's yearly volumes are counted from it"))]
#[x_kube(validation = Rule::new("self.classification in ['PersonalInformation', 'SensitivePersonalInformation'] || !has(self.crossBorder) || !has(self.crossBorder.exemption)").message("spec.crossBorder.exemption applies to personal information only: remove it, or classify the product as PersonalInformation or SensitivePersonalInformation"))]
#[x_kube(validation = Rule::new("self.classification in ['PersonalInformation', 'SensitivePersonalInformation'] || !has(self.anonymization)").message("spec.anonymization applies to personal information only: remove it for this classification"))]
#[serde(rename_all = "camelCase")]
pub struct DataProductSpec {
    /// Title shown in every catalog.
    #[schemars(length(min = 1, max = 256))]
    pub title: String,

    /// What the product contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub description: Option<String>,

    /// Search keywords (at most 64, each at most 64 characters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 64)))]
    pub keywords: Vec<String>,

    /// Format of the data, e.g. CSV, Parquet, JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub format: Option<String>,

    /// Where a consumer requests access; an http(s) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#]+') && isURL(self)").message("accessUrl must be an absolute http:// or https:// URL"))]
    pub access_url: Option<String>,

    /// Version of the product, e.g. "2.1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub version: Option<String>,

    /// Data classification under the Data Security Law and PIPL. Immutable: publish a
    /// new product to reclassify.
    #[x_kube(validation = Rule::new("self == oldSelf").message("classification is immutable: publish a new product to reclassify data"))]
    pub classification: Classification,

    /// Which nodes may list the product (before the cross-border rules).
    #[serde(default)]
    pub visibility: Visibility,

    /// The DataProcessor (at the publishing node) that releases the product;
    /// without one, personal data stays in its own jurisdiction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub processor: Option<String>,

    /// How many people the data is about (required for personal classifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<Subjects>,

    /// The sector the data belongs to, read against a free trade zone's negative list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub sector: Option<String>,

    /// The data's categories, read against a free trade zone's negative list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 128)))]
    pub data_categories: Vec<String>,

    /// Evidence that personal information was anonymized (PIPL Art 73(4)): then
    /// it is no longer personal information. A claim without evidence is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymization: Option<Anonymization>,

    /// The legal basis for listing the product abroad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_border: Option<CrossBorder>,
}

/// How many people the data is about.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Subjects {
    /// Individuals whose personal information the product holds.
    #[schemars(range(min = 0))]
    pub individuals: i64,
    /// Of them, individuals whose sensitive personal information it holds.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub sensitive_individuals: i64,
}

/// Evidence of anonymization.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Anonymization {
    /// The technique, e.g. "k-anonymity (k=20) with generalisation".
    #[schemars(length(min = 1, max = 256))]
    pub method: String,
    /// The standard followed, e.g. "GB/T 42460-2023".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub standard: Option<String>,
    /// The assessment that found re-identification not possible.
    #[schemars(length(min = 1, max = 256))]
    pub assessment_reference: String,
}

/// Data classification.
#[derive(
    JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
)]
pub enum Classification {
    /// Public data.
    #[default]
    Public,
    /// Personal information.
    PersonalInformation,
    /// Sensitive personal information (biometrics, health, finance, location tracks, minors' data...).
    SensitivePersonalInformation,
    /// Important data (as catalogued by the regulator).
    ImportantData,
    /// Core data: never leaves its publishing node.
    CoreData,
}

impl Classification {
    pub const ALL: [Classification; 5] = [
        Classification::Public,
        Classification::PersonalInformation,
        Classification::SensitivePersonalInformation,
        Classification::ImportantData,
        Classification::CoreData,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Public => "Public",
            Classification::PersonalInformation => "PersonalInformation",
            Classification::SensitivePersonalInformation => "SensitivePersonalInformation",
            Classification::ImportantData => "ImportantData",
            Classification::CoreData => "CoreData",
        }
    }
}

/// Which nodes may list the product.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("self.scope != 'Selected' || has(self.nodeSelector)").message("visibility.scope Selected needs a visibility.nodeSelector"))]
#[serde(rename_all = "camelCase")]
pub struct Visibility {
    /// AllRegions (default) or Selected.
    #[serde(default)]
    pub scope: VisibilityScope,
    /// For scope Selected: the nodes (by label) that may list the product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
}

/// Visibility scope.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VisibilityScope {
    /// Every node the cross-border rules allow.
    #[default]
    AllRegions,
    /// Only nodes matching visibility.nodeSelector (and the cross-border rules).
    Selected,
}

/// The legal basis for listing a product abroad: an exemption, or mechanisms.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CrossBorder {
    /// An exemption of the 2024 Provisions (personal information only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption: Option<Exemption>,
    /// The mechanisms in place; each names what it covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub mechanisms: Vec<TransferMechanism>,
}

/// Exemptions from the mechanisms (Provisions Art 4, 5(1)-(3)).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exemption {
    /// Necessary to conclude or perform a contract with the individual (Art 5(1)).
    ContractPerformance,
    /// Cross-border human resources management under lawful rules (Art 5(2)).
    HumanResources,
    /// Protecting life, health or property in an emergency (Art 5(3)).
    Emergency,
    /// Personal information collected abroad, processed here and sent back (Art 4).
    ReturnTransit,
}

/// One mechanism and what it covers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!(self.type in ['SecurityAssessment', 'Certification']) || (has(self.issuedAt) && has(self.validUntil))").message("a SecurityAssessment or Certification needs issuedAt and validUntil"))]
#[x_kube(validation = Rule::new("!has(self.issuedAt) || !has(self.validUntil) || (self.validUntil > self.issuedAt && self.validUntil - self.issuedAt <= duration('26352h'))").message("validUntil must be after issuedAt and at most 3 years later: an extension is a new mechanism entry"))]
#[serde(rename_all = "camelCase")]
pub struct TransferMechanism {
    /// The kind of mechanism.
    #[serde(rename = "type")]
    pub type_: Mechanism,
    /// Filing, approval or certificate number.
    #[schemars(length(min = 1, max = 256))]
    pub reference: String,
    /// When it was granted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Time>,
    /// When it expires (RFC 3339). Entries abroad are withdrawn at that moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Time>,
    /// The recipients the filing names; absent, every foreign node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Recipients>,
}

/// The targets a mechanism covers: a node must match every field given.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Recipients {
    /// Jurisdictions of the recipients (CN, HK, MO, or ISO 3166-1 alpha-2 codes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 2, max = 2)))]
    #[x_kube(validation = Rule::new("self.all(j, j.matches('^[A-Z]{2}$'))").message("recipients.jurisdictions must be two upper-case letters each"))]
    pub jurisdictions: Vec<String>,
    /// The recipient nodes, by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
}

/// Cross-border transfer mechanism.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// Security assessment by the Cyberspace Administration (PIPL Art 38(1), 40).
    SecurityAssessment,
    /// Personal information protection certification (PIPL Art 38(2)).
    Certification,
    /// Standard contract, filed with the regulator (PIPL Art 38(3)).
    StandardContract,
    /// Greater Bay Area standard contract (Mainland-Hong Kong 2023, Mainland-Macao 2024).
    GBAStandardContract,
    /// Notification to Macao's DSPDP (Law 8/2005 Art 20).
    MacaoNotification,
    /// Authorization by Macao's DSPDP (Law 8/2005 Art 20).
    MacaoAuthorization,
}

/// A node the product may not be listed at, and why.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockedTarget {
    /// The node's name.
    pub node: String,
    /// Why, as a CamelCase reason (see docs/policy.md).
    pub reason: String,
    /// The rule of the cross-border table that decided (see docs/policy.md).
    #[serde(default)]
    pub rule: i32,
}

/// Observed state of a product.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataProductStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The node that published the product (the owner of its namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher_node: Option<String>,
    /// Nodes the product should be listed at, sorted.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Nodes whose catalog lists the product now, sorted.
    #[serde(default)]
    pub visible_in: Vec<String>,
    /// Number of nodes in visibleIn.
    #[serde(default)]
    pub visible_count: i32,
    /// Nodes the product is kept from, with the reason.
    #[serde(default)]
    pub blocked: Vec<BlockedTarget>,
    /// Number of nodes in blocked.
    #[serde(default)]
    pub blocked_count: i32,
    /// Published and Synced.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// When the catalog entries were last written or confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// Milliseconds from the product's creation or last spec change to the last
    /// catalog entry written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_to_visible_millis: Option<i64>,
}
