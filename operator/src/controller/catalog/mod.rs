//! Catalog reconciler: one-point release, all-region visibility.
//!
//! A short driver over four steps, each in its own file:
//! [`facts`] (pure: the publisher, and what the rules read of the product and
//! every node), [`plan`] (pure: targets and blocked nodes with reasons, from
//! [`crate::policy`]), [`write`] (entries into each catalog view, hub
//! namespace or member cluster, and out of the ones that no longer list the
//! product), [`report`] (status, events, metrics, and when to look again,
//! which is at the nearest mechanism expiry so entries abroad are withdrawn on
//! time) and [`record`] (the listing the ledger records, when it changed).

pub mod facts;
#[cfg(test)]
mod fixtures;
pub mod plan;
mod record;
mod report;
mod write;

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use super::status::publish_event;
use super::{Context, Error, Result, jittered};
use crate::api::DataProduct;
use crate::api::conditions::Stamp;
use facts::Unplannable;
use report::{known_status, write_status};

/// Keeps a product until its entries are gone everywhere, member clusters included.
pub const FINALIZER: &str = "flowfed.io/catalog-cleanup";

/// Hub entry writes in flight across every product reconcile: about where the
/// API server's create throughput stops growing (see docs/benchmarks.md).
pub const HUB_ENTRY_WRITES_IN_FLIGHT: usize = 64;

/// Condition reasons of the catalog reconciler.
pub mod reasons {
    pub const PUBLISHED: &str = "Published";
    pub const NO_PUBLISHER_NODE: &str = "NoPublisherNode";
    pub const AMBIGUOUS_PUBLISHER: &str = "AmbiguousPublisherNode";
    pub const INVALID_SELECTOR: &str = "InvalidNodeSelector";
    pub const SYNCED: &str = "Synced";
    pub const WRITE_FAILED: &str = "EntryWriteFailed";
    pub const WITHDRAWAL_PENDING: &str = "WithdrawalPending";
}

pub async fn reconcile(product: Arc<DataProduct>, ctx: Arc<Context>) -> Result<Action> {
    if !ctx.catalog_ready() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = product
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let api: Api<DataProduct> = Api::namespaced(ctx.client.clone(), &namespace);
    // Added here and published in the same pass, rather than waiting for the
    // finalizer's own watch event: a release is visible one round trip sooner.
    let product = add_finalizer(&api, product).await?;
    finalizer(&api, FINALIZER, product, |event| async {
        match event {
            Finalizer::Apply(product) => publish(product, &ctx).await,
            Finalizer::Cleanup(product) => withdraw_deleted(&product, &ctx)
                .await
                .map(|()| Action::await_change()),
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// `product` with the catalog finalizer, adding it if a live product lacks it.
/// The patch carries the resource version it extends, so a concurrent change
/// fails it (409, and the reconcile is retried) instead of being overwritten.
async fn add_finalizer(
    api: &Api<DataProduct>,
    product: Arc<DataProduct>,
) -> Result<Arc<DataProduct>> {
    let has = product.finalizers().iter().any(|f| f == FINALIZER);
    if has || product.metadata.deletion_timestamp.is_some() {
        return Ok(product);
    }
    let mut finalizers = product.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": product.resource_version()}
    });
    let patched = api
        .patch(
            &product.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(Arc::new(patched))
}

/// facts → plan → write → report.
async fn publish(product: Arc<DataProduct>, ctx: &Context) -> Result<Action> {
    let stamp = Stamp {
        generation: product.metadata.generation,
        now: ctx.now(),
    };
    let uid = product.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let known = known_status(&product, ctx);
    let nodes = ctx.nodes.state();
    // Only a processor's volumes read the other products: a product without
    // one costs no walk over the whole product cache (10,000 at scale).
    let products = match product.spec.processor {
        Some(_) => ctx.products.state(),
        None => Vec::new(),
    };
    let (processors, zones) = (ctx.processors.state(), ctx.zones.state());
    let around = facts::Surroundings {
        nodes: &nodes,
        products: &products,
        processors: &processors,
        zones: &zones,
        now: stamp.now,
    };
    let facts = match facts::gather(&product, around) {
        Ok(facts) => facts,
        Err(why) => {
            if let Unplannable::NoPublisher(_) = why {
                withdraw(&product, ctx).await?;
                if let Some(ledger) = &ctx.ledger {
                    let id = record::product_id(&product);
                    ledger.observe(&id, Some(record::unlisted(&product)), &[], stamp.now);
                }
            }
            let status = report::unplannable(known.as_ref(), &why, stamp);
            write_status(&product, known.as_ref(), status, ctx).await?;
            return Ok(match why {
                Unplannable::NoPublisher(_) => Action::requeue(jittered(ctx.settings.resync)),
                Unplannable::InvalidSelector(_) => Action::await_change(),
            });
        }
    };
    let release_started = ctx.release_clock.started(
        &uid,
        stamp.generation,
        product.metadata.creation_timestamp.as_ref(),
        stamp.now,
    );
    let plan = plan::plan(&product, &facts, stamp.now);
    let written = write::write(ctx, &plan, &nodes).await?;
    if let Some(ledger) = &ctx.ledger {
        let listing = record::listing(&product, &plan, &written);
        let unsettled = record::unsettled(&written);
        ledger.observe(
            &record::product_id(&product),
            Some(listing),
            &unsettled,
            stamp.now,
        );
    }

    let previous = known.clone().unwrap_or_default();
    let listed = report::listed(&previous, &plan, &written, stamp, release_started);
    if let Some(latency) = listed.release_to_visible {
        ctx.metrics
            .catalog_release_to_visible_seconds
            .observe(latency.as_secs_f64());
    }
    if let Some(note) = listed.blocked_note {
        let product = product.as_ref();
        publish_event(
            &ctx.recorder,
            product,
            EventType::Warning,
            "Blocked",
            "Sync",
            note,
        )
        .await;
    }
    write_status(&product, known.as_ref(), listed.status, ctx).await?;
    let member_retry = written
        .withdrawals_pending
        .iter()
        .filter_map(|(node, _)| ctx.members.retry_in(node))
        .min();
    let wake = report::requeue_after(
        &plan,
        &written,
        member_retry,
        stamp.now,
        ctx.settings.resync,
    );
    Ok(Action::requeue(wake))
}

/// Removes a product's entries everywhere: hub namespaces and every member
/// cluster. Fails (and is retried) while a member cannot be reached.
async fn withdraw(product: &DataProduct, ctx: &Context) -> Result<()> {
    let uid = product.uid().ok_or(Error::MissingField("metadata.uid"))?;
    write::withdraw(ctx, &uid).await
}

/// Withdraws a deleted product everywhere, and records that in the ledger.
async fn withdraw_deleted(product: &DataProduct, ctx: &Context) -> Result<()> {
    withdraw(product, ctx).await?;
    if let Some(ledger) = &ctx.ledger {
        ledger.observe(&record::product_id(product), None, &[], ctx.now());
    }
    Ok(())
}
