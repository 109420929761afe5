//! Writing status and events: server-side apply with one field manager per
//! controller, sending only the status the controller owns.

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::Result;

/// Field manager names, one per write site.
pub mod managers {
    pub const NODE: &str = "flowfed.io/node-controller";
    pub const LINK: &str = "flowfed.io/link-controller";
    pub const FEDERATION: &str = "flowfed.io/federation-controller";
    pub const CATALOG: &str = "flowfed.io/catalog-controller";
    pub const PROCESSOR: &str = "flowfed.io/processor-controller";
    pub const LEDGER: &str = "flowfed.io/ledger-witness";
}

/// Applies `status` to `object`'s status subresource as `manager`.
pub async fn apply_status<K, S>(api: &Api<K>, object: &K, manager: &str, status: &S) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Publishes an event about `object`; a failure to publish is logged, never fatal.
pub async fn publish_event<K>(
    recorder: &Recorder,
    object: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(%error, reason, "could not publish event");
    }
}
