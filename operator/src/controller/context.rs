//! What every reconciler gets: the client, the caches, probe and member state,
//! the write records, and the tunables.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;

use super::ledger::{Ledger, LedgerSettings};
use super::records::{LinkWrites, ReleaseClock, StatusWrites, WrittenEntries};
use super::{Retries, catalog};
use crate::api::{
    CatalogEntry, DataFlowNode, DataProcessor, DataProduct, FreeTradeZone, InterCityLink,
};
use crate::catalog::member::Members;
use crate::metrics::Metrics;
use crate::probe::{HealthTable, ProbeGuard, Prober};

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
    pub probe_guard: ProbeGuard,
    /// The trusted-sharing ledger, when a signing key is configured.
    pub ledger: Option<LedgerSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(300),
            probe_concurrency: 128,
            link_probe_interval: Duration::from_secs(10),
            instance: std::env::var("POD_NAME").unwrap_or_else(|_| "flowfed".into()),
            probe_guard: ProbeGuard::from_env(false),
            ledger: None,
        }
    }
}

/// The shared caches the reconcilers read.
pub struct Caches {
    pub nodes: Store<DataFlowNode>,
    pub links: Store<InterCityLink>,
    pub entries: Store<CatalogEntry>,
    pub products: Store<DataProduct>,
    pub processors: Store<DataProcessor>,
    pub zones: Store<FreeTradeZone>,
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
    /// Every DataProduct, as watched.
    pub products: Store<DataProduct>,
    /// Every DataProcessor, as watched.
    pub processors: Store<DataProcessor>,
    /// Every FreeTradeZone, as watched.
    pub zones: Store<FreeTradeZone>,
    /// Live probe state of nodes and link channels.
    pub health: Arc<HealthTable>,
    /// Clients of member clusters, by node.
    pub members: Arc<Members>,
    /// When each product generation was released.
    pub release_clock: ReleaseClock,
    /// Hub entries written by this process, not yet seen by the watch.
    pub written: WrittenEntries,
    /// Product statuses written by this process, against stale re-reads.
    pub status_writes: StatusWrites,
    /// Hub entry writes in flight, across every product reconcile.
    pub hub_entry_writes: tokio::sync::Semaphore,
    /// Federation links written by this process, not yet seen by the watch.
    pub link_writes: LinkWrites,
    /// Consecutive failures per object, for growing retry delays.
    pub retries: Retries,
    /// The ledger, when configured.
    pub ledger: Option<Arc<Ledger>>,
    /// The tunables.
    pub settings: Settings,
    /// True once the node and link caches have synced; nothing is derived from
    /// the caches before.
    caches_ready: AtomicBool,
    /// True once the entry and product caches have synced too.
    catalog_ready: AtomicBool,
}

impl Context {
    pub fn new(client: Client, caches: Caches, metrics: Arc<Metrics>, settings: Settings) -> Self {
        let ledger = settings
            .ledger
            .clone()
            .map(|l| Arc::new(Ledger::new(l, metrics.ledger.clone())));
        let reporter = Reporter {
            controller: "flowfed".into(),
            instance: Some(settings.instance.clone()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            prober: Prober::new(settings.probe_guard.clone()),
            nodes: caches.nodes,
            links: caches.links,
            entries: caches.entries,
            products: caches.products,
            processors: caches.processors,
            zones: caches.zones,
            health: Arc::default(),
            members: Arc::default(),
            release_clock: ReleaseClock::default(),
            written: WrittenEntries::default(),
            status_writes: StatusWrites::default(),
            hub_entry_writes: tokio::sync::Semaphore::new(catalog::HUB_ENTRY_WRITES_IN_FLIGHT),
            link_writes: LinkWrites::default(),
            retries: Retries::default(),
            ledger,
            settings,
            caches_ready: AtomicBool::new(false),
            catalog_ready: AtomicBool::new(false),
        }
    }

    /// The current time. The reconcilers' decisions take it as a value
    /// ([`crate::api::conditions::Stamp`]), so tests choose their own.
    pub fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    /// Whether the node and link caches hold a complete view yet.
    pub fn caches_ready(&self) -> bool {
        self.caches_ready.load(Ordering::Acquire)
    }

    /// Whether every cache the catalog reads (nodes, entries, products) has synced.
    pub fn catalog_ready(&self) -> bool {
        self.caches_ready() && self.catalog_ready.load(Ordering::Acquire)
    }

    /// Every cache has synced: the controllers may act.
    pub fn mark_ready(&self) {
        self.caches_ready.store(true, Ordering::Release);
        self.catalog_ready.store(true, Ordering::Release);
    }
}
