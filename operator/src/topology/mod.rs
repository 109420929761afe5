//! Pure graph analysis of the network: connected components, articulation
//! points (critical nodes), bridges (critical links), province coverage, and
//! the links a topology mode implies.
//!
//! Nothing here knows about Kubernetes: nodes are indices `0..n`, links are
//! undirected edges between them. Input may contain self-loops and parallel
//! edges (two links over the same pair); a self-loop never connects anything and
//! a pair joined twice is never a bridge.

mod graph;
mod placement;
mod report;

pub use graph::{Analysis, Graph, analyse};
pub use placement::{
    GeoPoint, LinkPair, WantedTopology, great_circle_km, nearest_hubs, wanted_links,
};
pub use report::{LinkView, NetworkReport, NodeView, report};
