//! Live probe state of every node gateway and link channel, kept in memory so
//! probes never need a status write: the reconcilers read and update it, the
//! metrics collector reads it at scrape time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Health;

/// What is probed: a node's gateway or a link's channel, by object name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint<'a> {
    Node(&'a str),
    Link(&'a str),
}

impl Endpoint<'_> {
    fn key(self) -> (bool, String) {
        match self {
            Endpoint::Node(name) => (true, name.to_owned()),
            Endpoint::Link(name) => (false, name.to_owned()),
        }
    }
}

/// What is tracked per endpoint.
#[derive(Clone, Debug, Default)]
struct Tracked {
    /// False until the first update seeded `health` (from the object's status).
    seeded: bool,
    health: Health,
    last_probe: Option<Instant>,
    /// The spec generation the last probe used; a new generation probes at once.
    generation: Option<i64>,
    /// For nodes: the generation whose home namespace has been ensured.
    namespace_ensured: Option<i64>,
}

/// Probe state by endpoint.
#[derive(Default)]
pub struct HealthTable {
    endpoints: Mutex<HashMap<(bool, String), Tracked>>,
}

impl HealthTable {
    /// The endpoint's current health, if this process has probed it.
    pub fn health(&self, endpoint: Endpoint) -> Option<Health> {
        let endpoints = self.endpoints.lock().expect("health lock");
        endpoints
            .get(&endpoint.key())
            .filter(|t| t.seeded)
            .map(|t| t.health.clone())
    }

    /// How long until the endpoint is due for a probe (`None`: due now).
    pub fn due_in(
        &self,
        endpoint: Endpoint,
        generation: Option<i64>,
        interval: Duration,
    ) -> Option<Duration> {
        let endpoints = self.endpoints.lock().expect("health lock");
        let tracked = endpoints.get(&endpoint.key())?;
        if tracked.generation != generation {
            return None;
        }
        let elapsed = tracked.last_probe?.elapsed();
        interval.checked_sub(elapsed).filter(|left| !left.is_zero())
    }

    /// Folds a probe into the endpoint's health with `update`, seeding it from
    /// `initial` the first time; returns the new health and `update`'s result.
    pub fn update<R>(
        &self,
        endpoint: Endpoint,
        generation: Option<i64>,
        initial: impl FnOnce() -> Health,
        update: impl FnOnce(&mut Health) -> R,
    ) -> (Health, R) {
        let mut endpoints = self.endpoints.lock().expect("health lock");
        let tracked = endpoints.entry(endpoint.key()).or_default();
        if !tracked.seeded {
            tracked.health = initial();
            tracked.seeded = true;
        }
        let result = update(&mut tracked.health);
        tracked.last_probe = Some(Instant::now());
        tracked.generation = generation;
        (tracked.health.clone(), result)
    }

    /// Whether the node's home namespace was ensured for this generation.
    pub fn namespace_ensured(&self, node: &str, generation: Option<i64>) -> bool {
        let endpoints = self.endpoints.lock().expect("health lock");
        endpoints
            .get(&Endpoint::Node(node).key())
            .is_some_and(|t| t.namespace_ensured.is_some() && t.namespace_ensured == generation)
    }

    /// Records that the node's home namespace exists for this generation.
    pub fn mark_namespace_ensured(&self, node: &str, generation: Option<i64>) {
        let mut endpoints = self.endpoints.lock().expect("health lock");
        endpoints
            .entry(Endpoint::Node(node).key())
            .or_default()
            .namespace_ensured = generation;
    }

    /// Forgets an endpoint whose object was deleted.
    pub fn forget(&self, endpoint: Endpoint) {
        self.endpoints
            .lock()
            .expect("health lock")
            .remove(&endpoint.key());
    }
}
