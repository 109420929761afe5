//! The health of one probed endpoint, folded from probe outcomes: a smoothed
//! round-trip time, consecutive failures, and the phase they imply.
//!
//! Reachable after one success; Unreachable only after `failure_threshold`
//! failures in a row, so one lost probe never flips anything; Degraded while the
//! smoothed RTT is above half the probe timeout. Pure, so every transition is
//! unit-tested without a network.

use std::time::Duration;

use super::{FailureKind, ProbeOutcome};
use crate::api::NodePhase;

/// Weight of the newest sample in the smoothed RTT.
const RTT_SMOOTHING: f64 = 0.2;

/// The health of an endpoint.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Health {
    pub phase: NodePhase,
    /// Probes failed in a row.
    pub consecutive_failures: u32,
    /// Exponentially smoothed RTT in milliseconds, once a probe has succeeded.
    pub smoothed_rtt_millis: Option<f64>,
    /// The most recent failure, kept until the next success.
    pub last_failure: Option<(FailureKind, String)>,
    /// HTTP status of the most recent success.
    pub last_status: Option<u16>,
}

/// What one observation changed, for events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    pub previous: NodePhase,
    pub current: NodePhase,
}

impl Observation {
    pub fn changed(&self) -> bool {
        self.previous != self.current
    }
}

impl Health {
    /// Resumes from what a status recorded (after an operator restart), so a
    /// restart neither forgets an outage nor invents one.
    pub fn resume(phase: NodePhase, consecutive_failures: u32, rtt_millis: Option<f64>) -> Self {
        Health {
            phase,
            consecutive_failures,
            smoothed_rtt_millis: rtt_millis,
            ..Default::default()
        }
    }

    /// Folds one probe outcome into the health.
    pub fn observe(
        &mut self,
        outcome: &ProbeOutcome,
        failure_threshold: u32,
        timeout: Duration,
    ) -> Observation {
        let previous = self.phase;
        match outcome {
            ProbeOutcome::Success { rtt, status } => {
                let sample = rtt.as_secs_f64() * 1000.0;
                let smoothed = match self.smoothed_rtt_millis {
                    Some(old) if previous != NodePhase::Unreachable => {
                        old + RTT_SMOOTHING * (sample - old)
                    }
                    _ => sample,
                };
                self.smoothed_rtt_millis = Some(smoothed);
                self.consecutive_failures = 0;
                self.last_failure = None;
                self.last_status = Some(*status);
                self.phase = if smoothed > slow_threshold_millis(timeout) {
                    NodePhase::Degraded
                } else {
                    NodePhase::Ready
                };
            }
            ProbeOutcome::Failure { kind, message } => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.last_failure = Some((*kind, message.clone()));
                if self.consecutive_failures >= failure_threshold.max(1) {
                    self.phase = NodePhase::Unreachable;
                }
            }
        }
        Observation {
            previous,
            current: self.phase,
        }
    }
}

/// Whether an RTT change is worth a status write: at least 10 ms and a factor
/// of two, or a value appearing or vanishing. Anything less is jitter (seen at
/// 1,000 gateways on a loaded machine: a 25% rule rewrote statuses 160 times a
/// second); the live value is in the metrics.
pub fn rtt_moved(old: Option<f64>, new: Option<f64>) -> bool {
    match (old, new) {
        (Some(a), Some(b)) => {
            let (low, high) = if a < b { (a, b) } else { (b, a) };
            high - low >= 10.0 && high >= 2.0 * low
        }
        (None, None) => false,
        _ => true,
    }
}

/// Above this smoothed RTT an endpoint is Degraded: half the probe timeout.
pub fn slow_threshold_millis(timeout: Duration) -> f64 {
    timeout.as_secs_f64() * 1000.0 / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TIMEOUT: Duration = Duration::from_secs(3);

    fn ok(ms: u64) -> ProbeOutcome {
        ProbeOutcome::Success {
            rtt: Duration::from_millis(ms),
            status: 200,
        }
    }

    fn fail() -> ProbeOutcome {
        ProbeOutcome::Failure {
            kind: FailureKind::ConnectionRefused,
            message: "refused".into(),
        }
    }

    #[test]
    fn one_success_makes_a_pending_endpoint_ready() {
        let mut h = Health::default();
        let o = h.observe(&ok(5), 3, TIMEOUT);
        assert_eq!(
            (o.previous, o.current),
            (NodePhase::Pending, NodePhase::Ready)
        );
        assert_eq!(h.smoothed_rtt_millis, Some(5.0));
    }

    #[test]
    fn unreachable_only_after_the_threshold_and_back_after_one_success() {
        let mut h = Health::default();
        h.observe(&ok(5), 3, TIMEOUT);
        assert!(!h.observe(&fail(), 3, TIMEOUT).changed());
        assert!(!h.observe(&fail(), 3, TIMEOUT).changed());
        assert_eq!(h.phase, NodePhase::Ready, "no flapping below the threshold");
        let o = h.observe(&fail(), 3, TIMEOUT);
        assert_eq!(o.current, NodePhase::Unreachable);
        assert_eq!(h.consecutive_failures, 3);
        let o = h.observe(&ok(7), 3, TIMEOUT);
        assert_eq!(o.current, NodePhase::Ready);
        assert_eq!(
            h.smoothed_rtt_millis,
            Some(7.0),
            "RTT restarts from the first sample after an outage"
        );
        assert_eq!(h.last_failure, None);
    }

    #[test]
    fn slow_answers_degrade_and_fast_ones_recover() {
        let mut h = Health::default();
        h.observe(&ok(2000), 3, TIMEOUT);
        assert_eq!(h.phase, NodePhase::Degraded);
        for _ in 0..20 {
            h.observe(&ok(10), 3, TIMEOUT);
        }
        assert_eq!(h.phase, NodePhase::Ready);
    }

    #[test]
    fn rtt_jitter_is_not_material_but_a_real_shift_is() {
        assert!(!rtt_moved(Some(0.3), Some(4.0)), "loopback jitter");
        assert!(!rtt_moved(Some(30.0), Some(50.0)), "within a factor of two");
        assert!(!rtt_moved(Some(2.0), Some(9.0)), "under 10 ms apart");
        assert!(rtt_moved(Some(30.0), Some(60.0)));
        assert!(rtt_moved(Some(60.0), Some(20.0)));
        assert!(rtt_moved(None, Some(1.0)));
        assert!(!rtt_moved(None, None));
    }

    #[test]
    fn a_never_reached_endpoint_stays_pending_until_the_threshold() {
        let mut h = Health::default();
        h.observe(&fail(), 2, TIMEOUT);
        assert_eq!(h.phase, NodePhase::Pending);
        h.observe(&fail(), 2, TIMEOUT);
        assert_eq!(h.phase, NodePhase::Unreachable);
    }

    proptest! {
        #[test]
        fn phase_follows_the_last_probes(outcomes in proptest::collection::vec(prop_oneof![(0u64..3000).prop_map(ok), Just(fail())], 1..60), threshold in 1u32..6) {
            let mut h = Health::default();
            for o in &outcomes {
                h.observe(o, threshold, TIMEOUT);
            }
            let trailing_failures = outcomes.iter().rev().take_while(|o| matches!(o, ProbeOutcome::Failure { .. })).count() as u32;
            prop_assert_eq!(h.consecutive_failures, trailing_failures);
            prop_assert_eq!(h.phase == NodePhase::Unreachable, trailing_failures >= threshold);
            if let Some(rtt) = h.smoothed_rtt_millis {
                prop_assert!((0.0..3000.0).contains(&rtt));
            }
        }
    }
}
