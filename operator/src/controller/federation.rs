//! Federation reconciler: select the member nodes, realise the links the
//! topology mode implies (creating, labelling, owning and pruning only its own
//! links), and report interconnection, weak points and coverage.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::status::{apply_status, managers, publish_event};
use super::{Context, Error, Result, jittered};
use crate::api::conditions::{self, Status, types};
use crate::api::{
    DataFlowNode, FEDERATION_LABEL, Federation, FederationStatus, InterCityLink, LinkState,
    LinkTotals, NodePhase, NodeTotals, TopologyMode,
};
use crate::topology::{
    self, GeoPoint, LinkPair, LinkView, NetworkReport, NodeView, WantedTopology,
};

/// Condition reasons of the federation reconciler.
pub mod reasons {
    pub const INTERCONNECTED: &str = "Interconnected";
    pub const PARTITIONED: &str = "Partitioned";
    pub const NODES_NOT_READY: &str = "NodesNotReady";
    pub const NO_MEMBERS: &str = "NoMemberNodes";
    pub const NO_TARGET: &str = "NoCoverageTarget";
    pub const COVERAGE_MET: &str = "CoverageMet";
    pub const COVERAGE_BELOW_TARGET: &str = "CoverageBelowTarget";
    pub const MANUAL: &str = "ManualTopology";
    pub const LINKS_REALISED: &str = "LinksRealised";
    pub const HUB_NOT_MEMBER: &str = "HubNotMember";
    pub const LINK_WRITE_FAILED: &str = "LinkWriteFailed";
    pub const INVALID_SELECTOR: &str = "InvalidNodeSelector";
}

pub async fn reconcile(federation: Arc<Federation>, ctx: Arc<Context>) -> Result<Action> {
    if !ctx.caches_ready() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let now = ctx.now();
    let api: Api<Federation> = Api::all(ctx.client.clone());

    let selector = match Selector::try_from(federation.spec.node_selector.clone()) {
        Ok(selector) => selector,
        Err(error) => {
            let mut status = federation.status.clone().unwrap_or_default();
            status.observed_generation = federation.metadata.generation;
            conditions::set(
                &mut status.conditions,
                types::TOPOLOGY_RECONCILED,
                Status::False,
                reasons::INVALID_SELECTOR,
                format!("spec.nodeSelector cannot be used: {error}"),
                federation.metadata.generation,
                now,
            );
            write_if_changed(&api, &federation, status).await?;
            return Ok(Action::await_change());
        }
    };

    let mut members: Vec<Arc<DataFlowNode>> = ctx
        .nodes
        .state()
        .into_iter()
        .filter(|n| selector.matches(n.labels()))
        .collect();
    members.sort_by_key(|n| n.name_any());
    let member_names: BTreeSet<String> = members.iter().map(|n| n.name_any()).collect();

    let topology_problems = realise_topology(&federation, &members, &ctx).await?;

    let report = network_report(&members, &member_names, &ctx);
    let previous_interconnected = federation.status.as_ref().map(|s| s.interconnected);
    let status = desired_status(&federation, &report, &topology_problems, now);
    let interconnected = status.interconnected;
    let partitions = status.partitions.clone();
    write_if_changed(&api, &federation, status).await?;

    if previous_interconnected != Some(interconnected) {
        let (type_, reason, note) = if interconnected {
            (
                EventType::Normal,
                reasons::INTERCONNECTED,
                format!("{} nodes interconnected", report.nodes_total),
            )
        } else {
            (
                EventType::Warning,
                reasons::PARTITIONED,
                format!(
                    "not interconnected: {}",
                    describe_partitions(&partitions, &report)
                ),
            )
        };
        publish_event(
            &ctx.recorder,
            federation.as_ref(),
            type_,
            reason,
            "Evaluate",
            note,
        )
        .await;
    }
    Ok(Action::requeue(jittered(ctx.settings.resync)))
}

/// Creates the links the mode implies and prunes the federation's own links it
/// no longer implies. Returns problems to report (never fails on one link).
async fn realise_topology(
    federation: &Federation,
    members: &[Arc<DataFlowNode>],
    ctx: &Context,
) -> Result<Vec<(&'static str, String)>> {
    let spec = &federation.spec.topology;
    let wanted_topology = match spec.mode {
        TopologyMode::Manual => return Ok(Vec::new()),
        TopologyMode::FullMesh => WantedTopology::FullMesh,
        TopologyMode::HubAndSpoke => WantedTopology::HubAndSpoke {
            hubs: spec.hubs.clone(),
            spoke_uplinks: spec.spoke_uplinks.max(1) as usize,
        },
    };
    let name = federation.name_any();
    let uid = federation
        .uid()
        .ok_or(Error::MissingField("metadata.uid"))?;
    let mut problems = Vec::new();

    let member_points: Vec<(String, Option<GeoPoint>)> = members
        .iter()
        .map(|n| {
            (
                n.name_any(),
                n.spec.location.map(|l| GeoPoint {
                    latitude: l.latitude,
                    longitude: l.longitude,
                }),
            )
        })
        .collect();
    if spec.mode == TopologyMode::HubAndSpoke {
        let missing: Vec<&str> = spec
            .hubs
            .iter()
            .filter(|h| !member_points.iter().any(|(m, _)| m == *h))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            problems.push((
                reasons::HUB_NOT_MEMBER,
                format!("hubs not among the selected nodes: {}", missing.join(", ")),
            ));
        }
    }
    let wanted = topology::wanted_links(&wanted_topology, &member_points);

    let links = ctx.links.state();
    let is_owned = |l: &InterCityLink| {
        l.labels().get(FEDERATION_LABEL) == Some(&name)
            && l.owner_references()
                .iter()
                .any(|o| o.uid == uid && o.kind == "Federation")
    };
    let present: BTreeSet<LinkPair> = links
        .iter()
        .filter(|l| l.metadata.deletion_timestamp.is_none())
        .filter_map(|l| LinkPair::new(&l.spec.from, &l.spec.to))
        .collect();

    let api: Api<InterCityLink> = Api::all(ctx.client.clone());
    let owner = federation
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))?;
    ctx.link_writes.settle(|pair| present.contains(pair));
    for pair in wanted.iter().filter(|p| !present.contains(*p)) {
        let link_name = format!("{name}.{}--{}", pair.first(), pair.second());
        match ctx.link_writes.recent(&link_name) {
            Some(LinkWrite::Applied) => continue,
            Some(LinkWrite::Failed(problem)) => {
                problems.push((reasons::LINK_WRITE_FAILED, problem));
                continue;
            }
            None => {}
        }
        let manifest = serde_json::json!({
            "apiVersion": InterCityLink::api_version(&()),
            "kind": InterCityLink::kind(&()),
            "metadata": {"name": link_name, "labels": {FEDERATION_LABEL: name}, "ownerReferences": [owner]},
            "spec": {"from": pair.first(), "to": pair.second()},
        });
        let written = api
            .patch(
                &link_name,
                &PatchParams::apply(managers::FEDERATION).force(),
                &Patch::Apply(&manifest),
            )
            .await;
        let outcome = match written {
            Ok(_) => LinkWrite::Applied,
            Err(error) => {
                let problem = format!("could not create link {link_name}: {error}");
                problems.push((reasons::LINK_WRITE_FAILED, problem.clone()));
                LinkWrite::Failed(problem)
            }
        };
        ctx.link_writes.record(&link_name, pair, outcome);
    }
    for link in links
        .iter()
        .filter(|l| is_owned(l) && l.metadata.deletion_timestamp.is_none())
    {
        let keep =
            LinkPair::new(&link.spec.from, &link.spec.to).is_some_and(|p| wanted.contains(&p));
        if !keep {
            match api.delete(&link.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => problems.push((
                    reasons::LINK_WRITE_FAILED,
                    format!("could not prune link {}: {error}", link.name_any()),
                )),
            }
        }
    }
    Ok(problems)
}

/// What became of a link this process applied.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkWrite {
    /// Written, not yet seen by the link watch.
    Applied,
    /// Refused, with the problem to keep reporting until the retry.
    Failed(String),
}

/// Links this process applied recently: a reconcile that runs before the link
/// watch shows a new link does not apply it again, and a refused write (say,
/// RBAC) is retried after a pause instead of on every node status change.
#[derive(Default)]
pub struct LinkWrites {
    by_name: Mutex<HashMap<String, Written>>,
}

struct Written {
    pair: LinkPair,
    at: Instant,
    outcome: LinkWrite,
}

impl LinkWrites {
    /// How long an applied link may take to show in the watch before it is
    /// applied again.
    const ECHO_WAIT: Duration = Duration::from_secs(30);
    /// How long a refused write waits before it is tried again.
    const RETRY_REFUSED: Duration = Duration::from_secs(10);

    /// What became of `link_name` if it was written recently enough to count.
    pub fn recent(&self, link_name: &str) -> Option<LinkWrite> {
        let by_name = self.by_name.lock().expect("link writes lock");
        let written = by_name.get(link_name)?;
        let wait = match written.outcome {
            LinkWrite::Applied => Self::ECHO_WAIT,
            LinkWrite::Failed(_) => Self::RETRY_REFUSED,
        };
        (written.at.elapsed() < wait).then(|| written.outcome.clone())
    }

    /// Records the outcome of writing `link_name`, the link between `pair`.
    pub fn record(&self, link_name: &str, pair: &LinkPair, outcome: LinkWrite) {
        let written = Written {
            pair: pair.clone(),
            at: Instant::now(),
            outcome,
        };
        self.by_name
            .lock()
            .expect("link writes lock")
            .insert(link_name.to_owned(), written);
    }

    /// Forgets links whose pair the watch now shows, and records too old to count.
    pub fn settle(&self, seen: impl Fn(&LinkPair) -> bool) {
        self.by_name
            .lock()
            .expect("link writes lock")
            .retain(|_, w| !seen(&w.pair) && w.at.elapsed() < Self::ECHO_WAIT);
    }
}

/// The interconnection report over member nodes and their non-duplicate links.
fn network_report(
    members: &[Arc<DataFlowNode>],
    member_names: &BTreeSet<String>,
    ctx: &Context,
) -> NetworkReport {
    let nodes: Vec<NodeView> = members
        .iter()
        .map(|n| NodeView {
            name: n.name_any(),
            province: n.spec.province.clone(),
            ready: n
                .status
                .as_ref()
                .is_some_and(|s| s.phase == NodePhase::Ready),
        })
        .collect();
    let links: Vec<LinkView> = ctx
        .links
        .state()
        .iter()
        .filter(|l| member_names.contains(&l.spec.from) && member_names.contains(&l.spec.to))
        .filter(|l| l.status.as_ref().is_none_or(|s| s.duplicate_of.is_none()))
        .filter(|l| l.metadata.deletion_timestamp.is_none())
        .map(|l| LinkView {
            name: l.name_any(),
            from: l.spec.from.clone(),
            to: l.spec.to.clone(),
            up: l
                .status
                .as_ref()
                .is_some_and(|s| matches!(s.state, LinkState::Up | LinkState::Degraded)),
        })
        .collect();
    topology::report(&nodes, &links)
}

/// At most this many partitions are spelled out in a message (the rest are counted).
const PARTITIONS_IN_MESSAGE: usize = 8;

fn describe_partitions(partitions: &[Vec<String>], report: &NetworkReport) -> String {
    if partitions.is_empty() {
        return format!(
            "{} of {} nodes Ready",
            report.nodes_ready, report.nodes_total
        );
    }
    let mut shown: Vec<String> = partitions
        .iter()
        .take(PARTITIONS_IN_MESSAGE)
        .map(|p| match p.len() {
            0..=6 => format!("[{}]", p.join(", ")),
            n => format!("[{}, ... {} nodes]", p[..3].join(", "), n),
        })
        .collect();
    if partitions.len() > PARTITIONS_IN_MESSAGE {
        shown.push(format!(
            "and {} more",
            partitions.len() - PARTITIONS_IN_MESSAGE
        ));
    }
    shown.join(" | ")
}
fn desired_status(
    federation: &Federation,
    report: &NetworkReport,
    problems: &[(&'static str, String)],
    now: Timestamp,
) -> FederationStatus {
    let generation = federation.metadata.generation;
    let mut conditions = federation
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let partitions: Vec<Vec<String>> = if report.components.len() > 1 {
        report.components.clone()
    } else {
        Vec::new()
    };

    let (status, reason, message) = if report.nodes_total == 0 {
        (
            Status::False,
            reasons::NO_MEMBERS,
            "nodeSelector selects no DataFlowNode".to_owned(),
        )
    } else if report.components.len() > 1 {
        (
            Status::False,
            reasons::PARTITIONED,
            format!(
                "{} components: {}",
                report.components.len(),
                describe_partitions(&partitions, report)
            ),
        )
    } else if report.nodes_ready < report.nodes_total {
        (
            Status::False,
            reasons::NODES_NOT_READY,
            format!(
                "{} of {} nodes Ready",
                report.nodes_ready, report.nodes_total
            ),
        )
    } else {
        (
            Status::True,
            reasons::INTERCONNECTED,
            format!("all {} nodes Ready and connected", report.nodes_total),
        )
    };
    conditions::set(
        &mut conditions,
        types::INTERCONNECTED,
        status,
        reason,
        message,
        generation,
        now,
    );

    let (status, reason, message) = match federation.spec.coverage.map(|c| c.provinces_target) {
        None => (
            Status::True,
            reasons::NO_TARGET,
            "no coverage.provincesTarget set".to_owned(),
        ),
        Some(target) if report.provinces_covered as i32 >= target => (
            Status::True,
            reasons::COVERAGE_MET,
            format!(
                "{} provincial-level regions covered, target {target}",
                report.provinces_covered
            ),
        ),
        Some(target) => (
            Status::False,
            reasons::COVERAGE_BELOW_TARGET,
            format!(
                "{} provincial-level regions have a Ready node, target {target}",
                report.provinces_covered
            ),
        ),
    };
    conditions::set(
        &mut conditions,
        types::COVERAGE_MET,
        status,
        reason,
        message,
        generation,
        now,
    );

    let (status, reason, message) = match (federation.spec.topology.mode, problems.first()) {
        (_, Some((reason, _))) => (
            Status::False,
            *reason,
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (TopologyMode::Manual, None) => (
            Status::True,
            reasons::MANUAL,
            "links are managed by hand".to_owned(),
        ),
        (mode, None) => (
            Status::True,
            reasons::LINKS_REALISED,
            format!("every link the {mode:?} topology implies exists"),
        ),
    };
    conditions::set(
        &mut conditions,
        types::TOPOLOGY_RECONCILED,
        status,
        reason,
        message,
        generation,
        now,
    );

    FederationStatus {
        observed_generation: generation,
        nodes: NodeTotals {
            total: report.nodes_total as i32,
            ready: report.nodes_ready as i32,
        },
        links: LinkTotals {
            total: report.links_total as i32,
            up: report.links_up as i32,
        },
        interconnected: report.interconnected,
        components: report.components.len() as i32,
        partitions,
        critical_nodes: report.critical_nodes.clone(),
        critical_links: report.critical_links.clone(),
        provinces_covered: report.provinces_covered as i32,
        conditions,
    }
}

async fn write_if_changed(
    api: &Api<Federation>,
    federation: &Federation,
    desired: FederationStatus,
) -> Result<()> {
    let unchanged = federation.status.as_ref().is_some_and(|current| {
        let mut a = current.clone();
        let mut b = desired.clone();
        let same_conditions = conditions::equal_ignoring_time(&a.conditions, &b.conditions);
        a.conditions.clear();
        b.conditions.clear();
        same_conditions && a == b
    });
    if !unchanged {
        apply_status(api, federation, managers::FEDERATION, &desired).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_link_is_not_written_again_until_the_watch_shows_it() {
        let writes = LinkWrites::default();
        let pair = LinkPair::new("beijing", "tianjin").unwrap();
        assert_eq!(writes.recent("f.beijing--tianjin"), None);
        writes.record("f.beijing--tianjin", &pair, LinkWrite::Applied);
        writes.settle(|_| false);
        assert_eq!(
            writes.recent("f.beijing--tianjin"),
            Some(LinkWrite::Applied)
        );
        writes.settle(|seen| *seen == pair);
        assert_eq!(writes.recent("f.beijing--tianjin"), None, "seen: forgotten");
    }

    #[test]
    fn a_refused_link_keeps_its_problem_until_the_retry() {
        let writes = LinkWrites::default();
        let pair = LinkPair::new("beijing", "tianjin").unwrap();
        let refused = LinkWrite::Failed("could not create link: forbidden".into());
        writes.record("f.beijing--tianjin", &pair, refused.clone());
        writes.settle(|_| false);
        assert_eq!(writes.recent("f.beijing--tianjin"), Some(refused));
        assert_eq!(writes.recent("g.beijing--tianjin"), None, "per federation");
    }
}
