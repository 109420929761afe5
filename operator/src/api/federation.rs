//! `Federation`: which nodes form the network, the topology it should have, and
//! the interconnection report (components, partitions, weak points, coverage).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A set of nodes that must stay interconnected, and the topology that joins them.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flowfed.io",
    version = "v1alpha1",
    kind = "Federation",
    shortname = "fed",
    category = "flowfed",
    status = "FederationStatus",
    doc = "A federation of data flow nodes: the wanted topology, realised as InterCityLinks, and a report of whether the nodes are interconnected.",
    printcolumn(
        name = "Nodes Ready",
        type_ = "integer",
        json_path = ".status.nodes.ready"
    ),
    printcolumn(name = "Links Up", type_ = "integer", json_path = ".status.links.up"),
    printcolumn(
        name = "Interconnected",
        type_ = "boolean",
        json_path = ".status.interconnected"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FederationSpec {
    /// Selects the member nodes by label; empty selects every node.
    #[serde(default)]
    pub node_selector: LabelSelector,
    /// The topology the controller keeps.
    #[serde(default)]
    pub topology: TopologySpec,
    /// Geographic coverage target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<CoverageSpec>,
}

/// How member nodes are linked.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TopologyMode {
    /// Links are the user's; the controller creates none.
    #[default]
    Manual,
    /// Every pair of member nodes is linked.
    FullMesh,
    /// Hubs are meshed with each other; every other node links to its spokeUplinks nearest hubs.
    HubAndSpoke,
}

/// The wanted topology.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.mode != 'HubAndSpoke' || size(self.hubs) >= 1").message("topology.mode HubAndSpoke needs at least one node name in topology.hubs"))]
#[serde(rename_all = "camelCase")]
pub struct TopologySpec {
    /// Manual (default), FullMesh or HubAndSpoke.
    #[serde(default)]
    pub mode: TopologyMode,
    /// Hub node names, for HubAndSpoke.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub hubs: Vec<String>,
    /// How many of the nearest hubs (by great-circle distance) each spoke links to
    /// (default 2, at least 1).
    #[serde(default = "default_spoke_uplinks")]
    #[schemars(range(min = 1, max = 16))]
    pub spoke_uplinks: i32,
}

fn default_spoke_uplinks() -> i32 {
    2
}

impl Default for TopologySpec {
    fn default() -> Self {
        TopologySpec {
            mode: TopologyMode::Manual,
            hubs: Vec::new(),
            spoke_uplinks: default_spoke_uplinks(),
        }
    }
}

/// Geographic coverage target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CoverageSpec {
    /// How many provincial-level regions (of 34) must have at least one Ready node.
    #[schemars(range(min = 0, max = 34))]
    pub provinces_target: i32,
}

/// Node totals.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NodeTotals {
    /// Member nodes.
    pub total: i32,
    /// Member nodes in phase Ready.
    pub ready: i32,
}

/// Link totals.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LinkTotals {
    /// Links between member nodes (duplicates not counted).
    pub total: i32,
    /// Of those, links Up or Degraded (carrying traffic).
    pub up: i32,
}

/// Observed state of a federation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FederationStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Member node totals.
    #[serde(default)]
    pub nodes: NodeTotals,
    /// Member link totals.
    #[serde(default)]
    pub links: LinkTotals,
    /// Every member node is Ready and all are in one component of Up links.
    #[serde(default)]
    pub interconnected: bool,
    /// Connected components of Ready nodes joined by Up links.
    #[serde(default)]
    pub components: i32,
    /// The components as sorted node lists, when there is more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<Vec<String>>,
    /// Nodes whose loss would split the network (articulation points).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical_nodes: Vec<String>,
    /// Links whose loss would split the network (bridges), by link name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub critical_links: Vec<String>,
    /// Provincial-level regions with at least one Ready member node.
    #[serde(default)]
    pub provinces_covered: i32,
    /// Interconnected, CoverageMet and TopologyReconciled.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
