//! How the reconcilers are wired to the watches: one builder per controller
//! saying what wakes it, one helper that runs any of them until shutdown, and
//! the housekeeping that keeps derived state in step with deletions.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::watch;

use super::shared::{ChangeFilter, SharedWatch, Watched, fingerprint};
use super::{Caches, Context, Error, Result, catalog_views, link};
use crate::api::{
    CatalogEntry, DataFlowNode, DataProcessor, DataProduct, Federation, FreeTradeZone,
    InterCityLink, MANAGED_BY, MANAGED_BY_LABEL,
};
use crate::probe::Endpoint;

/// The shared watches every controller subscribes to.
pub struct Watches {
    pub nodes: SharedWatch<DataFlowNode>,
    pub links: SharedWatch<InterCityLink>,
    pub entries: SharedWatch<CatalogEntry>,
    pub products: SharedWatch<DataProduct>,
    pub processors: SharedWatch<DataProcessor>,
    pub zones: SharedWatch<FreeTradeZone>,
}

impl Watches {
    pub fn start(client: &Client) -> Self {
        Watches {
            nodes: SharedWatch::start(Api::all(client.clone()), watcher::Config::default()),
            links: SharedWatch::start(Api::all(client.clone()), watcher::Config::default()),
            // Only flowfed's own entries: the orphan sweep must never delete an
            // entry someone else made, and one stripped of the label is written back.
            entries: SharedWatch::start(
                Api::all(client.clone()),
                watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
            ),
            products: SharedWatch::start(Api::all(client.clone()), watcher::Config::default()),
            processors: SharedWatch::start(Api::all(client.clone()), watcher::Config::default()),
            zones: SharedWatch::start(Api::all(client.clone()), watcher::Config::default()),
        }
    }

    pub fn caches(&self) -> Caches {
        Caches {
            nodes: self.nodes.store.clone(),
            links: self.links.store.clone(),
            entries: self.entries.store.clone(),
            products: self.products.store.clone(),
            processors: self.processors.store.clone(),
            zones: self.zones.store.clone(),
        }
    }

    /// Runs the watches (until dropped).
    pub async fn drive(&self) {
        let catalog = futures::future::join3(
            self.products.drive(),
            self.processors.drive(),
            self.zones.drive(),
        );
        let network =
            futures::future::join3(self.nodes.drive(), self.links.drive(), self.entries.drive());
        futures::future::join(network, catalog).await;
    }
}

/// Runs controllers until shutdown, sharing one context.
pub struct Runner {
    ctx: Arc<Context>,
    shutdown: watch::Receiver<bool>,
}

impl Runner {
    pub fn new(ctx: Arc<Context>, shutdown: watch::Receiver<bool>) -> Self {
        Runner { ctx, shutdown }
    }

    /// Runs `controller` with `reconcile` until shutdown, timing and counting
    /// every reconcile under `name` and backing off failures per object.
    pub async fn run<K, F, R>(&self, controller: Controller<K>, name: &'static str, reconcile: R)
    where
        K: Watched,
        R: Fn(Arc<K>, Arc<Context>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Action>> + Send + 'static,
    {
        let mut shutdown = self.shutdown.clone();
        let stopped = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        let reconcile = Arc::new(reconcile);
        controller
            .graceful_shutdown_on(stopped)
            .run(
                move |object, ctx| {
                    let reconcile = reconcile.clone();
                    instrumented(name, object.clone(), ctx.clone(), reconcile(object, ctx))
                },
                error_policy,
                self.ctx.clone(),
            )
            .for_each(|_| async {})
            .await;
    }
}

/// Lets the controllers act (and `/readyz` answer ready) once every cache has synced.
pub async fn mark_ready_once_synced(
    ctx: Arc<Context>,
    federations: Store<Federation>,
    ready: Arc<AtomicBool>,
) {
    let network = futures::future::join3(
        ctx.nodes.wait_until_ready(),
        ctx.links.wait_until_ready(),
        federations.wait_until_ready(),
    );
    let catalog = futures::future::join4(
        ctx.entries.wait_until_ready(),
        ctx.products.wait_until_ready(),
        ctx.processors.wait_until_ready(),
        ctx.zones.wait_until_ready(),
    );
    if let ((Ok(()), Ok(()), Ok(())), (Ok(()), Ok(()), Ok(()), Ok(()))) =
        futures::future::join(network, catalog).await
    {
        ctx.mark_ready();
        ready.store(true, Ordering::Release);
        tracing::info!("caches synced; controllers acting");
    }
}

/// Nodes wake on their own changes only.
pub fn node_controller(watches: &Watches, ctx: &Context) -> Controller<DataFlowNode> {
    let nodes = &watches.nodes;
    Controller::for_shared_stream(nodes.triggers(), nodes.store.clone())
        .with_config(ControllerConfig::default().concurrency(ctx.settings.probe_concurrency))
}

/// Links wake on their own changes, their pair mates', and a change of what
/// they read of their nodes (phase and recorded RTT): the catalog view's status
/// writes (catalogEntries at every sync) must not wake 5 links each.
pub fn link_controller(watches: &Watches) -> Controller<InterCityLink> {
    let links = watches.links.store.clone();
    let relevant = Arc::new(ChangeFilter::default());
    let links_of = |links: &kube::runtime::reflector::Store<InterCityLink>, node: &str| {
        link::links_of_node(links, node)
    };
    Controller::for_shared_stream(watches.links.triggers(), links.clone())
        .watches_shared_stream(watches.links.triggers(), {
            let links = links.clone();
            move |link: Arc<InterCityLink>| link::pair_mates(&links, &link)
        })
        .watches_shared_stream(watches.nodes.applied(), {
            let (links, relevant) = (links.clone(), relevant.clone());
            move |node: Arc<DataFlowNode>| {
                let status = node.status.as_ref();
                let fields = (
                    status.map(|s| s.phase),
                    status.and_then(|s| s.rtt_millis).map(f64::to_bits),
                );
                if relevant.changed(&node.name_any(), fields) {
                    links_of(&links, &node.name_any())
                } else {
                    Vec::new()
                }
            }
        })
        .watches_shared_stream(watches.nodes.deletions(), move |node: Arc<DataFlowNode>| {
            relevant.forget(&node.name_any());
            links_of(&links, &node.name_any())
        })
        .with_config(ControllerConfig::default().concurrency(64))
}

/// Federations wake on any link change, and on a change of what the report
/// reads of a node: labels (selectors), province, location and phase. No
/// debounce: under a steady trickle of node and link events a debounced
/// reconcile is postponed for ever (seen at 1,000 nodes); the scheduler already
/// merges triggers that arrive while a reconcile is queued or running.
pub fn federation_controller(watches: &Watches, client: kube::Client) -> Controller<Federation> {
    let relevant = Arc::new(ChangeFilter::default());
    let node_changes = watches.nodes.applied().filter_map(move |node| {
        let fields = (
            node.labels().clone(),
            node.spec.province.clone(),
            node.spec
                .location
                .map(|l| (l.latitude.to_bits(), l.longitude.to_bits())),
            node.status.as_ref().map(|s| s.phase),
        );
        std::future::ready(relevant.changed(&node.name_any(), fields).then_some(()))
    });
    let everything = futures::stream::select_all([
        node_changes.boxed(),
        unit(watches.nodes.deletions()),
        unit(watches.links.triggers()),
    ]);
    Controller::new(Api::<Federation>::all(client), watcher::Config::default())
        .reconcile_all_on(everything)
}

/// Products wake on anyone else's change to their entries, on an entry's
/// deletion (it is written again), on a change of what the rules read of a
/// node (labels, jurisdiction, catalog, Greater Bay Area, free trade zone), of
/// their processor (its spec, and the tier its totals give), and of any zone.
pub fn catalog_controller(watches: &Watches, ctx: &Arc<Context>) -> Controller<DataProduct> {
    let products = &watches.products;
    Controller::for_shared_stream(products.triggers(), products.store.clone())
        .watches_shared_stream(watches.entries.applied(), {
            let ctx = ctx.clone();
            move |entry: Arc<CatalogEntry>| {
                // Our own writes coming back need no reconcile; anyone else's do.
                let (ns, name) = (entry.namespace().unwrap_or_default(), entry.name_any());
                let echo = ctx.written.take_echo(&ns, &name, &entry.spec.content_hash);
                (!echo).then(|| product_of(&entry))
            }
        })
        .watches_shared_stream(watches.entries.deletions(), {
            let ctx = ctx.clone();
            move |entry: Arc<CatalogEntry>| {
                // Forget it before the product is reconciled, so it is written again.
                let ns = entry.namespace().unwrap_or_default();
                ctx.written.forget(&ns, &entry.name_any());
                Some(product_of(&entry))
            }
        })
        .watches_shared_stream(processor_changes(watches), {
            let products = products.store.clone();
            move |processor: Arc<DataProcessor>| products_of(&products, &processor.name_any())
        })
        .reconcile_all_on(futures::stream::select(
            node_changes(watches, catalog_node_fields),
            unit(watches.zones.triggers()),
        ))
        .with_config(ControllerConfig::default().concurrency(16))
}

/// What the catalog reads of a node.
fn catalog_node_fields(node: &DataFlowNode) -> u64 {
    let fields = (
        node.labels(),
        &node.spec.jurisdiction,
        &node.spec.catalog,
        node.spec.greater_bay_area,
        &node.spec.free_trade_zone,
    );
    fingerprint(fields)
}

/// Processors wake on their own changes, on any change of a product naming
/// them, and on a change of what their totals read of a node (labels and
/// jurisdiction decide whether a product reaches abroad).
pub fn processor_controller(watches: &Watches) -> Controller<DataProcessor> {
    let processors = &watches.processors;
    Controller::for_shared_stream(processors.triggers(), processors.store.clone())
        .watches_shared_stream(watches.products.triggers(), |product: Arc<DataProduct>| {
            let name = product.spec.processor.as_deref()?;
            Some(ObjectRef::new(name))
        })
        .reconcile_all_on(node_changes(watches, |node| {
            fingerprint((node.labels(), &node.spec.jurisdiction))
        }))
}

/// A processor changed in what the catalog reads: its spec, or its tier.
fn processor_changes(watches: &Watches) -> impl Stream<Item = Arc<DataProcessor>> + Send + 'static {
    let relevant = Arc::new(ChangeFilter::default());
    let forget = relevant.clone();
    let applied = watches.processors.applied().filter(move |processor| {
        let tier = processor.status.as_ref().and_then(|s| s.tier);
        let changed = relevant.changed(&processor.name_any(), (&processor.spec, tier));
        std::future::ready(changed)
    });
    let deleted = watches.processors.deletions().inspect(move |processor| {
        forget.forget(&processor.name_any());
    });
    futures::stream::select(applied, deleted)
}

/// A unit for every change of `fields` of a node, and every node deletion.
fn node_changes(
    watches: &Watches,
    fields: fn(&DataFlowNode) -> u64,
) -> futures::stream::BoxStream<'static, ()> {
    let relevant = Arc::new(ChangeFilter::default());
    let forget = relevant.clone();
    let applied = watches.nodes.applied().filter_map(move |node| {
        let changed = relevant.fingerprint_changed(&node.name_any(), fields(&node));
        std::future::ready(changed.then_some(()))
    });
    let deleted = watches
        .nodes
        .deletions()
        .map(move |node| forget.forget(&node.name_any()));
    futures::stream::select(applied, deleted).boxed()
}

/// Products naming processor `name`.
fn products_of(products: &Store<DataProduct>, name: &str) -> Vec<ObjectRef<DataProduct>> {
    products
        .state()
        .iter()
        .filter(|p| p.spec.processor.as_deref() == Some(name))
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// The product an entry lists.
fn product_of(entry: &CatalogEntry) -> ObjectRef<DataProduct> {
    let product = &entry.spec.product;
    ObjectRef::new(&product.name).within(&product.namespace)
}

fn unit<T>(
    stream: impl Stream<Item = T> + Send + 'static,
) -> futures::stream::BoxStream<'static, ()> {
    stream.map(|_| ()).boxed()
}

/// Forgets the probe state and the catalog view of deleted nodes and links.
pub async fn forget_deleted(watches: &Watches, ctx: Arc<Context>) {
    let nodes = watches.nodes.deletions().for_each(|node| {
        let ctx = ctx.clone();
        async move {
            ctx.health.forget(Endpoint::Node(&node.name_any()));
            catalog_views::remove_view(&ctx, &node.name_any()).await;
        }
    });
    let links = watches.links.deletions().for_each(|link| {
        ctx.health.forget(Endpoint::Link(&link.name_any()));
        async {}
    });
    futures::future::join(nodes, links).await;
}

/// Every minute, drops the cached probe clients whose CA bundle no node and
/// no link names any more.
pub async fn evict_unused_probe_clients(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let mut in_use: std::collections::HashSet<Option<String>> = ctx
            .nodes
            .state()
            .iter()
            .map(|n| n.spec.endpoint.ca_bundle.clone())
            .collect();
        in_use.extend(
            ctx.links
                .state()
                .iter()
                .filter_map(|l| l.spec.probe.as_ref())
                .map(|p| p.ca_bundle.clone()),
        );
        in_use.insert(None);
        ctx.prober.retain_bundles(&in_use);
    }
}

/// Times a reconcile and counts its result.
async fn instrumented<K, F>(
    controller: &'static str,
    object: Arc<K>,
    ctx: Arc<Context>,
    reconcile: F,
) -> Result<Action>
where
    K: Resource<DynamicType = ()>,
    F: Future<Output = Result<Action>>,
{
    let started = Instant::now();
    let result = reconcile.await;
    let label = match &result {
        Ok(_) => {
            ctx.retries.succeeded(&retry_key(object.as_ref()));
            "success"
        }
        Err(error) => error.category(),
    };
    ctx.metrics
        .observe_reconcile(controller, label, started.elapsed().as_secs_f64());
    result
}

/// Failures retry after a delay that doubles with each consecutive failure of
/// the same object (1 s up to 5 min, plus jitter), so a persistent problem does
/// not cost the API server a request every few seconds for ever; a success
/// starts the object over. The error is logged and counted.
fn error_policy<K: Resource<DynamicType = ()>>(
    object: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let delay = ctx.retries.after_failure(&retry_key(object.as_ref()));
    tracing::warn!(object = %object.meta().name.as_deref().unwrap_or_default(), category = error.category(), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn retry_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}
