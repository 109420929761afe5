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
use crate::api::conditions::{self, ConditionUpdate, Problem, Stamp, Status, types};
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
    let unsettled: Vec<&(String, Problem)> = written
        .problems
        .iter()
        .chain(&written.withdrawals_pending)
        .collect();
    if unsettled.is_empty() {
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
        let message = unsettled
            .iter()
            .map(|(node, problem)| format!("{node}: {}", problem.message))
            .collect::<Vec<_>>()
            .join("; ");
        let reason = unsettled[0].1.reason;
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
                .map(|b| format!("{} ({}, rule {})", b.node, b.reason, b.rule))
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

/// When to reconcile again: soon after a failed write; as soon as a member
/// holding a pending withdrawal may be tried again (`member_retry`: the end of
/// its backoff), so a recovered member is cleaned at once; at the next expiry
/// if one comes before the resync; else at the resync.
pub fn requeue_after(
    plan: &Plan,
    written: &Written,
    member_retry: Option<Duration>,
    now: Timestamp,
    resync: Duration,
) -> Duration {
    if !written.withdrawals_pending.is_empty() {
        let retry = member_retry.unwrap_or_default() + Duration::from_millis(100);
        return retry.min(Duration::from_secs(10));
    }
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

#[cfg(test)]
mod tests {
    use super::super::facts::gather;
    use super::super::fixtures::{around, node, product};
    use super::super::plan::plan;
    use super::*;
    use crate::api::conditions::Problem;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn stamp(second: i64) -> Stamp {
        Stamp {
            generation: Some(1),
            now: at(second),
        }
    }

    /// A Shenzhen product of `classification` planned over Shenzhen, Guangzhou and Hong Kong.
    fn planned(classification: &str) -> Plan {
        let nodes = vec![
            node("shenzhen", "CN", None),
            node("guangzhou", "CN", None),
            node("hongkong", "HK", None),
        ];
        let product = product(
            "dfn-shenzhen",
            "ports",
            serde_json::json!({"classification": classification}),
        );
        plan(
            &product,
            &gather(&product, around(&nodes, at(0))).unwrap(),
            at(0),
        )
    }

    fn written_everywhere(plan: &Plan) -> Written {
        Written {
            visible_in: plan.target_names(),
            problems: Vec::new(),
            withdrawals_pending: Vec::new(),
            changed: true,
        }
    }

    /// The status after `plan` was first written everywhere, at second 5.
    fn first_listing(plan: &Plan) -> Listed {
        let written = written_everywhere(plan);
        listed(
            &DataProductStatus::default(),
            plan,
            &written,
            stamp(5),
            at(2),
        )
    }

    fn condition<'a>(status: &'a DataProductStatus, type_: &str) -> (&'a str, &'a str) {
        let c = conditions::find(&status.conditions, type_).expect("condition set");
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn a_first_sync_reports_targets_blocks_and_the_release_latency() {
        let plan = planned("ImportantData");
        let listed = first_listing(&plan);
        let status = &listed.status;
        assert_eq!(status.visible_in, ["guangzhou", "shenzhen"]);
        assert_eq!((status.visible_count, status.blocked_count), (2, 1));
        assert_eq!(condition(status, types::SYNCED), ("True", "Synced"));
        assert_eq!(condition(status, types::PUBLISHED), ("True", "Published"));
        assert_eq!(listed.release_to_visible, Some(Duration::from_secs(3)));
        assert_eq!(status.release_to_visible_millis, Some(3000));
        assert_eq!(
            listed.blocked_note.as_deref(),
            Some("not listed at hongkong (NoCrossBorderMechanism, rule 12)")
        );
        assert_eq!(status.last_sync_time, Some(Time(at(5))));
    }

    #[test]
    fn a_resync_that_changes_nothing_reports_nothing_new() {
        let plan = planned("ImportantData");
        let first = first_listing(&plan);
        let unchanged = Written {
            changed: false,
            ..written_everywhere(&plan)
        };
        let again = listed(&first.status, &plan, &unchanged, stamp(60), at(2));
        assert_eq!(
            again.release_to_visible, None,
            "latency is measured once per generation"
        );
        assert_eq!(
            again.blocked_note, None,
            "the same blocks raise no new event"
        );
        assert!(conditions::same_ignoring_time(&first.status, &again.status));
        assert_eq!(
            again.status.last_sync_time,
            Some(Time(at(5))),
            "no write, no new sync time"
        );
    }

    #[test]
    fn a_failed_write_names_the_node_and_keeps_the_latency_open() {
        let plan = planned("Public");
        let written = Written {
            visible_in: vec!["shenzhen".into(), "guangzhou".into()],
            problems: vec![(
                "hongkong".into(),
                Problem::new("MemberClusterUnreachable", "connection refused"),
            )],
            withdrawals_pending: Vec::new(),
            changed: true,
        };
        let listed = listed(
            &DataProductStatus::default(),
            &plan,
            &written,
            stamp(5),
            at(2),
        );
        let synced = conditions::find(&listed.status.conditions, types::SYNCED).unwrap();
        assert_eq!(
            (synced.status.as_str(), synced.reason.as_str()),
            ("False", "MemberClusterUnreachable")
        );
        assert_eq!(synced.message, "hongkong: connection refused");
        assert_eq!(listed.release_to_visible, None);
        let wake = requeue_after(&plan, &written, None, at(5), Duration::from_secs(300));
        assert!(
            wake < Duration::from_secs(16),
            "a failed write is retried soon: {wake:?}"
        );
    }

    #[test]
    fn a_withdrawal_waiting_on_a_member_is_not_synced_and_retried_when_the_member_may_be() {
        let plan = planned("Public");
        let written = Written {
            withdrawals_pending: vec![(
                "macao".into(),
                Problem::new(
                    reasons::WITHDRAWAL_PENDING,
                    "still listed in macao's member cluster",
                ),
            )],
            ..written_everywhere(&plan)
        };
        let listed = listed(
            &DataProductStatus::default(),
            &plan,
            &written,
            stamp(5),
            at(2),
        );
        let synced = conditions::find(&listed.status.conditions, types::SYNCED).unwrap();
        assert_eq!(
            (synced.status.as_str(), synced.reason.as_str()),
            ("False", reasons::WITHDRAWAL_PENDING)
        );
        assert!(synced.message.starts_with("macao: "), "{}", synced.message);
        let member_retry = Some(Duration::from_secs(3));
        let wake = requeue_after(
            &plan,
            &written,
            member_retry,
            at(5),
            Duration::from_secs(300),
        );
        assert_eq!(
            wake,
            Duration::from_millis(3100),
            "at the end of the member's backoff"
        );
    }

    #[test]
    fn the_next_look_is_at_the_mechanism_expiry_when_it_comes_before_the_resync() {
        let mut plan = planned("Public");
        plan.next_change = Some(at(65));
        let written = written_everywhere(&plan);
        let resync = Duration::from_secs(300);
        assert_eq!(
            requeue_after(&plan, &written, None, at(5), resync),
            Duration::from_secs(60)
        );
        plan.next_change = Some(at(10_000));
        assert_eq!(requeue_after(&plan, &written, None, at(5), resync), resync);
    }

    #[test]
    fn a_product_without_a_publisher_is_listed_nowhere_and_says_why() {
        let plan = planned("Public");
        let before = first_listing(&plan).status;
        let why = Unplannable::NoPublisher(Problem::new(reasons::NO_PUBLISHER_NODE, "no node"));
        let status = unplannable(Some(&before), &why, stamp(9));
        assert!(status.visible_in.is_empty() && status.targets.is_empty());
        assert_eq!(status.publisher_node, None);
        assert_eq!(
            condition(&status, types::PUBLISHED),
            ("False", "NoPublisherNode")
        );
        assert_eq!(
            condition(&status, types::SYNCED),
            ("False", "NoPublisherNode")
        );
    }

    #[test]
    fn an_unreadable_selector_keeps_the_listing_and_says_why() {
        let plan = planned("Public");
        let before = first_listing(&plan).status;
        let why = Unplannable::InvalidSelector(Problem::new(reasons::INVALID_SELECTOR, "bad"));
        let status = unplannable(Some(&before), &why, stamp(9));
        assert_eq!(status.visible_in, before.visible_in);
        assert_eq!(
            condition(&status, types::SYNCED),
            ("False", "InvalidNodeSelector")
        );
        assert_eq!(condition(&status, types::PUBLISHED), ("True", "Published"));
    }
}
