//! `InterCityLink`: a two-way channel between two nodes.
//!
//! `from`/`to` are immutable: a link is its pair of endpoints, so moving it means
//! deleting it and creating another. A second link over the same (unordered) pair
//! is accepted by the API server but reported as a duplicate by the controller.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A two-way inter-city link between two data flow nodes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flowfed.io",
    version = "v1alpha1",
    kind = "InterCityLink",
    shortname = "icl",
    category = "flowfed",
    status = "InterCityLinkStatus",
    doc = "A two-way inter-city link between two data flow nodes; its state is derived from both nodes and an optional probe through the channel.",
    printcolumn(name = "From", type_ = "string", json_path = ".spec.from"),
    printcolumn(name = "To", type_ = "string", json_path = ".spec.to"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "RTT",
        type_ = "number",
        json_path = ".status.rttMillis",
        description = "round-trip time in milliseconds"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.from != self.to").message("a link joins two different nodes: from and to must differ"))]
#[serde(rename_all = "camelCase")]
pub struct InterCityLinkSpec {
    /// Name of one end's DataFlowNode. Immutable.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("from is immutable: delete the link and create a new one"))]
    pub from: String,

    /// Name of the other end's DataFlowNode. Immutable.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("to is immutable: delete the link and create a new one"))]
    pub to: String,

    /// Provisioned bandwidth in Gbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100000.0))]
    pub bandwidth_gbps: Option<f64>,

    /// Round-trip time objective in milliseconds; above it the link is Degraded.
    #[serde(
        default,
        rename = "latencySLOMillis",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 60000))]
    pub latency_slo_millis: Option<i32>,

    /// A probe through the channel itself (otherwise the link is judged from its nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<LinkProbe>,
}

/// A probe through the link's channel.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LinkProbe {
    /// URL probed with an HTTP GET through the channel; http or https.
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#]+') && isURL(self)").message("probe.url must be an absolute http:// or https:// URL with a host"))]
    pub url: String,

    /// PEM-encoded CA certificates that sign the channel endpoint's TLS
    /// certificate (instead of the system roots), as a node's endpoint.caBundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536))]
    pub ca_bundle: Option<String>,
}

/// State of a link.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LinkState {
    /// An end node is missing or not probed yet.
    #[default]
    Pending,
    /// Both ends reachable (and the channel probe answering, when set).
    Up,
    /// Up, but round-trip time above latencySLOMillis.
    Degraded,
    /// An end node is Unreachable, or the channel probe fails.
    Down,
}

/// Observed state of a link.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InterCityLinkStatus {
    /// Pending, Up, Degraded or Down.
    #[serde(default)]
    pub state: LinkState,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Round-trip time in milliseconds: the channel probe's, or the sum of both ends'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_millis: Option<f64>,
    /// EndpointsReady, Established and WithinSLO.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// When state last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Set when another link already joins the same pair of nodes: its name. A
    /// duplicate is not counted in the topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
}
