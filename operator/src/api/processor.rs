//! `DataProcessor`: the legal entity that publishes products at a node, and
//! what the 2024 Provisions count per processor: this calendar year's
//! individuals whose personal information crosses a border, and the tier of
//! mechanism those volumes require. Written by cluster administrators only.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A data processor (the PIPL's personal information handler) at one node.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[kube(
    group = "flowfed.io",
    version = "v1alpha1",
    kind = "DataProcessor",
    shortname = "dpc",
    category = "flowfed",
    status = "DataProcessorStatus",
    doc = "A data processor: the legal entity that publishes products at one node. Its yearly cross-border volumes decide which mechanism its personal data needs.",
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.node"),
    printcolumn(name = "Tier", type_ = "string", json_path = ".status.tier"),
    printcolumn(
        name = "Individuals",
        type_ = "integer",
        json_path = ".status.individuals"
    ),
    printcolumn(
        name = "Sensitive",
        type_ = "integer",
        json_path = ".status.sensitiveIndividuals"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DataProcessorSpec {
    /// The DataFlowNode the processor publishes at (immutable: a processor at
    /// another node is another DataProcessor).
    #[schemars(length(min = 1, max = 59))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.node is immutable: create another DataProcessor for another node"))]
    pub node: String,

    /// Registered legal name.
    #[schemars(length(min = 1, max = 256))]
    pub legal_name: String,

    /// Unified social credit code (18 characters; optional outside the mainland).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9A-HJ-NPQRTUWXY]{18}$')").message("spec.creditCode must be an 18-character unified social credit code (digits and upper-case letters, no I, O, S, V, Z)"))]
    pub credit_code: Option<String>,

    /// A critical information infrastructure operator: its personal data always
    /// needs a security assessment to leave the mainland.
    #[serde(default)]
    pub critical_information_infrastructure: bool,

    /// The FreeTradeZone the processor is registered in; counts only when it is
    /// also its node's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub free_trade_zone: Option<String>,

    /// People whose personal information the processor sent abroad this
    /// calendar year by other means than flowfed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_outside_flowfed: Option<OutboundVolume>,
}

/// Individuals whose personal information was sent abroad in one calendar year.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub struct OutboundVolume {
    /// The calendar year (China Standard Time) the figures are for.
    #[schemars(range(min = 2000, max = 2200))]
    pub year: i32,
    /// Individuals (personal information of any kind).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub individuals: i64,
    /// Individuals whose sensitive personal information was sent.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub sensitive_individuals: i64,
}

/// The mechanism a processor's volumes require for its personal data.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum ProcessorTier {
    /// Below every threshold and not CII: no mechanism needed (Art 5(4)).
    Exempt,
    /// 100,000 individuals or any sensitive individual: a standard contract,
    /// a certification or a security assessment (Art 8).
    ContractOrCertification,
    /// CII, 1,000,000 individuals or 10,000 sensitive individuals: a security
    /// assessment only (Art 7).
    SecurityAssessment,
}

impl ProcessorTier {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessorTier::Exempt => "Exempt",
            ProcessorTier::ContractOrCertification => "ContractOrCertification",
            ProcessorTier::SecurityAssessment => "SecurityAssessment",
        }
    }
}

/// This year's totals and the tier they put the processor in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataProcessorStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The calendar year (China Standard Time) the totals are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    /// Individuals counted this year: outboundOutsideFlowfed plus the subjects
    /// of every personal, non-anonymized product listed abroad.
    #[serde(default)]
    pub individuals: i64,
    /// Sensitive individuals counted this year, the same way.
    #[serde(default)]
    pub sensitive_individuals: i64,
    /// The mechanism the totals require.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<ProcessorTier>,
    /// Counted.
    #[serde(default)]
    #[schemars(length(max = 8))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
