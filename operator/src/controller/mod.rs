//! The reconcilers and what they share.
//!
//! Each kind has one reconciler: *fetch → compute (pure) → apply → status*.
//! Nodes and links are watched once each, through shared reflector stores, so a
//! reconciler triggered by a change always reads a cache that already holds it:
//! the node reconciler probes gateways, the link reconciler derives link state
//! from its nodes, and the federation reconciler realises the topology and
//! reports interconnection whenever any node or link changes.

pub mod catalog;
mod catalog_views;
mod context;
mod error;
mod federation;
pub mod ledger;
mod link;
mod node;
mod processor;
mod records;
mod retries;
mod shared;
mod status;
mod wiring;

pub use catalog::FINALIZER;
pub use context::{Caches, Context, Settings};
pub use error::{Error, Result};
pub use retries::Retries;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;

use crate::metrics::{CatalogCollector, Metrics, NetworkCollector};
use wiring::{Runner, Watches};

/// Runs every controller until `shutdown` turns true. `ready` turns true once
/// the caches have synced (for `/readyz`).
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
) {
    let watches = Watches::start(&client);
    let ctx = Arc::new(Context::new(
        client.clone(),
        watches.caches(),
        metrics.clone(),
        settings,
    ));
    let federations = wiring::federation_controller(&watches, client.clone());
    let products = wiring::catalog_controller(&watches, &ctx);
    let processors = wiring::processor_controller(&watches);
    let federation_store = federations.store();
    metrics.register_network(NetworkCollector::new(
        ctx.nodes.clone(),
        ctx.links.clone(),
        federation_store.clone(),
        ctx.health.clone(),
    ));
    metrics.register_catalog(CatalogCollector::new(
        ctx.nodes.clone(),
        ctx.entries.clone(),
        ctx.products.clone(),
        ctx.processors.clone(),
        ctx.members.clone(),
    ));

    let runner = Runner::new(ctx.clone(), shutdown);
    let controllers = futures::future::join5(
        runner.run(
            wiring::node_controller(&watches, &ctx),
            "node",
            node::reconcile,
        ),
        runner.run(wiring::link_controller(&watches), "link", link::reconcile),
        runner.run(federations, "federation", federation::reconcile),
        runner.run(products, "catalog", catalog::reconcile),
        runner.run(processors, "processor", processor::reconcile),
    );
    let ledger = async {
        if let Some(ledger) = ctx.ledger.clone() {
            ledger::run(ledger, ctx.clone()).await;
        }
    };
    let housekeeping = futures::future::join5(
        wiring::forget_deleted(&watches, ctx.clone()),
        wiring::mark_ready_once_synced(ctx.clone(), federation_store, ready),
        catalog_views::run(ctx.clone()),
        wiring::evict_unused_probe_clients(ctx.clone()),
        ledger,
    );
    // The controllers end on shutdown; the watches and housekeeping run until
    // then and are dropped with this future.
    tokio::select! {
        _ = controllers => {}
        _ = futures::future::join(watches.drive(), housekeeping) => {}
    }
    tracing::info!("controllers stopped");
}

/// `base` plus up to 50% random jitter, so retries of many objects spread out.
pub(crate) fn jittered(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
}
