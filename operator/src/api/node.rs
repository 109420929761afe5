//! `DataFlowNode`: one city's data flow node, its gateway endpoint and catalog home.
//!
//! Cluster-scoped, because a node is part of the national network rather than of
//! any tenant. The schema carries every rule the API server can check on its own
//! (shapes, ranges, jurisdiction consistency) so a bad manifest never reaches etcd.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A data flow node: one city's gateway into the national network.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flowfed.io",
    version = "v1alpha1",
    kind = "DataFlowNode",
    shortname = "dfn",
    category = "flowfed",
    status = "DataFlowNodeStatus",
    doc = "A data flow node: one city's gateway into the national data network, probed for reachability, with a home namespace for its products and catalog view.",
    printcolumn(name = "City", type_ = "string", json_path = ".spec.city"),
    printcolumn(name = "Province", type_ = "string", json_path = ".spec.province"),
    printcolumn(name = "Jurisdiction", type_ = "string", json_path = ".spec.jurisdiction"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "RTT", type_ = "number", json_path = ".status.rttMillis", description = "smoothed probe round-trip time in milliseconds"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 59").message("node name must be a DNS label (lower-case letters, digits, '-') of at most 59 characters, because it names the namespace dfn-<name>"),
)]
#[x_kube(validation = Rule::new("self.province == 'CN-HK' ? self.jurisdiction == 'HK' : self.province == 'CN-MO' ? self.jurisdiction == 'MO' : self.jurisdiction == self.province.substring(0, 2)").message("jurisdiction does not match province: CN-HK is jurisdiction HK, CN-MO is MO, other CN-* provinces are CN, and a province outside China takes its country code (e.g. SG-01 is SG)"))]
#[x_kube(validation = Rule::new("!self.greaterBayArea || self.province in ['CN-GD', 'CN-HK', 'CN-MO']").message("greaterBayArea applies only to nodes in provinces CN-GD, CN-HK or CN-MO"))]
#[serde(rename_all = "camelCase")]
pub struct DataFlowNodeSpec {
    /// City the node serves, e.g. "Shanghai".
    #[schemars(length(min = 1, max = 128))]
    pub city: String,

    /// ISO 3166-2 code of the provincial-level region, e.g. CN-SH, CN-GD, CN-HK, CN-MO.
    // Bounded loosely so a plausible mistake ("Shanghai") gets the CEL message.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Z]{2}-[A-Z0-9]{1,3}$')").message("province must be an ISO 3166-2 code such as CN-SH, CN-GD, CN-HK or CN-MO"))]
    pub province: String,

    /// Data jurisdiction the node's data falls under: CN (mainland), HK, MO, or another
    /// ISO 3166-1 alpha-2 country code. Cross-border rules apply between jurisdictions.
    #[serde(default = "default_jurisdiction")]
    #[schemars(length(min = 1, max = 8))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Z]{2}$')").message("jurisdiction must be two upper-case letters: CN, HK, MO or an ISO 3166-1 alpha-2 code"))]
    pub jurisdiction: String,

    /// Free-trade or cross-border pilot zone the node sits in, e.g. "Lingang international data port".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub zone: Option<String>,

    /// The node serves one of the nine mainland Greater Bay Area cities, Hong Kong
    /// or Macao (provinces CN-GD, CN-HK, CN-MO only): GBA standard contracts apply.
    #[serde(default)]
    pub greater_bay_area: bool,

    /// The FreeTradeZone (by name) the node sits in, e.g. lingang.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub free_trade_zone: Option<String>,

    /// Geographic location, used to pick the nearest hubs and to draw the network map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<GeoLocation>,

    /// The node's gateway endpoint, probed for reachability and round-trip time.
    pub endpoint: Endpoint,

    /// How the gateway is probed.
    #[serde(default)]
    pub probe: ProbeSpec,

    /// Where the node's products are published and its catalog view is written.
    #[serde(default)]
    pub catalog: NodeCatalogSpec,

    /// Capacity of the node's uplink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
}

fn default_jurisdiction() -> String {
    "CN".to_owned()
}

/// A point on the globe (WGS 84 degrees).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct GeoLocation {
    /// Latitude in degrees, -90 to 90.
    #[schemars(range(min = -90.0, max = 90.0))]
    pub latitude: f64,
    /// Longitude in degrees, -180 to 180.
    #[schemars(range(min = -180.0, max = 180.0))]
    pub longitude: f64,
}

/// A gateway endpoint.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("!has(self.caBundle) || !self.insecureSkipVerify").message("set either caBundle or insecureSkipVerify, not both"))]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// URL probed with an HTTP GET; http or https, IPv4 and IPv6 literals allowed,
    /// e.g. https://gw.lingang.example:8443/healthz. Any 2xx or 3xx answer counts as up.
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#]+') && isURL(self)").message("endpoint.url must be an absolute http:// or https:// URL with a host"))]
    pub url: String,

    /// PEM-encoded CA certificates that sign the gateway's TLS certificate (instead
    /// of the system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536))]
    pub ca_bundle: Option<String>,

    /// Skip TLS certificate verification. For test gateways only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Probe timing.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.timeoutSeconds < self.intervalSeconds").message("probe.timeoutSeconds must be less than probe.intervalSeconds"))]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    /// Seconds between probes (1 to 3600, default 10).
    #[serde(default = "default_interval")]
    #[schemars(range(min = 1, max = 3600))]
    pub interval_seconds: i32,
    /// Seconds before one probe counts as failed (1 to 60, default 3); less than intervalSeconds.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 60))]
    pub timeout_seconds: i32,
    /// Consecutive failed probes before the node is Unreachable (1 to 100, default 3).
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: i32,
}

fn default_interval() -> i32 {
    10
}
fn default_timeout() -> i32 {
    3
}
fn default_failure_threshold() -> i32 {
    3
}

impl Default for ProbeSpec {
    fn default() -> Self {
        ProbeSpec {
            interval_seconds: default_interval(),
            timeout_seconds: default_timeout(),
            failure_threshold: default_failure_threshold(),
        }
    }
}

/// Where the node's catalog lives.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[x_kube(validation = Rule::new("!has(self.memberNamespace) || has(self.kubeconfigSecretRef)").message("catalog.memberNamespace is only used with catalog.kubeconfigSecretRef"))]
#[serde(rename_all = "camelCase")]
pub struct NodeCatalogSpec {
    /// The node's home namespace in the hub cluster (default dfn-<node name>). Its
    /// DataProducts are published there, and its catalog view is written there unless
    /// kubeconfigSecretRef points at the node's own cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("catalog.namespace must be a DNS label: lower-case letters, digits and '-'"))]
    #[x_kube(validation = Rule::new("!(self in ['default', 'flowfed-system']) && !self.startsWith('kube-')").message("catalog.namespace cannot be a system namespace (default, kube-*, flowfed-system): its editors would publish as the node"))]
    pub namespace: Option<String>,

    /// A kubeconfig (in a Secret in the hub) for the node's own member cluster; when set,
    /// the node's catalog view is written there instead of into the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_ref: Option<SecretKeyRef>,

    /// Namespace in the member cluster that receives the catalog view (default flowfed-catalog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("catalog.memberNamespace must be a DNS label: lower-case letters, digits and '-'"))]
    pub member_namespace: Option<String>,

    /// Accept insecure transport to the member cluster: a kubeconfig that sets
    /// insecure-skip-tls-verify, names an http:// server (credentials in clear
    /// text) or sets a proxy-url. Off by default: without it such a kubeconfig is
    /// refused.
    #[serde(default)]
    pub allow_insecure_member_tls: bool,
}

/// A key of a Secret in the hub cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key in the Secret's data that holds the kubeconfig.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Uplink capacity.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    /// Uplink bandwidth in Gbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100000.0))]
    pub bandwidth_gbps: Option<f64>,
}

/// Lifecycle phase of a node.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum NodePhase {
    /// Not probed yet.
    #[default]
    Pending,
    /// Reachable and answering within its probe timeout.
    Ready,
    /// Reachable but slow (round-trip time above half the probe timeout), or failing
    /// probes without having reached the failure threshold yet.
    Degraded,
    /// failureThreshold consecutive probes failed.
    Unreachable,
}

/// Observed state of a node.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataFlowNodeStatus {
    /// Pending, Ready, Degraded or Unreachable.
    #[serde(default)]
    pub phase: NodePhase,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reachable and CatalogSynced.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// When the gateway was last probed (written when the status changes, not on every probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// Smoothed probe round-trip time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_millis: Option<f64>,
    /// Probes failed in a row.
    #[serde(default)]
    pub consecutive_failures: i32,
    /// Catalog entries listed in this node's catalog view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_entries: Option<i64>,
}

impl DataFlowNode {
    /// The node's home namespace in the hub: spec.catalog.namespace or dfn-<name>.
    pub fn home_namespace(&self) -> String {
        let name = self.metadata.name.as_deref().unwrap_or_default();
        self.spec
            .catalog
            .namespace
            .clone()
            .unwrap_or_else(|| format!("dfn-{name}"))
    }

    /// Namespace in the member cluster for the catalog view (default flowfed-catalog).
    pub fn member_namespace(&self) -> String {
        self.spec
            .catalog
            .member_namespace
            .clone()
            .unwrap_or_else(|| "flowfed-catalog".to_owned())
    }
}
