//! Step 5, pure: the listing the ledger records, from what the plan decided
//! and the write made real (a target whose write failed is not listed).

use kube::ResourceExt;

use super::plan::Plan;
use super::write::Written;
use crate::api::DataProduct;
use crate::ledger::record::{Blocked, Listing, MechanismUse, ProductId, Visible};

/// The product as the ledger names it.
pub fn product_id(product: &DataProduct) -> ProductId {
    ProductId {
        namespace: product.namespace().unwrap_or_default(),
        name: product.name_any(),
        uid: product.uid().unwrap_or_default(),
    }
}

/// The listing `plan` and `written` amount to.
pub fn listing(product: &DataProduct, plan: &Plan, written: &Written) -> Listing {
    let mechanisms = product
        .spec
        .cross_border
        .as_ref()
        .map(|c| c.mechanisms.as_slice())
        .unwrap_or_default();
    let mut visible: Vec<Visible> = written
        .visible_in
        .iter()
        .filter_map(|node| {
            let because = plan.listed_because.get(node)?;
            Some(Visible {
                node: node.clone(),
                reason: because.reason.as_str().to_owned(),
                rule: because.rule,
                mechanisms: because
                    .mechanisms
                    .iter()
                    .filter_map(|&i| mechanisms.get(i))
                    .map(|m| MechanismUse {
                        kind: wire(&m.type_),
                        reference: m.reference.clone(),
                        valid_until: m.valid_until.as_ref().map(|t| t.0.to_string()),
                    })
                    .collect(),
            })
        })
        .collect();
    visible.sort_by(|a, b| a.node.cmp(&b.node));
    Listing {
        publisher: plan.publisher.clone(),
        processor: product.spec.processor.clone(),
        content_hash: plan.entry.content_hash.clone(),
        classification: product.spec.classification.as_str().to_owned(),
        visible,
        blocked: plan
            .blocked
            .iter()
            .map(|b| Blocked {
                node: b.node.clone(),
                reason: b.reason.clone(),
                rule: u8::try_from(b.rule).unwrap_or(u8::MAX),
            })
            .collect(),
    }
}

/// Targets whose write or withdrawal failed this pass: the ledger keeps what
/// it last recorded for them.
pub fn unsettled(written: &Written) -> Vec<String> {
    written
        .problems
        .iter()
        .chain(&written.withdrawals_pending)
        .map(|(node, _)| node.clone())
        .collect()
}

/// The listing of a product no node may list (it has no publisher node).
pub fn unlisted(product: &DataProduct) -> Listing {
    Listing {
        processor: product.spec.processor.clone(),
        classification: product.spec.classification.as_str().to_owned(),
        ..Listing::default()
    }
}

/// An enum as the API writes it.
fn wire<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
