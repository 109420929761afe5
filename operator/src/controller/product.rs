//! Catalog reconciler: one-point release, all-region visibility.
//!
//! A DataProduct's publisher is the node whose home namespace holds it (never
//! the spec). The policy decides, for every node, whether the product may be
//! listed there; the reconciler writes an entry into each visible node's
//! catalog (its hub namespace, or its member cluster), deletes entries where it
//! no longer may be listed, and reports targets, visibility and blocks. It wakes
//! at the nearest mechanism expiry, so entries abroad are withdrawn on time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};

use super::status::{apply_status, managers, publish_event};
use super::{Context, Error, Result, jittered};
use crate::api::conditions::{self, Status, types};
use crate::api::{
    BlockedTarget, CatalogEntry, CatalogEntrySpec, DataFlowNode, DataProduct, DataProductStatus,
    PRODUCT_UID_LABEL, VisibilityScope,
};
use crate::catalog::member::MemberProblem;
use crate::catalog::{delete_entry, entry_labels, entry_name, listing};
use crate::policy::{
    self, CrossBorderFacts, Decision, LabelQuery, NodeFacts, ProductFacts, Requirement,
};

/// Keeps a product until its entries are gone everywhere, member clusters included.
pub const FINALIZER: &str = "flowfed.io/catalog-cleanup";

/// Entry writes in flight per product reconcile: a release to 25 or 50 nodes
/// goes out in one round trip rather than several.
const ENTRY_WRITE_CONCURRENCY: usize = 64;

/// Hub entry writes in flight across every product reconcile: about where the
/// API server's create throughput stops growing (see docs/benchmarks.md).
pub const HUB_ENTRY_WRITES_IN_FLIGHT: usize = 64;

/// Condition reasons of the catalog reconciler.
pub mod reasons {
    pub const PUBLISHED: &str = "Published";
    pub const NO_PUBLISHER_NODE: &str = "NoPublisherNode";
    pub const AMBIGUOUS_PUBLISHER: &str = "AmbiguousPublisherNode";
    pub const INVALID_SELECTOR: &str = "InvalidNodeSelector";
    pub const SYNCED: &str = "Synced";
    pub const WRITE_FAILED: &str = "EntryWriteFailed";
}

pub async fn reconcile(product: Arc<DataProduct>, ctx: Arc<Context>) -> Result<Action> {
    if !ctx.catalog_ready() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = product
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<DataProduct> = Api::namespaced(ctx.client.clone(), &namespace);
    // Added here and published in the same pass, rather than waiting for the
    // finalizer's own watch event: a release is visible one round trip sooner.
    let product = add_finalizer(&api, product).await?;
    finalizer(&api, FINALIZER, product, |event| async {
        match event {
            Finalizer::Apply(product) => publish(product, &ctx).await,
            Finalizer::Cleanup(product) => withdraw(product, &ctx)
                .await
                .map(|()| Action::await_change()),
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// `product` with the catalog finalizer, adding it if a live product lacks it.
/// The patch carries the resource version it extends, so a concurrent change
/// fails it (409, and the reconcile is retried) instead of being overwritten.
async fn add_finalizer(
    api: &Api<DataProduct>,
    product: Arc<DataProduct>,
) -> Result<Arc<DataProduct>> {
    let has = product.finalizers().iter().any(|f| f == FINALIZER);
    if has || product.metadata.deletion_timestamp.is_some() {
        return Ok(product);
    }
    let mut finalizers = product.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": product.resource_version()}
    });
    let patched = api
        .patch(
            &product.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(Arc::new(patched))
}

/// The node whose home namespace is `namespace`.
pub fn publisher_of(
    nodes: &[Arc<DataFlowNode>],
    namespace: &str,
) -> Result<Arc<DataFlowNode>, (&'static str, String)> {
    let owners: Vec<&Arc<DataFlowNode>> = nodes
        .iter()
        .filter(|n| n.home_namespace() == namespace)
        .collect();
    match owners.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err((
            reasons::NO_PUBLISHER_NODE,
            format!(
                "namespace {namespace} is the home namespace of no DataFlowNode; publish products in a node's home namespace"
            ),
        )),
        many => Err((
            reasons::AMBIGUOUS_PUBLISHER,
            format!(
                "namespace {namespace} is claimed by several nodes ({}); give each node its own spec.catalog.namespace",
                many.iter()
                    .map(|n| n.name_any())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The facts of a node the policy reads.
pub fn node_facts(node: &DataFlowNode) -> NodeFacts {
    NodeFacts {
        name: node.name_any(),
        jurisdiction: node.spec.jurisdiction.clone(),
        labels: node.labels().clone(),
    }
}

/// The facts of a product the policy reads; `Err` for a selector that cannot be read.
pub fn product_facts(product: &DataProduct) -> Result<ProductFacts, String> {
    let spec = &product.spec;
    let selected = match (spec.visibility.scope, &spec.visibility.node_selector) {
        (VisibilityScope::AllRegions, _) => None,
        (VisibilityScope::Selected, Some(selector)) => Some(label_query(selector)?),
        // The API server requires a selector with Selected; deny by default anyway.
        (VisibilityScope::Selected, None) => {
            Some(LabelQuery(vec![Requirement::Exists(String::new())]))
        }
    };
    Ok(ProductFacts {
        classification: spec.classification,
        anonymized: spec.anonymized,
        selected,
        cross_border: spec.cross_border.as_ref().map(|c| CrossBorderFacts {
            mechanism: c.mechanism,
            has_reference: c.reference.as_deref().is_some_and(|r| !r.is_empty()),
            has_exemption_reason: c.exemption_reason.as_deref().is_some_and(|r| !r.is_empty()),
            valid_until: c.valid_until.as_ref().map(|t| t.0),
        }),
    })
}

fn label_query(selector: &LabelSelector) -> Result<LabelQuery, String> {
    let mut requirements: Vec<Requirement> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
        .collect();
    for expression in selector.match_expressions.iter().flatten() {
        let values: BTreeSet<String> = expression.values.iter().flatten().cloned().collect();
        let key = expression.key.clone();
        requirements.push(match expression.operator.as_str() {
            "In" => Requirement::In(key, values),
            "NotIn" => Requirement::NotIn(key, values),
            "Exists" => Requirement::Exists(key),
            "DoesNotExist" => Requirement::DoesNotExist(key),
            other => {
                return Err(format!(
                    "unknown selector operator {other:?} (In, NotIn, Exists, DoesNotExist)"
                ));
            }
        });
    }
    Ok(LabelQuery(requirements))
}

async fn publish(product: Arc<DataProduct>, ctx: &Context) -> Result<Action> {
    let now = ctx.now();
    let uid = product.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let namespace = product.namespace().unwrap_or_default();
    let nodes = ctx.nodes.state();
    let generation = product.metadata.generation;
    let known = known_status(&product, ctx);
    let release_started = ctx.release_clock.started(
        &uid,
        generation,
        product.metadata.creation_timestamp.as_ref(),
        now,
    );

    let publisher = match publisher_of(&nodes, &namespace) {
        Ok(node) => node,
        Err((reason, message)) => {
            withdraw(product.clone(), ctx).await?;
            let mut status = DataProductStatus {
                observed_generation: generation,
                ..Default::default()
            };
            status.conditions = known.clone().unwrap_or_default().conditions;
            conditions::set(
                &mut status.conditions,
                types::PUBLISHED,
                Status::False,
                reason,
                message.clone(),
                generation,
                now,
            );
            conditions::set(
                &mut status.conditions,
                types::SYNCED,
                Status::False,
                reason,
                "listed nowhere".to_owned(),
                generation,
                now,
            );
            write_status(&product, known.as_ref(), status, ctx).await?;
            return Ok(Action::requeue(jittered(ctx.settings.resync)));
        }
    };
    let publisher_name = publisher.name_any();

    let facts = match product_facts(&product) {
        Ok(facts) => facts,
        Err(message) => {
            let mut status = known.clone().unwrap_or_default();
            status.observed_generation = generation;
            conditions::set(
                &mut status.conditions,
                types::SYNCED,
                Status::False,
                reasons::INVALID_SELECTOR,
                message,
                generation,
                now,
            );
            write_status(&product, known.as_ref(), status, ctx).await?;
            return Ok(Action::await_change());
        }
    };

    // Decide.
    let publisher_facts = node_facts(&publisher);
    let mut targets = Vec::new();
    let mut blocked = Vec::new();
    for node in &nodes {
        match policy::visibility(&facts, &publisher_facts, &node_facts(node), now) {
            Decision::Visible => targets.push(node.clone()),
            Decision::Blocked(policy::BlockReason::NotSelected) => {}
            Decision::Blocked(reason) => blocked.push(BlockedTarget {
                node: node.name_any(),
                reason: reason.as_str().to_owned(),
            }),
        }
    }
    blocked.sort();

    // Act: write where visible, delete where not.
    let spec = listing(&product, &publisher_name);
    let name = entry_name(&publisher_name, &product.name_any());
    let mut visible_in = Vec::new();
    let mut problems: Vec<(String, &'static str, String)> = Vec::new();
    let mut wrote = false;
    let mut hub_keep: BTreeSet<(String, String)> = BTreeSet::new();
    let mut member_keep: BTreeSet<String> = BTreeSet::new();
    for target in &targets {
        match &target.spec.catalog.kubeconfig_secret_ref {
            None => hub_keep.insert((target.home_namespace(), name.clone())),
            Some(_) => member_keep.insert(target.name_any()),
        };
    }
    // Entries are written concurrently (bounded), so release-to-visible grows with
    // the API server's latency rather than with the number of nodes times it.
    let writes: Vec<_> = targets
        .iter()
        .map(|t| write_target(ctx, t, &name, &spec))
        .collect();
    let outcomes: Vec<_> = futures::stream::iter(writes)
        .buffer_unordered(ENTRY_WRITE_CONCURRENCY)
        .collect()
        .await;
    for (target_name, outcome) in outcomes {
        match outcome {
            Ok(written) => {
                wrote |= written;
                visible_in.push(target_name);
            }
            Err((reason, message)) => problems.push((target_name, reason, message)),
        }
    }
    wrote |= delete_untargeted_hub_entries(ctx, &nodes, &name, &hub_keep).await?;
    wrote |= delete_stale_member_entries(ctx, &nodes, &name, &member_keep).await;

    // Report.
    let previous = known.clone().unwrap_or_default();
    let mut status = DataProductStatus {
        observed_generation: generation,
        publisher_node: Some(publisher_name.clone()),
        targets: sorted(targets.iter().map(|t| t.name_any())),
        visible_count: visible_in.len() as i32,
        visible_in: sorted(visible_in),
        blocked_count: blocked.len() as i32,
        blocked: blocked.clone(),
        conditions: previous.conditions.clone(),
        last_sync_time: previous.last_sync_time.clone(),
        release_to_visible_millis: previous.release_to_visible_millis,
    };
    conditions::set(
        &mut status.conditions,
        types::PUBLISHED,
        Status::True,
        reasons::PUBLISHED,
        format!("published by node {publisher_name}"),
        generation,
        now,
    );
    if problems.is_empty() {
        conditions::set(
            &mut status.conditions,
            types::SYNCED,
            Status::True,
            reasons::SYNCED,
            format!("listed in the catalog of {} nodes", status.visible_count),
            generation,
            now,
        );
        let first_sync_of_generation = previous.observed_generation != generation
            || !conditions::is_true(&previous.conditions, types::SYNCED)
            || previous.release_to_visible_millis.is_none();
        if first_sync_of_generation {
            let millis = now.duration_since(release_started).as_millis().max(0) as i64;
            status.release_to_visible_millis = Some(millis);
            ctx.metrics
                .catalog_release_to_visible_seconds
                .observe(millis as f64 / 1000.0);
        }
    } else {
        let (_, reason, _) = problems[0];
        let message = problems
            .iter()
            .map(|(node, _, m)| format!("{node}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        conditions::set(
            &mut status.conditions,
            types::SYNCED,
            Status::False,
            reason,
            message,
            generation,
            now,
        );
    }
    if wrote || status.last_sync_time.is_none() {
        status.last_sync_time = Some(Time(now));
    }
    if previous.blocked != status.blocked && !status.blocked.is_empty() {
        let note = blocked
            .iter()
            .map(|b| format!("{} ({})", b.node, b.reason))
            .collect::<Vec<_>>()
            .join(", ");
        publish_event(
            &ctx.recorder,
            product.as_ref(),
            EventType::Warning,
            "Blocked",
            "Sync",
            format!("not listed at {note}"),
        )
        .await;
    }
    write_status(&product, known.as_ref(), status, ctx).await?;

    let next_expiry = policy::next_change(&facts, now)
        .map(|until| Duration::from_nanos(until.duration_since(now).as_nanos().max(1) as u64));
    let wake = match (problems.is_empty(), next_expiry) {
        (false, _) => jittered(Duration::from_secs(10)),
        (true, Some(expiry)) => expiry.min(ctx.settings.resync),
        (true, None) => jittered(ctx.settings.resync),
    };
    Ok(Action::requeue(wake))
}

/// Writes the entry into `node`'s catalog view, wherever that lives.
async fn write_target(
    ctx: &Context,
    node: &DataFlowNode,
    name: &str,
    spec: &CatalogEntrySpec,
) -> (String, Result<bool, (&'static str, String)>) {
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
) -> Result<bool, (&'static str, String)> {
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
        .map_err(|e| (reasons::WRITE_FAILED, e.to_string()))?;
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
) -> Result<bool, (&'static str, String)> {
    let node_name = node.name_any();
    let member = match ctx.members.for_node(&ctx.client, node).await {
        Some(Ok(member)) => member,
        Some(Err(problem)) => return Err((problem.reason(), problem.to_string())),
        None => return Err((reasons::WRITE_FAILED, "node has no member cluster".into())),
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
            Err((problem.reason(), problem.to_string()))
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
/// exist. A member that cannot be reached keeps it until the next pass.
async fn delete_stale_member_entries(
    ctx: &Context,
    nodes: &[Arc<DataFlowNode>],
    name: &str,
    keep: &BTreeSet<String>,
) -> bool {
    let mut deleted = false;
    for node in nodes {
        let node_name = node.name_any();
        if keep.contains(&node_name) || ctx.members.entry_hash(&node_name, name).is_none() {
            continue;
        }
        let Some(Ok(member)) = ctx.members.for_node(&ctx.client, node).await else {
            continue;
        };
        let api: Api<CatalogEntry> = Api::namespaced(member.client.clone(), &member.namespace);
        match delete_entry(&api, name).await {
            Ok(gone) => {
                deleted |= gone;
                ctx.members.record_entry(&node_name, name, None);
            }
            Err(error) => ctx
                .members
                .failed(&node_name, MemberProblem::Unreachable(error.to_string())),
        }
    }
    deleted
}

/// Removes a product's entries everywhere: hub namespaces and every member
/// cluster. Fails (and is retried) while a member cannot be reached.
async fn withdraw(product: Arc<DataProduct>, ctx: &Context) -> Result<()> {
    let uid = product.uid().ok_or(Error::MissingField("metadata.uid"))?;
    delete_stale_hub_entries(ctx, &uid, &BTreeSet::new()).await?;
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
    ctx.release_clock.forget(&uid);
    ctx.status_writes.forget(&uid);
    Ok(())
}

/// Writes `desired` unless it says what `known` (the freshest status known,
/// see [`known_status`]) already says.
async fn write_status(
    product: &DataProduct,
    known: Option<&DataProductStatus>,
    desired: DataProductStatus,
    ctx: &Context,
) -> Result<()> {
    let unchanged = known.is_some_and(|current| same_ignoring_time(current, &desired));
    if unchanged {
        return Ok(());
    }
    let uid = product.uid().unwrap_or_default();
    let version = product.resource_version().unwrap_or_default();
    let api: Api<DataProduct> =
        Api::namespaced(ctx.client.clone(), &product.namespace().unwrap_or_default());
    apply_status(&api, product, managers::CATALOG, &desired).await?;
    ctx.status_writes.record(&uid, &version, &desired);
    Ok(())
}

/// The freshest status known for `product`: the one this process last wrote
/// if `product` is the very object it was written onto (a stale re-read, such
/// as the one the finalizer's watch event brings), else the object's own.
fn known_status(product: &DataProduct, ctx: &Context) -> Option<DataProductStatus> {
    let uid = product.uid().unwrap_or_default();
    let version = product.resource_version().unwrap_or_default();
    ctx.status_writes
        .written_onto(&uid, &version)
        .or_else(|| product.status.clone())
}

fn same_ignoring_time(a: &DataProductStatus, b: &DataProductStatus) -> bool {
    let (mut a, mut b) = (a.clone(), b.clone());
    let same_conditions = conditions::equal_ignoring_time(&a.conditions, &b.conditions);
    a.conditions.clear();
    b.conditions.clear();
    a.last_sync_time = None;
    b.last_sync_time = None;
    same_conditions && a == b
}

/// The last status this process wrote for each product, with the resource
/// version of the object it was written onto. A reconcile that runs on that
/// same (now stale) object, such as the one the finalizer's own watch event
/// triggers, would otherwise take it for a first sync and write again.
#[derive(Default)]
pub struct StatusWrites {
    by_uid: std::sync::Mutex<std::collections::HashMap<String, (String, DataProductStatus)>>,
}

impl StatusWrites {
    /// The status written onto resource version `based_on` of product `uid`.
    fn written_onto(&self, uid: &str, based_on: &str) -> Option<DataProductStatus> {
        let by_uid = self.by_uid.lock().expect("status writes lock");
        by_uid
            .get(uid)
            .filter(|(version, _)| version == based_on)
            .map(|(_, written)| written.clone())
    }

    fn record(&self, uid: &str, based_on: &str, written: &DataProductStatus) {
        self.by_uid
            .lock()
            .expect("status writes lock")
            .insert(uid.to_owned(), (based_on.to_owned(), written.clone()));
    }

    pub fn forget(&self, uid: &str) {
        self.by_uid.lock().expect("status writes lock").remove(uid);
    }
}

fn sorted(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names
}

/// When each product generation was released, for release-to-visible latency:
/// the moment this process first saw the generation, or the product's creation
/// when the operator was not running then.
#[derive(Default)]
pub struct ReleaseClock {
    seen: std::sync::Mutex<std::collections::HashMap<String, (Option<i64>, Timestamp)>>,
}

impl ReleaseClock {
    pub fn started(
        &self,
        uid: &str,
        generation: Option<i64>,
        created: Option<&Time>,
        now: Timestamp,
    ) -> Timestamp {
        let mut seen = self.seen.lock().expect("release clock lock");
        let entry = seen.entry(uid.to_owned()).or_insert_with(|| {
            // First sight in this process: a product created well before now was
            // released while the operator was away; count from its creation.
            let start = match (generation, created) {
                (Some(1), Some(created)) if now.duration_since(created.0).as_secs_f64() > 2.0 => {
                    created.0
                }
                _ => now,
            };
            (generation, start)
        });
        if entry.0 != generation {
            *entry = (generation, now);
        }
        entry.1
    }

    pub fn forget(&self, uid: &str) {
        self.seen.lock().expect("release clock lock").remove(uid);
    }
}

/// Hub entries this process wrote, with their content hash, so a product
/// reconciled again before the entry watch catches up does not write twice.
/// An entry's deletion (by anyone) clears its record before the product is
/// reconciled, so a deleted entry is always put back.
#[derive(Default)]
pub struct WrittenEntries {
    hashes: std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
}

impl WrittenEntries {
    /// Whether an applied entry is the echo of this process's own write (then
    /// the record is dropped: the watch holds the entry from now on).
    pub fn take_echo(&self, namespace: &str, name: &str, hash: &str) -> bool {
        let mut hashes = self.hashes.lock().expect("written entries lock");
        let key = (namespace.to_owned(), name.to_owned());
        let echo = hashes.get(&key).is_some_and(|h| h == hash);
        if echo {
            hashes.remove(&key);
        }
        echo
    }

    fn is_current(&self, namespace: &str, name: &str, hash: &str) -> bool {
        let hashes = self.hashes.lock().expect("written entries lock");
        hashes
            .get(&(namespace.to_owned(), name.to_owned()))
            .is_some_and(|h| h == hash)
    }

    fn record(&self, namespace: &str, name: &str, hash: &str) {
        let mut hashes = self.hashes.lock().expect("written entries lock");
        hashes.insert((namespace.to_owned(), name.to_owned()), hash.to_owned());
    }

    /// Forgets an entry (it was deleted, or the watch now holds it).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.hashes
            .lock()
            .expect("written entries lock")
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}
