//! What a federation reports, derived purely from the network report: totals,
//! partitions, weak points, and the Interconnected, CoverageMet and
//! TopologyReconciled conditions.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::ResourceExt;

use super::reasons;
use crate::api::conditions::{self, ConditionUpdate, Problem, Stamp, Status, types};
use crate::api::{
    DataFlowNode, Federation, FederationStatus, InterCityLink, LinkState, LinkTotals, NodePhase,
    NodeTotals, TopologyMode,
};
use crate::topology::{self, LinkView, NetworkReport, NodeView};

/// The interconnection report over member nodes and their non-duplicate links.
pub fn network_report(
    members: &[Arc<DataFlowNode>],
    member_names: &BTreeSet<String>,
    links: &[Arc<InterCityLink>],
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
    let links: Vec<LinkView> = links
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

pub fn describe_partitions(partitions: &[Vec<String>], report: &NetworkReport) -> String {
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

/// The status `report` and the topology's `problems` imply.
pub fn desired_status(
    federation: &Federation,
    report: &NetworkReport,
    problems: &[Problem],
    stamp: Stamp,
) -> FederationStatus {
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
    conditions::set(&mut conditions, interconnected(report, &partitions), stamp);
    conditions::set(&mut conditions, coverage(federation, report), stamp);
    let mode = federation.spec.topology.mode;
    conditions::set(&mut conditions, topology_reconciled(mode, problems), stamp);
    FederationStatus {
        observed_generation: stamp.generation,
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

fn interconnected(report: &NetworkReport, partitions: &[Vec<String>]) -> ConditionUpdate {
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
                describe_partitions(partitions, report)
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
    ConditionUpdate::new(types::INTERCONNECTED, status, reason, message)
}

fn coverage(federation: &Federation, report: &NetworkReport) -> ConditionUpdate {
    let covered = report.provinces_covered;
    let (status, reason, message) = match federation.spec.coverage.map(|c| c.provinces_target) {
        None => (
            Status::True,
            reasons::NO_TARGET,
            "no coverage.provincesTarget set".to_owned(),
        ),
        Some(target) if covered as i32 >= target => (
            Status::True,
            reasons::COVERAGE_MET,
            format!("{covered} provincial-level regions covered, target {target}"),
        ),
        Some(target) => (
            Status::False,
            reasons::COVERAGE_BELOW_TARGET,
            format!("{covered} provincial-level regions have a Ready node, target {target}"),
        ),
    };
    ConditionUpdate::new(types::COVERAGE_MET, status, reason, message)
}

fn topology_reconciled(mode: TopologyMode, problems: &[Problem]) -> ConditionUpdate {
    let (status, reason, message) = match (mode, problems.first()) {
        (_, Some(first)) => (
            Status::False,
            first.reason,
            problems
                .iter()
                .map(|p| p.message.as_str())
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
    ConditionUpdate::new(types::TOPOLOGY_RECONCILED, status, reason, message)
}
