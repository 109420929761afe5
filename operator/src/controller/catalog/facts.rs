//! Step 1, pure: who publishes the product, and what the rules read of it, of
//! every node, of its processor (with the tier its yearly totals give) and of
//! the free trade zones. The publisher is the node whose home namespace holds
//! the product, never a field of its spec.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::reasons;
use crate::api::conditions::Problem;
use crate::api::{DataFlowNode, DataProcessor, DataProduct, FreeTradeZone, ProcessorTier};
use crate::policy::{
    self, NodeFacts, ProcessorFacts, ProductFacts, Totals, ZoneFacts, declared, node_facts,
    processor_facts, product_facts, zone_facts,
};

/// Everything around a product that its plan reads, from the caches.
#[derive(Clone, Copy)]
pub struct Surroundings<'a> {
    pub nodes: &'a [Arc<DataFlowNode>],
    pub products: &'a [Arc<DataProduct>],
    pub processors: &'a [Arc<DataProcessor>],
    pub zones: &'a [Arc<FreeTradeZone>],
    pub now: Timestamp,
}

/// What the plan is made from.
#[derive(Clone, Debug)]
pub struct CatalogFacts {
    pub publisher: Arc<DataFlowNode>,
    pub publisher_facts: NodeFacts,
    pub product: ProductFacts,
    /// Every node, with the facts the policy reads of it.
    pub nodes: Vec<(Arc<DataFlowNode>, NodeFacts)>,
    /// The product's processor, if it names one at its node, with its tier.
    pub processor: Option<ProcessorFacts>,
    /// The year the processor's declared figures are for (they stop counting after it).
    pub declared_year: Option<i32>,
    pub zones: Vec<ZoneFacts>,
}

/// Why no plan can be made: the product is then listed nowhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unplannable {
    /// No single node publishes from the product's namespace.
    NoPublisher(Problem),
    /// The product's visibility selector cannot be read.
    InvalidSelector(Problem),
}

/// The facts of `product` among its surroundings.
pub fn gather(product: &DataProduct, around: Surroundings) -> Result<CatalogFacts, Unplannable> {
    let namespace = product.namespace().unwrap_or_default();
    let publisher = publisher_of(around.nodes, &namespace).map_err(Unplannable::NoPublisher)?;
    let invalid =
        |message| Unplannable::InvalidSelector(Problem::new(reasons::INVALID_SELECTOR, message));
    let facts = product_facts(product).map_err(invalid)?;
    let processor = facts
        .processor
        .as_ref()
        .and_then(|name| processor_at(around.processors, name, &publisher.name_any()));
    Ok(CatalogFacts {
        publisher_facts: node_facts(&publisher),
        publisher,
        processor: processor.map(|p| processor_facts(p, processor_tier(p, around))),
        declared_year: processor.and_then(declared).map(|d| d.year),
        product: facts,
        nodes: around
            .nodes
            .iter()
            .map(|n| (n.clone(), node_facts(n)))
            .collect(),
        zones: around.zones.iter().map(|z| zone_facts(z)).collect(),
    })
}

/// The processor `name`, if it publishes at `node`.
fn processor_at<'a>(
    processors: &'a [Arc<DataProcessor>],
    name: &str,
    node: &str,
) -> Option<&'a DataProcessor> {
    processors
        .iter()
        .find(|p| p.name_any() == name && p.spec.node == node)
        .map(Arc::as_ref)
}

/// This year's totals of `processor`: what it declared, plus its products
/// (published at its node) that its scope would list in another jurisdiction.
pub fn processor_totals(processor: &DataProcessor, around: Surroundings) -> Totals {
    let name = processor.name_any();
    let nodes: Vec<NodeFacts> = around.nodes.iter().map(|n| node_facts(n)).collect();
    let Some(home) = nodes.iter().find(|n| n.name == processor.spec.node) else {
        return policy::totals(&name, declared(processor), [], &nodes, around.now);
    };
    let home_namespace = around
        .nodes
        .iter()
        .find(|n| n.name_any() == home.name)
        .map(|n| n.home_namespace());
    let own: Vec<ProductFacts> = around
        .products
        .iter()
        .filter(|p| p.spec.processor.as_deref() == Some(name.as_str()))
        .filter(|p| p.namespace() == home_namespace)
        .filter_map(|p| product_facts(p).ok())
        .collect();
    let products = own.iter().map(|p| (p, home));
    policy::totals(&name, declared(processor), products, &nodes, around.now)
}

/// The tier `processor`'s totals put it in.
pub fn processor_tier(processor: &DataProcessor, around: Surroundings) -> ProcessorTier {
    let totals = processor_totals(processor, around);
    policy::tier(&totals, processor.spec.critical_information_infrastructure)
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
