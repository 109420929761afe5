//! From the API's objects to the facts the rules read: the one place that
//! knows which fields of nodes, products, processors and zones the policy uses,
//! shared by the catalog reconciler, the fuzz targets and the tests.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use super::volume::Declared;
use super::{
    LabelQuery, MechanismFacts, NodeFacts, ProcessorFacts, ProcessorTier, ProductFacts,
    RecipientFacts, Requirement, ZoneFacts,
};
use crate::api::{
    DataFlowNode, DataProcessor, DataProduct, FreeTradeZone, TransferMechanism, VisibilityScope,
};

/// The facts of a node the policy reads.
pub fn node_facts(node: &DataFlowNode) -> NodeFacts {
    NodeFacts {
        name: node.name_any(),
        jurisdiction: node.spec.jurisdiction.clone(),
        labels: node.labels().clone(),
        greater_bay_area: node.spec.greater_bay_area,
        free_trade_zone: node.spec.free_trade_zone.clone(),
    }
}

/// The facts of a product the policy reads; `Err` for a selector that cannot be read.
pub fn product_facts(product: &DataProduct) -> Result<ProductFacts, String> {
    let spec = &product.spec;
    let selected = match (spec.visibility.scope, &spec.visibility.node_selector) {
        (VisibilityScope::AllRegions, _) => None,
        (VisibilityScope::Selected, Some(selector)) => Some(label_query(selector)?),
        // The API server requires a selector with Selected; deny by default anyway.
        (VisibilityScope::Selected, None) => {
            Some(LabelQuery(vec![Requirement::Exists(String::new())]))
        }
    };
    let cross_border = spec.cross_border.clone().unwrap_or_default();
    let mechanisms = cross_border
        .mechanisms
        .iter()
        .map(mechanism_facts)
        .collect::<Result<_, _>>()?;
    let subjects = spec.subjects.unwrap_or_default();
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(ProductFacts {
        classification: spec.classification,
        anonymized: spec
            .anonymization
            .as_ref()
            .is_some_and(|a| !a.method.is_empty() && !a.assessment_reference.is_empty()),
        selected,
        processor: spec.processor.clone(),
        subjects: (
            count(subjects.individuals),
            count(subjects.sensitive_individuals),
        ),
        sector: spec.sector.clone(),
        data_categories: spec.data_categories.iter().cloned().collect(),
        exemption: cross_border.exemption,
        mechanisms,
    })
}

fn mechanism_facts(mechanism: &TransferMechanism) -> Result<MechanismFacts, String> {
    let recipients = match &mechanism.recipients {
        None => None,
        Some(r) => Some(RecipientFacts {
            jurisdictions: r.jurisdictions.iter().cloned().collect(),
            selector: r.node_selector.as_ref().map(label_query).transpose()?,
        }),
    };
    Ok(MechanismFacts {
        kind: mechanism.type_,
        issued_at: mechanism.issued_at.as_ref().map(|t| t.0),
        valid_until: mechanism.valid_until.as_ref().map(|t| t.0),
        recipients,
    })
}

/// The facts of a processor the policy reads, with the tier its totals give.
pub fn processor_facts(processor: &DataProcessor, tier: ProcessorTier) -> ProcessorFacts {
    ProcessorFacts {
        name: processor.name_any(),
        node: processor.spec.node.clone(),
        critical_information_infrastructure: processor.spec.critical_information_infrastructure,
        free_trade_zone: processor.spec.free_trade_zone.clone(),
        tier,
    }
}

/// What a processor declared outside flowfed.
pub fn declared(processor: &DataProcessor) -> Option<Declared> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    processor.spec.outbound_outside_flowfed.map(|o| Declared {
        year: o.year,
        individuals: count(o.individuals),
        sensitive_individuals: count(o.sensitive_individuals),
    })
}

/// A zone's negative list as the policy reads it.
pub fn zone_facts(zone: &FreeTradeZone) -> ZoneFacts {
    ZoneFacts {
        name: zone.name_any(),
        sectors: zone.spec.sectors.iter().cloned().collect(),
        negative_list: zone
            .spec
            .negative_list
            .iter()
            .map(|item| (item.sector.clone(), item.category.clone()))
            .collect(),
    }
}

/// A Kubernetes label selector as the policy's label query.
pub fn label_query(selector: &LabelSelector) -> Result<LabelQuery, String> {
    let mut requirements: Vec<Requirement> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
        .collect();
    for expression in selector.match_expressions.iter().flatten() {
        let values: BTreeSet<String> = expression.values.iter().flatten().cloned().collect();
        let key = expression.key.clone();
        requirements.push(match expression.operator.as_str() {
            "In" => Requirement::In(key, values),
            "NotIn" => Requirement::NotIn(key, values),
            "Exists" => Requirement::Exists(key),
            "DoesNotExist" => Requirement::DoesNotExist(key),
            other => {
                return Err(format!(
                    "unknown selector operator {other:?} (In, NotIn, Exists, DoesNotExist)"
                ));
            }
        });
    }
    Ok(LabelQuery(requirements))
}
