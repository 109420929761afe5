//! Node reconciler: ensure the home namespace, probe the gateway when due, and
//! write status only when something a person would care about changed.
//!
//! Any trigger (a watch event, our own status write, the requeue) lands here,
//! but a probe runs only when the node is due, so the probe rate is set by
//! `spec.probe.intervalSeconds` alone. The live RTT goes to metrics through the
//! health table; status carries a smoothed RTT that is rewritten only when it
//! moves materially.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::status::{apply_status, managers, publish_event};
use super::{Context, Error, Result};
use crate::api::{DataFlowNode, NODE_LABEL, NodePhase};
use crate::probe::node_status::{desired_status, needs_write, resume_from_status};
use crate::probe::{Endpoint, Health, ProbeTarget, slow_threshold_millis};

pub async fn reconcile(node: Arc<DataFlowNode>, ctx: Arc<Context>) -> Result<Action> {
    let name = node.name_any();
    let generation = node.metadata.generation;
    let interval = Duration::from_secs(node.spec.probe.interval_seconds.max(1) as u64);
    let timeout = Duration::from_secs(node.spec.probe.timeout_seconds.max(1) as u64);
    let threshold = node.spec.probe.failure_threshold.max(1) as u32;

    // A namespace that cannot be created must not stop the probing: report it
    // and try again on the next reconcile.
    if !ctx.health.namespace_ensured(&name, generation) {
        match ensure_home_namespace(&node, &ctx).await {
            Ok(()) => ctx.health.mark_namespace_ensured(&name, generation),
            Err(error) => {
                let note = format!(
                    "cannot create home namespace {}: {error}",
                    node.home_namespace()
                );
                tracing::warn!(node = %name, %error, "cannot create home namespace");
                publish_event(
                    &ctx.recorder,
                    node.as_ref(),
                    EventType::Warning,
                    "HomeNamespaceFailed",
                    "Ensure",
                    note,
                )
                .await;
            }
        }
    }

    if let Some(wait) = ctx
        .health
        .due_in(Endpoint::Node(&name), generation, interval)
    {
        return Ok(Action::requeue(wait));
    }

    let target = ProbeTarget {
        url: node.spec.endpoint.url.clone(),
        ca_bundle: node.spec.endpoint.ca_bundle.clone(),
        insecure_skip_verify: node.spec.endpoint.insecure_skip_verify,
    };
    let outcome = ctx.prober.probe(&target, timeout).await;
    let (health, observation) = ctx.health.update(
        Endpoint::Node(&name),
        generation,
        || resume_from_status(node.status.as_ref()),
        |health| health.observe(&outcome, threshold, timeout),
    );

    let now = ctx.now();
    let desired = desired_status(&node, &health, timeout, now);
    if needs_write(node.status.as_ref(), &desired) {
        let api: Api<DataFlowNode> = Api::all(ctx.client.clone());
        apply_status(&api, node.as_ref(), managers::NODE, &desired).await?;
    }

    if observation.changed() {
        let (type_, reason, note) = transition_event(&health, observation.current, timeout);
        publish_event(&ctx.recorder, node.as_ref(), type_, reason, "Probe", note).await;
    }
    Ok(Action::requeue(interval))
}

/// Creates (or keeps) the node's home namespace in the hub, labelled with the node.
async fn ensure_home_namespace(node: &DataFlowNode, ctx: &Context) -> Result<()> {
    let namespace = node.home_namespace();
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    // A namespace another node holds is never taken over: its publishers would
    // publish as this node.
    if let Some(existing) = api.get_opt(&namespace).await?
        && let Some(holder) = existing.labels().get(NODE_LABEL)
        && *holder != node.name_any()
    {
        return Err(Error::NamespaceHeld(namespace, holder.clone()));
    }
    let manifest = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {NODE_LABEL: node.name_any()}},
    });
    api.patch(
        &namespace,
        &PatchParams::apply(managers::NODE).force(),
        &Patch::Apply(&manifest),
    )
    .await?;
    Ok(())
}

fn transition_event(
    health: &Health,
    phase: NodePhase,
    timeout: Duration,
) -> (EventType, &'static str, String) {
    match phase {
        NodePhase::Ready => (
            EventType::Normal,
            "Reachable",
            "gateway answers probes".into(),
        ),
        NodePhase::Degraded => (
            EventType::Warning,
            "Degraded",
            format!(
                "gateway answers slowly (smoothed RTT above {:.0} ms)",
                slow_threshold_millis(timeout)
            ),
        ),
        NodePhase::Unreachable => {
            let (reason, message) = health
                .last_failure
                .as_ref()
                .map(|(kind, message)| (kind.reason(), message.clone()))
                .unwrap_or(("ProbeFailing", String::new()));
            (
                EventType::Warning,
                "Unreachable",
                format!("{reason}: {message}"),
            )
        }
        NodePhase::Pending => (
            EventType::Normal,
            "Pending",
            "gateway not reached yet".into(),
        ),
    }
}
