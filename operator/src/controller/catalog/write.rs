//! Step 3: the plan made real in every catalog view: entries written where the
//! product is listed (hub namespaces by create or replace, member clusters by
//! server-side apply), and deleted where it no longer is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};

use super::plan::Plan;
use super::reasons;
use crate::api::conditions::Problem;
use crate::api::{CatalogEntry, CatalogEntrySpec, DataFlowNode, PRODUCT_UID_LABEL};
use crate::catalog::member::MemberProblem;
use crate::catalog::{delete_entry, entry_labels};
use crate::controller::status::managers;
use crate::controller::{Context, Error, Result};

/// Entry writes in flight per product reconcile: a release to 25 or 50 nodes
/// goes out in one round trip rather than several.
const ENTRY_WRITE_CONCURRENCY: usize = 64;

/// What writing a plan did.
#[derive(Debug, Default)]
pub struct Written {
    /// Targets whose catalog now lists the product.
    pub visible_in: Vec<String>,
    /// Targets whose write failed, with why.
    pub problems: Vec<(String, Problem)>,
    /// Nodes whose member cluster still lists the product where it no longer
    /// should: the member cannot be reached, so the withdrawal waits.
    pub withdrawals_pending: Vec<(String, Problem)>,
    /// Whether anything was written or deleted.
    pub changed: bool,
}

/// Writes the plan's entry at every target and deletes it where the plan no
/// longer lists it. Entries are written concurrently (bounded), so
/// release-to-visible grows with the API server's latency rather than with the
/// number of nodes times it.
pub async fn write(ctx: &Context, plan: &Plan, nodes: &[Arc<DataFlowNode>]) -> Result<Written> {
    let writes: Vec<_> = plan
        .targets
        .iter()
        .map(|t| write_target(ctx, t, &plan.entry_name, &plan.entry))
        .collect();
    let outcomes: Vec<_> = futures::stream::iter(writes)
        .buffer_unordered(ENTRY_WRITE_CONCURRENCY)
        .collect()
        .await;
    let mut written = Written::default();
    for (target, outcome) in outcomes {
        match outcome {
            Ok(changed) => {
                written.changed |= changed;
                written.visible_in.push(target);
            }
            Err(problem) => written.problems.push((target, problem)),
        }
    }
    written.changed |=
        delete_untargeted_hub_entries(ctx, nodes, &plan.entry_name, &plan.hub_keep).await?;
    let (deleted, pending) =
        delete_stale_member_entries(ctx, nodes, &plan.entry_name, &plan.member_keep).await;
    written.changed |= deleted;
    written.withdrawals_pending = pending;
    Ok(written)
}

/// Writes the entry into `node`'s catalog view, wherever that lives.
async fn write_target(
    ctx: &Context,
    node: &DataFlowNode,
    name: &str,
    spec: &CatalogEntrySpec,
) -> (String, Result<bool, Problem>) {
    let target = node.name_any();
    let outcome = match &node.spec.catalog.kubeconfig_secret_ref {
        None => write_hub_entry(ctx, &node.home_namespace(), name, spec, &target).await,
        Some(_) => write_member_entry(ctx, node, name, spec).await,
    };
    (target, outcome)
}

/// Applies the entry in a hub namespace unless an identical one is there.
/// `Ok(true)` when something was written.
async fn write_hub_entry(
    ctx: &Context,
    namespace: &str,
    name: &str,
    spec: &CatalogEntrySpec,
    target: &str,
) -> Result<bool, Problem> {
    let labels = entry_labels(spec, target);
    let key = kube::runtime::reflector::ObjectRef::new(name).within(namespace);
    let existing = ctx.entries.get(&key);
    match &existing {
        // In the cache: current unless someone changed it.
        Some(existing) => {
            // The watch holds it now; the write record is no longer needed.
            ctx.written.forget(namespace, name);
            if existing.spec == *spec
                && labels
                    .iter()
                    .all(|(k, v)| existing.labels().get(k) == Some(v))
            {
                return Ok(false);
            }
        }
        // Not in the cache yet: written moments ago and not watched back yet, or
        // never written (a deletion clears the record before this runs).
        None => {
            if ctx.written.is_current(namespace, name, &spec.content_hash) {
                return Ok(false);
            }
        }
    }
    let _permit = ctx
        .hub_entry_writes
        .acquire()
        .await
        .expect("the write semaphore is never closed");
    let api: Api<CatalogEntry> = Api::namespaced(ctx.client.clone(), namespace);
    put_hub_entry(&api, name, spec, labels, existing.as_deref())
        .await
        .map_err(|e| Problem::new(reasons::WRITE_FAILED, e.to_string()))?;
    ctx.written.record(namespace, name, &spec.content_hash);
    Ok(true)
}

/// Creates the entry, or replaces `existing` whole, so no field of an older
/// listing survives. Hub entries are flowfed's alone, and a create or replace
/// costs the API server less than a server-side apply (no merge): this is the
/// bulk path. When the cache is behind (409), the entry is read and replaced once.
async fn put_hub_entry(
    api: &Api<CatalogEntry>,
    name: &str,
    spec: &CatalogEntrySpec,
    labels: BTreeMap<String, String>,
    existing: Option<&CatalogEntry>,
) -> Result<(), kube::Error> {
    let mut entry = CatalogEntry::new(name, spec.clone());
    entry.metadata.labels = Some(labels);
    let params = PostParams {
        field_manager: Some(managers::CATALOG.to_owned()),
        ..Default::default()
    };
    let first = match existing {
        None => api.create(&params, &entry).await,
        Some(existing) => {
            entry.metadata.resource_version = existing.resource_version();
            api.replace(name, &params, &entry).await
        }
    };
    match first {
        Err(kube::Error::Api(status)) if status.code == 409 => {
            entry.metadata.resource_version = api.get(name).await?.resource_version();
            api.replace(name, &params, &entry).await.map(drop)
        }
        other => other.map(drop),
    }
}

/// Applies the entry in a node's member cluster unless it already holds this content.
async fn write_member_entry(
    ctx: &Context,
    node: &DataFlowNode,
    name: &str,
    spec: &CatalogEntrySpec,
) -> Result<bool, Problem> {
    let node_name = node.name_any();
    let member = match ctx.members.for_node(&ctx.client, node).await {
        Some(Ok(member)) => member,
        Some(Err(problem)) => return Err(Problem::new(problem.reason(), problem.to_string())),
        None => {
            return Err(Problem::new(
                reasons::WRITE_FAILED,
                "node has no member cluster",
            ));
        }
    };
    if ctx.members.entry_hash(&node_name, name).as_deref() == Some(spec.content_hash.as_str()) {
        return Ok(false);
    }
    let api: Api<CatalogEntry> = Api::namespaced(member.client.clone(), &member.namespace);
    match apply_entry(&api, name, spec, &entry_labels(spec, &node_name)).await {
        Ok(()) => {
            ctx.members
                .record_entry(&node_name, name, Some(spec.content_hash.clone()));
            Ok(true)
        }
        Err(error) => {
            let problem = MemberProblem::Unreachable(error.to_string());
            ctx.members.failed(&node_name, problem.clone());
            Err(Problem::new(problem.reason(), problem.to_string()))
        }
    }
}

async fn apply_entry(
    api: &Api<CatalogEntry>,
    name: &str,
    spec: &CatalogEntrySpec,
    labels: &BTreeMap<String, String>,
) -> Result<(), kube::Error> {
    let manifest = serde_json::json!({
        "apiVersion": CatalogEntry::api_version(&()),
        "kind": CatalogEntry::kind(&()),
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    });
    api.patch(
        name,
        &PatchParams::apply(managers::CATALOG).force(),
        &Patch::Apply(&manifest),
    )
    .await?;
    Ok(())
}

/// Deletes entry `name` from the hub catalog of every node outside `keep`
/// (namespace, name). Looks up one entry per node rather than scanning every
/// entry: a product is reconciled once per entry event, so a scan would make a
/// bulk sync quadratic. Entries under another name (a node's catalog namespace
/// changed, say) are left to the orphan sweep.
async fn delete_untargeted_hub_entries(
    ctx: &Context,
    nodes: &[Arc<DataFlowNode>],
    name: &str,
    keep: &BTreeSet<(String, String)>,
) -> Result<bool> {
    let mut deleted = false;
    for node in nodes
        .iter()
        .filter(|n| n.spec.catalog.kubeconfig_secret_ref.is_none())
    {
        let key = (node.home_namespace(), name.to_owned());
        let present = ctx
            .entries
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(&key.0))
            .is_some();
        if present && !keep.contains(&key) {
            let api: Api<CatalogEntry> = Api::namespaced(ctx.client.clone(), &key.0);
            deleted |= delete_entry(&api, name).await?;
        }
    }
    Ok(deleted)
}

/// Deletes every hub entry of product `uid` outside `keep` (namespace, name),
/// scanning all entries: for withdrawing a product, where thoroughness wins.
async fn delete_stale_hub_entries(
    ctx: &Context,
    uid: &str,
    keep: &BTreeSet<(String, String)>,
) -> Result<bool> {
    let mut deleted = false;
    let ours = ctx.entries.state();
    for entry in ours
        .iter()
        .filter(|e| e.labels().get(PRODUCT_UID_LABEL).map(String::as_str) == Some(uid))
    {
        let key = (entry.namespace().unwrap_or_default(), entry.name_any());
        if !keep.contains(&key) {
            let api: Api<CatalogEntry> = Api::namespaced(ctx.client.clone(), &key.0);
            deleted |= delete_entry(&api, &key.1).await?;
        }
    }
    Ok(deleted)
}

/// Deletes entry `name` from member clusters not in `keep`, where it is known to
/// exist. Returns whether any was deleted, and the nodes whose member could not
/// be reached (the entry stays there until a later pass withdraws it).
async fn delete_stale_member_entries(
    ctx: &Context,
    nodes: &[Arc<DataFlowNode>],
    name: &str,
    keep: &BTreeSet<String>,
) -> (bool, Vec<(String, Problem)>) {
    let mut deleted = false;
    let mut pending = Vec::new();
    let waits = |node: &str, why: &MemberProblem| {
        let message = format!(
            "still listed in {node}'s member cluster, withdrawn once it can be reached ({why})"
        );
        (
            node.to_owned(),
            Problem::new(reasons::WITHDRAWAL_PENDING, message),
        )
    };
    for node in nodes {
        let node_name = node.name_any();
        if keep.contains(&node_name) || ctx.members.entry_hash(&node_name, name).is_none() {
            continue;
        }
        let member = match ctx.members.for_node(&ctx.client, node).await {
            Some(Ok(member)) => member,
            Some(Err(problem)) => {
                pending.push(waits(&node_name, &problem));
                continue;
            }
            // The view moved to the hub: the sweep cleans where it was.
            None => continue,
        };
        let api: Api<CatalogEntry> = Api::namespaced(member.client.clone(), &member.namespace);
        match delete_entry(&api, name).await {
            Ok(gone) => {
                deleted |= gone;
                ctx.members.record_entry(&node_name, name, None);
            }
            Err(error) => {
                let problem = MemberProblem::Unreachable(error.to_string());
                pending.push(waits(&node_name, &problem));
                ctx.members.failed(&node_name, problem);
            }
        }
    }
    (deleted, pending)
}

/// Removes a product's entries everywhere: hub namespaces and every member
/// cluster. Fails (and is retried) while a member cannot be reached.
pub async fn withdraw(ctx: &Context, uid: &str) -> Result<()> {
    delete_stale_hub_entries(ctx, uid, &BTreeSet::new()).await?;
    let selector = ListParams::default().labels(&format!("{PRODUCT_UID_LABEL}={uid}"));
    for node in ctx.nodes.state() {
        let node_name = node.name_any();
        let unreachable = |error: kube::Error| {
            let problem = MemberProblem::Unreachable(error.to_string());
            ctx.members.failed(&node_name, problem.clone());
            Error::Member(node_name.clone(), problem)
        };
        let member = match ctx.members.for_node(&ctx.client, &node).await {
            None => continue,
            Some(Ok(member)) => member,
            // A member whose kubeconfig is refused or missing cannot be cleaned
            // now; the orphan sweep removes this product's entries there once
            // its kubeconfig is fixed. Only an unreachable member holds deletion.
            Some(Err(problem)) if problem.is_configuration() => {
                tracing::warn!(node = %node_name, %problem, "cannot clean the member's catalog view yet; the orphan sweep will");
                continue;
            }
            Some(Err(problem)) => return Err(Error::Member(node_name.clone(), problem)),
        };
        let api: Api<CatalogEntry> = Api::namespaced(member.client.clone(), &member.namespace);
        for entry in api
            .list_metadata(&selector)
            .await
            .map_err(unreachable)?
            .items
        {
            let name = entry.metadata.name.unwrap_or_default();
            delete_entry(&api, &name).await.map_err(unreachable)?;
            ctx.members.record_entry(&node_name, &name, None);
        }
    }
    ctx.release_clock.forget(uid);
    ctx.status_writes.forget(uid);
    Ok(())
}
