//! What a node's probe history says about it: the `DataFlowNode` status the
//! node reconciler writes, derived purely from [`Health`], and whether a new
//! status is news enough to be written (phase and condition changes are; lost
//! probes before a transition and RTT jitter are not).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::{Health, rtt_moved, slow_threshold_millis};
use crate::api::conditions::{self, ConditionUpdate, Stamp, Status, types};
use crate::api::{DataFlowNode, DataFlowNodeStatus, NodePhase};

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

/// Health as the last status recorded it, so an operator restart neither forgets
/// an outage nor invents one.
pub fn resume_from_status(status: Option<&DataFlowNodeStatus>) -> Health {
    match status {
        Some(s) => Health::resume(s.phase, s.consecutive_failures.max(0) as u32, s.rtt_millis),
        None => Health::default(),
    }
}

/// The Reachable condition `health` implies.
fn reachable(node: &DataFlowNode, health: &Health) -> ConditionUpdate {
    let failure = health.last_failure.as_ref();
    let (status, reason, message) = match (health.phase, failure) {
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
    ConditionUpdate::new(types::REACHABLE, status, reason, message)
}

/// The Ready condition: Reachable, and answering in time.
fn ready(health: &Health, reachable: &ConditionUpdate, timeout: Duration) -> ConditionUpdate {
    match health.phase {
        NodePhase::Ready => ConditionUpdate::new(
            types::READY,
            Status::True,
            reasons::READY,
            "gateway reachable and answering in time",
        ),
        NodePhase::Degraded => ConditionUpdate::new(
            types::READY,
            Status::False,
            reasons::SLOW_RESPONSES,
            format!(
                "smoothed round-trip time above {:.0} ms (half the probe timeout)",
                slow_threshold_millis(timeout)
            ),
        ),
        NodePhase::Unreachable | NodePhase::Pending => ConditionUpdate::new(
            types::READY,
            Status::False,
            reachable.reason,
            reachable.message.clone(),
        ),
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
    let stamp = Stamp {
        generation: node.metadata.generation,
        now,
    };
    // Only the conditions the node reconciler owns: CatalogSynced and
    // catalogEntries belong to the catalog side, under its own field manager.
    let mut conditions = own_conditions(node.status.as_ref());
    let reachable = reachable(node, health);
    let ready = ready(health, &reachable, timeout);
    conditions::set(&mut conditions, reachable, stamp);
    conditions::set(&mut conditions, ready, stamp);
    DataFlowNodeStatus {
        phase: health.phase,
        observed_generation: stamp.generation,
        conditions,
        last_probe_time: Some(Time(now)),
        rtt_millis: health
            .smoothed_rtt_millis
            .map(|ms| (ms * 100.0).round() / 100.0),
        consecutive_failures: health.consecutive_failures.min(i32::MAX as u32) as i32,
        catalog_entries: None,
    }
}

fn own_conditions(status: Option<&DataFlowNodeStatus>) -> Vec<Condition> {
    status
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|c| OWN_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect()
}

/// Whether `desired` differs from `current` in anything but timestamps, the
/// count of failed probes (a lost probe is not news until it changes the
/// phase), and RTT jitter.
pub fn needs_write(current: Option<&DataFlowNodeStatus>, desired: &DataFlowNodeStatus) -> bool {
    let Some(current) = current else { return true };
    let news = |status: &DataFlowNodeStatus| DataFlowNodeStatus {
        conditions: own_conditions(Some(status)),
        rtt_millis: None,
        consecutive_failures: 0,
        catalog_entries: None,
        ..status.clone()
    };
    !conditions::same_ignoring_time(&news(current), &news(desired))
        || (rtt_moved(current.rtt_millis, desired.rtt_millis) && rtt_refresh_due(current, desired))
        || current.last_probe_time.is_none()
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
                greater_bay_area: false,
                free_trade_zone: None,
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
