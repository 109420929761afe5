//! What this process wrote and when, remembered between reconciles: the
//! watches echo every write back a moment later, and these records tell an
//! echo (nothing to do) from someone else's change (put things right), and a
//! product's release time from a later resync.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::DataProductStatus;
use crate::topology::LinkPair;

/// The last status this process wrote for each product, with the resource
/// version of the object it was written onto. A reconcile that runs on that
/// same (now stale) object, such as the one the finalizer's own watch event
/// triggers, would otherwise take it for a first sync and write again.
#[derive(Default)]
pub struct StatusWrites {
    by_uid: Mutex<HashMap<String, (String, DataProductStatus)>>,
}

impl StatusWrites {
    /// The status written onto resource version `based_on` of product `uid`.
    pub fn written_onto(&self, uid: &str, based_on: &str) -> Option<DataProductStatus> {
        let by_uid = self.by_uid.lock().expect("status writes lock");
        by_uid
            .get(uid)
            .filter(|(version, _)| version == based_on)
            .map(|(_, written)| written.clone())
    }

    pub fn record(&self, uid: &str, based_on: &str, written: &DataProductStatus) {
        self.by_uid
            .lock()
            .expect("status writes lock")
            .insert(uid.to_owned(), (based_on.to_owned(), written.clone()));
    }

    pub fn forget(&self, uid: &str) {
        self.by_uid.lock().expect("status writes lock").remove(uid);
    }
}

/// When each product generation was released, for release-to-visible latency:
/// the moment this process first saw the generation, or the product's creation
/// when the operator was not running then.
#[derive(Default)]
pub struct ReleaseClock {
    seen: Mutex<HashMap<String, (Option<i64>, Timestamp)>>,
}

impl ReleaseClock {
    pub fn started(
        &self,
        uid: &str,
        generation: Option<i64>,
        created: Option<&Time>,
        now: Timestamp,
    ) -> Timestamp {
        let mut seen = self.seen.lock().expect("release clock lock");
        let entry = seen.entry(uid.to_owned()).or_insert_with(|| {
            // First sight in this process: a product created well before now was
            // released while the operator was away; count from its creation.
            let start = match (generation, created) {
                (Some(1), Some(created)) if now.duration_since(created.0).as_secs_f64() > 2.0 => {
                    created.0
                }
                _ => now,
            };
            (generation, start)
        });
        if entry.0 != generation {
            *entry = (generation, now);
        }
        entry.1
    }

    pub fn forget(&self, uid: &str) {
        self.seen.lock().expect("release clock lock").remove(uid);
    }
}

/// Hub entries this process wrote, with their content hash, so a product
/// reconciled again before the entry watch catches up does not write twice.
/// An entry's deletion (by anyone) clears its record before the product is
/// reconciled, so a deleted entry is always put back.
#[derive(Default)]
pub struct WrittenEntries {
    hashes: Mutex<HashMap<(String, String), String>>,
}

impl WrittenEntries {
    /// Whether an applied entry is the echo of this process's own write (then
    /// the record is dropped: the watch holds the entry from now on).
    pub fn take_echo(&self, namespace: &str, name: &str, hash: &str) -> bool {
        let mut hashes = self.hashes.lock().expect("written entries lock");
        let key = (namespace.to_owned(), name.to_owned());
        let echo = hashes.get(&key).is_some_and(|h| h == hash);
        if echo {
            hashes.remove(&key);
        }
        echo
    }

    pub fn is_current(&self, namespace: &str, name: &str, hash: &str) -> bool {
        let hashes = self.hashes.lock().expect("written entries lock");
        hashes
            .get(&(namespace.to_owned(), name.to_owned()))
            .is_some_and(|h| h == hash)
    }

    pub fn record(&self, namespace: &str, name: &str, hash: &str) {
        let mut hashes = self.hashes.lock().expect("written entries lock");
        hashes.insert((namespace.to_owned(), name.to_owned()), hash.to_owned());
    }

    /// Forgets an entry (it was deleted, or the watch now holds it).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.hashes
            .lock()
            .expect("written entries lock")
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}

/// What became of a link this process applied.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkWrite {
    /// Written, not yet seen by the link watch.
    Applied,
    /// Refused, with the problem to keep reporting until the retry.
    Failed(String),
}

/// Links this process applied recently: a reconcile that runs before the link
/// watch shows a new link does not apply it again, and a refused write (say,
/// RBAC) is retried after a pause instead of on every node status change.
#[derive(Default)]
pub struct LinkWrites {
    by_name: Mutex<HashMap<String, Written>>,
}

struct Written {
    pair: LinkPair,
    at: Instant,
    outcome: LinkWrite,
}

impl LinkWrites {
    /// How long an applied link may take to show in the watch before it is
    /// applied again.
    const ECHO_WAIT: Duration = Duration::from_secs(30);
    /// How long a refused write waits before it is tried again.
    const RETRY_REFUSED: Duration = Duration::from_secs(10);

    /// What became of `link_name` if it was written recently enough to count.
    pub fn recent(&self, link_name: &str) -> Option<LinkWrite> {
        let by_name = self.by_name.lock().expect("link writes lock");
        let written = by_name.get(link_name)?;
        let wait = match written.outcome {
            LinkWrite::Applied => Self::ECHO_WAIT,
            LinkWrite::Failed(_) => Self::RETRY_REFUSED,
        };
        (written.at.elapsed() < wait).then(|| written.outcome.clone())
    }

    /// Records the outcome of writing `link_name`, the link between `pair`.
    pub fn record(&self, link_name: &str, pair: &LinkPair, outcome: LinkWrite) {
        let written = Written {
            pair: pair.clone(),
            at: Instant::now(),
            outcome,
        };
        self.by_name
            .lock()
            .expect("link writes lock")
            .insert(link_name.to_owned(), written);
    }

    /// Forgets links whose pair the watch now shows, and records too old to count.
    pub fn settle(&self, seen: impl Fn(&LinkPair) -> bool) {
        self.by_name
            .lock()
            .expect("link writes lock")
            .retain(|_, w| !seen(&w.pair) && w.at.elapsed() < Self::ECHO_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn a_status_counts_only_against_the_object_it_was_written_onto() {
        let writes = StatusWrites::default();
        let written = DataProductStatus {
            visible_count: 3,
            ..Default::default()
        };
        writes.record("uid-1", "41", &written);
        assert_eq!(writes.written_onto("uid-1", "41"), Some(written));
        assert_eq!(writes.written_onto("uid-1", "42"), None);
        writes.forget("uid-1");
        assert_eq!(writes.written_onto("uid-1", "41"), None);
    }

    #[test]
    fn a_release_is_timed_from_its_generation_first_seen() {
        let clock = ReleaseClock::default();
        assert_eq!(clock.started("p", Some(2), None, at(100)), at(100));
        assert_eq!(clock.started("p", Some(2), None, at(150)), at(100));
        assert_eq!(clock.started("p", Some(3), None, at(160)), at(160));
    }

    #[test]
    fn a_product_released_while_the_operator_was_away_counts_from_its_creation() {
        let clock = ReleaseClock::default();
        let created = Time(at(10));
        assert_eq!(clock.started("p", Some(1), Some(&created), at(100)), at(10));
        let fresh = Time(at(99));
        assert_eq!(clock.started("q", Some(1), Some(&fresh), at(100)), at(100));
    }

    #[test]
    fn an_entry_echo_is_taken_once_and_only_for_the_hash_written() {
        let written = WrittenEntries::default();
        written.record("dfn-a", "a.p", "h1");
        assert!(written.is_current("dfn-a", "a.p", "h1"));
        assert!(!written.take_echo("dfn-a", "a.p", "h2"));
        assert!(written.take_echo("dfn-a", "a.p", "h1"));
        assert!(!written.take_echo("dfn-a", "a.p", "h1"));
        assert!(!written.is_current("dfn-a", "a.p", "h1"));
    }

    #[test]
    fn a_written_link_is_not_written_again_until_the_watch_shows_it() {
        let writes = LinkWrites::default();
        let pair = LinkPair::new("beijing", "tianjin").unwrap();
        assert_eq!(writes.recent("f.beijing--tianjin"), None);
        writes.record("f.beijing--tianjin", &pair, LinkWrite::Applied);
        writes.settle(|_| false);
        assert_eq!(
            writes.recent("f.beijing--tianjin"),
            Some(LinkWrite::Applied)
        );
        writes.settle(|seen| *seen == pair);
        assert_eq!(writes.recent("f.beijing--tianjin"), None, "seen: forgotten");
    }

    #[test]
    fn a_refused_link_keeps_its_problem_until_the_retry() {
        let writes = LinkWrites::default();
        let pair = LinkPair::new("beijing", "tianjin").unwrap();
        let refused = LinkWrite::Failed("could not create link: forbidden".into());
        writes.record("f.beijing--tianjin", &pair, refused.clone());
        writes.settle(|_| false);
        assert_eq!(writes.recent("f.beijing--tianjin"), Some(refused));
        assert_eq!(writes.recent("g.beijing--tianjin"), None, "per federation");
    }
}
