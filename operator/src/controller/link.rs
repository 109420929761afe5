//! Link reconciler: a link's state follows from its two nodes and, when it has
//! one, a probe through the channel. The decision is a pure function of plain
//! inputs; the reconciler only gathers them from the caches and writes status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};

use super::status::{apply_status, managers, publish_event};
use super::{Context, Result, jittered};
use crate::api::conditions::{self, ConditionUpdate, Stamp, Status, types};
use crate::api::{DataFlowNode, InterCityLink, InterCityLinkStatus, LinkState, NodePhase};
use crate::probe::{Endpoint, Health, ProbeTarget, rtt_moved};
use crate::topology::LinkPair;

/// Condition reasons of the link reconciler.
pub mod reasons {
    pub const NODE_MISSING: &str = "NodeMissing";
    pub const NODE_NOT_PROBED: &str = "NodeNotProbed";
    pub const NODE_UNREACHABLE: &str = "NodeUnreachable";
    pub const NODES_REACHABLE: &str = "NodesReachable";
    pub const CHANNEL_DOWN: &str = "ChannelProbeFailing";
    pub const ESTABLISHED: &str = "Established";
    pub const NOT_ESTABLISHED: &str = "NotEstablished";
    pub const DUPLICATE: &str = "DuplicateLink";
    pub const WITHIN_SLO: &str = "WithinSLO";
    pub const SLO_EXCEEDED: &str = "LatencyAboveSLO";
    pub const NO_SLO: &str = "NoSLO";
    pub const NO_MEASUREMENT: &str = "NoMeasurement";
}

/// One end of a link as the evaluation needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct End {
    pub name: String,
    /// `None` when the node does not exist.
    pub phase: Option<NodePhase>,
    pub rtt_millis: Option<f64>,
}

/// A link's derived state.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub state: LinkState,
    pub rtt_millis: Option<f64>,
    pub endpoints_ready: ConditionUpdate,
    pub established: ConditionUpdate,
    pub within_slo: ConditionUpdate,
}

impl Evaluation {
    /// The conditions, in the order they are reported.
    pub fn conditions(&self) -> [&ConditionUpdate; 3] {
        [&self.endpoints_ready, &self.established, &self.within_slo]
    }
}

/// Derives a link's state from its ends, its channel probe (if any), its SLO and
/// whether it duplicates another link.
pub fn evaluate(
    ends: [&End; 2],
    channel: Option<&Health>,
    slo_millis: Option<i32>,
    duplicate_of: Option<&str>,
) -> Evaluation {
    let endpoints_ready = endpoints_ready(ends);
    let any_missing = ends.iter().any(|e| e.phase.is_none());
    let channel_down = channel.is_some_and(|h| h.phase == NodePhase::Unreachable);
    let channel_pending = channel.is_some_and(|h| h.phase == NodePhase::Pending);
    let state = match endpoints_ready.status {
        Status::False if any_missing => LinkState::Pending,
        Status::False => LinkState::Down,
        Status::Unknown => LinkState::Pending,
        Status::True if channel_down => LinkState::Down,
        Status::True if channel_pending => LinkState::Pending,
        Status::True => LinkState::Up,
    };
    let rtt_millis = match channel {
        Some(h) => h.smoothed_rtt_millis,
        None => match (ends[0].rtt_millis, ends[1].rtt_millis) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        },
    }
    .filter(|_| state == LinkState::Up);
    let within_slo = within_slo(slo_millis, rtt_millis);
    let state = if state == LinkState::Up && within_slo.status == Status::False {
        LinkState::Degraded
    } else {
        state
    };
    let channel_alone_down = channel_down && endpoints_ready.status == Status::True;
    Evaluation {
        state,
        rtt_millis: rtt_millis.map(|ms| (ms * 100.0).round() / 100.0),
        established: established(duplicate_of, state, channel_alone_down, &endpoints_ready),
        endpoints_ready,
        within_slo,
    }
}

/// EndpointsReady: both nodes exist and answer their probes.
fn endpoints_ready(ends: [&End; 2]) -> ConditionUpdate {
    let named = |phase: fn(Option<NodePhase>) -> bool| {
        let names: Vec<&str> = ends
            .iter()
            .filter(|e| phase(e.phase))
            .map(|e| e.name.as_str())
            .collect();
        (!names.is_empty()).then(|| names.join(" and "))
    };
    let condition = |status, reason, message: String| {
        ConditionUpdate::new(types::ENDPOINTS_READY, status, reason, message)
    };
    if let Some(missing) = named(|p| p.is_none()) {
        condition(
            Status::False,
            reasons::NODE_MISSING,
            format!("DataFlowNode {missing} does not exist"),
        )
    } else if let Some(down) = named(|p| p == Some(NodePhase::Unreachable)) {
        condition(
            Status::False,
            reasons::NODE_UNREACHABLE,
            format!("node {down} is Unreachable"),
        )
    } else if let Some(unprobed) = named(|p| p == Some(NodePhase::Pending)) {
        condition(
            Status::Unknown,
            reasons::NODE_NOT_PROBED,
            format!("node {unprobed} not probed yet"),
        )
    } else {
        condition(
            Status::True,
            reasons::NODES_REACHABLE,
            "both nodes reachable".to_owned(),
        )
    }
}

/// WithinSLO: the measured round trip against `latencySLOMillis`.
fn within_slo(slo_millis: Option<i32>, rtt_millis: Option<f64>) -> ConditionUpdate {
    let (status, reason, message) = match (slo_millis, rtt_millis) {
        (None, _) => (
            Status::True,
            reasons::NO_SLO,
            "no latencySLOMillis set".to_owned(),
        ),
        (Some(_), None) => (
            Status::Unknown,
            reasons::NO_MEASUREMENT,
            "no round-trip time measured".to_owned(),
        ),
        (Some(slo), Some(rtt)) if rtt > f64::from(slo) => (
            Status::False,
            reasons::SLO_EXCEEDED,
            format!("round-trip time above the {slo} ms objective"),
        ),
        (Some(slo), Some(_)) => (
            Status::True,
            reasons::WITHIN_SLO,
            format!("round-trip time within the {slo} ms objective"),
        ),
    };
    ConditionUpdate::new(types::WITHIN_SLO, status, reason, message)
}

/// Established: the link counts and carries traffic.
fn established(
    duplicate_of: Option<&str>,
    state: LinkState,
    channel_alone_down: bool,
    endpoints_ready: &ConditionUpdate,
) -> ConditionUpdate {
    let (status, reason, message) = match (duplicate_of, state) {
        (Some(original), _) => (
            Status::False,
            reasons::DUPLICATE,
            format!("link {original} already joins these nodes; this one is not counted"),
        ),
        (None, LinkState::Up | LinkState::Degraded) => (
            Status::True,
            reasons::ESTABLISHED,
            "channel carries traffic".to_owned(),
        ),
        (None, LinkState::Down) if channel_alone_down => (
            Status::False,
            reasons::CHANNEL_DOWN,
            "probe through the channel is failing".to_owned(),
        ),
        (None, _) => (
            Status::False,
            reasons::NOT_ESTABLISHED,
            endpoints_ready.message.clone(),
        ),
    };
    ConditionUpdate::new(types::ESTABLISHED, status, reason, message)
}

/// The link that counts for the pair: the oldest, ties by name. `None` when
/// `link` is itself the one that counts.
pub fn original_of(links: &Store<InterCityLink>, link: &InterCityLink) -> Option<String> {
    let pair = LinkPair::new(&link.spec.from, &link.spec.to)?;
    let key = |l: &InterCityLink| (l.metadata.creation_timestamp.clone(), l.name_any());
    links
        .state()
        .into_iter()
        .filter(|other| LinkPair::new(&other.spec.from, &other.spec.to).as_ref() == Some(&pair))
        .min_by_key(|other| key(other))
        .map(|oldest| oldest.name_any())
        .filter(|oldest| *oldest != link.name_any())
}

/// Links over the same pair of nodes as `link` (including itself): a create or
/// delete can change which of them is the original.
pub fn pair_mates(
    links: &Store<InterCityLink>,
    link: &InterCityLink,
) -> Vec<ObjectRef<InterCityLink>> {
    let pair = LinkPair::new(&link.spec.from, &link.spec.to);
    links
        .state()
        .iter()
        .filter(|other| LinkPair::new(&other.spec.from, &other.spec.to) == pair)
        .map(|other| ObjectRef::from_obj(other.as_ref()))
        .collect()
}

/// Links with `node` at either end.
pub fn links_of_node(links: &Store<InterCityLink>, node: &str) -> Vec<ObjectRef<InterCityLink>> {
    links
        .state()
        .iter()
        .filter(|l| l.spec.from == node || l.spec.to == node)
        .map(|l| ObjectRef::from_obj(l.as_ref()))
        .collect()
}

pub async fn reconcile(link: Arc<InterCityLink>, ctx: Arc<Context>) -> Result<Action> {
    if !ctx.caches_ready() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ends = [end(&ctx, &link.spec.from), end(&ctx, &link.spec.to)];
    let duplicate_of = original_of(&ctx.links, &link);
    let ends_reachable = ends
        .iter()
        .all(|e| matches!(e.phase, Some(NodePhase::Ready | NodePhase::Degraded)));
    let channel = channel_health(&ctx, &link, ends_reachable).await;
    let evaluation = evaluate(
        [&ends[0], &ends[1]],
        channel.as_ref(),
        link.spec.latency_slo_millis,
        duplicate_of.as_deref(),
    );
    let desired = desired_status(&link, &evaluation, duplicate_of, ctx.now());
    if needs_write(link.status.as_ref(), &desired, link.spec.probe.is_some()) {
        let previous_state = link.status.as_ref().map(|s| s.state).unwrap_or_default();
        let api: Api<InterCityLink> = Api::all(ctx.client.clone());
        apply_status(&api, link.as_ref(), managers::LINK, &desired).await?;
        if previous_state != desired.state {
            report_transition(&ctx, &link, &evaluation).await;
        }
    }
    Ok(match link.spec.probe {
        Some(_) => Action::requeue(ctx.settings.link_probe_interval),
        None => Action::requeue(jittered(ctx.settings.resync)),
    })
}

/// One end as the node cache shows it.
fn end(ctx: &Context, node_name: &str) -> End {
    let node = ctx.nodes.get(&ObjectRef::<DataFlowNode>::new(node_name));
    End {
        name: node_name.to_owned(),
        phase: node
            .as_ref()
            .map(|n| n.status.as_ref().map(|s| s.phase).unwrap_or_default()),
        // The recorded RTT, not the live one: it changes only materially, so
        // a link's estimate does not churn with every probe's jitter.
        rtt_millis: node.and_then(|n| n.status.as_ref().and_then(|s| s.rtt_millis)),
    }
}

/// The channel's health, probed through the channel when due and both ends are
/// reachable (a channel cannot be judged while an end is down).
async fn channel_health(
    ctx: &Context,
    link: &InterCityLink,
    ends_reachable: bool,
) -> Option<Health> {
    let probe = link.spec.probe.as_ref()?;
    let name = link.name_any();
    let endpoint = Endpoint::Link(&name);
    let generation = link.metadata.generation;
    let interval = ctx.settings.link_probe_interval;
    if !ends_reachable || ctx.health.due_in(endpoint, generation, interval).is_some() {
        return ctx.health.health(endpoint);
    }
    let timeout = interval / 3;
    let target = ProbeTarget {
        url: probe.url.clone(),
        ca_bundle: probe.ca_bundle.clone(),
        insecure_skip_verify: false,
    };
    let outcome = ctx.prober.probe(&target, timeout).await;
    let (health, _) = ctx
        .health
        .update(endpoint, generation, Health::default, |h| {
            h.observe(&outcome, 3, timeout)
        });
    Some(health)
}

/// An event for a change of state, its note saying why.
async fn report_transition(ctx: &Context, link: &InterCityLink, evaluation: &Evaluation) {
    let type_ = if matches!(evaluation.state, LinkState::Down | LinkState::Degraded) {
        EventType::Warning
    } else {
        EventType::Normal
    };
    publish_event(
        &ctx.recorder,
        link,
        type_,
        &format!("{:?}", evaluation.state),
        "Evaluate",
        evaluation.endpoints_ready.message.clone(),
    )
    .await;
}

fn desired_status(
    link: &InterCityLink,
    evaluation: &Evaluation,
    duplicate_of: Option<String>,
    now: Timestamp,
) -> InterCityLinkStatus {
    let previous = link.status.clone().unwrap_or_default();
    let stamp = Stamp {
        generation: link.metadata.generation,
        now,
    };
    let mut conditions = previous.conditions.clone();
    for condition in evaluation.conditions() {
        conditions::set(&mut conditions, condition.clone(), stamp);
    }
    let last_transition_time =
        if previous.state != evaluation.state || previous.last_transition_time.is_none() {
            Some(Time(now))
        } else {
            previous.last_transition_time
        };
    InterCityLinkStatus {
        state: evaluation.state,
        observed_generation: link.metadata.generation,
        rtt_millis: evaluation.rtt_millis,
        conditions,
        last_transition_time,
        duplicate_of,
    }
}

/// Whether the status must be written. An RTT move alone counts only for a link
/// with its own channel probe: an estimate from the two nodes is refreshed with
/// the next real change (its live value is in `flowfed_link_rtt_seconds`), so
/// node jitter never fans out into link writes.
fn needs_write(
    current: Option<&InterCityLinkStatus>,
    desired: &InterCityLinkStatus,
    measured: bool,
) -> bool {
    let Some(current) = current else { return true };
    let without_rtt = |status: &InterCityLinkStatus| InterCityLinkStatus {
        rtt_millis: None,
        ..status.clone()
    };
    !conditions::same_ignoring_time(&without_rtt(current), &without_rtt(desired))
        || (measured && rtt_moved(current.rtt_millis, desired.rtt_millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{FailureKind, ProbeOutcome};

    fn end(name: &str, phase: Option<NodePhase>, rtt: Option<f64>) -> End {
        End {
            name: name.into(),
            phase,
            rtt_millis: rtt,
        }
    }

    fn condition<'a>(e: &'a Evaluation, type_: &str) -> &'a ConditionUpdate {
        e.conditions()
            .into_iter()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    #[test]
    fn a_missing_node_leaves_the_link_pending_and_says_which() {
        let e = evaluate(
            [
                &end("a", Some(NodePhase::Ready), Some(1.0)),
                &end("ghost", None, None),
            ],
            None,
            None,
            None,
        );
        assert_eq!(e.state, LinkState::Pending);
        let c = condition(&e, types::ENDPOINTS_READY);
        assert_eq!(c.reason, reasons::NODE_MISSING);
        assert!(c.message.contains("ghost"), "{}", c.message);
    }

    #[test]
    fn an_unreachable_end_takes_the_link_down() {
        let e = evaluate(
            [
                &end("a", Some(NodePhase::Ready), Some(1.0)),
                &end("b", Some(NodePhase::Unreachable), None),
            ],
            None,
            None,
            None,
        );
        assert_eq!(e.state, LinkState::Down);
        assert_eq!(e.rtt_millis, None);
    }

    #[test]
    fn above_the_slo_is_degraded_and_within_is_up() {
        let ends = [
            end("a", Some(NodePhase::Ready), Some(6.0)),
            end("b", Some(NodePhase::Degraded), Some(6.0)),
        ];
        assert_eq!(
            evaluate([&ends[0], &ends[1]], None, Some(10), None).state,
            LinkState::Degraded
        );
        assert_eq!(
            evaluate([&ends[0], &ends[1]], None, Some(15), None).state,
            LinkState::Up
        );
        assert_eq!(
            evaluate([&ends[0], &ends[1]], None, None, None).state,
            LinkState::Up
        );
    }

    #[test]
    fn a_failing_channel_probe_takes_the_link_down_although_both_nodes_are_up() {
        let mut channel = Health::default();
        for _ in 0..3 {
            channel.observe(
                &ProbeOutcome::Failure {
                    kind: FailureKind::Timeout,
                    message: "late".into(),
                },
                3,
                Duration::from_secs(1),
            );
        }
        let ends = [
            end("a", Some(NodePhase::Ready), Some(1.0)),
            end("b", Some(NodePhase::Ready), Some(1.0)),
        ];
        let e = evaluate([&ends[0], &ends[1]], Some(&channel), None, None);
        assert_eq!(e.state, LinkState::Down);
        assert_eq!(
            condition(&e, types::ESTABLISHED).reason,
            reasons::CHANNEL_DOWN
        );
    }

    #[test]
    fn a_duplicate_is_flagged_not_established() {
        let ends = [
            end("a", Some(NodePhase::Ready), Some(1.0)),
            end("b", Some(NodePhase::Ready), Some(1.0)),
        ];
        let e = evaluate([&ends[0], &ends[1]], None, None, Some("a--b"));
        let c = condition(&e, types::ESTABLISHED);
        assert_eq!((c.status, c.reason), (Status::False, reasons::DUPLICATE));
    }
}
