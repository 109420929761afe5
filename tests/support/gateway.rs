//! City gateways for tests: real HTTP servers on loopback addresses
//! (127.0.0.x or [::1]) that answer `/healthz`. Stopping one is a node outage;
//! it can start again on the same address, answer with another status, or
//! answer too late.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Clone, Default)]
struct Behaviour {
    status: Arc<AtomicU16>,
    delay_millis: Arc<AtomicU64>,
}

/// A gateway serving `GET /healthz`.
pub struct Gateway {
    pub addr: SocketAddr,
    behaviour: Behaviour,
    server: Option<JoinHandle<()>>,
}

impl Gateway {
    /// Starts a gateway on `ip` (e.g. `127.0.0.11` or `::1`) and a free port.
    pub async fn start(ip: &str) -> anyhow::Result<Gateway> {
        let ip: IpAddr = ip.parse()?;
        Self::start_at(SocketAddr::new(ip, 0)).await
    }

    /// Starts a gateway on exactly `addr`.
    pub async fn start_at(addr: SocketAddr) -> anyhow::Result<Gateway> {
        let behaviour = Behaviour::default();
        behaviour.status.store(200, Ordering::Relaxed);
        let mut gateway = Gateway {
            addr,
            behaviour,
            server: None,
        };
        gateway.serve().await?;
        Ok(gateway)
    }

    async fn serve(&mut self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        self.addr = listener.local_addr()?;
        // `/{node}/healthz` lets one gateway Pod stand in for every node (the demo).
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/{node}/healthz", get(healthz))
            .with_state(self.behaviour.clone());
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
        Ok(())
    }

    /// The URL a DataFlowNode probes.
    pub fn url(&self) -> String {
        format!("http://{}/healthz", self.addr)
    }

    /// Stops serving: new connections are refused and open ones are dropped.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Serves again on the same address.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        // The aborted task releases the socket on its next poll; retry briefly.
        for _ in 0..50 {
            match self.serve().await {
                Ok(()) => return Ok(()),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        self.serve().await
    }

    /// Answers with `status` from now on.
    pub fn answer_with(&self, status: u16) {
        self.behaviour.status.store(status, Ordering::Relaxed);
    }

    /// Answers after `delay` from now on.
    pub fn delay_answers(&self, delay: Duration) {
        self.behaviour
            .delay_millis
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn healthz(State(behaviour): State<Behaviour>) -> StatusCode {
    let delay = behaviour.delay_millis.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    StatusCode::from_u16(behaviour.status.load(Ordering::Relaxed))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
