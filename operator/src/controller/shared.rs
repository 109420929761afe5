//! One watch per kind, shared by every controller that needs that kind.
//!
//! The reflector applies each event to the store before handing it to
//! subscribers, so a reconciler triggered by a change reads a cache that holds
//! it. kube's shared streams only pass on applied objects; deletions are tapped
//! here and broadcast too, so a link or federation also re-evaluates when a
//! node or link disappears. A relist (after a 410, or any watch restart) emits
//! no deletion events, so the objects that were cached before it and are not
//! listed again are broadcast as deleted when it completes: whatever derived
//! state the subscribers keep (health table, change filters, catalog views)
//! forgets them too.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use futures::{FutureExt, Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

/// Subscribers can fall this many events behind before the reflector waits.
const BUFFER: usize = 4096;

/// A watched kind: its store, its event streams, and the watch that feeds them.
pub struct SharedWatch<K: Resource<DynamicType = ()> + Clone + 'static> {
    pub store: Store<K>,
    /// The handle subscribers are cloned from. It is itself a subscriber: left
    /// unread it would fill up and stall the reflector (seen at 5,000 links),
    /// so `drive` drains it.
    applied: std::sync::Mutex<Option<ReflectHandle<K>>>,
    deleted: broadcast::Sender<Arc<K>>,
    driver: std::sync::Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
}

/// A kind flowfed watches: every kind of the API, and the core kinds it reads.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

impl<K: Watched> SharedWatch<K> {
    /// Sets up the watch; nothing flows until [`SharedWatch::drive`] is polled.
    pub fn start(api: Api<K>, config: watcher::Config) -> Self {
        Self::from_events(watcher(api, config).default_backoff())
    }

    /// The same over any stream of watch events (a test feeds its own).
    pub fn from_events(
        events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    ) -> Self {
        let (store, writer) = reflector::store_shared(BUFFER);
        let applied = writer.subscribe().expect("shared stores can be subscribed");
        let (deleted, _) = broadcast::channel(BUFFER);
        let tap = deleted.clone();
        let cached = store.clone();
        // Between a relist's Init and InitDone: what the store held before it,
        // and the uids listed again so far.
        let mut relist: Option<(Vec<Arc<K>>, std::collections::HashSet<String>)> = None;
        let driver = events
            .reflect_shared(writer)
            .for_each(move |event| {
                match event {
                    Ok(watcher::Event::Delete(object)) => {
                        let _ = tap.send(Arc::new(object));
                    }
                    // The reflector keeps serving the old state until InitDone.
                    Ok(watcher::Event::Init) => relist = Some((cached.state(), Default::default())),
                    Ok(watcher::Event::InitApply(object)) => {
                        if let Some((_, listed)) = relist.as_mut() {
                            listed.insert(object.meta().uid.clone().unwrap_or_default());
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some((before, listed)) = relist.take() {
                            for gone in vanished(before, &listed) {
                                let _ = tap.send(gone);
                            }
                        }
                    }
                    Ok(watcher::Event::Apply(_)) => {}
                    Err(error) => tracing::warn!(kind = %K::kind(&()), %error, "watch failed; retrying with backoff"),
                }
                futures::future::ready(())
            })
            .boxed();
        SharedWatch {
            store,
            applied: std::sync::Mutex::new(Some(applied)),
            deleted,
            driver: std::sync::Mutex::new(Some(driver)),
        }
    }

    /// Every applied (created, changed, or listed) and every deleted object.
    pub fn triggers(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        futures::stream::select(self.applied(), self.deletions())
    }

    /// Every applied (created, changed, or listed) object.
    pub fn applied(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let prototype = self.applied.lock().expect("applied lock");
        prototype
            .as_ref()
            .expect("subscribe before drive()")
            .clone()
    }

    /// Every deleted object.
    pub fn deletions(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        futures::stream::unfold(self.deleted.subscribe(), |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(object) => return Some((object, receiver)),
                    // A lagging subscriber misses deletions; the periodic resync repairs that.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Runs the watch. Poll exactly once, alongside the controllers.
    pub async fn drive(&self) {
        let driver = self.driver.lock().expect("driver lock").take();
        let prototype = self.applied.lock().expect("applied lock").take();
        if let (Some(driver), Some(prototype)) = (driver, prototype) {
            let drain = prototype.for_each(|_| futures::future::ready(()));
            futures::future::join(driver, drain).await;
        }
    }
}

/// The objects of `before` whose uid is not in `listed`: deleted while the
/// watch was away.
fn vanished<K: Resource>(
    before: Vec<Arc<K>>,
    listed: &std::collections::HashSet<String>,
) -> impl Iterator<Item = Arc<K>> {
    before
        .into_iter()
        .filter(move |object| !listed.contains(object.meta().uid.as_deref().unwrap_or_default()))
}

/// Remembers a fingerprint per name and says whether it changed, so a watch on
/// a busy kind (node status changes with every probe outcome) only triggers
/// reconcilers that care when the fields they read change. A fingerprint is a
/// hash of those fields, as kube-runtime's predicates take it.
#[derive(Default)]
pub struct ChangeFilter {
    seen: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

/// A hash of the fields a controller reads of an object.
pub fn fingerprint(fields: impl Hash) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    fields.hash(&mut hasher);
    hasher.finish()
}

impl ChangeFilter {
    /// Whether the `fields` read of object `name` changed since last seen.
    pub fn changed(&self, name: &str, fields: impl Hash) -> bool {
        self.fingerprint_changed(name, fingerprint(fields))
    }

    /// Whether object `name`'s [`fingerprint`] changed since last seen.
    pub fn fingerprint_changed(&self, name: &str, fingerprint: u64) -> bool {
        let mut seen = self.seen.lock().expect("change filter lock");
        seen.insert(name.to_owned(), fingerprint) != Some(fingerprint)
    }

    /// Forgets a deleted object, so one created again under its name is news.
    pub fn forget(&self, name: &str) {
        self.seen.lock().expect("change filter lock").remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::{ChangeFilter, SharedWatch};
    use futures::StreamExt as _;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use kube::runtime::watcher::Event;

    fn object(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_relist_broadcasts_the_objects_it_no_longer_lists_as_deleted() {
        // The first list holds a and b; b is deleted while the watch is away
        // (a 410 forces a relist, which lists only a).
        let events = [
            Event::Init,
            Event::InitApply(object("a")),
            Event::InitApply(object("b")),
            Event::InitDone,
            Event::Init,
            Event::InitApply(object("a")),
            Event::InitDone,
        ];
        let watch = SharedWatch::from_events(futures::stream::iter(events.into_iter().map(Ok)));
        let mut deletions = Box::pin(watch.deletions());
        let received = async {
            let first = deletions.next().await;
            let more =
                tokio::time::timeout(std::time::Duration::from_millis(100), deletions.next()).await;
            (first, more)
        };
        // The watch is driven only while the deletions are awaited (driving
        // never ends by itself: its subscribers stay open).
        let (first, more) = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            tokio::select! {
                received = received => received,
                () = async {
                    watch.drive().await;
                    std::future::pending::<()>().await
                } => unreachable!(),
            }
        })
        .await
        .expect("a deletion is broadcast");
        let gone = first.expect("the stream is open");
        assert_eq!(gone.metadata.name.as_deref(), Some("b"));
        assert!(more.is_err(), "a, listed again, is not deleted");
        let cached: Vec<String> = watch
            .store
            .state()
            .iter()
            .filter_map(|o| o.metadata.name.clone())
            .collect();
        assert_eq!(cached, ["a"]);
    }

    #[test]
    fn only_a_changed_fingerprint_wakes_and_a_recreated_object_is_news() {
        let filter = ChangeFilter::default();
        assert!(filter.changed("beijing", ("Ready", 12)));
        assert!(!filter.changed("beijing", ("Ready", 12)));
        assert!(filter.changed("beijing", ("Unreachable", 12)));
        assert!(filter.changed("tianjin", ("Unreachable", 12)));
        filter.forget("beijing");
        assert!(
            filter.changed("beijing", ("Unreachable", 12)),
            "deleted and created again with the same fields"
        );
    }
}
