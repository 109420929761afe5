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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::status::{apply_status, managers, publish_event};
use super::{Context, Endpoint, Result};
use crate::api::conditions::{self, Status, types};
use crate::api::{DataFlowNode, DataFlowNodeStatus, NodePhase};
use crate::probe::{Health, ProbeTarget, rtt_moved, slow_threshold_millis};

/// Label on a home namespace naming its node.
pub const NODE_LABEL: &str = "flowfed.io/node";

/// Condition reasons of the node reconciler (probe failures use `FailureKind::reason`).
pub mod reasons {
    pub const NOT_PROBED: &str = "NotProbed";
    pub const PROBE_SUCCEEDED: &str = "ProbeSucceeded";
    pub const PROBE_FAILING: &str = "ProbeFailing";
    pub const SLOW_RESPONSES: &str = "SlowResponses";
    pub const READY: &str = "Ready";
}

/// An RTT move alone is written at most this often per node (the live RTT is in
/// the metrics); phase and condition changes are written at once.
const RTT_REFRESH: Duration = Duration::from_secs(600);

/// Whether the last write (its `lastProbeTime`) is at least `RTT_REFRESH` old.
fn rtt_refresh_due(current: &DataFlowNodeStatus, desired: &DataFlowNodeStatus) -> bool {
    match (&current.last_probe_time, &desired.last_probe_time) {
        (Some(then), Some(now)) => {
            now.0.duration_since(then.0).as_secs_f64() >= RTT_REFRESH.as_secs_f64()
        }
        _ => true,
    }
}

/// The conditions the node reconciler owns.
const OWN_CONDITIONS: [&str; 2] = [types::READY, types::REACHABLE];

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
    let manifest = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {NODE_LABEL: node.name_any()}},
    });
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    api.patch(
        &namespace,
        &PatchParams::apply(managers::NODE).force(),
        &Patch::Apply(&manifest),
    )
    .await?;
    Ok(())
}

/// Health as the last status recorded it, so an operator restart neither forgets
/// an outage nor invents one.
fn resume_from_status(status: Option<&DataFlowNodeStatus>) -> Health {
    match status {
        Some(s) => Health::resume(s.phase, s.consecutive_failures.max(0) as u32, s.rtt_millis),
        None => Health::default(),
    }
}

/// The status `health` implies. Messages are stable (no live numbers) so that
/// re-deriving the same state never produces a write.
pub fn desired_status(
    node: &DataFlowNode,
    health: &Health,
    timeout: Duration,
    now: Timestamp,
) -> DataFlowNodeStatus {
    let previous = node.status.clone().unwrap_or_default();
    let generation = node.metadata.generation;
    // Only the conditions this reconciler owns: CatalogSynced and catalogEntries
    // belong to the catalog side, under its own field manager.
    let mut conditions: Vec<_> = previous
        .conditions
        .iter()
        .filter(|c| OWN_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let failure = health.last_failure.as_ref();

    let (reachable, reachable_reason, reachable_message) = match (health.phase, failure) {
        (NodePhase::Unreachable, Some((kind, message))) => (
            Status::False,
            kind.reason(),
            format!(
                "{} or more consecutive probes failed; last: {message}",
                node.spec.probe.failure_threshold
            ),
        ),
        (NodePhase::Unreachable, None) => (
            Status::False,
            reasons::PROBE_FAILING,
            "probes failing".to_owned(),
        ),
        (NodePhase::Pending, Some((kind, message))) => (
            Status::Unknown,
            kind.reason(),
            format!("not reached yet; last probe: {message}"),
        ),
        (NodePhase::Pending, None) => (
            Status::Unknown,
            reasons::NOT_PROBED,
            "gateway not probed yet".to_owned(),
        ),
        (NodePhase::Ready | NodePhase::Degraded, _) => (
            Status::True,
            reasons::PROBE_SUCCEEDED,
            format!("gateway answers HTTP {}", health.last_status.unwrap_or(200)),
        ),
    };
    conditions::set(
        &mut conditions,
        types::REACHABLE,
        reachable,
        reachable_reason,
        reachable_message.clone(),
        generation,
        now,
    );

    let (ready, ready_reason, ready_message) = match health.phase {
        NodePhase::Ready => (
            Status::True,
            reasons::READY,
            "gateway reachable and answering in time".to_owned(),
        ),
        NodePhase::Degraded => (
            Status::False,
            reasons::SLOW_RESPONSES,
            format!(
                "smoothed round-trip time above {:.0} ms (half the probe timeout)",
                slow_threshold_millis(timeout)
            ),
        ),
        NodePhase::Unreachable | NodePhase::Pending => {
            (Status::False, reachable_reason, reachable_message)
        }
    };
    conditions::set(
        &mut conditions,
        types::READY,
        ready,
        ready_reason,
        ready_message,
        generation,
        now,
    );

    DataFlowNodeStatus {
        phase: health.phase,
        observed_generation: generation,
        conditions,
        last_probe_time: Some(Time(now)),
        rtt_millis: health
            .smoothed_rtt_millis
            .map(|ms| (ms * 100.0).round() / 100.0),
        consecutive_failures: health.consecutive_failures.min(i32::MAX as u32) as i32,
        catalog_entries: None,
    }
}

/// Whether `desired` differs from `current` in anything but timestamps, the
/// count of failed probes (a lost probe is not news until it changes the
/// phase), and RTT jitter.
pub fn needs_write(current: Option<&DataFlowNodeStatus>, desired: &DataFlowNodeStatus) -> bool {
    let Some(current) = current else { return true };
    let own: Vec<_> = current
        .conditions
        .iter()
        .filter(|c| OWN_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    current.phase != desired.phase
        || current.observed_generation != desired.observed_generation
        || !conditions::equal_ignoring_time(&own, &desired.conditions)
        || (rtt_moved(current.rtt_millis, desired.rtt_millis) && rtt_refresh_due(current, desired))
        || current.last_probe_time.is_none()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DataFlowNodeSpec, Endpoint};
    use crate::probe::{FailureKind, ProbeOutcome};

    fn node() -> DataFlowNode {
        let mut node = DataFlowNode::new(
            "hangzhou",
            DataFlowNodeSpec {
                city: "Hangzhou".into(),
                province: "CN-ZJ".into(),
                jurisdiction: "CN".into(),
                zone: None,
                location: None,
                endpoint: Endpoint {
                    url: "http://127.0.0.1:1/".into(),
                    ..Default::default()
                },
                probe: Default::default(),
                catalog: Default::default(),
                capacity: None,
            },
        );
        node.metadata.generation = Some(1);
        node
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    const TIMEOUT: Duration = Duration::from_secs(3);

    #[test]
    fn steady_probes_of_a_healthy_node_cause_no_writes() {
        let mut node = node();
        let mut health = Health::default();
        health.observe(
            &ProbeOutcome::Success {
                rtt: Duration::from_millis(20),
                status: 200,
            },
            3,
            TIMEOUT,
        );
        let first = desired_status(&node, &health, TIMEOUT, at(100));
        assert!(needs_write(None, &first));
        node.status = Some(first.clone());
        for (i, ms) in [22u64, 19, 21, 20, 23, 26, 18].iter().enumerate() {
            health.observe(
                &ProbeOutcome::Success {
                    rtt: Duration::from_millis(*ms),
                    status: 200,
                },
                3,
                TIMEOUT,
            );
            let next = desired_status(&node, &health, TIMEOUT, at(110 + i as i64 * 10));
            assert!(
                !needs_write(node.status.as_ref(), &next),
                "jitter at probe {i} caused a write"
            );
        }
    }

    #[test]
    fn an_outage_writes_once_per_transition_not_per_probe() {
        let mut node = node();
        let mut health = Health::default();
        health.observe(
            &ProbeOutcome::Success {
                rtt: Duration::from_millis(5),
                status: 200,
            },
            3,
            TIMEOUT,
        );
        node.status = Some(desired_status(&node, &health, TIMEOUT, at(0)));
        let refused = ProbeOutcome::Failure {
            kind: FailureKind::ConnectionRefused,
            message: "connection refused".into(),
        };
        let mut writes = 0;
        for i in 0..10 {
            health.observe(&refused, 3, TIMEOUT);
            let next = desired_status(&node, &health, TIMEOUT, at(10 * (i + 1)));
            if needs_write(node.status.as_ref(), &next) {
                writes += 1;
                node.status = Some(next);
            }
        }
        // One write: the transition to Unreachable. Lost probes before it are not news.
        assert_eq!(writes, 1);
        let status = node.status.unwrap();
        assert_eq!(status.phase, NodePhase::Unreachable);
        let reachable = conditions::find(&status.conditions, types::REACHABLE).unwrap();
        assert_eq!(
            (reachable.status.as_str(), reachable.reason.as_str()),
            ("False", "ConnectionRefused")
        );
    }
}
