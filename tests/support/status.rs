//! Conditions of flowfed's kinds, read the way the operator writes them
//! (through `flowfed::api::conditions` and its type constants), so a test
//! waits for a condition by type instead of spelling out a lookup.

use std::time::Duration;

use flowfed::api::conditions;
use flowfed::api::{DataFlowNode, DataProduct, Federation, InterCityLink};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;

/// A kind whose status carries conditions.
pub trait WithConditions:
    kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug
{
    fn conditions(&self) -> &[Condition];
}

macro_rules! with_conditions {
    ($($kind:ty),*) => {$(
        impl WithConditions for $kind {
            fn conditions(&self) -> &[Condition] {
                self.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default()
            }
        }
    )*};
}
with_conditions!(DataFlowNode, InterCityLink, Federation, DataProduct);

/// The condition of `type_` on `object`, if set.
pub fn condition<K: WithConditions>(object: &K, type_: &str) -> Option<Condition> {
    conditions::find(object.conditions(), type_).cloned()
}

/// Whether `object` has the condition `type_` with `status` ("True", "False", "Unknown").
pub fn has_condition<K: WithConditions>(object: &K, type_: &str, status: &str) -> bool {
    condition(object, type_).is_some_and(|c| c.status == status)
}

/// Waits until object `name` has condition `type_` with `status`, and returns
/// that condition (its reason and message are what tests check next).
pub async fn wait_for_condition<K: WithConditions>(
    api: &Api<K>,
    name: &str,
    type_: &str,
    status: &str,
    timeout: Duration,
) -> anyhow::Result<Condition> {
    let object = super::wait_for(api, name, timeout, |o| has_condition(o, type_, status)).await?;
    Ok(condition(&object, type_).expect("the condition waited for"))
}
