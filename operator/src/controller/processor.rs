//! Processor reconciler: this year's totals of a DataProcessor and the tier
//! they put it in, in its status. The catalog reconciler computes the same
//! tier from the same caches when it plans a product; a change of tier here
//! wakes every product of the processor, so all of them move together.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::catalog::facts::{Surroundings, processor_totals};
use super::status::{apply_status, managers, publish_event};
use super::{Context, Result, jittered};
use crate::api::conditions::{self, ConditionUpdate, Stamp, Status, types};
use crate::api::{DataProcessor, DataProcessorStatus, ProcessorTier};
use crate::policy::{self, Totals};

/// Condition reasons of the processor reconciler.
pub mod reasons {
    pub const COUNTED: &str = "Counted";
    pub const NODE_MISSING: &str = "NodeMissing";
}

pub async fn reconcile(processor: Arc<DataProcessor>, ctx: Arc<Context>) -> Result<Action> {
    if !ctx.catalog_ready() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let stamp = Stamp {
        generation: processor.metadata.generation,
        now: ctx.now(),
    };
    let (nodes, products) = (ctx.nodes.state(), ctx.products.state());
    let around = Surroundings {
        nodes: &nodes,
        products: &products,
        processors: &[],
        zones: &[],
        now: stamp.now,
    };
    let node_exists = nodes.iter().any(|n| n.name_any() == processor.spec.node);
    let totals = processor_totals(&processor, around);
    let tier = policy::tier(&totals, processor.spec.critical_information_infrastructure);
    let desired = desired_status(&processor, &totals, tier, node_exists, stamp);
    let current = processor.status.as_ref();
    let previous_tier = current.and_then(|s| s.tier);
    if !current.is_some_and(|c| conditions::same_ignoring_time(c, &desired)) {
        let api: Api<DataProcessor> = Api::all(ctx.client.clone());
        apply_status(&api, processor.as_ref(), managers::PROCESSOR, &desired).await?;
    }
    if previous_tier.is_some_and(|previous| previous != tier) {
        let note = format!(
            "{} individuals, {} sensitive this year: now needs {}",
            totals.individuals,
            totals.sensitive_individuals,
            tier.as_str()
        );
        let event = EventType::Normal;
        publish_event(
            &ctx.recorder,
            processor.as_ref(),
            event,
            "TierChanged",
            "Count",
            note,
        )
        .await;
    }
    // The year's totals restart on 1 January (UTC+8).
    let year_turn = policy::next_year_start(stamp.now);
    let until_year_turn =
        Duration::from_secs(year_turn.duration_since(stamp.now).as_secs().max(1) as u64);
    Ok(Action::requeue(
        jittered(ctx.settings.resync).min(until_year_turn),
    ))
}

/// The status `totals` and `tier` imply.
pub fn desired_status(
    processor: &DataProcessor,
    totals: &Totals,
    tier: ProcessorTier,
    node_exists: bool,
    stamp: Stamp,
) -> DataProcessorStatus {
    let mut status = DataProcessorStatus {
        observed_generation: stamp.generation,
        year: Some(totals.year),
        individuals: i64::try_from(totals.individuals).unwrap_or(i64::MAX),
        sensitive_individuals: i64::try_from(totals.sensitive_individuals).unwrap_or(i64::MAX),
        tier: Some(tier),
        conditions: processor
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
    };
    let counted = if node_exists {
        ConditionUpdate::new(
            types::COUNTED,
            Status::True,
            reasons::COUNTED,
            format!("{} this year: {}", totals.year, tier.as_str()),
        )
    } else {
        ConditionUpdate::new(
            types::COUNTED,
            Status::False,
            reasons::NODE_MISSING,
            format!("DataFlowNode {} does not exist", processor.spec.node),
        )
    };
    conditions::set(&mut status.conditions, counted, stamp);
    status
}
