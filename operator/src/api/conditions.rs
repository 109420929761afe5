//! `metav1.Condition` helpers shared by every kind.
//!
//! Conditions follow the Kubernetes API conventions: a list map keyed by
//! `type`, `lastTransitionTime` kept unless the status flips, and
//! `observedGeneration` set to the generation the controller acted on. Types and
//! reasons are constants so the controllers, tests and docs agree on spelling.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

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

    pub fn from_bool(value: bool) -> Self {
        if value { Status::True } else { Status::False }
    }
}

/// Sets (adds or replaces) the condition of `type_` in `conditions`.
///
/// `lastTransitionTime` is kept from the existing condition unless the status
/// changes, so re-asserting the same state never looks like a transition.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) {
    let message = message.into();
    let existing = conditions.iter_mut().find(|c| c.type_ == type_);
    match existing {
        Some(c) => {
            if c.status != status.as_str() {
                c.last_transition_time = Time(now);
                c.status = status.as_str().to_owned();
            }
            c.reason = reason.to_owned();
            c.message = message;
            c.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.as_str().to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation,
            last_transition_time: Time(now),
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

/// Compares two condition lists ignoring `lastTransitionTime`, so a status write
/// can be skipped when nothing but a timestamp would change.
pub fn equal_ignoring_time(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| {
            find(b, &x.type_).is_some_and(|y| {
                x.status == y.status
                    && x.reason == y.reason
                    && x.message == y.message
                    && x.observed_generation == y.observed_generation
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn set_keeps_transition_time_when_status_is_unchanged() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            types::READY,
            Status::True,
            "Probed",
            "ok",
            Some(1),
            at(10),
        );
        set(
            &mut conditions,
            types::READY,
            Status::True,
            "Probed",
            "still ok",
            Some(2),
            at(20),
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
            types::READY,
            Status::True,
            "Probed",
            "ok",
            None,
            at(10),
        );
        set(
            &mut conditions,
            types::READY,
            Status::False,
            "Timeout",
            "late",
            None,
            at(30),
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
            types::READY,
            Status::True,
            "Probed",
            "ok",
            Some(1),
            at(10),
        );
        set(
            &mut b,
            types::READY,
            Status::True,
            "Probed",
            "ok",
            Some(1),
            at(99),
        );
        assert!(equal_ignoring_time(&a, &b));
        set(
            &mut b,
            types::READY,
            Status::True,
            "Probed",
            "other",
            Some(1),
            at(99),
        );
        assert!(!equal_ignoring_time(&a, &b));
    }
}
