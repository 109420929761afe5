//! Endpoint probing: one HTTP GET with a deadline, timed, and every failure
//! sorted into a reason a person can act on (DNS, refused connection, TLS,
//! HTTP status, timeout).
//!
//! Clients are cached per TLS configuration (CA bundle, skip-verify), so probing
//! a thousand gateways reuses a handful of connection pools. Addresses the
//! guard refuses (cloud metadata, the API server's own) are never contacted.

pub mod guard;
mod health;
mod health_table;
pub mod node_status;

pub use guard::ProbeGuard;
pub use health::{Health, Observation, rtt_moved, slow_threshold_millis};
pub use health_table::{Endpoint, HealthTable};

use guard::GuardedResolver;

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProbeTarget {
    pub url: String,
    /// PEM CA certificates replacing the system roots.
    pub ca_bundle: Option<String>,
    pub insecure_skip_verify: bool,
}

/// Why a probe failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The endpoint or its CA bundle cannot be used at all.
    InvalidEndpoint,
    /// The endpoint is an address flowfed does not probe (see [`guard`]).
    RefusedEndpoint,
    DnsFailure,
    ConnectionRefused,
    TlsError,
    /// The gateway answered with a 4xx or 5xx status.
    HttpError,
    Timeout,
    /// Any other transport failure (reset, unreachable network...).
    ConnectionFailed,
}

impl FailureKind {
    /// The CamelCase reason used in conditions, events and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            FailureKind::InvalidEndpoint => "InvalidEndpoint",
            FailureKind::RefusedEndpoint => "EndpointRefused",
            FailureKind::DnsFailure => "DNSFailure",
            FailureKind::ConnectionRefused => "ConnectionRefused",
            FailureKind::TlsError => "TLSError",
            FailureKind::HttpError => "HTTPError",
            FailureKind::Timeout => "Timeout",
            FailureKind::ConnectionFailed => "ConnectionFailed",
        }
    }
}

/// The result of one probe.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeOutcome {
    Success { rtt: Duration, status: u16 },
    Failure { kind: FailureKind, message: String },
}

/// Probes endpoints, caching one HTTP client per TLS configuration, and
/// never an address its [`ProbeGuard`] refuses.
pub struct Prober {
    clients: Mutex<HashMap<(Option<String>, bool), reqwest::Client>>,
    guard: Arc<ProbeGuard>,
}

impl Prober {
    pub fn new(guard: ProbeGuard) -> Self {
        // reqwest is built without a default TLS provider; use ring, as kube does.
        // An error only means a provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Prober {
            clients: Mutex::default(),
            guard: Arc::new(guard),
        }
    }
}

impl Default for Prober {
    fn default() -> Self {
        Self::new(ProbeGuard::default())
    }
}

impl Prober {
    /// One GET of `target.url`, bounded by `timeout`. 2xx and 3xx count as success
    /// (redirects are not followed: the gateway answered).
    pub async fn probe(&self, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
        if let Err(message) = self.guard.check_url(&target.url) {
            return ProbeOutcome::Failure {
                kind: FailureKind::RefusedEndpoint,
                message,
            };
        }
        let client = match self.client(target) {
            Ok(client) => client,
            Err(message) => {
                return ProbeOutcome::Failure {
                    kind: FailureKind::InvalidEndpoint,
                    message,
                };
            }
        };
        let started = Instant::now();
        let result = client.get(&target.url).timeout(timeout).send().await;
        let rtt = started.elapsed();
        match result {
            Ok(response)
                if response.status().is_success() || response.status().is_redirection() =>
            {
                ProbeOutcome::Success {
                    rtt,
                    status: response.status().as_u16(),
                }
            }
            Ok(response) => ProbeOutcome::Failure {
                kind: FailureKind::HttpError,
                message: format!("gateway answered HTTP {}", response.status()),
            },
            Err(error) => classify(&error, timeout),
        }
    }

    /// Drops the cached clients whose CA bundle `in_use` no longer names (a
    /// node or link changed or removed its bundle), so the cache holds one
    /// client per bundle in use, not one per bundle ever seen.
    pub fn retain_bundles(&self, in_use: &std::collections::HashSet<Option<String>>) {
        self.clients
            .lock()
            .expect("prober lock")
            .retain(|(bundle, _), _| in_use.contains(bundle));
    }

    /// How many HTTP clients are cached.
    pub fn cached_clients(&self) -> usize {
        self.clients.lock().expect("prober lock").len()
    }

    fn client(&self, target: &ProbeTarget) -> Result<reqwest::Client, String> {
        let key = (target.ca_bundle.clone(), target.insecure_skip_verify);
        let mut clients = self.clients.lock().expect("prober lock");
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(self.guard.clone())))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("flowfed-probe/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &target.ca_bundle {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| format!("caBundle is not PEM certificates: {e}"))?;
            if certificates.is_empty() {
                return Err("caBundle holds no PEM certificate".into());
            }
            builder = builder.tls_certs_only(certificates);
        }
        if target.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// Sorts a transport error into a reason, reading the whole source chain.
fn classify(error: &reqwest::Error, timeout: Duration) -> ProbeOutcome {
    let mut chain = error.to_string();
    let mut source = error.source();
    let mut io_kind = None;
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        source = cause.source();
    }
    let lower = chain.to_lowercase();
    let kind = if lower.contains(guard::REFUSED) {
        FailureKind::RefusedEndpoint
    } else if error.is_timeout() || lower.contains("timed out") {
        FailureKind::Timeout
    } else if error.is_builder() {
        FailureKind::InvalidEndpoint
    } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
        FailureKind::DnsFailure
    } else if io_kind == Some(std::io::ErrorKind::ConnectionRefused)
        || lower.contains("connection refused")
    {
        FailureKind::ConnectionRefused
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        FailureKind::TlsError
    } else {
        FailureKind::ConnectionFailed
    };
    let message = match kind {
        FailureKind::Timeout => format!("no answer within {} ms", timeout.as_millis()),
        _ => chain,
    };
    ProbeOutcome::Failure { kind, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(bundle: Option<&str>) -> ProbeTarget {
        ProbeTarget {
            url: "http://127.0.0.1:9/healthz".into(),
            ca_bundle: bundle.map(str::to_owned),
            insecure_skip_verify: false,
        }
    }

    #[tokio::test]
    async fn clients_of_bundles_no_longer_in_use_are_evicted() {
        let prober = Prober::default();
        let timeout = Duration::from_millis(200);
        // Two bundles that are not PEM: refused as invalid, never cached.
        for bundle in [Some("not pem"), Some("also not pem")] {
            let outcome = prober.probe(&target(bundle), timeout).await;
            assert!(
                matches!(
                    outcome,
                    ProbeOutcome::Failure {
                        kind: FailureKind::InvalidEndpoint,
                        ..
                    }
                ),
                "{outcome:?}"
            );
        }
        prober.probe(&target(None), timeout).await;
        prober
            .probe(
                &ProbeTarget {
                    insecure_skip_verify: true,
                    ..target(None)
                },
                timeout,
            )
            .await;
        assert_eq!(prober.cached_clients(), 2);
        prober.retain_bundles(&std::collections::HashSet::from([Some("gone".to_owned())]));
        assert_eq!(
            prober.cached_clients(),
            0,
            "no node uses the system roots any more"
        );
    }
}
