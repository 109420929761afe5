//! Step 1, pure: who publishes the product, and what the rules read of it and
//! of every node. The publisher is the node whose home namespace holds the
//! product, never a field of its spec.

use std::sync::Arc;

use kube::ResourceExt;

use super::reasons;
use crate::api::conditions::Problem;
use crate::api::{DataFlowNode, DataProduct};
use crate::policy::{NodeFacts, ProductFacts, node_facts, product_facts};

/// What the plan is made from.
#[derive(Clone, Debug)]
pub struct CatalogFacts {
    pub publisher: Arc<DataFlowNode>,
    pub publisher_facts: NodeFacts,
    pub product: ProductFacts,
    /// Every node, with the facts the policy reads of it.
    pub nodes: Vec<(Arc<DataFlowNode>, NodeFacts)>,
}

/// Why no plan can be made: the product is then listed nowhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unplannable {
    /// No single node publishes from the product's namespace.
    NoPublisher(Problem),
    /// The product's visibility selector cannot be read.
    InvalidSelector(Problem),
}

/// The facts of `product` among `nodes`.
pub fn gather(
    product: &DataProduct,
    nodes: &[Arc<DataFlowNode>],
) -> Result<CatalogFacts, Unplannable> {
    let namespace = product.namespace().unwrap_or_default();
    let publisher = publisher_of(nodes, &namespace).map_err(Unplannable::NoPublisher)?;
    let facts = product_facts(product).map_err(|message| {
        Unplannable::InvalidSelector(Problem::new(reasons::INVALID_SELECTOR, message))
    })?;
    Ok(CatalogFacts {
        publisher_facts: node_facts(&publisher),
        publisher,
        product: facts,
        nodes: nodes.iter().map(|n| (n.clone(), node_facts(n))).collect(),
    })
}

/// The node whose home namespace is `namespace`.
pub fn publisher_of(
    nodes: &[Arc<DataFlowNode>],
    namespace: &str,
) -> Result<Arc<DataFlowNode>, Problem> {
    let owners: Vec<&Arc<DataFlowNode>> = nodes
        .iter()
        .filter(|n| n.home_namespace() == namespace)
        .collect();
    match owners.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Problem::new(
            reasons::NO_PUBLISHER_NODE,
            format!(
                "namespace {namespace} is the home namespace of no DataFlowNode; publish products in a node's home namespace"
            ),
        )),
        many => Err(Problem::new(
            reasons::AMBIGUOUS_PUBLISHER,
            format!(
                "namespace {namespace} is claimed by several nodes ({}); give each node its own spec.catalog.namespace",
                many.iter()
                    .map(|n| n.name_any())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}
