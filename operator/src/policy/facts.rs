//! From the API's objects to the facts the rules read: the one place that
//! knows which fields of a `DataFlowNode` and a `DataProduct` the policy uses,
//! shared by the catalog reconciler, the fuzz targets and the tests.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use super::{CrossBorderFacts, LabelQuery, NodeFacts, ProductFacts, Requirement};
use crate::api::{DataFlowNode, DataProduct, VisibilityScope};

/// The facts of a node the policy reads.
pub fn node_facts(node: &DataFlowNode) -> NodeFacts {
    NodeFacts {
        name: node.name_any(),
        jurisdiction: node.spec.jurisdiction.clone(),
        labels: node.labels().clone(),
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
    Ok(ProductFacts {
        classification: spec.classification,
        anonymized: spec.anonymized,
        selected,
        cross_border: spec.cross_border.as_ref().map(|c| CrossBorderFacts {
            mechanism: c.mechanism,
            has_reference: c.reference.as_deref().is_some_and(|r| !r.is_empty()),
            has_exemption_reason: c.exemption_reason.as_deref().is_some_and(|r| !r.is_empty()),
            valid_until: c.valid_until.as_ref().map(|t| t.0),
        }),
    })
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
