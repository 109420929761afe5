//! Federation reconciler: select the member nodes, realise the links the
//! topology mode implies (creating, labelling, owning and pruning only its own
//! links), and report interconnection, weak points and coverage.

mod links;
mod report;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::status::{apply_status, managers, publish_event};
use super::{Context, Result, jittered};
use crate::api::conditions::{self, ConditionUpdate, Stamp, Status, types};
use crate::api::{DataFlowNode, Federation, FederationStatus};
use crate::topology::NetworkReport;

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
    pub const FULL_MESH_TOO_LARGE: &str = "FullMeshTooLarge";
    pub const LINK_WRITE_FAILED: &str = "LinkWriteFailed";
    pub const INVALID_SELECTOR: &str = "InvalidNodeSelector";
}

pub async fn reconcile(federation: Arc<Federation>, ctx: Arc<Context>) -> Result<Action> {
    if !ctx.caches_ready() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let stamp = Stamp {
        generation: federation.metadata.generation,
        now: ctx.now(),
    };
    let selector = match Selector::try_from(federation.spec.node_selector.clone()) {
        Ok(selector) => selector,
        Err(error) => {
            let mut status = federation.status.clone().unwrap_or_default();
            status.observed_generation = stamp.generation;
            let invalid = ConditionUpdate::new(
                types::TOPOLOGY_RECONCILED,
                Status::False,
                reasons::INVALID_SELECTOR,
                format!("spec.nodeSelector cannot be used: {error}"),
            );
            conditions::set(&mut status.conditions, invalid, stamp);
            write_if_changed(&ctx, &federation, status).await?;
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

    let topology_problems = links::realise(&federation, &members, &ctx).await?;
    let report = report::network_report(&members, &member_names, &ctx.links.state());
    let previous_interconnected = federation.status.as_ref().map(|s| s.interconnected);
    let status = report::desired_status(&federation, &report, &topology_problems, stamp);
    let interconnected = status.interconnected;
    let partitions = status.partitions.clone();
    write_if_changed(&ctx, &federation, status).await?;
    if previous_interconnected != Some(interconnected) {
        report_transition(&ctx, &federation, &report, &partitions).await;
    }
    Ok(Action::requeue(jittered(ctx.settings.resync)))
}

/// An event when the federation becomes interconnected or stops being so.
async fn report_transition(
    ctx: &Context,
    federation: &Federation,
    report: &NetworkReport,
    partitions: &[Vec<String>],
) {
    let (type_, reason, note) = if report.interconnected {
        let note = format!("{} nodes interconnected", report.nodes_total);
        (EventType::Normal, reasons::INTERCONNECTED, note)
    } else {
        let described = report::describe_partitions(partitions, report);
        let note = format!("not interconnected: {described}");
        (EventType::Warning, reasons::PARTITIONED, note)
    };
    publish_event(&ctx.recorder, federation, type_, reason, "Evaluate", note).await;
}

async fn write_if_changed(
    ctx: &Context,
    federation: &Federation,
    desired: FederationStatus,
) -> Result<()> {
    let current = federation.status.as_ref();
    if current.is_some_and(|current| conditions::same_ignoring_time(current, &desired)) {
        return Ok(());
    }
    let api: Api<Federation> = Api::all(ctx.client.clone());
    apply_status(&api, federation, managers::FEDERATION, &desired).await
}
