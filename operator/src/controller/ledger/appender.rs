//! The ledger's single writer: loads and verifies the stored log, records
//! the deletions it missed, then seals pending records into blocks (one
//! create each, batched over `block_interval`) and offers the new head to
//! the witnesses at most every `witness_interval`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, PostParams};

use super::witnesses::{self, Witnessed};
use super::{Ledger, Loaded, load};
use crate::api::{LedgerBlock, MAX_BLOCK_BYTES, MAX_BLOCK_RECORDS};
use crate::controller::Context;
use crate::ledger::checkpoint::LedgerKey;
use crate::ledger::log::Log;

/// Wait between failed loads or block writes.
const RETRY: Duration = Duration::from_secs(2);

/// Runs the ledger for one leadership term.
pub async fn run(ledger: Arc<Ledger>, ctx: Arc<Context>) {
    let (mut log, key) = loop {
        match load(&ctx.client, &ledger.settings).await {
            Ok((Loaded::Log(log, key), leaves)) => {
                ledger.open(&leaves);
                break (log, key);
            }
            Ok((Loaded::Broken(finding), _)) => {
                tracing::error!(%finding, "the stored ledger does not verify with the signing key; nothing is appended to it");
                ledger.halt();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot load the ledger yet");
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    tracing::info!(
        records = log.tree.size(),
        blocks = log.next_block,
        key = key.verifier_key(),
        "ledger loaded"
    );
    ledger.metrics.tree_size.set(log.tree.size() as i64);
    while !ctx.catalog_ready() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let live: HashSet<String> = ctx
        .products
        .state()
        .iter()
        .filter_map(|p| p.uid())
        .collect();
    ledger.sweep_deleted(&live, ctx.now());

    let mut witnessed = Witnessed::default();
    let mut last_round: Option<Instant> = None;
    let settings = ledger.settings.clone();
    loop {
        let woken = tokio::select! {
            () = ledger.wake.notified() => true,
            () = tokio::time::sleep(settings.witness_interval) => false,
        };
        if woken {
            // Records arriving meanwhile join the same block.
            tokio::time::sleep(settings.block_interval).await;
        }
        while !append(&ledger, &ctx, &mut log, &key).await {
            if ledger.is_halted() {
                return;
            }
            tokio::time::sleep(RETRY).await;
        }
        let due = last_round.is_none_or(|at| at.elapsed() >= settings.witness_interval);
        if due && witnessed.behind(&ctx, log.tree.size()) {
            witnesses::round(&ctx, &ledger, &log, &key, &mut witnessed).await;
            last_round = Some(Instant::now());
        }
    }
}

/// Seals and stores every pending record. False when a write failed (the
/// records stay pending) or the log was found changed under it.
async fn append(ledger: &Ledger, ctx: &Context, log: &mut Log, key: &LedgerKey) -> bool {
    let api: Api<LedgerBlock> = Api::namespaced(ctx.client.clone(), &ledger.settings.namespace);
    loop {
        let leaves = ledger.peek(MAX_BLOCK_RECORDS, MAX_BLOCK_BYTES);
        if leaves.is_empty() {
            return true;
        }
        let count = leaves.len();
        let (spec, tree) = log.seal(leaves, key);
        let block = LedgerBlock::new(&LedgerBlock::name_of(spec.index), spec);
        match api.create(&PostParams::default(), &block).await {
            Ok(_) => {}
            // Stored by an earlier attempt whose answer was lost? Signatures
            // are deterministic, so that block is this one exactly.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                match api.get(&block.name_any()).await {
                    Ok(stored) if stored.spec == block.spec => {}
                    Ok(_) => {
                        tracing::error!(block = %block.name_any(), "another block is stored at the ledger's next index; nothing more is appended until a restart reloads the log");
                        ledger.halt();
                        return false;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot read back a ledger block");
                        return false;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot store a ledger block; retrying");
                return false;
            }
        }
        log.stored(tree);
        ledger.stored(count);
        let metrics = &ledger.metrics;
        metrics.records_total.inc_by(count as u64);
        metrics.tree_size.set(log.tree.size() as i64);
        metrics
            .last_checkpoint_seconds
            .set(ctx.now().as_millisecond() as f64 / 1000.0);
    }
}
