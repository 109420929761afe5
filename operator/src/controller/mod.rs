//! The reconcilers and what they share.
//!
//! Each kind has one reconciler: *fetch → compute (pure) → apply → status*.
//! Nodes and links are watched once each, through shared reflector stores, so a
//! reconciler triggered by a change always reads a cache that already holds it:
//! the node reconciler probes gateways, the link reconciler derives link state
//! from its nodes, and the federation reconciler realises the topology and
//! reports interconnection whenever any node or link changes.

mod catalog;
mod catalog_views;
mod error;
mod federation;
mod link;
mod node;
mod records;
mod retries;
mod shared;
mod status;

pub use catalog::FINALIZER;
pub use error::{Error, Result};
pub use retries::Retries;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::watch;

use crate::api::{CatalogEntry, DataFlowNode, DataProduct, Federation, InterCityLink};
use crate::catalog::member::Members;
use crate::metrics::{CatalogCollector, Metrics, NetworkCollector};
use crate::probe::{Endpoint, HealthTable, Prober};
use shared::SharedWatch;

/// Tunables of the controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Periodic re-reconcile of every object, on top of the watches.
    pub resync: Duration,
    /// How many nodes are probed at once.
    pub probe_concurrency: u16,
    /// Probe interval for link channel probes (`spec.probe.url`).
    pub link_probe_interval: Duration,
    /// Reporter instance name for events (the pod name in a cluster).
    pub instance: String,
    /// Addresses never probed (see [`crate::probe::guard`]).
    pub probe_guard: crate::probe::ProbeGuard,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(300),
            probe_concurrency: 128,
            link_probe_interval: Duration::from_secs(10),
            instance: std::env::var("POD_NAME").unwrap_or_else(|_| "flowfed".into()),
            probe_guard: crate::probe::ProbeGuard::from_env(false),
        }
    }
}

/// What every reconciler gets.
pub struct Context {
    /// The API client, with the operator's own identity.
    pub client: Client,
    /// Publishes events as reporter `flowfed`.
    pub recorder: Recorder,
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// Probes gateways and link channels.
    pub prober: Prober,
    /// Every DataFlowNode, as watched.
    pub nodes: Store<DataFlowNode>,
    /// Every InterCityLink, as watched.
    pub links: Store<InterCityLink>,
    /// Every CatalogEntry in the hub, as watched.
    pub entries: Store<CatalogEntry>,
    /// Live probe state of nodes and link channels.
    pub health: Arc<HealthTable>,
    /// Clients of member clusters, by node.
    pub members: Arc<Members>,
    /// When each product generation was released.
    pub release_clock: records::ReleaseClock,
    /// Hub entries written by this process, not yet seen by the watch.
    pub written: records::WrittenEntries,
    /// Product statuses written by this process, against stale re-reads.
    pub status_writes: records::StatusWrites,
    /// Hub entry writes in flight, across every product reconcile.
    pub hub_entry_writes: tokio::sync::Semaphore,
    /// Federation links written by this process, not yet seen by the watch.
    pub link_writes: records::LinkWrites,
    /// Consecutive failures per object, for growing retry delays.
    pub retries: Retries,
    /// The tunables.
    pub settings: Settings,
    /// True once the node and link caches have synced; nothing is derived from
    /// the caches before.
    caches_ready: AtomicBool,
    /// True once the entry and product caches have synced too.
    catalog_ready: AtomicBool,
    /// The clock (injectable for tests of time-dependent rules).
    clock: fn() -> Timestamp,
}

impl Context {
    /// The current time, from the context's clock.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Whether the node and link caches hold a complete view yet.
    pub fn caches_ready(&self) -> bool {
        self.caches_ready.load(Ordering::Acquire)
    }

    /// Whether every cache the catalog reads (nodes, entries, products) has synced.
    pub fn catalog_ready(&self) -> bool {
        self.caches_ready() && self.catalog_ready.load(Ordering::Acquire)
    }
}

/// The product an entry lists.
fn product_of(entry: &CatalogEntry) -> kube::runtime::reflector::ObjectRef<DataProduct> {
    let product = &entry.spec.product;
    kube::runtime::reflector::ObjectRef::new(&product.name).within(&product.namespace)
}

/// Runs every controller until `shutdown` turns true. `ready` turns true once
/// the caches have synced (for `/readyz`).
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
) {
    let nodes = SharedWatch::start(Api::all(client.clone()), watcher::Config::default());
    let links = SharedWatch::start(Api::all(client.clone()), watcher::Config::default());
    // Only flowfed's own entries: the orphan sweep must never delete an entry
    // someone else made, and an entry stripped of the label is written back.
    let entries = SharedWatch::start(
        Api::all(client.clone()),
        watcher::Config::default().labels(&format!(
            "{}={}",
            crate::api::MANAGED_BY_LABEL,
            crate::api::MANAGED_BY
        )),
    );
    let health = Arc::new(HealthTable::default());
    let members = Arc::new(Members::default());
    let reporter = Reporter {
        controller: "flowfed".into(),
        instance: Some(settings.instance.clone()),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        metrics: metrics.clone(),
        prober: Prober::new(settings.probe_guard.clone()),
        nodes: nodes.store.clone(),
        links: links.store.clone(),
        entries: entries.store.clone(),
        health: health.clone(),
        members: members.clone(),
        release_clock: records::ReleaseClock::default(),
        written: records::WrittenEntries::default(),
        status_writes: records::StatusWrites::default(),
        hub_entry_writes: tokio::sync::Semaphore::new(catalog::HUB_ENTRY_WRITES_IN_FLIGHT),
        link_writes: records::LinkWrites::default(),
        retries: Retries::default(),
        settings: settings.clone(),
        caches_ready: AtomicBool::new(false),
        catalog_ready: AtomicBool::new(false),
        clock: Timestamp::now,
    });

    let federations = Controller::new(
        Api::<Federation>::all(client.clone()),
        watcher::Config::default(),
    );
    let federation_store = federations.store();
    metrics.register_network(NetworkCollector::new(
        nodes.store.clone(),
        links.store.clone(),
        federation_store.clone(),
        health.clone(),
    ));

    let products = Controller::new(
        Api::<DataProduct>::all(client.clone()),
        watcher::Config::default(),
    );
    let product_store = products.store();
    metrics.register_catalog(CatalogCollector::new(
        nodes.store.clone(),
        entries.store.clone(),
        product_store.clone(),
        members.clone(),
    ));

    let stopped = move || {
        let mut shutdown = shutdown.clone();
        async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        }
    };

    let node_controller = Controller::for_shared_stream(nodes.triggers(), nodes.store.clone())
        .with_config(ControllerConfig::default().concurrency(settings.probe_concurrency))
        .graceful_shutdown_on(stopped())
        .run(
            |node, ctx| {
                instrumented(
                    "node",
                    node.clone(),
                    ctx.clone(),
                    node::reconcile(node, ctx),
                )
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});

    let link_store = links.store.clone();
    let link_relevant = Arc::new(shared::ChangeFilter::default());
    let link_controller = Controller::for_shared_stream(links.triggers(), links.store.clone())
        .watches_shared_stream(links.triggers(), {
            let links = link_store.clone();
            move |link: Arc<InterCityLink>| link::pair_mates(&links, &link)
        })
        // A link reads its nodes' phase and recorded RTT only: the catalog view's
        // status writes (catalogEntries at every sync) must not wake 5 links each.
        .watches_shared_stream(nodes.applied(), {
            let links = link_store.clone();
            let filter = link_relevant.clone();
            move |node: Arc<DataFlowNode>| {
                let status = node.status.as_ref();
                let fingerprint = format!(
                    "{:?}/{:?}",
                    status.map(|s| s.phase),
                    status.and_then(|s| s.rtt_millis)
                );
                filter.wake_if_changed(&node.name_any(), fingerprint, || {
                    link::links_of_node(&links, &node.name_any())
                })
            }
        })
        .watches_shared_stream(nodes.deletions(), {
            let links = link_store.clone();
            let filter = link_relevant.clone();
            move |node: Arc<DataFlowNode>| {
                filter.forget(&node.name_any());
                link::links_of_node(&links, &node.name_any())
            }
        })
        .with_config(ControllerConfig::default().concurrency(64))
        .graceful_shutdown_on(stopped())
        .run(
            |link, ctx| {
                instrumented(
                    "link",
                    link.clone(),
                    ctx.clone(),
                    link::reconcile(link, ctx),
                )
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});

    let all_federations = {
        let store = federation_store.clone();
        move || {
            store
                .state()
                .iter()
                .map(|f| kube::runtime::reflector::ObjectRef::from_obj(f.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let federation_relevant = Arc::new(shared::ChangeFilter::default());
    let federation_controller = federations
        // What the report reads of a node: labels (selectors), province,
        // location and whether it is Ready.
        .watches_shared_stream(nodes.applied(), {
            let all = all_federations.clone();
            let filter = federation_relevant.clone();
            move |node: Arc<DataFlowNode>| {
                let fingerprint = serde_json::to_string(&(
                    node.labels(),
                    &node.spec.province,
                    &node.spec.location,
                    node.status.as_ref().map(|s| s.phase),
                ))
                .unwrap_or_default();
                filter.wake_if_changed(&node.name_any(), fingerprint, &all)
            }
        })
        .watches_shared_stream(nodes.deletions(), {
            let all = all_federations.clone();
            let filter = federation_relevant.clone();
            move |node: Arc<DataFlowNode>| {
                filter.forget(&node.name_any());
                all()
            }
        })
        .watches_shared_stream(links.triggers(), move |_: Arc<InterCityLink>| {
            all_federations()
        })
        // No debounce: under a steady trickle of node and link events a debounced
        // reconcile is postponed for ever (seen at 1,000 nodes). The scheduler
        // already merges triggers that arrive while a reconcile is queued or running.
        .graceful_shutdown_on(stopped())
        .run(
            |federation, ctx| {
                instrumented(
                    "federation",
                    federation.clone(),
                    ctx.clone(),
                    federation::reconcile(federation, ctx),
                )
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});

    let all_products = {
        let store = product_store.clone();
        move || {
            store
                .state()
                .iter()
                .map(|p| kube::runtime::reflector::ObjectRef::from_obj(p.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let catalog_relevant = Arc::new(shared::ChangeFilter::default());
    let product_controller = products
        .watches_shared_stream(entries.applied(), {
            let ctx = ctx.clone();
            move |entry: Arc<CatalogEntry>| {
                // Our own writes coming back need no reconcile; anyone else's do.
                let (ns, name) = (entry.namespace().unwrap_or_default(), entry.name_any());
                if ctx.written.take_echo(&ns, &name, &entry.spec.content_hash) {
                    return None;
                }
                Some(product_of(&entry))
            }
        })
        .watches_shared_stream(entries.deletions(), {
            let ctx = ctx.clone();
            move |entry: Arc<CatalogEntry>| {
                // Forget it before the product is reconciled, so it is written again.
                ctx.written
                    .forget(&entry.namespace().unwrap_or_default(), &entry.name_any());
                Some(product_of(&entry))
            }
        })
        .watches_shared_stream(nodes.applied(), {
            let all = all_products.clone();
            let catalog_relevant = catalog_relevant.clone();
            move |node: Arc<DataFlowNode>| {
                let fingerprint = serde_json::to_string(&(
                    node.labels(),
                    &node.spec.jurisdiction,
                    &node.spec.catalog,
                ))
                .unwrap_or_default();
                catalog_relevant.wake_if_changed(&node.name_any(), fingerprint, &all)
            }
        })
        .watches_shared_stream(nodes.deletions(), move |node: Arc<DataFlowNode>| {
            catalog_relevant.forget(&node.name_any());
            all_products()
        })
        .with_config(ControllerConfig::default().concurrency(16))
        .graceful_shutdown_on(stopped())
        .run(
            |product, ctx| {
                instrumented(
                    "catalog",
                    product.clone(),
                    ctx.clone(),
                    catalog::reconcile(product, ctx),
                )
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(|_| async {});
    let catalog_views = catalog_views::run(ctx.clone(), product_store.clone());

    let forget_deleted_nodes = {
        let ctx = ctx.clone();
        nodes.deletions().for_each(move |node| {
            let ctx = ctx.clone();
            async move {
                ctx.health.forget(Endpoint::Node(&node.name_any()));
                catalog_views::remove_view(&ctx, &node.name_any()).await;
            }
        })
    };
    let forget_deleted_links = {
        let health = health.clone();
        links.deletions().for_each(move |link| {
            health.forget(Endpoint::Link(&link.name_any()));
            async {}
        })
    };

    let readiness = {
        let ctx = ctx.clone();
        let (nodes_store, links_store, entries_store) = (
            nodes.store.clone(),
            links.store.clone(),
            entries.store.clone(),
        );
        async move {
            let network = futures::future::join3(
                nodes_store.wait_until_ready(),
                links_store.wait_until_ready(),
                federation_store.wait_until_ready(),
            )
            .await;
            let catalog = futures::future::join(
                entries_store.wait_until_ready(),
                product_store.wait_until_ready(),
            )
            .await;
            if let ((Ok(()), Ok(()), Ok(())), (Ok(()), Ok(()))) = (network, catalog) {
                ctx.caches_ready.store(true, Ordering::Release);
                ctx.catalog_ready.store(true, Ordering::Release);
                ready.store(true, Ordering::Release);
                tracing::info!("caches synced; controllers acting");
            }
        }
    };

    let controllers = futures::future::join4(
        node_controller,
        link_controller,
        federation_controller,
        product_controller,
    );
    let housekeeping = futures::future::join5(
        forget_deleted_nodes,
        forget_deleted_links,
        readiness,
        catalog_views,
        evict_unused_probe_clients(ctx.clone()),
    );
    let drivers = futures::future::join3(nodes.drive(), links.drive(), entries.drive());
    // The controllers end on shutdown; the watch drivers and housekeeping run
    // until then and are dropped with this future.
    tokio::select! {
        _ = controllers => {}
        _ = async { futures::future::join(drivers, housekeeping).await } => {}
    }
    tracing::info!("controllers stopped");
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

/// Every minute, drops the cached probe clients whose CA bundle no node and
/// no link names any more.
async fn evict_unused_probe_clients(ctx: Arc<Context>) {
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

/// `base` plus up to 50% random jitter, so retries of many objects spread out.
pub(crate) fn jittered(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
}
