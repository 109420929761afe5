//! Command-line interface: `flowfed run` starts the controllers, `flowfed
//! policy explain` decides the cross-border rules over manifests offline,
//! `flowfed crdgen` writes the CRDs the types define.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::controller::Settings;
use crate::controller::ledger::LedgerSettings;
use crate::ledger::checkpoint::LedgerKey;
use crate::probe::ProbeGuard;
use crate::runtime::LeaderElection;
use crate::{api, audit, explain, runtime};

/// flowfed: keeps a national network of data flow nodes interconnected and its
/// catalog visible in every region that may see it.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controllers (kubeconfig from the cluster or KUBECONFIG).
    Run {
        /// Where to serve /metrics, /healthz and /readyz.
        #[arg(long, env = "FLOWFED_HTTP_ADDR", default_value = "0.0.0.0:8080")]
        http_addr: SocketAddr,
        /// Log format.
        #[arg(long, env = "FLOWFED_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
        log_format: LogFormat,
        /// Run the controllers only while holding a Lease, so several replicas are safe.
        #[arg(long, env = "FLOWFED_LEADER_ELECTION")]
        leader_election: bool,
        /// Namespace of the leader Lease (in a pod: its own namespace).
        #[arg(long, env = "POD_NAMESPACE", default_value = "flowfed-system")]
        lease_namespace: String,
        /// Name of the leader Lease.
        #[arg(long, env = "FLOWFED_LEASE_NAME", default_value = "flowfed-leader")]
        lease_name: String,
        /// This replica's identity in the Lease (in a pod: its name).
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// Probe endpoints at link-local (cloud metadata) addresses too; refused by default.
        #[arg(long, env = "FLOWFED_ALLOW_LINK_LOCAL_ENDPOINTS")]
        allow_link_local_endpoints: bool,
        /// Keep the trusted-sharing ledger, signed with the Ed25519 key in this
        /// Secret (key `signing-key`, PKCS#8 PEM) of the Lease's namespace.
        #[arg(long, env = "FLOWFED_LEDGER_KEY_SECRET")]
        ledger_key_secret: Option<String>,
        /// The ledger's origin: the first line of every checkpoint, and its key's name.
        #[arg(
            long,
            env = "FLOWFED_LEDGER_ORIGIN",
            default_value = "flowfed.io/ledger"
        )]
        ledger_origin: String,
        /// How often, at most, each witness is offered the ledger's latest checkpoint.
        #[arg(long, env = "FLOWFED_LEDGER_WITNESS_INTERVAL", default_value = "30s", value_parser = humantime_secs)]
        ledger_witness_interval: Duration,
    },
    /// The trusted-sharing ledger: verify it, prove and trace a product, export it.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// The cross-border rules, offline.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Write the CustomResourceDefinitions as YAML, one file per kind.
    Crdgen {
        /// Directory to write into (created if missing); `-` prints every CRD to stdout.
        #[arg(long, default_value = "crds")]
        out: PathBuf,
    },
}

/// Where `flowfed ledger` reads the ledger.
#[derive(clap::Args, Debug)]
struct LedgerSource {
    /// The hub's kubeconfig (default: KUBECONFIG or in-cluster).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the LedgerBlocks (flowfed's own).
    #[arg(short = 'n', long, global = true, default_value = "flowfed-system")]
    namespace: String,
    /// Read an export written by `flowfed ledger export` instead of the hub.
    #[arg(long, global = true)]
    from: Option<PathBuf>,
    /// The log's verifier key (`origin+id+base64`) to trust; default: the key block 0 names.
    #[arg(long, global = true)]
    key: Option<String>,
    /// A member cluster's kubeconfig, whose witnesses are checked too (repeatable).
    #[arg(long = "member-kubeconfig", global = true)]
    members: Vec<PathBuf>,
}

impl LedgerSource {
    fn source(&self) -> audit::Source {
        match &self.from {
            Some(path) => audit::Source::Export(path.clone()),
            None => audit::Source::Live {
                kubeconfig: self.kubeconfig.clone(),
                namespace: self.namespace.clone(),
                members: self.members.clone(),
            },
        }
    }
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Recompute every block, the tree, every signature and every witness;
    /// exits non-zero naming the first bad record, block or witness.
    Verify {
        #[command(flatten)]
        source: LedgerSource,
    },
    /// Inclusion proofs of a product's records (PRODUCT: namespace/name or uid).
    Prove {
        product: String,
        #[command(flatten)]
        source: LedgerSource,
    },
    /// Where a product was visible over time, and why.
    History {
        product: String,
        #[command(flatten)]
        source: LedgerSource,
    },
    /// The ledger as JSON Lines, for a regulator (records before --since as leaf hashes).
    Export {
        /// Only records from this time on (RFC 3339) in full.
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        source: LedgerSource,
    },
    /// A new Ed25519 signing key (PKCS#8 PEM) for the ledger's Secret.
    Keygen,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Decide every (product, node) of the manifests given, as the controller would.
    Explain {
        /// Manifests: files or directories (YAML streams; nodes, processors, zones, products).
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// The time to decide at (RFC 3339), e.g. to see an expiry ahead of time.
        #[arg(long)]
        now: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// How `policy explain` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Output {
    Table,
    Json,
}

/// How logs are written (the filter comes from RUST_LOG, default `info`).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Plain,
    Json,
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crdgen { out } => crdgen(&out),
            Command::Policy {
                command: PolicyCommand::Explain { files, now, output },
            } => policy_explain(&files, now.as_deref(), output),
            Command::Ledger { command } => ledger(command),
            Command::Run {
                http_addr,
                log_format,
                leader_election,
                lease_namespace,
                lease_name,
                identity,
                allow_link_local_endpoints,
                ledger_key_secret,
                ledger_origin,
                ledger_witness_interval,
            } => {
                init_tracing(log_format);
                let ledger = ledger_key_secret.map(|key_secret| LedgerSettings {
                    namespace: lease_namespace.clone(),
                    key_secret,
                    origin: ledger_origin,
                    block_interval: Duration::from_secs(2),
                    witness_interval: ledger_witness_interval,
                });
                let election = leader_election.then(|| ElectionSpec {
                    namespace: lease_namespace,
                    lease: lease_name,
                    identity: identity.unwrap_or_else(default_identity),
                });
                let settings = Settings {
                    probe_guard: ProbeGuard::from_env(allow_link_local_endpoints),
                    ledger,
                    ..Settings::default()
                };
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?
                    .block_on(run(http_addr, election, settings))
            }
        }
    }
}

/// Runs a `flowfed ledger` command; its error (the first thing wrong) exits non-zero.
fn ledger(command: LedgerCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            LedgerCommand::Verify { source } => {
                audit::verify(&source.source(), source.key.as_deref()).await
            }
            LedgerCommand::Prove { product, source } => {
                audit::prove(&source.source(), source.key.as_deref(), &product).await
            }
            LedgerCommand::History { product, source } => {
                audit::history(&source.source(), source.key.as_deref(), &product).await
            }
            LedgerCommand::Export { since, source } => {
                let key = source.key.as_deref();
                audit::export(&source.source(), key, since.as_deref()).await
            }
            LedgerCommand::Keygen => {
                print!("{}", LedgerKey::generate_pem());
                Ok(())
            }
        }
    })
}

/// A duration such as `10s`, `2m` or `500ms`.
fn humantime_secs(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text} is not a duration such as 10s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{text}: the unit must be ms, s or m")),
    }
}

fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Host name and process id: unique per replica without a pod name.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

/// Which Lease to hold, as whom (the client is made in [`run`]).
struct ElectionSpec {
    namespace: String,
    lease: String,
    identity: String,
}

/// How long a stopping operator waits for in-flight work and the Lease's
/// release, whatever the API server does: inside the chart's default
/// `terminationGracePeriodSeconds` (30).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

async fn run(
    http_addr: SocketAddr,
    election: Option<ElectionSpec>,
    settings: Settings,
) -> anyhow::Result<()> {
    let config = kube::Config::infer().await?;
    let client = kube::Client::try_from(config.clone())?;
    let election = match election {
        None => None,
        Some(spec) => Some(LeaderElection {
            namespace: spec.namespace,
            lease: spec.lease,
            identity: spec.identity,
            client: runtime::lease_client(config)?,
        }),
    };
    let operator = runtime::start(client, settings, http_addr, election).await?;
    let shutdown = operator.shutdown_handle();
    let (signalled, mut signal_seen) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; finishing in-flight work");
        let _ = shutdown.send(true);
        let _ = signalled.send(true);
    });
    let operator = operator.wait();
    tokio::pin!(operator);
    tokio::select! {
        outcome = &mut operator => return outcome,
        _ = signal_seen.wait_for(|seen| *seen) => {}
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, operator).await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "in-flight work did not finish in time; exiting");
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn policy_explain(files: &[PathBuf], now: Option<&str>, output: Output) -> anyhow::Result<()> {
    let now = match now {
        Some(text) => text
            .parse()
            .map_err(|e| anyhow::anyhow!("--now {text:?} is not an RFC 3339 time: {e}"))?,
        None => k8s_openapi::jiff::Timestamp::now(),
    };
    let manifests = explain::Manifests::read(files)?;
    let lines = explain::explain(&manifests, now);
    let text = match output {
        Output::Table => explain::table(&lines),
        Output::Json => serde_json::to_string_pretty(&lines)? + "\n",
    };
    // A reader that stops early (`| head`) is not an error.
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => Ok(written?),
    }
}

/// Renders every CRD as YAML, keyed by its file name.
pub fn render_crds() -> anyhow::Result<Vec<(&'static str, String)>> {
    api::crds()
        .into_iter()
        .map(|(file, crd)| Ok((file, serde_yaml::to_string(&crd)?)))
        .collect()
}

fn crdgen(out: &std::path::Path) -> anyhow::Result<()> {
    let rendered = render_crds()?;
    if out.as_os_str() == "-" {
        for (_, yaml) in rendered {
            print!("---\n{yaml}");
        }
        return Ok(());
    }
    std::fs::create_dir_all(out)?;
    for (file, yaml) in rendered {
        std::fs::write(out.join(file), yaml)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRDs in crds/ are generated; this fails when they drift from the types.
    #[test]
    fn checked_in_crds_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
        for (file, yaml) in render_crds().unwrap() {
            let on_disk = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            assert!(
                on_disk == yaml,
                "crds/{file} is out of date: run `make crds` and commit the result"
            );
        }
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(
            files,
            render_crds().unwrap().len(),
            "crds/ holds files no type generates"
        );
    }
}
