//! Test support: real Kubernetes control planes for integration tests.
//!
//! A [`Plane`] is an etcd + kube-apiserver + kube-controller-manager started by
//! `tests/controlplane/plane.sh` (the same script `make up` uses). The hub is
//! shared by every test in a test binary, and reused from `FLOWFED_KUBECONFIG`
//! when that is set; tests isolate themselves by namespace or by unique names.
//!
//! Planes are stopped when the test binary exits, also on panic or abort: each
//! plane has a reaper process blocked reading a pipe whose only writer is the
//! test process, so the kernel closes it however the process ends, and the
//! reaper then runs `plane.sh down`.
//!
//! Every operator a test runs holds the chart's identity: [`Plane::operator_client`]
//! and [`Plane::operator_kubeconfig`] install the chart's RBAC (once per plane)
//! and hand out its ServiceAccount's token, so a verb missing from the chart
//! fails a test. [`Plane::start_with_node`] adds a real node that runs Pods.

mod catalog;
mod gateway;
mod image;
mod status;

pub use catalog::{CATALOG_CONVERGE, Catalog};
pub use gateway::Gateway;
pub use image::{Image, build_operator_image, gateways_image, kubectl_image, operator_image};
pub use status::{WithConditions, condition, has_condition, wait_for_condition};

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Where the tests install the chart, and so where member kubeconfig Secrets
/// go: the chart lets the operator read Secrets in its release namespace only.
pub const OPERATOR_NAMESPACE: &str = "flowfed-system";
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use serde::de::DeserializeOwned;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

fn plane_script() -> PathBuf {
    repo_root().join("tests/controlplane/plane.sh")
}

/// Paths of the control-plane binaries (kubectl, helm, ...) from `build.sh --print`.
pub fn tool(name: &str) -> anyhow::Result<PathBuf> {
    let out = Command::new(repo_root().join("tests/controlplane/build.sh"))
        .arg("--print")
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    let key = name.to_uppercase().replace('-', "_");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .map(PathBuf::from)
        .with_context(|| format!("build.sh does not know tool {name}"))
}

/// A running control plane.
pub struct Plane {
    /// The plane's name as `plane.sh` knows it (unique per test process).
    pub name: String,
    /// Admin kubeconfig, certificates embedded.
    pub kubeconfig: PathBuf,
    /// Closing this pipe (explicitly, or by the process ending) makes the reaper
    /// stop the plane. `None` for a plane reused from FLOWFED_KUBECONFIG.
    reaper: Mutex<Option<(ChildStdin, Child)>>,
    /// The chart ServiceAccount's kubeconfig, once the chart is installed.
    operator_kubeconfig: Mutex<Option<PathBuf>>,
}

impl Plane {
    /// Starts a new, independent control plane. `label` names it in logs.
    pub fn start(label: &str) -> anyhow::Result<Plane> {
        Plane::start_as(label, false)
    }

    /// Starts a control plane with a node that runs Pods (containerd, kubelet,
    /// kube-scheduler, kube-proxy). One per machine: tests that use it share it.
    pub fn start_with_node(label: &str) -> anyhow::Result<Plane> {
        Plane::start_as(label, true)
    }

    fn start_as(label: &str, node: bool) -> anyhow::Result<Plane> {
        let name = format!("t{}-{label}", std::process::id());
        let out = Command::new(plane_script())
            .args(["up", &name])
            .env("FLOWFED_NODE", if node { "1" } else { "0" })
            .stderr(Stdio::inherit())
            .output()
            .context("running plane.sh up")?;
        if !out.status.success() {
            bail!("plane.sh up {name} failed (see the log path above)");
        }
        let kubeconfig = PathBuf::from(String::from_utf8(out.stdout)?.trim());
        let mut reaper = Command::new("bash")
            .args(["-c", r#"read -r _; exec "$0" down "$1""#])
            .arg(plane_script())
            .arg(&name)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so a signal to the test's group (Ctrl-C, a CI
            // runner cleaning up) cannot kill the reaper before it has run.
            .process_group(0)
            .spawn()
            .context("spawning the plane reaper")?;
        let stdin = reaper.stdin.take().expect("piped stdin");
        Ok(Plane {
            name,
            kubeconfig,
            reaper: Mutex::new(Some((stdin, reaper))),
            operator_kubeconfig: Mutex::new(None),
        })
    }

    /// The hub plane shared by every test in this binary.
    pub fn hub() -> &'static Plane {
        static HUB: OnceLock<Plane> = OnceLock::new();
        HUB.get_or_init(|| match std::env::var_os("FLOWFED_KUBECONFIG") {
            Some(path) => Plane {
                name: "external".into(),
                kubeconfig: path.into(),
                reaper: Mutex::new(None),
                operator_kubeconfig: Mutex::new(None),
            },
            None => Plane::start("hub").expect("starting the hub control plane"),
        })
    }

    /// A client with the admin identity.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let config = self.kube_config().await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// The admin client configuration.
    pub async fn kube_config(&self) -> anyhow::Result<kube::Config> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
    }

    /// The admin kubeconfig as text (to store in a Secret, for member clusters).
    pub fn kubeconfig_yaml(&self) -> anyhow::Result<String> {
        Ok(std::fs::read_to_string(&self.kubeconfig)?)
    }

    /// Stops one component (etcd, kube-apiserver, kube-controller-manager), keeping
    /// its data and ports, for fault tests.
    pub fn stop_component(&self, component: &str) -> anyhow::Result<()> {
        self.plane_command(&["stop", component])
    }

    /// Starts a component stopped by [`Plane::stop_component`] on the same ports.
    pub fn start_component(&self, component: &str) -> anyhow::Result<()> {
        self.plane_command(&["start", component])
    }

    /// The process id of a running component, from the pid file `plane.sh`
    /// keeps next to the kubeconfig.
    pub fn component_pid(&self, component: &str) -> Option<u32> {
        let file = self.kubeconfig.with_file_name(format!("{component}.pid"));
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// `helm install flowfed charts/flowfed` into `namespace` (with `extra`
    /// arguments), then waits until every CRD is Established.
    pub fn helm_install(&self, namespace: &str, extra: &[&str]) -> anyhow::Result<()> {
        let helm = Command::new(tool("helm")?)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["install", "flowfed", "charts/flowfed"])
            .args(["--namespace", namespace, "--create-namespace"])
            .args(extra)
            .current_dir(repo_root())
            .output()?;
        if !helm.status.success() {
            bail!("helm install: {}", String::from_utf8_lossy(&helm.stderr));
        }
        let wait = self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ])?;
        if !wait.status.success() {
            bail!(
                "CRDs not Established: {}",
                String::from_utf8_lossy(&wait.stderr)
            );
        }
        Ok(())
    }

    /// A kubeconfig file holding the chart ServiceAccount's token: the identity
    /// every operator in the tests runs as. Installs the chart into
    /// [`OPERATOR_NAMESPACE`] first (with no replicas: the test runs the
    /// operator) unless a release is already there.
    pub fn operator_kubeconfig(&self) -> anyhow::Result<PathBuf> {
        let mut cached = self
            .operator_kubeconfig
            .lock()
            .expect("operator kubeconfig lock");
        if let Some(path) = cached.as_ref() {
            return Ok(path.clone());
        }
        let installed =
            self.kubectl(&["get", "serviceaccount", "flowfed", "-n", OPERATOR_NAMESPACE])?;
        if !installed.status.success() {
            self.helm_install(OPERATOR_NAMESPACE, &["--set", "replicaCount=0"])?;
        }
        let path = self.kubeconfig.with_file_name("operator.kubeconfig");
        std::fs::write(
            &path,
            self.service_account_kubeconfig(OPERATOR_NAMESPACE, "flowfed")?,
        )?;
        *cached = Some(path.clone());
        Ok(path)
    }

    /// A client with the chart ServiceAccount's identity (see [`Plane::operator_kubeconfig`]).
    pub async fn operator_client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = Kubeconfig::read_from(self.operator_kubeconfig()?)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Loads an OCI image archive into the node's containerd (planes with a node).
    pub fn import_image(&self, archive: &Path) -> anyhow::Result<()> {
        let archive = archive.to_str().context("archive path is UTF-8")?;
        self.plane_command(&["import", archive])
    }

    fn plane_command(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = Command::new(plane_script())
            .arg(args[0])
            .arg(&self.name)
            .args(&args[1..])
            .status()?;
        if !status.success() {
            bail!("plane.sh {} {} failed", args[0], self.name);
        }
        Ok(())
    }

    /// A kubectl command (the cached build) pointed at this plane.
    pub fn kubectl_command(&self) -> Command {
        let mut command = Command::new(tool("kubectl").expect("kubectl is built"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// Runs the cached kubectl against this plane.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Ok(Command::new(tool("kubectl")?)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()?)
    }

    /// Runs the cached kubectl against this plane with `input` on its stdin.
    pub fn kubectl_stdin(
        &self,
        args: &[&str],
        input: &str,
    ) -> anyhow::Result<std::process::Output> {
        use std::io::Write as _;
        let mut child = self
            .kubectl_command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())?;
        Ok(child.wait_with_output()?)
    }

    /// A kubeconfig (YAML text) that authenticates as ServiceAccount
    /// `namespace/name` with a token from the TokenRequest API: how the tests
    /// and the benchmark run the operator with the chart's identity.
    pub fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        let token = self.kubectl(&["create", "token", name, "-n", namespace, "--duration=6h"])?;
        if !token.status.success() {
            bail!(
                "kubectl create token {name}: {}",
                String::from_utf8_lossy(&token.stderr)
            );
        }
        let token = String::from_utf8(token.stdout)?.trim().to_owned();
        let admin: serde_json::Value = serde_yaml::from_str(&self.kubeconfig_yaml()?)?;
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": self.name, "cluster": admin["clusters"][0]["cluster"]}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": name}}],
            "current-context": self.name,
        });
        Ok(serde_json::to_string(&kubeconfig)?)
    }

    /// Stops the plane now (it is also stopped when the test process exits).
    pub fn stop(&self) {
        if let Some((stdin, mut reaper)) = self.reaper.lock().expect("reaper lock").take() {
            drop(stdin);
            let _ = reaper.wait();
        }
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Installs (server-side apply) every flowfed CRD and waits until each is Established.
pub async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("flowfed-tests").force();
    for (_, crd) in flowfed::api::crds() {
        let name = crd.metadata.name.clone().expect("CRDs are named");
        api.patch(&name, &params, &Patch::Apply(&crd)).await?;
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} not Established in 30s"))??;
    }
    Ok(())
}

/// A name unique within this test process, for namespaces and cluster-scoped objects.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `api.get(name)` until `check` returns true, or fails after `timeout`
/// with the last object (or error) seen. Errors are retried: the resource may
/// not be served yet (a CRD being installed, an API server restarting).
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    check: impl Fn(&K) -> bool,
) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match api.get_opt(name).await {
            Ok(Some(object)) if check(&object) => return Ok(object),
            Ok(Some(object)) => format!("{object:#?}"),
            Ok(None) => "not found".into(),
            Err(error) => format!("error: {error}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("{name} did not reach the expected state in {timeout:?}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the operator in this process against `plane` with the chart's
/// identity, serving HTTP on a free loopback port, with settings tuned for
/// tests (fast link probes, short resync).
pub async fn start_operator(plane: &Plane) -> anyhow::Result<flowfed::runtime::Operator> {
    let client = plane.operator_client().await?;
    let settings = flowfed::controller::Settings {
        resync: Duration::from_secs(30),
        link_probe_interval: Duration::from_secs(2),
        instance: format!("test-{}", std::process::id()),
        ..Default::default()
    };
    flowfed::runtime::start(client, settings, "127.0.0.1:0".parse()?, None).await
}

/// [`start_operator`] with the trusted-sharing ledger on, signed with the
/// key the chart made in [`OPERATOR_NAMESPACE`]. Only one such operator per
/// control plane: the ledger has a single writer.
pub async fn start_operator_with_ledger(
    plane: &Plane,
) -> anyhow::Result<flowfed::runtime::Operator> {
    let client = plane.operator_client().await?;
    let settings = flowfed::controller::Settings {
        resync: Duration::from_secs(30),
        link_probe_interval: Duration::from_secs(2),
        instance: format!("test-{}", std::process::id()),
        ledger: Some(flowfed::controller::ledger::LedgerSettings {
            namespace: OPERATOR_NAMESPACE.into(),
            key_secret: "flowfed-ledger-key".into(),
            origin: "flowfed.io/ledger".into(),
            block_interval: Duration::from_secs(1),
            witness_interval: Duration::from_secs(1),
        }),
        ..Default::default()
    };
    flowfed::runtime::start(client, settings, "127.0.0.1:0".parse()?, None).await
}

/// Loopback endpoint addresses named by `spec.endpoint.url` in YAML manifests.
pub fn loopback_endpoints(files: &[impl AsRef<Path>]) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    let mut addrs = Vec::new();
    for file in files {
        let file = file.as_ref();
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = <serde_json::Value as serde::Deserialize>::deserialize(document)?;
            let Some(url) = value.pointer("/spec/endpoint/url").and_then(|u| u.as_str()) else {
                continue;
            };
            let url: reqwest::Url = url.parse()?;
            let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
            let Ok(ip) = host.parse::<std::net::IpAddr>() else {
                continue;
            };
            if let Some(port) = url.port_or_known_default().filter(|_| ip.is_loopback()) {
                addrs.push(std::net::SocketAddr::new(ip, port));
            }
        }
    }
    Ok(addrs)
}

/// The `flowfed` binary of this workspace, built on first use.
pub fn flowfed_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-q", "-p", "flowfed", "--bin", "flowfed"])
                .current_dir(repo_root())
                .status()
                .expect("running cargo build");
            assert!(status.success(), "cargo build -p flowfed failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"));
            target.join("debug/flowfed")
        })
        .clone()
}

/// Host state a node plane `name` could leave behind: processes and mounts
/// under its state directory, its bridge, veth pairs, kube-proxy's, the
/// kubelet's and CNI's iptables chains, and its cgroups. Call it while the
/// plane's metadata (`.flowfed/NAME/state`) still exists, or after: the state
/// directory's name is `flowfed-NAME.*` either way.
pub fn node_leftovers(name: &str) -> Vec<String> {
    let state = format!("/flowfed-{name}.");
    let mut left = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&state) {
                left.push(format!(
                    "process {}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    left.extend(
        mounts
            .lines()
            .filter(|m| m.contains(&state))
            .map(|m| format!("mount {m}")),
    );
    if let Ok(links) = Command::new("ip").args(["-o", "link", "show"]).output() {
        for line in String::from_utf8_lossy(&links.stdout).lines() {
            if line.contains("flowfed0") || line.contains("veth") {
                left.push(format!("interface {line}"));
            }
        }
    }
    for command in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle"] {
            let Ok(rules) = Command::new(command).args(["-t", table, "-S"]).output() else {
                continue;
            };
            for rule in String::from_utf8_lossy(&rules.stdout).lines() {
                if rule.contains("KUBE-") || rule.contains("CNI-") {
                    left.push(format!("{command} {table}: {rule}"));
                }
            }
        }
    }
    let cgroup = format!("flowfed-{name}");
    for controller in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        if controller.path().join(&cgroup).exists() {
            left.push(format!(
                "cgroup {}",
                controller.path().join(&cgroup).display()
            ));
        }
    }
    left
}

/// A free TCP port on 127.0.0.1 (free when asked; bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `flowfed run` as a separate process, killed when dropped.
pub struct OperatorProcess {
    pub child: std::process::Child,
    pub http_addr: std::net::SocketAddr,
}

impl OperatorProcess {
    /// Starts `flowfed run` against `kubeconfig` with `args` added.
    pub fn start(kubeconfig: &Path, args: &[&str]) -> anyhow::Result<OperatorProcess> {
        let http_addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        // Its log, for the post-mortem of a failed test: target/test-logs/.
        let logs = repo_root().join("target/test-logs");
        std::fs::create_dir_all(&logs)?;
        let log = std::fs::File::create(logs.join(format!(
            "operator-{}-{}.log",
            std::process::id(),
            http_addr.port()
        )))?;
        let child = Command::new(flowfed_binary())
            .args(["run", "--http-addr", &http_addr.to_string()])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn,flowfed=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(OperatorProcess { child, http_addr })
    }

    /// GET a path of the operator's HTTP endpoint: (status, body), or `None` when it does not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::get(format!("http://{}{path}", self.http_addr))
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit; returns how long it took.
    pub fn terminate(&mut self, limit: Duration) -> anyhow::Result<Duration> {
        let started = std::time::Instant::now();
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        while started.elapsed() < limit {
            if self.child.try_wait()?.is_some() {
                return Ok(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("still running {limit:?} after SIGTERM")
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
