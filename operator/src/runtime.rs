//! Wires one operator process: the controllers, the HTTP endpoints and a
//! shutdown signal, sharing one metrics registry and one readiness flag.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::watch;

use crate::controller::{self, Settings};
use crate::metrics::Metrics;
use crate::server;

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

    /// Waits until the operator ends (after a shutdown signal).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }

    /// A sender that stops the operator when it sends `true`.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Starts the controllers and the HTTP endpoints on the current runtime.
pub async fn start(
    client: kube::Client,
    settings: Settings,
    http_addr: SocketAddr,
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
    let task = tokio::spawn(async move {
        let controllers = controller::run(client, settings, metrics, ready, shutdown_rx);
        let (_, served) = tokio::join!(controllers, server);
        served?;
        Ok(())
    });
    Ok(Operator {
        http_addr: bound,
        shutdown,
        task,
    })
}
