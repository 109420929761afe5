//! Member clusters: each city can hold its own catalog view in its own cluster.
//!
//! A member's client is built from a kubeconfig in a hub Secret, checked first:
//! a kubeconfig that would run a program (`exec`, `auth-provider`), read local
//! files, or skip TLS verification (unless the node allows it) is refused with
//! a reason, and nothing is spawned. Every request has a deadline, and a member
//! that fails is backed off, so one dead city never stalls the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, CustomResourceExt};

use super::kubeconfig::{client_config, kubeconfig_in_secret};
use crate::api::{CatalogEntry, DataFlowNode, LedgerCheckpoint, SecretKeyRef};
use crate::api::{MANAGED_BY, MANAGED_BY_LABEL};

/// Why a member cluster cannot be used. `reason()` is the condition reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemberProblem {
    #[error("kubeconfig Secret {0} not found")]
    SecretMissing(String),
    #[error("kubeconfig Secret {secret} cannot be read by flowfed ({why})")]
    SecretUnreadable { secret: String, why: String },
    #[error("kubeconfig Secret {secret} has no key {key}")]
    KeyMissing { secret: String, key: String },
    #[error("kubeconfig is not valid: {0}")]
    InvalidKubeconfig(String),
    #[error("kubeconfig refused: {0}")]
    RefusedKubeconfig(String),
    #[error("member cluster unreachable: {0}")]
    Unreachable(String),
}

impl MemberProblem {
    /// A problem of configuration (the Secret or kubeconfig), not of reachability:
    /// retrying will not help until someone fixes it.
    pub fn is_configuration(&self) -> bool {
        !matches!(self, MemberProblem::Unreachable(_))
    }

    pub fn reason(&self) -> &'static str {
        match self {
            MemberProblem::SecretMissing(_) => "KubeconfigSecretMissing",
            MemberProblem::SecretUnreadable { .. } => "KubeconfigSecretUnreadable",
            MemberProblem::KeyMissing { .. } => "KubeconfigKeyMissing",
            MemberProblem::InvalidKubeconfig(_) => "InvalidKubeconfig",
            MemberProblem::RefusedKubeconfig(_) => "RefusedKubeconfig",
            MemberProblem::Unreachable(_) => "MemberUnreachable",
        }
    }
}

/// A usable member cluster.
#[derive(Clone)]
pub struct Member {
    pub client: Client,
    /// Namespace holding the node's catalog view.
    pub namespace: String,
    /// The member's API server: with `namespace`, where the view lives.
    pub server: String,
}

impl Member {
    /// Whether `other` keeps its view in the same place.
    pub fn same_place(&self, other: &Member) -> bool {
        self.server == other.server && self.namespace == other.namespace
    }
}

/// A place a node's view no longer lives (its catalog moved, or the node is
/// gone): the entries flowfed wrote there are to be removed.
pub struct Retired {
    pub node: String,
    pub member: Member,
    /// Cleaning attempts that failed so far.
    pub attempts: u32,
}

struct Tracked {
    secret_version: Option<String>,
    checked_at: Instant,
    member: Result<Member, MemberProblem>,
    /// While set and in the future, the member is skipped (backoff after failures).
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Entries in the member's catalog view by name, with their content hash:
    /// listed when the client is built, then kept by every write and delete.
    entries: HashMap<String, String>,
    /// Where entries were last written: kept through failures, so a view that
    /// moves is cleaned where it was.
    placed: Option<Member>,
}

impl Tracked {
    /// The answer to give without asking anyone, if it is still good for a
    /// member whose catalog view lives in `namespace`.
    fn settled(&self, namespace: &str) -> Option<Result<Member, MemberProblem>> {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Some(self.member.clone().and(Err(MemberProblem::Unreachable(
                "backing off after failures".into(),
            ))));
        }
        let fresh = match &self.member {
            Ok(member) => {
                member.namespace == namespace && self.checked_at.elapsed() < SECRET_RECHECK
            }
            Err(problem) => {
                problem.is_configuration() && self.checked_at.elapsed() < PROBLEM_RECHECK
            }
        };
        fresh.then(|| self.member.clone())
    }

    /// Skips the member for the current backoff, and doubles the next one.
    fn back_off(&mut self, problem: MemberProblem) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.member = Err(problem);
        self.secret_version = None;
    }
}

/// Member clients by node name, rebuilt when their Secret changes.
#[derive(Default)]
pub struct Members {
    tracked: Mutex<HashMap<String, Tracked>>,
    /// One (re)build per member at a time: callers that arrive meanwhile wait
    /// for its outcome instead of each asking a failing member again.
    building: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Places views moved away from, to clean (see [`Members::take_retired`]).
    retired: Mutex<Vec<Retired>>,
}

/// How often a usable member's Secret is re-read to notice a new kubeconfig.
const SECRET_RECHECK: Duration = Duration::from_secs(30);
/// How often a refused or missing kubeconfig is re-read to notice a fix.
const PROBLEM_RECHECK: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(120);

impl Members {
    /// The member cluster of `node`, (re)building its client when the Secret
    /// changed. A member in backoff answers with its last problem at once, and
    /// concurrent callers share one rebuild.
    pub async fn get(
        &self,
        hub: &Client,
        node: &str,
        secret_ref: &SecretKeyRef,
        namespace: &str,
        allow_insecure: bool,
    ) -> Result<Member, MemberProblem> {
        if let Some(settled) = self.settled(node, namespace) {
            return settled;
        }
        let gate = self
            .building
            .lock()
            .expect("members lock")
            .entry(node.to_owned())
            .or_default()
            .clone();
        let _building = gate.lock().await;
        if let Some(settled) = self.settled(node, namespace) {
            return settled;
        }
        let secrets: Api<Secret> = Api::namespaced(hub.clone(), &secret_ref.namespace);
        let secret_name = format!("{}/{}", secret_ref.namespace, secret_ref.name);
        // A Secret that cannot be read is recorded like any other problem:
        // reported on the node, re-read on the problem's schedule, and never
        // holding a product's deletion.
        let secret = match secrets.get_opt(&secret_ref.name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return self.record(node, None, Err(MemberProblem::SecretMissing(secret_name)));
            }
            Err(error) => {
                let why = match &error {
                    kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
                        "forbidden: the chart lets it read Secrets in memberClusters.secretNamespace only".to_owned()
                    }
                    kube::Error::Api(status) => format!("the hub answered {}", status.code),
                    _ => "the hub did not answer".to_owned(),
                };
                let problem = MemberProblem::SecretUnreadable {
                    secret: secret_name,
                    why,
                };
                return self.record(node, None, Err(problem));
            }
        };
        let version = secret.metadata.resource_version.clone();
        {
            let mut tracked = self.tracked.lock().expect("members lock");
            if let Some(t) = tracked.get_mut(node)
                && t.secret_version.is_some()
                && t.secret_version == version
                && t.member.as_ref().is_ok_and(|m| m.namespace == namespace)
            {
                t.checked_at = Instant::now();
                return t.member.clone();
            }
        }
        let built = build(&secret, secret_ref, &secret_name, namespace, allow_insecure).await;
        self.record(node, version, built)
    }

    fn settled(&self, node: &str, namespace: &str) -> Option<Result<Member, MemberProblem>> {
        let tracked = self.tracked.lock().expect("members lock");
        tracked.get(node)?.settled(namespace)
    }

    /// The member cluster of `node`, or `None` when the node keeps its catalog
    /// view in the hub.
    pub async fn for_node(
        &self,
        hub: &Client,
        node: &DataFlowNode,
    ) -> Option<Result<Member, MemberProblem>> {
        let secret_ref = node.spec.catalog.kubeconfig_secret_ref.as_ref()?;
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let allow = node.spec.catalog.allow_insecure_member_tls;
        Some(
            self.get(hub, name, secret_ref, &node.member_namespace(), allow)
                .await,
        )
    }

    /// Keeps the outcome of a (re)build. An unreachable member is backed off
    /// like a failed request, so a member that fails every call is asked less
    /// and less often.
    fn record(
        &self,
        node: &str,
        version: Option<String>,
        member: Result<(Member, HashMap<String, String>), MemberProblem>,
    ) -> Result<Member, MemberProblem> {
        let mut tracked = self.tracked.lock().expect("members lock");
        let entry = tracked.entry(node.to_owned()).or_insert_with(|| Tracked {
            secret_version: None,
            checked_at: Instant::now(),
            member: Err(MemberProblem::Unreachable("not built yet".into())),
            retry_at: None,
            backoff: FIRST_BACKOFF,
            entries: HashMap::new(),
            placed: None,
        });
        entry.checked_at = Instant::now();
        match member {
            Ok((member, listed)) => {
                if let Some(old) = entry.placed.take()
                    && !old.same_place(&member)
                {
                    let retired = Retired {
                        node: node.to_owned(),
                        member: old,
                        attempts: 0,
                    };
                    self.retired.lock().expect("members lock").push(retired);
                }
                entry.placed = Some(member.clone());
                entry.secret_version = version;
                entry.member = Ok(member);
                entry.retry_at = None;
                entry.backoff = FIRST_BACKOFF;
                entry.entries = listed;
            }
            Err(problem) if problem.is_configuration() => {
                entry.secret_version = version;
                entry.member = Err(problem);
            }
            Err(problem) => entry.back_off(problem),
        }
        entry.member.clone()
    }

    /// The content hash of entry `name` in `node`'s member, as last written or listed.
    pub fn entry_hash(&self, node: &str, name: &str) -> Option<String> {
        let tracked = self.tracked.lock().expect("members lock");
        tracked.get(node).and_then(|t| t.entries.get(name).cloned())
    }

    /// Records a write (`Some(hash)`) or delete (`None`) of entry `name` in `node`'s member.
    pub fn record_entry(&self, node: &str, name: &str, hash: Option<String>) {
        let mut tracked = self.tracked.lock().expect("members lock");
        if let Some(t) = tracked.get_mut(node) {
            match hash {
                Some(hash) => t.entries.insert(name.to_owned(), hash),
                None => t.entries.remove(name),
            };
        }
    }

    /// Names and hashes of the entries in `node`'s member view.
    pub fn entries(&self, node: &str) -> HashMap<String, String> {
        let tracked = self.tracked.lock().expect("members lock");
        tracked
            .get(node)
            .map(|t| t.entries.clone())
            .unwrap_or_default()
    }

    /// Records a failed request to `node`'s member: it is skipped for a backoff
    /// that doubles with each failed attempt (2 s up to 2 min). Failures reported
    /// while the member is already backing off do not extend it.
    pub fn failed(&self, node: &str, problem: MemberProblem) {
        let mut tracked = self.tracked.lock().expect("members lock");
        if let Some(t) = tracked.get_mut(node)
            && t.retry_at.is_none_or(|at| Instant::now() >= at)
        {
            t.back_off(problem);
        }
    }

    /// Whether `node`'s member is usable, for `flowfed_member_cluster_up`:
    /// `None` for nodes without a member cluster.
    pub fn up(&self, node: &str) -> Option<bool> {
        let tracked = self.tracked.lock().expect("members lock");
        tracked
            .get(node)
            .map(|t| t.member.is_ok() && t.retry_at.is_none_or(|r| Instant::now() >= r))
    }

    /// How long until `node`'s member may be asked again (its backoff), if it
    /// is backing off.
    pub fn retry_in(&self, node: &str) -> Option<Duration> {
        let tracked = self.tracked.lock().expect("members lock");
        let at = tracked.get(node)?.retry_at?;
        Some(at.saturating_duration_since(Instant::now()))
    }

    /// The last problem of `node`'s member, if any.
    pub fn problem(&self, node: &str) -> Option<MemberProblem> {
        let tracked = self.tracked.lock().expect("members lock");
        tracked.get(node).and_then(|t| t.member.clone().err())
    }

    /// Forgets the members of nodes not in `keep`, retiring where their views were.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut tracked = self.tracked.lock().expect("members lock");
        let gone: Vec<String> = tracked.keys().filter(|n| !keep(n)).cloned().collect();
        for node in gone {
            if let Some(member) = tracked.remove(&node).and_then(|t| t.placed) {
                let retired = Retired {
                    node,
                    member,
                    attempts: 0,
                };
                self.retired.lock().expect("members lock").push(retired);
            }
        }
        drop(tracked);
        self.building
            .lock()
            .expect("members lock")
            .retain(|node, _| keep(node));
    }

    /// Where `node`'s view last was written, if in a member cluster.
    pub fn placed(&self, node: &str) -> Option<Member> {
        let tracked = self.tracked.lock().expect("members lock");
        tracked.get(node).and_then(|t| t.placed.clone())
    }

    /// The places views moved away from, to clean; give back the ones that
    /// could not be cleaned yet with [`Members::retry_retired`].
    pub fn take_retired(&self) -> Vec<Retired> {
        std::mem::take(&mut *self.retired.lock().expect("members lock"))
    }

    pub fn retry_retired(&self, retired: Retired) {
        self.retired.lock().expect("members lock").push(retired);
    }
}

/// Builds a member client from its Secret and prepares the member: the
/// CatalogEntry CRD installed and Established, the catalog namespace present.
/// Returns the entries the member already holds (name to content hash).
async fn build(
    secret: &Secret,
    secret_ref: &SecretKeyRef,
    secret_name: &str,
    namespace: &str,
    allow_insecure: bool,
) -> Result<(Member, HashMap<String, String>), MemberProblem> {
    let kubeconfig = kubeconfig_in_secret(secret, secret_ref, secret_name, allow_insecure)?;
    let mut config = client_config(kubeconfig).await?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(15));
    config.write_timeout = Some(Duration::from_secs(15));
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|_| {
        MemberProblem::InvalidKubeconfig("no client can be built from it (its TLS material)".into())
    })?;
    let listed = prepare(&client, namespace)
        .await
        .map_err(|e| MemberProblem::Unreachable(e.to_string()))?;
    Ok((
        Member {
            client,
            namespace: namespace.to_owned(),
            server,
        },
        listed,
    ))
}

/// Installs (or updates) the CatalogEntry and LedgerCheckpoint CRDs and the
/// catalog namespace, and lists the entries already there.
async fn prepare(client: &Client, namespace: &str) -> Result<HashMap<String, String>, kube::Error> {
    install_crd(client, CatalogEntry::crd()).await?;
    install_crd(client, LedgerCheckpoint::crd()).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
    });
    namespaces
        .patch(
            namespace,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&manifest),
        )
        .await?;
    let entries = Api::<CatalogEntry>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")))
        .await?;
    Ok(entries
        .items
        .into_iter()
        .map(|e| (e.metadata.name.unwrap_or_default(), e.spec.content_hash))
        .collect())
}

/// The field manager of what flowfed sets up in a member.
const MANAGER: &str = "flowfed.io/member-setup";

/// Applies `crd` to the member and waits (30 s at most) until it is Established.
async fn install_crd(client: &Client, crd: CustomResourceDefinition) -> Result<(), kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await?;
    let established = async {
        loop {
            let current = crds.get(&name).await?;
            let ok = current.status.and_then(|s| s.conditions).is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if ok {
                return Ok::<(), kube::Error>(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), established)
        .await
        .map_err(|_| {
            kube::Error::Service(
                format!("CRD {name} not Established in the member within 30 s").into(),
            )
        })?
}
