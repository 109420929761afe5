//! Witness rounds: each node's witness (its member cluster, or its hub
//! namespace when it has none) is offered the ledger's head with a
//! consistency proof from the checkpoint it holds, and keeps it only if the
//! proof shows an extension ([`crate::ledger::witness::accept`]). A refusal
//! is a `LedgerWitnessed=False` condition, an event and a metric on the node.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;

use super::Ledger;
use crate::api::conditions::{self, ConditionUpdate, Stamp, Status, types};
use crate::api::{DataFlowNode, LedgerCheckpoint, LedgerCheckpointSpec};
use crate::controller::Context;
use crate::controller::status::{apply_status, managers, publish_event};
use crate::ledger::checkpoint::{self, LedgerKey, TreeHead};
use crate::ledger::log::Log;
use crate::ledger::tree;
use crate::ledger::witness::{Held, Rejection, accept};

/// Witnesses offered a checkpoint at once.
const CONCURRENCY: usize = 16;

/// What each node's witness holds, as far as this term knows.
#[derive(Default)]
pub struct Witnessed {
    accepted: HashMap<String, u64>,
}

impl Witnessed {
    /// Whether some node's witness does not hold tree size `size` yet.
    pub fn behind(&self, ctx: &Context, size: u64) -> bool {
        size > 0
            && ctx
                .nodes
                .state()
                .iter()
                .any(|n| self.accepted.get(&n.name_any()) != Some(&size))
    }
}

/// What offering the head to one witness came to.
enum Outcome {
    Accepted(u64),
    Refused(Rejection),
    /// The witness cannot be reached or written now; tried next round.
    Unavailable(String),
}

/// Offers the log's head to every witness not holding it yet.
pub async fn round(
    ctx: &Context,
    ledger: &Ledger,
    log: &Log,
    key: &LedgerKey,
    witnessed: &mut Witnessed,
) {
    let head = TreeHead {
        size: log.tree.size(),
        root: log.tree.root(),
    };
    let note = key.sign(head.size, head.root);
    let nodes = ctx.nodes.state();
    let offers: Vec<_> = nodes
        .iter()
        .filter(|node| witnessed.accepted.get(&node.name_any()) != Some(&head.size))
        .map(|node| offer(ctx, node, log, key, head, &note))
        .collect();
    let outcomes: Vec<_> = futures::stream::iter(offers)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let metrics = &ledger.metrics;
    for (node, outcome) in outcomes {
        let name = node.name_any();
        let node = node.as_ref();
        let condition = match outcome {
            Outcome::Accepted(size) => {
                witnessed.accepted.insert(name.clone(), size);
                metrics.witness_lag.with_label_values(&[&name]).set(0.0);
                metrics
                    .witness_inconsistent
                    .with_label_values(&[&name])
                    .set(0.0);
                ConditionUpdate::new(
                    types::LEDGER_WITNESSED,
                    Status::True,
                    "CheckpointAccepted",
                    "the witness holds the ledger's checkpoint, consistent with every one it held before",
                )
            }
            Outcome::Refused(rejection) => {
                metrics
                    .witness_inconsistent
                    .with_label_values(&[&name])
                    .set(1.0);
                ConditionUpdate::new(
                    types::LEDGER_WITNESSED,
                    Status::False,
                    Rejection::REASON,
                    format!("the witness refused the ledger's checkpoint: {rejection}"),
                )
            }
            Outcome::Unavailable(why) => {
                tracing::debug!(node = %name, %why, "ledger witness unavailable");
                let held = witnessed.accepted.get(&name).copied().unwrap_or(0);
                let lag = head.size.saturating_sub(held) as f64;
                metrics.witness_lag.with_label_values(&[&name]).set(lag);
                continue;
            }
        };
        if let Err(error) = report(ctx, node, condition).await {
            tracing::warn!(node = %name, %error, "cannot report the ledger witness's condition");
        }
    }
}

/// Offers `head` to `node`'s witness.
async fn offer<'a>(
    ctx: &Context,
    node: &'a Arc<DataFlowNode>,
    log: &Log,
    key: &LedgerKey,
    head: TreeHead,
    note: &str,
) -> (&'a Arc<DataFlowNode>, Outcome) {
    let outcome = offer_to(ctx, node, log, key, head, note).await;
    (node, outcome)
}

async fn offer_to(
    ctx: &Context,
    node: &DataFlowNode,
    log: &Log,
    key: &LedgerKey,
    head: TreeHead,
    note: &str,
) -> Outcome {
    let (client, namespace) = match ctx.members.for_node(&ctx.client, node).await {
        None => (ctx.client.clone(), node.home_namespace()),
        Some(Ok(member)) => (member.client, member.namespace),
        Some(Err(problem)) => return Outcome::Unavailable(problem.to_string()),
    };
    let api: Api<LedgerCheckpoint> = Api::namespaced(client, &namespace);
    let current = match api.get_opt(LedgerCheckpoint::NAME).await {
        Ok(current) => current,
        Err(error) => return Outcome::Unavailable(error.to_string()),
    };
    let held = match &current {
        None => None,
        Some(c) => match checkpoint::open(&c.spec.checkpoint, &c.spec.verifier_key) {
            Ok(head) => Some(Held {
                head,
                verifier_key: c.spec.verifier_key.clone(),
            }),
            Err(why) => {
                return Outcome::Refused(Rejection::Unreadable(why.to_string()));
            }
        },
    };
    let held_size = held.as_ref().map_or(0, |h| h.head.size);
    let proof = match held_size {
        0 => Vec::new(),
        old => log
            .tree
            .prove_consistency(old, head.size)
            .unwrap_or_default(),
    };
    if let Err(rejection) = accept(held.as_ref(), head, key.verifier_key(), &proof) {
        return Outcome::Refused(rejection);
    }
    if held.is_some_and(|h| h.head == head) {
        return Outcome::Accepted(head.size);
    }
    let spec = LedgerCheckpointSpec {
        node: node.name_any(),
        tree_size: head.size,
        root_hash: tree::encode(&head.root),
        checkpoint: note.to_owned(),
        verifier_key: key.verifier_key().to_owned(),
        previous_tree_size: held_size,
        consistency_proof: proof.iter().map(tree::encode).collect(),
    };
    match store(&api, current, spec).await {
        Ok(()) => Outcome::Accepted(head.size),
        Err(error) => Outcome::Unavailable(error.to_string()),
    }
}

/// Creates the witness's object, or replaces the one read (a concurrent
/// change makes the replace fail, and the next round decides again).
async fn store(
    api: &Api<LedgerCheckpoint>,
    current: Option<LedgerCheckpoint>,
    spec: LedgerCheckpointSpec,
) -> Result<(), kube::Error> {
    let params = PostParams::default();
    match current {
        None => {
            let object = LedgerCheckpoint::new(LedgerCheckpoint::NAME, spec);
            api.create(&params, &object).await.map(drop)
        }
        Some(mut object) => {
            object.spec = spec;
            api.replace(LedgerCheckpoint::NAME, &params, &object)
                .await
                .map(drop)
        }
    }
}

/// Sets the node's `LedgerWitnessed` condition when it changes, with an
/// event when a witness starts refusing.
async fn report(
    ctx: &Context,
    node: &DataFlowNode,
    update: ConditionUpdate,
) -> crate::controller::Result<()> {
    let current = node.status.clone().unwrap_or_default();
    let mut owned: Vec<_> = current
        .conditions
        .iter()
        .filter(|c| c.type_ == types::LEDGER_WITNESSED)
        .cloned()
        .collect();
    let before = owned.clone();
    let refused = update.status == Status::False;
    let note = update.message.clone();
    let stamp = Stamp {
        generation: node.metadata.generation,
        now: ctx.now(),
    };
    conditions::set(&mut owned, update, stamp);
    if conditions::same_ignoring_time(&before, &owned) {
        return Ok(());
    }
    if refused {
        publish_event(
            &ctx.recorder,
            node,
            EventType::Warning,
            Rejection::REASON,
            "Witness",
            note,
        )
        .await;
    }
    let api: Api<DataFlowNode> = Api::all(ctx.client.clone());
    apply_status(
        &api,
        node,
        managers::LEDGER,
        &serde_json::json!({"conditions": owned}),
    )
    .await
}
