//! The ledger's writer: every change of a product's listing becomes a record
//! ([`Ledger::observe`], called by the catalog reconciler after its write
//! step), records are sealed into signed blocks in the hub ([`appender`]),
//! and each witness is offered the new checkpoint ([`witnesses`]).
//!
//! What is recorded is decided against the ledger's own last state per
//! product, loaded from the stored blocks when the controllers start: a
//! restart records nothing twice and misses nothing that changed meanwhile.
//! Appending never holds up a release: `observe` only compares and queues.

mod appender;
mod witnesses;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::api::LedgerBlock;
use crate::ledger::checkpoint::LedgerKey;
use crate::ledger::log::Log;
use crate::ledger::record::{Change, Listing, ProductId, Record};
use crate::ledger::verify::{StoredBlock, verify_log};
use crate::metrics::LedgerMetrics;

pub use appender::run;

/// Where the ledger lives and how it is signed.
#[derive(Clone, Debug)]
pub struct LedgerSettings {
    /// The namespace of the LedgerBlocks (flowfed's own).
    pub namespace: String,
    /// The Secret (in `namespace`) whose key `signing-key` is the Ed25519 PKCS#8 PEM.
    pub key_secret: String,
    /// The log's origin, which names its key too.
    pub origin: String,
    /// How long records gather before a block is sealed.
    pub block_interval: Duration,
    /// How often, at most, each witness is offered the latest checkpoint.
    pub witness_interval: Duration,
}

/// The key of the signing-key Secret holding the PEM.
pub const SIGNING_KEY: &str = "signing-key";

/// The ledger shared by the reconcilers and the appender.
pub struct Ledger {
    pub settings: LedgerSettings,
    state: Mutex<State>,
    wake: tokio::sync::Notify,
    metrics: LedgerMetrics,
}

#[derive(Default)]
enum Phase {
    /// Not loaded yet: the latest listing per product waits here.
    #[default]
    Loading,
    /// Loaded: records are compared with `last` and queued.
    Open,
    /// The stored log does not verify: nothing is appended to it.
    Halted,
}

/// One observation: the product, its listing (`None`: deleted), the targets
/// left unsettled, and when.
type Observed = (ProductId, Option<Listing>, Vec<String>, Timestamp);

#[derive(Default)]
struct State {
    phase: Phase,
    /// The last listing recorded (or queued), by product uid.
    last: HashMap<String, (ProductId, Listing)>,
    /// Observations made before the log was loaded, latest per product.
    early: HashMap<String, Observed>,
    /// Leaves not yet stored, oldest first.
    pending: VecDeque<String>,
}

impl State {
    fn record(
        &mut self,
        product: &ProductId,
        current: Option<Listing>,
        unsettled: &[String],
        now: Timestamp,
    ) -> bool {
        let previous = self.last.get(&product.uid).map(|(_, listing)| listing);
        let current = current.map(|listing| keep_unsettled(listing, unsettled, previous));
        let Some(record) = Record::of_change(product, previous, current.as_ref(), now.to_string())
        else {
            return false;
        };
        match current {
            Some(listing) => self
                .last
                .insert(product.uid.clone(), (product.clone(), listing)),
            None => self.last.remove(&product.uid),
        };
        self.pending.push_back(record.to_leaf());
        true
    }
}

/// `listing` with the `unsettled` nodes (whose write or withdrawal failed this
/// pass: their member could not be reached) as `previous` had them:
/// an entry that could not be written may well still be there, so the ledger
/// records no change for that node until a write settles it.
fn keep_unsettled(
    mut listing: Listing,
    unsettled: &[String],
    previous: Option<&Listing>,
) -> Listing {
    let Some(previous) = previous else {
        return listing;
    };
    let settled = |node: &str| {
        listing.visible.iter().any(|v| v.node == node)
            || listing.blocked.iter().any(|b| b.node == node)
    };
    let kept: Vec<_> = previous
        .visible
        .iter()
        .filter(|v| !settled(&v.node) && unsettled.contains(&v.node))
        .cloned()
        .collect();
    listing.visible.extend(kept);
    listing.visible.sort_by(|a, b| a.node.cmp(&b.node));
    listing
}

impl Ledger {
    pub fn new(settings: LedgerSettings, metrics: LedgerMetrics) -> Self {
        Ledger {
            settings,
            state: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            metrics,
        }
    }

    /// Records `product`'s listing (`None`: deleted) if it differs from the
    /// last one recorded. Cheap: a comparison and a queue push.
    /// `unsettled` names targets whose write or withdrawal failed this pass.
    pub fn observe(
        &self,
        product: &ProductId,
        current: Option<Listing>,
        unsettled: &[String],
        now: Timestamp,
    ) {
        let mut state = self.state.lock().expect("ledger lock");
        let queued = match state.phase {
            Phase::Loading => {
                let early = (product.clone(), current, unsettled.to_vec(), now);
                state.early.insert(product.uid.clone(), early);
                false
            }
            Phase::Open => state.record(product, current, unsettled, now),
            Phase::Halted => false,
        };
        drop(state);
        if queued {
            self.wake.notify_one();
        }
    }

    /// Records the deletion of every product the ledger lists that is not
    /// in `live` (uids): deleted while flowfed was not running.
    fn sweep_deleted(&self, live: &HashSet<String>, now: Timestamp) {
        let mut state = self.state.lock().expect("ledger lock");
        let gone: Vec<ProductId> = state
            .last
            .iter()
            .filter(|(uid, _)| !live.contains(*uid))
            .map(|(_, (product, _))| product.clone())
            .collect();
        for product in &gone {
            state.record(product, None, &[], now);
        }
        drop(state);
        if !gone.is_empty() {
            self.wake.notify_one();
        }
    }

    /// Opens the ledger on the stored `log`, whose leaves give the last
    /// listing of every product, and records what changed since.
    fn open(&self, leaves: &[String]) {
        self.metrics.verified.set(1);
        let mut state = self.state.lock().expect("ledger lock");
        for leaf in leaves {
            let Ok(record) = serde_json::from_str::<Record>(leaf) else {
                continue;
            };
            match record.change {
                Change::Deleted => state.last.remove(&record.product.uid),
                _ => state
                    .last
                    .insert(record.product.uid.clone(), (record.product, record.listing)),
            };
        }
        let early: Vec<_> = state.early.drain().map(|(_, seen)| seen).collect();
        state.phase = Phase::Open;
        for (product, listing, unsettled, now) in early {
            state.record(&product, listing, &unsettled, now);
        }
        drop(state);
        self.wake.notify_one();
    }

    fn halt(&self) {
        self.metrics.verified.set(0);
        let mut state = self.state.lock().expect("ledger lock");
        state.phase = Phase::Halted;
        state.early.clear();
        state.pending.clear();
    }

    fn is_halted(&self) -> bool {
        matches!(self.state.lock().expect("ledger lock").phase, Phase::Halted)
    }

    /// Up to `max` pending leaves, oldest first, without taking them.
    fn peek(&self, max: usize, max_bytes: usize) -> Vec<String> {
        let state = self.state.lock().expect("ledger lock");
        let mut bytes = 0;
        state
            .pending
            .iter()
            .take(max)
            .take_while(|leaf| {
                bytes += leaf.len();
                bytes <= max_bytes
            })
            .cloned()
            .collect()
    }

    /// Drops the first `count` pending leaves, once stored.
    fn stored(&self, count: usize) {
        let mut state = self.state.lock().expect("ledger lock");
        let count = count.min(state.pending.len());
        state.pending.drain(..count);
    }
}

/// What loading the stored log found.
enum Loaded {
    Log(Log, Box<LedgerKey>),
    /// The stored log does not verify with the key: never appended to.
    Broken(String),
}

/// Reads the key and every stored block, and verifies the log with the key.
async fn load(client: &Client, settings: &LedgerSettings) -> anyhow::Result<(Loaded, Vec<String>)> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let secret = secrets.get(&settings.key_secret).await?;
    let pem = secret
        .data
        .as_ref()
        .and_then(|d| d.get(SIGNING_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .ok_or_else(|| {
            anyhow::anyhow!("Secret {} has no key {SIGNING_KEY}", settings.key_secret)
        })?;
    let key = LedgerKey::from_pem(&settings.origin, &pem)
        .map_err(|e| anyhow::anyhow!("Secret {}: {e}", settings.key_secret))?;
    let blocks: Api<LedgerBlock> = Api::namespaced(client.clone(), &settings.namespace);
    let stored = blocks.list(&ListParams::default()).await?.items;
    if stored.is_empty() {
        return Ok((Loaded::Log(Log::default(), Box::new(key)), Vec::new()));
    }
    let names: Vec<String> = stored.iter().map(|b| b.name_any()).collect();
    let views: Vec<StoredBlock> = stored
        .iter()
        .zip(&names)
        .map(|(b, name)| StoredBlock {
            name,
            spec: &b.spec,
            omitted: None,
        })
        .collect();
    Ok(match verify_log(&views, Some(key.verifier_key())) {
        Ok(log) => {
            let leaves = log.leaves.clone();
            (Loaded::Log(Log::from(log), Box::new(key)), leaves)
        }
        Err(finding) => (Loaded::Broken(finding.to_string()), Vec::new()),
    })
}

/// The ledger, as the reconcilers hold it.
pub type SharedLedger = Option<Arc<Ledger>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::record::Visible;

    fn visible(nodes: &[&str]) -> Vec<Visible> {
        nodes
            .iter()
            .map(|n| Visible {
                node: (*n).into(),
                reason: "SameJurisdiction".into(),
                rule: 2,
                mechanisms: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_target_whose_write_failed_keeps_what_was_recorded_for_it() {
        let previous = Listing {
            visible: visible(&["beijing", "hongkong"]),
            ..Listing::default()
        };
        let now = Listing {
            visible: visible(&["beijing"]),
            ..Listing::default()
        };
        let unsettled = ["hongkong".to_owned(), "macao".to_owned()];
        let kept = keep_unsettled(now, &unsettled, Some(&previous));
        assert_eq!(kept, previous, "hongkong kept, macao never listed");
        let first = Listing {
            visible: visible(&["beijing"]),
            ..Listing::default()
        };
        let unsettled = ["hongkong".to_owned()];
        assert_eq!(
            keep_unsettled(first, &unsettled, None).visible,
            visible(&["beijing"])
        );
    }
}
