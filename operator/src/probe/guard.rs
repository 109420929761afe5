//! Which addresses flowfed refuses to probe. A node's status reports how its
//! endpoint answered, so an endpoint aimed at a cloud metadata service or at
//! the API server's own Service address would turn the status into a
//! port-scan oracle. Link-local addresses (169.254.0.0/16, fe80::/10, where
//! metadata services live, and AWS's IPv6 fd00:ec2::254) are refused unless
//! the operator is told to allow them; the refused list (the API server's
//! Service address) always is. Names are checked after resolution, so a name
//! that resolves to a refused address is refused too.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

/// Marks a refusal in an error chain, so the prober can tell it from a DNS failure.
pub const REFUSED: &str = "refused by flowfed";

/// The addresses flowfed will not probe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeGuard {
    /// Allow link-local (cloud metadata) addresses.
    pub allow_link_local: bool,
    /// Addresses never probed: the API server's own Service address.
    pub refused: Vec<IpAddr>,
}

const AWS_IPV6_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

impl ProbeGuard {
    /// The guard for a process: link-local allowed or not, and, in a Pod, the
    /// API server's Service address (`KUBERNETES_SERVICE_HOST`).
    pub fn from_env(allow_link_local: bool) -> ProbeGuard {
        let refused = std::env::var("KUBERNETES_SERVICE_HOST")
            .ok()
            .and_then(|host| host.trim_matches(['[', ']']).parse().ok())
            .into_iter()
            .collect();
        ProbeGuard {
            allow_link_local,
            refused,
        }
    }

    /// Why `ip` may not be probed, if it may not.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.refused.contains(&ip) {
            return Err(format!(
                "{ip} is the API server's own Service address: {REFUSED}"
            ));
        }
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local() || v6 == AWS_IPV6_METADATA,
        };
        if link_local && !self.allow_link_local {
            return Err(format!(
                "{ip} is a link-local (cloud metadata) address: {REFUSED} (the chart's probes.allowLinkLocalEndpoints allows it)"
            ));
        }
        Ok(())
    }

    /// Checks the host of `url` when it is an IP literal (names are checked by
    /// [`GuardedResolver`] once resolved).
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let Ok(url) = reqwest::Url::parse(url) else {
            return Ok(()); // the request itself reports an invalid URL
        };
        match url
            .host_str()
            .map(|h| h.trim_matches(['[', ']']).parse::<IpAddr>())
        {
            Some(Ok(ip)) => self.check(ip),
            _ => Ok(()),
        }
    }
}

/// Resolves names as the system does, then drops refused addresses; a name
/// left with none fails with the reason.
pub struct GuardedResolver(pub Arc<ProbeGuard>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<std::net::SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match guard.check(addr.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refusal.get_or_insert(why);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(why)) => Err(format!("{host} resolves to {why}").into()),
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn metadata_and_the_api_servers_address_are_refused_and_the_rest_is_not() {
        let guard = ProbeGuard {
            allow_link_local: false,
            refused: vec![ip("10.96.0.1")],
        };
        for refused in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "10.96.0.1",
            "::ffff:10.96.0.1",
        ] {
            let why = guard.check(ip(refused)).expect_err(refused);
            assert!(why.contains(REFUSED), "{why}");
        }
        for allowed in [
            "127.0.0.1",
            "127.0.10.1",
            "::1",
            "10.96.0.2",
            "192.0.2.10",
            "2001:db8::10",
            "fd00:ec2::253",
            "169.253.255.255",
            "169.255.0.1",
        ] {
            assert!(guard.check(ip(allowed)).is_ok(), "{allowed} refused");
        }
    }

    #[test]
    fn link_local_is_allowed_only_when_told_and_the_refused_list_never() {
        let guard = ProbeGuard {
            allow_link_local: true,
            refused: vec![ip("10.96.0.1")],
        };
        assert!(guard.check(ip("169.254.169.254")).is_ok());
        assert!(guard.check(ip("fd00:ec2::254")).is_ok());
        assert!(guard.check(ip("10.96.0.1")).is_err());
    }

    /// A gateway on a loopback address that answers 200 to anything, and how
    /// many connections it accepted.
    async fn gateway(ip: &str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut request = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        (format!("{port}"), accepted)
    }

    #[tokio::test]
    async fn a_refused_address_is_never_contacted_by_literal_or_by_name() {
        use crate::probe::{FailureKind, ProbeOutcome, ProbeTarget, Prober};
        let (port, accepted) = gateway("127.0.0.1").await;
        let target = |host: &str| ProbeTarget {
            url: format!("http://{host}:{port}/healthz"),
            ca_bundle: None,
            insecure_skip_verify: false,
        };
        let timeout = std::time::Duration::from_secs(2);
        let open = Prober::new(ProbeGuard::default());
        assert!(matches!(
            open.probe(&target("127.0.0.1"), timeout).await,
            ProbeOutcome::Success { .. }
        ));
        let seen = accepted.load(std::sync::atomic::Ordering::SeqCst);
        // The same gateway, standing in for the API server's Service address.
        let guarded = Prober::new(ProbeGuard {
            allow_link_local: false,
            refused: vec![ip("127.0.0.1"), ip("::1")],
        });
        for host in ["127.0.0.1", "localhost"] {
            match guarded.probe(&target(host), timeout).await {
                ProbeOutcome::Failure { kind, message } => {
                    assert_eq!(kind, FailureKind::RefusedEndpoint, "{host}: {message}");
                    assert_eq!(kind.reason(), "EndpointRefused");
                }
                other => panic!("{host}: probed anyway: {other:?}"),
            }
        }
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            seen,
            "a refused address was contacted"
        );
    }

    #[test]
    fn urls_are_checked_by_their_literal_host() {
        let guard = ProbeGuard::default();
        assert!(
            guard
                .check_url("http://169.254.169.254/latest/meta-data")
                .is_err()
        );
        assert!(guard.check_url("https://[fd00:ec2::254]:443/").is_err());
        assert!(guard.check_url("http://127.0.10.1:18080/healthz").is_ok());
        assert!(guard.check_url("https://gw.example:8443/healthz").is_ok());
        assert!(guard.check_url("not a url").is_ok(), "left to the request");
    }
}
