//! `flowfed-gateways`: serves `GET /healthz` on many loopback addresses at once,
//! standing in for the city gateways of a network on one machine (the demo and
//! the benchmarks). Runs until interrupted.
//!
//! Usage: flowfed-gateways ADDR...   e.g. 127.0.10.1:18080 127.0.10.2:18080
//!        flowfed-gateways --manifests examples/national/nodes.yaml
//!        (serves every loopback endpoint the manifests name)
//! Each address also answers `/{node}/healthz`, so one gateway Pod
//! (`flowfed-gateways 0.0.0.0:18080`) stands in for every node of the demo.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use flowfed_tests::Gateway;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addrs: Vec<SocketAddr> = match args.as_slice() {
        [flag, files @ ..] if flag == "--manifests" => flowfed_tests::loopback_endpoints(files)?,
        [] => bail!("usage: flowfed-gateways ADDR... | --manifests FILE..."),
        addrs => addrs
            .iter()
            .map(|a| a.parse().with_context(|| format!("bad address {a}")))
            .collect::<Result<_, _>>()?,
    };
    let mut gateways = Vec::new();
    for addr in &addrs {
        gateways.push(
            Gateway::start_at(*addr)
                .await
                .with_context(|| format!("cannot serve {addr}"))?,
        );
    }
    println!(
        "serving /healthz on {} addresses; Ctrl-C stops",
        gateways.len()
    );
    // Ctrl-C on a terminal, SIGTERM from the kubelet.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
