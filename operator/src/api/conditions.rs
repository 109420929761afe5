//! `metav1.Condition` helpers shared by every kind.
//!
//! Conditions follow the Kubernetes API conventions: a list map keyed by
//! `type`, `lastTransitionTime` kept unless the status flips, and
//! `observedGeneration` set to the generation the controller acted on. Types and
//! reasons are constants so the controllers, tests and docs agree on spelling.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

/// Condition types.
pub mod types {
    pub const READY: &str = "Ready";
    pub const REACHABLE: &str = "Reachable";
    pub const CATALOG_SYNCED: &str = "CatalogSynced";
    pub const ENDPOINTS_READY: &str = "EndpointsReady";
    pub const ESTABLISHED: &str = "Established";
    pub const WITHIN_SLO: &str = "WithinSLO";
    pub const INTERCONNECTED: &str = "Interconnected";
    pub const COVERAGE_MET: &str = "CoverageMet";
    pub const TOPOLOGY_RECONCILED: &str = "TopologyReconciled";
    pub const PUBLISHED: &str = "Published";
    pub const SYNCED: &str = "Synced";
    pub const COUNTED: &str = "Counted";
    pub const LEDGER_WITNESSED: &str = "LedgerWitnessed";
}

/// The three condition statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// When a condition is asserted: the generation acted on, and the time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stamp {
    pub generation: Option<i64>,
    pub now: Timestamp,
}

/// Something a controller cannot act on: the reason a condition and an event
/// carry, and a message that says what to fix.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Problem {
            reason,
            message: message.into(),
        }
    }
}

/// One condition as a controller asserts it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionUpdate {
    pub type_: &'static str,
    pub status: Status,
    pub reason: &'static str,
    pub message: String,
}

impl ConditionUpdate {
    pub fn new(
        type_: &'static str,
        status: Status,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ConditionUpdate {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }

    /// The condition `problem` implies.
    pub fn from_problem(type_: &'static str, status: Status, problem: Problem) -> Self {
        Self::new(type_, status, problem.reason, problem.message)
    }
}

/// Sets (adds or replaces) the condition `update` describes.
///
/// `lastTransitionTime` is kept from the existing condition unless the status
/// changes, so re-asserting the same state never looks like a transition.
pub fn set(conditions: &mut Vec<Condition>, update: ConditionUpdate, stamp: Stamp) {
    let ConditionUpdate {
        type_,
        status,
        reason,
        message,
    } = update;
    let existing = conditions.iter_mut().find(|c| c.type_ == type_);
    match existing {
        Some(c) => {
            if c.status != status.as_str() {
                c.last_transition_time = Time(stamp.now);
                c.status = status.as_str().to_owned();
            }
            c.reason = reason.to_owned();
            c.message = message;
            c.observed_generation = stamp.generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.as_str().to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: stamp.generation,
            last_transition_time: Time(stamp.now),
        }),
    }
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// The fields that only say when something was last done or seen.
const TIME_FIELDS: [&str; 3] = ["lastTransitionTime", "lastSyncTime", "lastProbeTime"];

/// Whether two statuses (or condition lists) say the same thing once every
/// timestamp is left out, so a write can be skipped when only a time would
/// change. Conditions are compared as the list map they are, by type.
pub fn same_ignoring_time<T: Serialize>(a: &T, b: &T) -> bool {
    fn normalised(value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .filter(|(key, _)| !TIME_FIELDS.contains(&key.as_str()))
                    .map(|(key, value)| (key, normalised(value)))
                    .collect(),
            ),
            Value::Array(items) => {
                let mut items: Vec<Value> = items.into_iter().map(normalised).collect();
                if items.iter().all(|i| i.get("type").is_some()) {
                    items.sort_by(|x, y| x["type"].to_string().cmp(&y["type"].to_string()));
                }
                Value::Array(items)
            }
            other => other,
        }
    }
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(a), Ok(b)) => normalised(a) == normalised(b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn stamp(generation: Option<i64>, second: i64) -> Stamp {
        Stamp {
            generation,
            now: at(second),
        }
    }

    fn ready(status: Status, reason: &'static str, message: &str) -> ConditionUpdate {
        ConditionUpdate::new(types::READY, status, reason, message)
    }

    #[test]
    fn set_keeps_transition_time_when_status_is_unchanged() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            ready(Status::True, "Probed", "ok"),
            stamp(Some(1), 10),
        );
        set(
            &mut conditions,
            ready(Status::True, "Probed", "still ok"),
            stamp(Some(2), 20),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, Time(at(10)));
        assert_eq!(conditions[0].message, "still ok");
        assert_eq!(conditions[0].observed_generation, Some(2));
    }

    #[test]
    fn set_moves_transition_time_when_status_flips() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            ready(Status::True, "Probed", "ok"),
            stamp(None, 10),
        );
        set(
            &mut conditions,
            ready(Status::False, "Timeout", "late"),
            stamp(None, 30),
        );
        assert_eq!(conditions[0].last_transition_time, Time(at(30)));
        assert_eq!(conditions[0].status, "False");
        assert!(!is_true(&conditions, types::READY));
    }

    #[test]
    fn equality_ignores_only_timestamps() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        set(
            &mut a,
            ready(Status::True, "Probed", "ok"),
            stamp(Some(1), 10),
        );
        set(
            &mut b,
            ready(Status::True, "Probed", "ok"),
            stamp(Some(1), 99),
        );
        assert!(same_ignoring_time(&a, &b));
        set(
            &mut b,
            ready(Status::True, "Probed", "other"),
            stamp(Some(1), 99),
        );
        assert!(!same_ignoring_time(&a, &b));
    }

    #[test]
    fn equality_reads_conditions_as_a_map_by_type() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let synced = ConditionUpdate::new(types::SYNCED, Status::True, "Synced", "ok");
        set(&mut a, ready(Status::True, "Probed", "ok"), stamp(None, 1));
        set(&mut a, synced.clone(), stamp(None, 1));
        set(&mut b, synced, stamp(None, 5));
        set(&mut b, ready(Status::True, "Probed", "ok"), stamp(None, 5));
        assert!(same_ignoring_time(&a, &b));
        b.pop();
        assert!(!same_ignoring_time(&a, &b));
    }
}
