//! flowfed: a Kubernetes operator that keeps a national network of data flow
//! nodes interconnected and lists every data product in the catalog of each
//! region that may see it.

pub mod api;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod controller;
pub mod explain;
pub mod ledger;
pub mod metrics;
pub mod policy;
pub mod probe;
pub mod runtime;
pub mod server;

#[cfg(test)]
mod robustness;
pub mod topology;
