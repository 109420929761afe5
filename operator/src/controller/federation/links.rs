//! The links a federation's topology mode implies, made real: created with
//! the federation's label and owner (concurrently, within a write budget), and
//! pruned when no longer implied. Only the federation's own links are ever
//! deleted; one link's failure is a problem to report, never an error that
//! stops the rest. A full mesh over more than [`FULL_MESH_MAX_NODES`] nodes is
//! refused: its links grow as N(N-1)/2, and HubAndSpoke keeps such a network
//! interconnected with a few links per node.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use super::reasons;
use crate::api::conditions::Problem;
use crate::api::{DataFlowNode, FEDERATION_LABEL, Federation, InterCityLink, TopologyMode};
use crate::controller::records::LinkWrite;
use crate::controller::status::managers;
use crate::controller::{Context, Error, Result};
use crate::topology::{self, GeoPoint, LinkPair, WantedTopology};

/// The most nodes a FullMesh federation may select: 2,016 links.
pub const FULL_MESH_MAX_NODES: usize = 64;

/// Link writes (creates and prunes) in flight per federation: a 50-node full
/// mesh (1,225 links) goes out in a few dozen round trips, not 1,225.
const LINK_WRITES_IN_FLIGHT: usize = 32;

/// Creates the links the mode implies and prunes the federation's own links it
/// no longer implies. Returns the problems to report.
pub async fn realise(
    federation: &Federation,
    members: &[Arc<DataFlowNode>],
    ctx: &Context,
) -> Result<Vec<Problem>> {
    let Some(wanted_topology) = wanted_topology(federation) else {
        return Ok(Vec::new());
    };
    if let Some(refused) = full_mesh_too_large(&wanted_topology, members.len()) {
        return Ok(vec![refused]);
    }
    let member_points: Vec<(String, Option<GeoPoint>)> = members
        .iter()
        .map(|n| {
            let point = n.spec.location.map(|l| GeoPoint {
                latitude: l.latitude,
                longitude: l.longitude,
            });
            (n.name_any(), point)
        })
        .collect();
    let mut problems: Vec<Problem> = hubs_not_members(federation, &member_points)
        .into_iter()
        .collect();
    let wanted = topology::wanted_links(&wanted_topology, &member_points);
    let links = ctx.links.state();
    let present: BTreeSet<LinkPair> = links
        .iter()
        .filter(|l| l.metadata.deletion_timestamp.is_none())
        .filter_map(|l| LinkPair::new(&l.spec.from, &l.spec.to))
        .collect();
    ctx.link_writes.settle(|pair| present.contains(pair));
    let creates: Vec<_> = wanted
        .iter()
        .filter(|p| !present.contains(*p))
        .map(|pair| create(federation, pair, ctx))
        .collect();
    let created: Vec<Result<Option<Problem>>> = futures::stream::iter(creates)
        .buffer_unordered(LINK_WRITES_IN_FLIGHT)
        .collect()
        .await;
    for outcome in created {
        problems.extend(outcome?);
    }
    let prunes: Vec<_> = links
        .iter()
        .filter(|l| owned_by(federation, l))
        .filter(|l| !LinkPair::new(&l.spec.from, &l.spec.to).is_some_and(|p| wanted.contains(&p)))
        .map(|link| prune(link, ctx))
        .collect();
    let pruned: Vec<Option<Problem>> = futures::stream::iter(prunes)
        .buffer_unordered(LINK_WRITES_IN_FLIGHT)
        .collect()
        .await;
    problems.extend(pruned.into_iter().flatten());
    Ok(problems)
}

/// The topology the mode asks for; `None` for Manual.
fn wanted_topology(federation: &Federation) -> Option<WantedTopology> {
    let spec = &federation.spec.topology;
    match spec.mode {
        TopologyMode::Manual => None,
        TopologyMode::FullMesh => Some(WantedTopology::FullMesh),
        TopologyMode::HubAndSpoke => Some(WantedTopology::HubAndSpoke {
            hubs: spec.hubs.clone(),
            spoke_uplinks: spec.spoke_uplinks.max(1) as usize,
        }),
    }
}

/// A full mesh over more nodes than [`FULL_MESH_MAX_NODES`]: refused, and
/// no link created or pruned, until the nodes are fewer or the mode changes.
fn full_mesh_too_large(wanted: &WantedTopology, nodes: usize) -> Option<Problem> {
    let too_many = matches!(wanted, WantedTopology::FullMesh) && nodes > FULL_MESH_MAX_NODES;
    too_many.then(|| {
        let links = nodes * (nodes - 1) / 2;
        Problem::new(
            reasons::FULL_MESH_TOO_LARGE,
            format!(
                "FullMesh over {nodes} nodes would need {links} links; above {FULL_MESH_MAX_NODES} nodes use HubAndSpoke"
            ),
        )
    })
}

/// Hubs that are not among the selected nodes.
fn hubs_not_members(
    federation: &Federation,
    members: &[(String, Option<GeoPoint>)],
) -> Option<Problem> {
    let spec = &federation.spec.topology;
    if spec.mode != TopologyMode::HubAndSpoke {
        return None;
    }
    let missing: Vec<&str> = spec
        .hubs
        .iter()
        .filter(|h| !members.iter().any(|(m, _)| m == *h))
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| {
        Problem::new(
            reasons::HUB_NOT_MEMBER,
            format!("hubs not among the selected nodes: {}", missing.join(", ")),
        )
    })
}

/// Whether `link` is live and this federation's own (label and owner).
fn owned_by(federation: &Federation, link: &InterCityLink) -> bool {
    let name = federation.name_any();
    let uid = federation.uid();
    link.metadata.deletion_timestamp.is_none()
        && link.labels().get(FEDERATION_LABEL) == Some(&name)
        && link
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == uid.as_ref() && o.kind == "Federation")
}

/// Applies the federation's link over `pair`, unless it was applied recently.
async fn create(
    federation: &Federation,
    pair: &LinkPair,
    ctx: &Context,
) -> Result<Option<Problem>> {
    let name = federation.name_any();
    let link_name = format!("{name}.{}--{}", pair.first(), pair.second());
    match ctx.link_writes.recent(&link_name) {
        Some(LinkWrite::Applied) => return Ok(None),
        Some(LinkWrite::Failed(message)) => {
            return Ok(Some(Problem::new(reasons::LINK_WRITE_FAILED, message)));
        }
        None => {}
    }
    let owner = federation
        .controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))?;
    let manifest = serde_json::json!({
        "apiVersion": InterCityLink::api_version(&()),
        "kind": InterCityLink::kind(&()),
        "metadata": {"name": link_name, "labels": {FEDERATION_LABEL: name}, "ownerReferences": [owner]},
        "spec": {"from": pair.first(), "to": pair.second()},
    });
    let api: Api<InterCityLink> = Api::all(ctx.client.clone());
    let params = PatchParams::apply(managers::FEDERATION).force();
    let (outcome, problem) = match api
        .patch(&link_name, &params, &Patch::Apply(&manifest))
        .await
    {
        Ok(_) => (LinkWrite::Applied, None),
        Err(error) => {
            let message = format!("could not create link {link_name}: {error}");
            let problem = Problem::new(reasons::LINK_WRITE_FAILED, message.clone());
            (LinkWrite::Failed(message), Some(problem))
        }
    };
    ctx.link_writes.record(&link_name, pair, outcome);
    Ok(problem)
}

/// Deletes a link the federation no longer implies.
async fn prune(link: &InterCityLink, ctx: &Context) -> Option<Problem> {
    let api: Api<InterCityLink> = Api::all(ctx.client.clone());
    match api.delete(&link.name_any(), &DeleteParams::default()).await {
        Ok(_) => None,
        Err(kube::Error::Api(status)) if status.code == 404 => None,
        Err(error) => Some(Problem::new(
            reasons::LINK_WRITE_FAILED,
            format!("could not prune link {}: {error}", link.name_any()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_mesh_is_refused_above_its_node_bound_and_hub_and_spoke_never() {
        assert_eq!(
            full_mesh_too_large(&WantedTopology::FullMesh, FULL_MESH_MAX_NODES),
            None
        );
        let refused =
            full_mesh_too_large(&WantedTopology::FullMesh, FULL_MESH_MAX_NODES + 1).unwrap();
        assert_eq!(refused.reason, reasons::FULL_MESH_TOO_LARGE);
        assert!(
            refused.message.contains("2080 links"),
            "{}",
            refused.message
        );
        let spokes = WantedTopology::HubAndSpoke {
            hubs: vec!["beijing".into()],
            spoke_uplinks: 1,
        };
        assert_eq!(full_mesh_too_large(&spokes, 1000), None);
    }
}
