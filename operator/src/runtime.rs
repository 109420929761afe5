//! Wires one operator process: the controllers, the HTTP endpoints, leader
//! election and a shutdown signal, sharing one metrics registry and one
//! readiness flag.
//!
//! With leader election, every replica serves `/metrics` and `/readyz` (a
//! standby is ready: it can take over), but only the holder of the Lease runs
//! the controllers, so `replicas: 2` never writes twice. A leader that loses
//! its Lease stops its controllers and exits with an error, to be restarted as
//! a standby; on shutdown it finishes in-flight reconciles, then releases the
//! Lease so the standby takes over at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use crate::controller::{self, Settings};
use crate::metrics::Metrics;
use crate::server;

/// Lease timing: a crashed leader is replaced within `LEASE_SECONDS` plus one
/// renewal attempt of the standby.
pub const LEASE_SECONDS: u64 = 15;
const LEASE_GRACE_SECONDS: u64 = 5;

/// Which Lease to hold, as whom.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease: String,
    pub identity: String,
}

/// A running operator, as started by [`start`].
pub struct Operator {
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Operator {
    /// Asks every controller to finish and waits until they have.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await?
    }

    /// Waits until the operator ends (after a shutdown signal, or a lost Lease).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }

    /// A sender that stops the operator when it sends `true`.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Starts the controllers (at once, or once elected) and the HTTP endpoints on
/// the current runtime.
pub async fn start(
    client: kube::Client,
    settings: Settings,
    http_addr: SocketAddr,
    election: Option<LeaderElection>,
) -> anyhow::Result<Operator> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (bound, server) = server::bind(
        http_addr,
        metrics.clone(),
        ready.clone(),
        shutdown_rx.clone(),
    )
    .await?;
    tracing::info!(%bound, "serving /metrics, /healthz, /readyz");
    let server = tokio::spawn(server);
    let task = tokio::spawn(async move {
        let controllers = match election {
            None => {
                controller::run(client, settings, metrics, ready, shutdown_rx).await;
                Ok(())
            }
            Some(election) => lead(client, settings, metrics, ready, shutdown_rx, election).await,
        };
        server.await??;
        controllers
    });
    Ok(Operator {
        http_addr: bound,
        shutdown,
        task,
    })
}

/// Waits for the Lease, runs the controllers while holding it, releases it on
/// shutdown.
async fn lead(
    client: kube::Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
    election: LeaderElection,
) -> anyhow::Result<()> {
    let manager = LeaseManagerBuilder::new(client.clone(), &election.lease)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(LEASE_GRACE_SECONDS)
        .with_field_manager("flowfed.io/leader-election")
        .build()
        .await
        .context("setting up leader election")?;
    ready.store(true, Ordering::Release);
    metrics.leader.set(0);
    tracing::info!(identity = %election.identity, lease = %election.lease, "standing by for the lease");
    loop {
        tokio::select! {
            leader = manager.changed() => if leader.context("leader election")? { break },
            () = stopped(&mut shutdown) => return Ok(()),
        }
    }
    tracing::info!(identity = %election.identity, "acquired the lease; starting controllers");
    metrics.leader.set(1);
    // The readiness flag now follows the controllers' caches.
    ready.store(false, Ordering::Release);
    let (stop_controllers, controllers_stopped) = watch::channel(false);
    let controllers = controller::run(
        client,
        settings,
        metrics.clone(),
        ready.clone(),
        controllers_stopped,
    );
    tokio::pin!(controllers);
    let outcome = tokio::select! {
        () = &mut controllers => Ok(()),
        () = stopped(&mut shutdown) => {
            let _ = stop_controllers.send(true);
            controllers.await;
            Ok(())
        }
        lost = async { loop { if !manager.changed().await? { return anyhow::Ok(()) } } } => {
            let _ = stop_controllers.send(true);
            controllers.await;
            metrics.leader.set(0);
            lost.and(Err(anyhow::anyhow!("lost the lease to another replica; exiting to stand by again")))
        }
    };
    if let Err(error) = manager.release().await {
        tracing::warn!(%error, "could not release the lease; it expires by itself");
    } else {
        tracing::info!("released the lease");
    }
    metrics.leader.set(0);
    ready.store(false, Ordering::Release);
    outcome
}

/// Resolves once `shutdown` turns true (without holding the channel's lock).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
