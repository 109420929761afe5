//! `FreeTradeZone`: a pilot free trade zone's negative list (Provisions Art 6).
//! Data of a sector the zone covers and not on its list may leave the mainland
//! from a node in the zone without a mechanism. Written by cluster administrators only.

use kube::CustomResource;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A free trade zone and its negative list.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flowfed.io",
    version = "v1alpha1",
    kind = "FreeTradeZone",
    shortname = "ftz",
    category = "flowfed",
    doc = "A pilot free trade zone's negative list: data of the sectors it covers that still needs a cross-border mechanism.",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName"
    ),
    printcolumn(name = "Reference", type_ = "string", json_path = ".spec.reference"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.negativeList.all(item, item.sector in self.sectors)").message("every negativeList item's sector must be one of spec.sectors"))]
#[serde(rename_all = "camelCase")]
pub struct FreeTradeZoneSpec {
    /// Human-readable name, e.g. "China (Shanghai) Pilot FTZ Lingang New Area".
    #[schemars(length(min = 1, max = 256))]
    pub display_name: String,
    /// The approval or filing of the negative list.
    #[schemars(length(min = 1, max = 256))]
    pub reference: String,
    /// The sectors the list covers (data of other sectors gains nothing from the zone).
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 128)))]
    pub sectors: Vec<String>,
    /// Data that still needs a mechanism, by sector and category.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub negative_list: Vec<NegativeListItem>,
}

/// One line of a negative list.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NegativeListItem {
    #[schemars(length(min = 1, max = 128))]
    pub sector: String,
    #[schemars(length(min = 1, max = 128))]
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}
