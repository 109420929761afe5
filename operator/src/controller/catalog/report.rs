//! Step 4: what the product's status, events and metrics say after the write,
//! and when to look again. Building the status is pure; writing it is skipped
//! when only a timestamp would change.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;

use super::facts::Unplannable;
use super::plan::Plan;
use super::reasons;
use super::write::Written;
use crate::api::conditions::{self, ConditionUpdate, Stamp, Status, types};
use crate::api::{DataProduct, DataProductStatus};
use crate::controller::status::{apply_status, managers};
use crate::controller::{Context, Result, jittered};

/// The status after a plan was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    pub status: DataProductStatus,
    /// Set when this generation became visible everywhere it should for the
    /// first time: the release-to-visible latency.
    pub release_to_visible: Option<Duration>,
    /// Set when the set of blocked nodes changed and is not empty: the note of
    /// a `Blocked` event.
    pub blocked_note: Option<String>,
}

/// The status `previous` becomes once `plan` was written with outcome `written`.
pub fn listed(
    previous: &DataProductStatus,
    plan: &Plan,
    written: &Written,
    stamp: Stamp,
    release_started: Timestamp,
) -> Listed {
    let mut visible_in = written.visible_in.clone();
    visible_in.sort();
    let mut status = DataProductStatus {
        observed_generation: stamp.generation,
        publisher_node: Some(plan.publisher.clone()),
        targets: plan.target_names(),
        visible_count: visible_in.len() as i32,
        visible_in,
        blocked_count: plan.blocked.len() as i32,
        blocked: plan.blocked.clone(),
        conditions: previous.conditions.clone(),
        last_sync_time: previous.last_sync_time.clone(),
        release_to_visible_millis: previous.release_to_visible_millis,
    };
    let published = ConditionUpdate::new(
        types::PUBLISHED,
        Status::True,
        reasons::PUBLISHED,
        format!("published by node {}", plan.publisher),
    );
    conditions::set(&mut status.conditions, published, stamp);
    let mut release_to_visible = None;
    if written.problems.is_empty() {
        let synced = ConditionUpdate::new(
            types::SYNCED,
            Status::True,
            reasons::SYNCED,
            format!("listed in the catalog of {} nodes", status.visible_count),
        );
        conditions::set(&mut status.conditions, synced, stamp);
        let first_sync_of_generation = previous.observed_generation != stamp.generation
            || !conditions::is_true(&previous.conditions, types::SYNCED)
            || previous.release_to_visible_millis.is_none();
        if first_sync_of_generation {
            let millis = stamp.now.duration_since(release_started).as_millis().max(0) as u64;
            status.release_to_visible_millis = Some(millis as i64);
            release_to_visible = Some(Duration::from_millis(millis));
        }
    } else {
        let message = written
            .problems
            .iter()
            .map(|(node, problem)| format!("{node}: {}", problem.message))
            .collect::<Vec<_>>()
            .join("; ");
        let reason = written.problems[0].1.reason;
        let synced = ConditionUpdate::new(types::SYNCED, Status::False, reason, message);
        conditions::set(&mut status.conditions, synced, stamp);
    }
    if written.changed || status.last_sync_time.is_none() {
        status.last_sync_time = Some(Time(stamp.now));
    }
    let blocked_note =
        (previous.blocked != status.blocked && !status.blocked.is_empty()).then(|| {
            let blocked: Vec<String> = plan
                .blocked
                .iter()
                .map(|b| format!("{} ({})", b.node, b.reason))
                .collect();
            format!("not listed at {}", blocked.join(", "))
        });
    Listed {
        status,
        release_to_visible,
        blocked_note,
    }
}

/// The status of a product no plan can be made for.
pub fn unplannable(
    previous: Option<&DataProductStatus>,
    why: &Unplannable,
    stamp: Stamp,
) -> DataProductStatus {
    match why {
        // Listed nowhere: nothing of an earlier listing stays in the status.
        Unplannable::NoPublisher(problem) => {
            let mut status = DataProductStatus {
                observed_generation: stamp.generation,
                conditions: previous.map(|p| p.conditions.clone()).unwrap_or_default(),
                ..Default::default()
            };
            let published =
                ConditionUpdate::from_problem(types::PUBLISHED, Status::False, problem.clone());
            let synced = ConditionUpdate::new(
                types::SYNCED,
                Status::False,
                problem.reason,
                "listed nowhere",
            );
            conditions::set(&mut status.conditions, published, stamp);
            conditions::set(&mut status.conditions, synced, stamp);
            status
        }
        // The listing stays as it was until the selector can be read.
        Unplannable::InvalidSelector(problem) => {
            let mut status = previous.cloned().unwrap_or_default();
            status.observed_generation = stamp.generation;
            let synced =
                ConditionUpdate::from_problem(types::SYNCED, Status::False, problem.clone());
            conditions::set(&mut status.conditions, synced, stamp);
            status
        }
    }
}

/// When to reconcile again: soon after a failed write, at the next expiry if
/// one comes before the resync, else at the resync.
pub fn requeue_after(plan: &Plan, written: &Written, now: Timestamp, resync: Duration) -> Duration {
    if !written.problems.is_empty() {
        return jittered(Duration::from_secs(10));
    }
    match plan.next_change {
        Some(until) => {
            let nanos = until.duration_since(now).as_nanos().max(1) as u64;
            Duration::from_nanos(nanos).min(resync)
        }
        None => jittered(resync),
    }
}

/// Writes `desired` unless it says what `known` (the freshest status known,
/// see [`known_status`]) already says.
pub async fn write_status(
    product: &DataProduct,
    known: Option<&DataProductStatus>,
    desired: DataProductStatus,
    ctx: &Context,
) -> Result<()> {
    if known.is_some_and(|current| conditions::same_ignoring_time(current, &desired)) {
        return Ok(());
    }
    let uid = product.uid().unwrap_or_default();
    let version = product.resource_version().unwrap_or_default();
    let api: Api<DataProduct> =
        Api::namespaced(ctx.client.clone(), &product.namespace().unwrap_or_default());
    apply_status(&api, product, managers::CATALOG, &desired).await?;
    ctx.status_writes.record(&uid, &version, &desired);
    Ok(())
}

/// The freshest status known for `product`: the one this process last wrote
/// if `product` is the very object it was written onto (a stale re-read, such
/// as the one the finalizer's watch event brings), else the object's own.
pub fn known_status(product: &DataProduct, ctx: &Context) -> Option<DataProductStatus> {
    let uid = product.uid().unwrap_or_default();
    let version = product.resource_version().unwrap_or_default();
    ctx.status_writes
        .written_onto(&uid, &version)
        .or_else(|| product.status.clone())
}
