//! Wires one operator process: the controllers, the HTTP endpoints, leader
//! election and a shutdown signal, sharing one metrics registry and one
//! readiness flag.
//!
//! With leader election, every replica serves `/metrics` and `/readyz` (a
//! standby is ready: it can take over), but only the holder of the Lease runs
//! the controllers, so `replicas: 2` never writes twice. Lease requests have a
//! deadline shorter than the Lease's renewal margin, so a leader whose renewal
//! fails learns it before the Lease can pass to another; it then drops its
//! controllers at once (in-flight writes are cancelled, not finished) and goes
//! back to standing by, as does a standby whose election request fails.
//! `/healthz` fails while the election has been failing for two Lease
//! durations with no controller running, so the kubelet restarts such a
//! replica. On shutdown a leader finishes in-flight reconciles, then releases
//! the Lease so the standby takes over at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use crate::controller::{self, Settings};
use crate::metrics::Metrics;
use crate::server;

/// Lease timing: a crashed leader is replaced within `LEASE_SECONDS` plus one
/// renewal attempt of the standby.
pub const LEASE_SECONDS: u64 = 15;
const LEASE_GRACE_SECONDS: u64 = 5;

/// Deadline of every Lease request: well inside the renewal margin
/// (`LEASE_GRACE_SECONDS`), so a failed renewal is known before expiry.
pub const LEASE_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the election may keep failing, with no controller running,
/// before `/healthz` fails.
const UNHEALTHY_AFTER: Duration = Duration::from_secs(2 * LEASE_SECONDS);

/// Which Lease to hold, as whom, through which client.
#[derive(Clone)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease: String,
    pub identity: String,
    /// A client whose requests time out after [`LEASE_REQUEST_TIMEOUT`]
    /// (see [`lease_client`]).
    pub client: kube::Client,
}

/// A client for Lease requests: `config` with every timeout at
/// [`LEASE_REQUEST_TIMEOUT`].
pub fn lease_client(mut config: kube::Config) -> anyhow::Result<kube::Client> {
    config.connect_timeout = Some(LEASE_REQUEST_TIMEOUT);
    config.read_timeout = Some(LEASE_REQUEST_TIMEOUT);
    config.write_timeout = Some(LEASE_REQUEST_TIMEOUT);
    Ok(kube::Client::try_from(config)?)
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
    let healthy = Arc::new(AtomicBool::new(true));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (bound, server) = server::bind(
        http_addr,
        metrics.clone(),
        ready.clone(),
        healthy.clone(),
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
            Some(election) => {
                let replica = Replica {
                    client,
                    settings,
                    metrics,
                    ready,
                    healthy,
                    election,
                };
                replica.lead(shutdown_rx).await;
                Ok(())
            }
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

/// One replica under leader election.
struct Replica {
    client: kube::Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    healthy: Arc<AtomicBool>,
    election: LeaderElection,
}

/// How one term of standing by (and perhaps leading) ended.
enum Term {
    ShutDown,
    /// Another replica holds the Lease now, or our renewal failed: stand by again.
    Lost,
    /// A Lease request failed while standing by.
    ElectionFailed(anyhow::Error),
}

impl Replica {
    /// Stands by, leads while holding the Lease, and stands by again after
    /// losing it or after a failed election request (retried with backoff),
    /// until shutdown.
    async fn lead(&self, mut shutdown: watch::Receiver<bool>) {
        let mut failing_since: Option<Instant> = None;
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.term(&mut shutdown, &mut failing_since).await {
                Term::ShutDown => return,
                Term::Lost => backoff = Duration::from_secs(1),
                Term::ElectionFailed(error) => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    let healthy = since.elapsed() < UNHEALTHY_AFTER;
                    self.healthy.store(healthy, Ordering::Release);
                    tracing::warn!(%error, healthy, retry_in = ?backoff, "leader election failed; standing by again");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stopped(&mut shutdown) => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(LEASE_SECONDS));
                }
            }
        }
    }

    async fn term(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        failing_since: &mut Option<Instant>,
    ) -> Term {
        let election = &self.election;
        let manager = match LeaseManagerBuilder::new(election.client.clone(), &election.lease)
            .with_namespace(&election.namespace)
            .with_identity(&election.identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(LEASE_GRACE_SECONDS)
            .with_field_manager("flowfed.io/leader-election")
            .build()
            .await
        {
            Ok(manager) => manager,
            Err(error) => {
                return Term::ElectionFailed(
                    anyhow::Error::new(error).context("setting up leader election"),
                );
            }
        };
        *failing_since = None;
        self.healthy.store(true, Ordering::Release);
        self.ready.store(true, Ordering::Release);
        self.metrics.leader.set(0);
        tracing::info!(identity = %election.identity, lease = %election.lease, "standing by for the lease");
        if let Some(ended) = stand_by(&manager, shutdown).await {
            return ended;
        }
        tracing::info!(identity = %election.identity, "acquired the lease; starting controllers");
        self.metrics.leader.set(1);
        // The readiness flag now follows the controllers' caches.
        self.ready.store(false, Ordering::Release);
        let (stop_controllers, controllers_stopped) = watch::channel(false);
        let controllers = controller::run(
            self.client.clone(),
            self.settings.clone(),
            self.metrics.clone(),
            self.ready.clone(),
            controllers_stopped,
        );
        tokio::pin!(controllers);
        let held = async {
            loop {
                if !manager.changed().await? {
                    return anyhow::Ok(());
                }
            }
        };
        let term = tokio::select! {
            () = &mut controllers => Term::ShutDown,
            () = stopped(shutdown) => {
                let _ = stop_controllers.send(true);
                controllers.await;
                match manager.release().await {
                    Ok(()) => tracing::info!("released the lease"),
                    Err(error) => tracing::warn!(%error, "could not release the lease; it expires by itself"),
                }
                Term::ShutDown
            }
            outcome = held => {
                // Dropping the controllers cancels every request in flight: no
                // write of ours lands once the Lease may belong to another.
                match outcome {
                    Ok(()) => tracing::warn!("lost the lease to another replica; standing by again"),
                    Err(error) => tracing::warn!(%error, "could not renew the lease; stopped the controllers before it expires, standing by again"),
                }
                Term::Lost
            }
        };
        self.metrics.leader.set(0);
        self.metrics.end_term();
        self.ready
            .store(matches!(term, Term::Lost), Ordering::Release);
        term
    }
}

/// Waits until this replica holds the Lease (`None`), or the term ends first.
async fn stand_by(
    manager: &kube_lease_manager::LeaseManager,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Term> {
    loop {
        tokio::select! {
            leader = manager.changed() => match leader {
                Ok(true) => return None,
                Ok(false) => {}
                Err(error) => return Some(Term::ElectionFailed(error.into())),
            },
            () = stopped(shutdown) => return Some(Term::ShutDown),
        }
    }
}

/// Resolves once `shutdown` turns true (without holding the channel's lock).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
