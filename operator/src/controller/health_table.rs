//! Live probe state of every node gateway and link channel, kept in memory so
//! probes never need a status write: the reconcilers read and update it, the
//! metrics collector reads it at scrape time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::probe::Health;

/// What is tracked per endpoint.
#[derive(Clone, Debug, Default)]
struct Tracked {
    /// False until the first update seeded `health` (from the object's status).
    seeded: bool,
    health: Health,
    last_probe: Option<Instant>,
    /// The spec generation the last probe used; a new generation probes at once.
    generation: Option<i64>,
    /// The generation whose home namespace has been ensured.
    namespace_ensured: Option<i64>,
}

/// Probe state keyed by node name (`node/<name>`) or link name (`link/<name>`).
#[derive(Default)]
pub struct HealthTable {
    endpoints: Mutex<HashMap<String, Tracked>>,
}

fn node_key(name: &str) -> String {
    format!("node/{name}")
}

fn link_key(name: &str) -> String {
    format!("link/{name}")
}

impl HealthTable {
    /// A node's current health, if it has been probed by this process.
    pub fn node(&self, name: &str) -> Option<Health> {
        self.get(&node_key(name)).map(|t| t.health)
    }

    /// A link channel's current health, if it has been probed by this process.
    pub fn link(&self, name: &str) -> Option<Health> {
        self.get(&link_key(name)).map(|t| t.health)
    }

    fn get(&self, key: &str) -> Option<Tracked> {
        self.endpoints
            .lock()
            .expect("health lock")
            .get(key)
            .cloned()
    }

    /// How long until the node is due for a probe (`None`: due now).
    pub fn node_due_in(
        &self,
        name: &str,
        generation: Option<i64>,
        interval: Duration,
    ) -> Option<Duration> {
        self.due_in(&node_key(name), generation, interval)
    }

    /// How long until the link channel is due for a probe (`None`: due now).
    pub fn link_due_in(
        &self,
        name: &str,
        generation: Option<i64>,
        interval: Duration,
    ) -> Option<Duration> {
        self.due_in(&link_key(name), generation, interval)
    }

    fn due_in(&self, key: &str, generation: Option<i64>, interval: Duration) -> Option<Duration> {
        let endpoints = self.endpoints.lock().expect("health lock");
        let tracked = endpoints.get(key)?;
        if tracked.generation != generation {
            return None;
        }
        let elapsed = tracked.last_probe?.elapsed();
        interval.checked_sub(elapsed).filter(|left| !left.is_zero())
    }

    /// Updates a node's health with `update`, starting from `initial` the first time.
    pub fn update_node<R>(
        &self,
        name: &str,
        generation: Option<i64>,
        initial: impl FnOnce() -> Health,
        update: impl FnOnce(&mut Health) -> R,
    ) -> (Health, R) {
        self.update(&node_key(name), generation, initial, update)
    }

    /// Updates a link channel's health, starting from `initial` the first time.
    pub fn update_link<R>(
        &self,
        name: &str,
        generation: Option<i64>,
        initial: impl FnOnce() -> Health,
        update: impl FnOnce(&mut Health) -> R,
    ) -> (Health, R) {
        self.update(&link_key(name), generation, initial, update)
    }

    fn update<R>(
        &self,
        key: &str,
        generation: Option<i64>,
        initial: impl FnOnce() -> Health,
        update: impl FnOnce(&mut Health) -> R,
    ) -> (Health, R) {
        let mut endpoints = self.endpoints.lock().expect("health lock");
        let tracked = endpoints.entry(key.to_owned()).or_default();
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
    pub fn namespace_ensured(&self, name: &str, generation: Option<i64>) -> bool {
        let endpoints = self.endpoints.lock().expect("health lock");
        endpoints
            .get(&node_key(name))
            .is_some_and(|t| t.namespace_ensured.is_some() && t.namespace_ensured == generation)
    }

    /// Records that the node's home namespace exists for this generation.
    pub fn mark_namespace_ensured(&self, name: &str, generation: Option<i64>) {
        let mut endpoints = self.endpoints.lock().expect("health lock");
        endpoints
            .entry(node_key(name))
            .or_default()
            .namespace_ensured = generation;
    }

    pub fn forget_node(&self, name: &str) {
        self.endpoints
            .lock()
            .expect("health lock")
            .remove(&node_key(name));
    }

    pub fn forget_link(&self, name: &str) {
        self.endpoints
            .lock()
            .expect("health lock")
            .remove(&link_key(name));
    }
}
