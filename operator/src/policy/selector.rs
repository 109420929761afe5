//! A label query (the meaning of a Kubernetes label selector) as plain data, so
//! the policy can evaluate `visibility.nodeSelector` without API types.

use std::collections::{BTreeMap, BTreeSet};

/// One requirement on a label.
#[derive(Clone, Debug, PartialEq)]
pub enum Requirement {
    Equals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// All requirements must hold; an empty query matches every node.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LabelQuery(pub Vec<Requirement>);

impl LabelQuery {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}
