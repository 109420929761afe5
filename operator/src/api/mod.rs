//! The flowfed API (group `flowfed.io`, version `v1alpha1`): one file per kind,
//! plus the condition helpers they share. No controller logic lives here.

// `#[kube(printcolumn(...))]` repeats `type_ = "string"`-style keys across columns,
// which clippy mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod conditions;
mod entry;
mod federation;
pub mod labels;
mod ledger;
mod link;
mod node;
mod processor;
mod product;
mod zone;

pub use entry::*;
pub use federation::*;
pub use labels::*;
pub use ledger::*;
pub use link::*;
pub use node::*;
pub use processor::*;
pub use product::*;
pub use zone::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD flowfed defines, with the file name `flowfed crdgen` writes it to.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("dataflownodes.yaml", DataFlowNode::crd()),
        ("intercitylinks.yaml", InterCityLink::crd()),
        ("federations.yaml", Federation::crd()),
        ("dataproducts.yaml", DataProduct::crd()),
        ("catalogentries.yaml", CatalogEntry::crd()),
        ("dataprocessors.yaml", DataProcessor::crd()),
        ("freetradezones.yaml", FreeTradeZone::crd()),
        ("ledgerblocks.yaml", LedgerBlock::crd()),
        ("ledgercheckpoints.yaml", LedgerCheckpoint::crd()),
    ]
}
