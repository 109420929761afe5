//! Each node's catalog view as a whole: the node's `CatalogSynced` condition and
//! `catalogEntries` count, and the orphan sweep that removes entries whose
//! product or node is gone. Runs periodically, and only on a complete view of
//! the world (every cache synced), so nothing is deleted on a partial one.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::status::{apply_status, managers};
use super::{Context, Result};
use crate::api::conditions::{self, ConditionUpdate, Stamp, Status, types};
use crate::api::{CatalogEntry, DataFlowNode, TARGET_NODE_LABEL};
use crate::catalog::delete_entry;
use crate::catalog::member::{MemberProblem, Members};

/// Condition reasons for CatalogSynced.
pub mod reasons {
    pub const HOME_NAMESPACE: &str = "HomeNamespaceCatalog";
    pub const MEMBER_SYNCED: &str = "MemberClusterReady";
    pub const MEMBER_PENDING: &str = "MemberClusterPending";
}

/// How often views are refreshed and orphans swept.
pub const PERIOD: Duration = Duration::from_secs(10);

/// Runs until the process stops.
pub async fn run(ctx: Arc<Context>) {
    while !ctx.catalog_ready() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = sweep_orphans(&ctx).await {
            tracing::warn!(%error, "orphan sweep failed; retrying next period");
        }
        refresh_views(&ctx).await;
    }
}

/// Removes a deleted node's catalog view from the hub at once (the orphan sweep
/// would, within a period). Failures are left to the sweep.
pub async fn remove_view(ctx: &Context, node: &str) {
    for entry in ctx.entries.state() {
        if entry.labels().get(TARGET_NODE_LABEL).map(String::as_str) != Some(node) {
            continue;
        }
        let api: Api<CatalogEntry> =
            Api::namespaced(ctx.client.clone(), &entry.namespace().unwrap_or_default());
        if let Err(error) = delete_entry(&api, &entry.name_any()).await {
            tracing::warn!(%node, %error, "could not remove the deleted node's view; the sweep will");
            return;
        }
    }
}

/// Deletes hub entries whose product no longer exists (by uid), whose target
/// node is gone, or that are not where their node's view lives (the node moved
/// it to a member cluster or another namespace); member entries whose product
/// is gone; and every entry flowfed wrote where a node's view no longer lives.
async fn sweep_orphans(ctx: &Context) -> Result<()> {
    let live_products: BTreeSet<String> = ctx
        .products
        .state()
        .iter()
        .filter_map(|p| p.uid())
        .collect();
    let nodes = ctx.nodes.state();
    let live_nodes: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    // Where each node's hub view lives; `None` for a view in a member cluster.
    let hub_view: HashMap<String, Option<String>> = nodes
        .iter()
        .map(|n| {
            let home = n
                .spec
                .catalog
                .kubeconfig_secret_ref
                .is_none()
                .then(|| n.home_namespace());
            (n.name_any(), home)
        })
        .collect();
    for entry in ctx.entries.state() {
        let namespace = entry.namespace().unwrap_or_default();
        let target = entry.labels().get(TARGET_NODE_LABEL);
        let target_gone = target.is_some_and(|t| !live_nodes.contains(t));
        let misplaced = target
            .and_then(|t| hub_view.get(t))
            .is_some_and(|home| home.as_deref() != Some(namespace.as_str()));
        let product_gone = !live_products.contains(&entry.spec.product.uid);
        if !(target_gone || product_gone || misplaced) {
            continue;
        }
        let api: Api<CatalogEntry> = Api::namespaced(ctx.client.clone(), &namespace);
        if delete_entry(&api, &entry.name_any()).await? {
            tracing::info!(entry = %entry.name_any(), target_gone, product_gone, misplaced, "removed orphaned catalog entry");
        }
    }
    for node in &nodes {
        sweep_member(ctx, node, &live_products).await;
    }
    // Nodes gone, or whose view is back in the hub: where their member views
    // were is cleaned, as is any place a member view moved away from.
    let with_member: BTreeSet<String> = hub_view
        .iter()
        .filter(|(_, home)| home.is_none())
        .map(|(node, _)| node.clone())
        .collect();
    ctx.members.retain(|node| with_member.contains(node));
    clean_retired(ctx).await;
    Ok(())
}

/// Failed attempts after which a place a view moved away from is given up
/// (its cluster is gone for good): 30 sweeps, five minutes.
const RETIRED_ATTEMPTS: u32 = 30;

/// Deletes the entries flowfed wrote for a node in a member cluster place its
/// view no longer lives in, found by their labels. A place that cannot be
/// reached is retried next sweep.
async fn clean_retired(ctx: &Context) {
    for mut retired in ctx.members.take_retired() {
        let current = ctx.members.placed(&retired.node);
        if current.is_some_and(|c| c.same_place(&retired.member)) {
            continue;
        }
        let member = &retired.member;
        let api: Api<CatalogEntry> = Api::namespaced(member.client.clone(), &member.namespace);
        let ours = ListParams::default().labels(&format!(
            "{}={},{TARGET_NODE_LABEL}={}",
            crate::api::MANAGED_BY_LABEL,
            crate::api::MANAGED_BY,
            retired.node
        ));
        let cleaned = async {
            for entry in api.list_metadata(&ours).await?.items {
                delete_entry(&api, &entry.metadata.name.unwrap_or_default()).await?;
            }
            Ok::<(), kube::Error>(())
        };
        match cleaned.await {
            Ok(()) => {
                tracing::info!(node = %retired.node, server = %member.server, namespace = %member.namespace, "removed the entries of a view that moved away")
            }
            Err(error) if retired.attempts + 1 < RETIRED_ATTEMPTS => {
                tracing::warn!(node = %retired.node, %error, "cannot clean where the node's view was yet; retrying");
                retired.attempts += 1;
                ctx.members.retry_retired(retired);
            }
            Err(error) => {
                tracing::error!(node = %retired.node, server = %member.server, %error, "gave up cleaning where the node's view was; remove its entries by hand (label flowfed.io/target-node)");
            }
        }
    }
}

/// Member entries whose product is gone are deleted; entries someone else
/// changed are forgotten, so the product's next sync puts them back.
async fn sweep_member(ctx: &Context, node: &DataFlowNode, live_products: &BTreeSet<String>) {
    let name = node.name_any();
    let Some(Ok(member)) = ctx.members.for_node(&ctx.client, node).await else {
        return;
    };
    let api: Api<CatalogEntry> = Api::namespaced(member.client.clone(), &member.namespace);
    // Only flowfed's own entries: one someone else made is never touched.
    let managed = ListParams::default().labels(&format!(
        "{}={}",
        crate::api::MANAGED_BY_LABEL,
        crate::api::MANAGED_BY
    ));
    let listed = match api.list(&managed).await {
        Ok(list) => list.items,
        Err(error) => {
            ctx.members
                .failed(&name, MemberProblem::Unreachable(error.to_string()));
            return;
        }
    };
    // Whatever the member holds is what the cache should say (drift repair).
    let known = ctx.members.entries(&name);
    for entry in &listed {
        let entry_name = entry.name_any();
        if !live_products.contains(&entry.spec.product.uid) {
            if delete_entry(&api, &entry_name).await.is_ok() {
                ctx.members.record_entry(&name, &entry_name, None);
            }
        } else if known.get(&entry_name) != Some(&entry.spec.content_hash)
            || entry.spec != expected_spec(entry)
        {
            // Changed by someone else: forget it, so the product's next sync puts it back.
            ctx.members
                .record_entry(&name, &entry_name, Some(String::new()));
        }
    }
    let present: BTreeSet<String> = listed.iter().map(|e| e.name_any()).collect();
    for gone in known.keys().filter(|k| !present.contains(*k)) {
        ctx.members.record_entry(&name, gone, None);
    }
}

/// An entry spec with its hash recomputed: differs from the stored one when
/// someone edited the listing fields.
fn expected_spec(entry: &CatalogEntry) -> crate::api::CatalogEntrySpec {
    let mut spec = entry.spec.clone();
    spec.content_hash = crate::catalog::content_hash(&spec);
    spec
}

/// Status writes in flight while refreshing views: at 1,000 nodes the first
/// pass writes every node once, and one at a time that took over a minute.
const VIEW_WRITE_CONCURRENCY: usize = 16;

/// What a node's view says: how many entries it lists, and its CatalogSynced condition.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub count: i64,
    pub synced: ConditionUpdate,
}

/// The view of `node`, from the hub entries per target node and what is known
/// of the member clusters.
pub fn view_of(node: &DataFlowNode, hub_counts: &HashMap<String, i64>, members: &Members) -> View {
    let name = node.name_any();
    let synced = |status, reason, message: String| {
        ConditionUpdate::new(types::CATALOG_SYNCED, status, reason, message)
    };
    if node.spec.catalog.kubeconfig_secret_ref.is_none() {
        return View {
            count: hub_counts.get(&name).copied().unwrap_or(0),
            synced: synced(
                Status::True,
                reasons::HOME_NAMESPACE,
                format!(
                    "catalog view is namespace {} in the hub",
                    node.home_namespace()
                ),
            ),
        };
    }
    let count = members.entries(&name).len() as i64;
    let synced = match (members.up(&name), members.problem(&name)) {
        (Some(true), _) => synced(
            Status::True,
            reasons::MEMBER_SYNCED,
            format!(
                "catalog view is namespace {} in the node's member cluster",
                node.member_namespace()
            ),
        ),
        (_, Some(problem)) => synced(Status::False, problem.reason(), problem.to_string()),
        (_, None) => synced(
            Status::Unknown,
            reasons::MEMBER_PENDING,
            "member cluster not contacted yet".to_owned(),
        ),
    };
    View { count, synced }
}

/// Writes each node's CatalogSynced condition and catalogEntries when they
/// change. A node whose write fails is retried next period; the others go on.
async fn refresh_views(ctx: &Context) {
    let mut hub_counts: HashMap<String, i64> = HashMap::new();
    for entry in ctx.entries.state() {
        if let Some(target) = entry.labels().get(TARGET_NODE_LABEL) {
            *hub_counts.entry(target.clone()).or_default() += 1;
        }
    }
    let now = ctx.now();
    let writes = ctx.nodes.state().into_iter().map(|node| {
        let view = view_of(&node, &hub_counts, &ctx.members);
        async move {
            if let Err(error) = write_view(ctx, &node, view, now).await {
                tracing::warn!(node = %node.name_any(), %error, "catalog view status not written; retrying next period");
            }
        }
    });
    futures::stream::iter(writes)
        .buffer_unordered(VIEW_WRITE_CONCURRENCY)
        .collect::<()>()
        .await;
}

async fn write_view(ctx: &Context, node: &DataFlowNode, view: View, now: Timestamp) -> Result<()> {
    let current = node.status.clone().unwrap_or_default();
    let mut synced: Vec<_> = current
        .conditions
        .iter()
        .filter(|c| c.type_ == types::CATALOG_SYNCED)
        .cloned()
        .collect();
    let before = synced.clone();
    let stamp = Stamp {
        generation: node.metadata.generation,
        now,
    };
    conditions::set(&mut synced, view.synced, stamp);
    if current.catalog_entries == Some(view.count)
        && conditions::same_ignoring_time(&before, &synced)
    {
        return Ok(());
    }
    let partial = serde_json::json!({"catalogEntries": view.count, "conditions": synced});
    let api: Api<DataFlowNode> = Api::all(ctx.client.clone());
    apply_status(&api, node, managers::CATALOG, &partial).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, member: bool) -> DataFlowNode {
        let catalog = if member {
            serde_json::json!({"kubeconfigSecretRef": {"namespace": "flowfed-system", "name": "k", "key": "kubeconfig"}})
        } else {
            serde_json::json!({})
        };
        serde_json::from_value(serde_json::json!({
            "apiVersion": "flowfed.io/v1alpha1", "kind": "DataFlowNode",
            "metadata": {"name": name},
            "spec": {"city": name, "province": "CN-GD", "endpoint": {"url": "https://gw.example/"}, "catalog": catalog},
        }))
        .unwrap()
    }

    #[test]
    fn a_hub_view_counts_the_entries_targeting_the_node() {
        let counts = HashMap::from([("guangzhou".to_owned(), 7)]);
        let view = view_of(&node("guangzhou", false), &counts, &Members::default());
        assert_eq!(view.count, 7);
        assert_eq!(
            (view.synced.status, view.synced.reason),
            (Status::True, reasons::HOME_NAMESPACE)
        );
        let empty = view_of(&node("shenzhen", false), &counts, &Members::default());
        assert_eq!(empty.count, 0);
    }

    #[test]
    fn a_member_view_is_pending_until_its_cluster_is_contacted() {
        let view = view_of(
            &node("hongkong", true),
            &HashMap::new(),
            &Members::default(),
        );
        assert_eq!(view.count, 0);
        assert_eq!(
            (view.synced.status, view.synced.reason),
            (Status::Unknown, reasons::MEMBER_PENDING)
        );
    }
}
