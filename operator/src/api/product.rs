//! `DataProduct`: a data product published once, at its own node.
//!
//! The publisher node is never taken from the spec: it is the node whose home
//! namespace holds the product, so a tenant cannot publish as another node. The
//! schema rejects combinations the cross-border rules can never allow (CoreData
//! leaving its node, ImportantData under anything but a security assessment, an
//! exemption for sensitive data) so the publisher hears about them at once.

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
#[x_kube(validation = Rule::new("self.classification != 'CoreData' || !has(self.crossBorder)").message("CoreData never crosses a border: remove crossBorder"))]
#[x_kube(validation = Rule::new("self.classification != 'ImportantData' || !has(self.crossBorder) || self.crossBorder.mechanism == 'SecurityAssessment'").message("ImportantData crosses a border only under crossBorder.mechanism SecurityAssessment"))]
#[x_kube(validation = Rule::new("!has(self.crossBorder) || self.crossBorder.mechanism != 'Exempt' || self.classification == 'PersonalInformation' || self.classification == 'Public'").message("crossBorder.mechanism Exempt applies only to non-sensitive PersonalInformation"))]
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

    /// The data is anonymized (cannot identify a person and cannot be restored), so it
    /// is treated as non-personal. Does not lift ImportantData or CoreData restrictions.
    #[serde(default)]
    pub anonymized: bool,

    /// Which nodes may list the product (further limited by the cross-border rules).
    #[serde(default)]
    pub visibility: Visibility,

    /// The legal basis for listing the product in another jurisdiction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_border: Option<CrossBorder>,
}

/// Data classification.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum Classification {
    /// Public data.
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

/// The legal basis for cross-border listing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.mechanism == 'Exempt' || has(self.reference)").message("crossBorder.reference (the assessment, certificate or contract filing number) is required unless mechanism is Exempt"))]
#[x_kube(validation = Rule::new("self.mechanism != 'Exempt' || has(self.exemptionReason)").message("crossBorder.mechanism Exempt needs an exemptionReason"))]
#[serde(rename_all = "camelCase")]
pub struct CrossBorder {
    /// SecurityAssessment, Certification, StandardContract or Exempt.
    pub mechanism: Mechanism,
    /// Filing or certificate number of the assessment, certification or standard contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub reference: Option<String>,
    /// When the mechanism expires (RFC 3339). Entries abroad are withdrawn at that moment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Time>,
    /// For Exempt: the exemption that applies (e.g. contract performance, HR management,
    /// emergency protection of life).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub exemption_reason: Option<String>,
}

/// Cross-border transfer mechanism.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// Security assessment by the Cyberspace Administration.
    SecurityAssessment,
    /// Personal information protection certification.
    Certification,
    /// Standard contract, filed with the regulator.
    StandardContract,
    /// An exemption from the three mechanisms (non-sensitive personal information only).
    Exempt,
}

/// A node the product may not be listed at, and why.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockedTarget {
    /// The node's name.
    pub node: String,
    /// Why, as a CamelCase reason (see docs/policy.md).
    pub reason: String,
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
