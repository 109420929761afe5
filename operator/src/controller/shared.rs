//! One watch per kind, shared by every controller that needs that kind.
//!
//! The reflector applies each event to the store before handing it to
//! subscribers, so a reconciler triggered by a change reads a cache that holds
//! it. kube's shared streams only pass on applied objects; deletions are tapped
//! here and broadcast too, so a link or federation also re-evaluates when a
//! node or link disappears.

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

impl<K> SharedWatch<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    /// Sets up the watch; nothing flows until [`SharedWatch::drive`] is polled.
    pub fn start(api: Api<K>, config: watcher::Config) -> Self {
        let (store, writer) = reflector::store_shared(BUFFER);
        let applied = writer.subscribe().expect("shared stores can be subscribed");
        let (deleted, _) = broadcast::channel(BUFFER);
        let tap = deleted.clone();
        let driver = watcher(api, config)
            .default_backoff()
            .reflect_shared(writer)
            .for_each(move |event| {
                match event {
                    Ok(watcher::Event::Delete(object)) => {
                        let _ = tap.send(Arc::new(object));
                    }
                    Ok(_) => {}
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

/// Remembers a fingerprint per name and says whether it changed, so a watch on
/// a busy kind (node status changes with every probe outcome) only triggers
/// reconcilers that care when the fields they read change.
#[derive(Default)]
pub struct ChangeFilter {
    seen: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl ChangeFilter {
    pub fn changed(&self, name: &str, fingerprint: String) -> bool {
        let mut seen = self.seen.lock().expect("change filter lock");
        seen.insert(name.to_owned(), fingerprint.clone()).as_ref() != Some(&fingerprint)
    }

    /// `wake()` if `name`'s fingerprint changed, else nothing to reconcile.
    pub fn wake_if_changed<T>(
        &self,
        name: &str,
        fingerprint: String,
        wake: impl FnOnce() -> Vec<T>,
    ) -> Vec<T> {
        if self.changed(name, fingerprint) {
            wake()
        } else {
            Vec::new()
        }
    }

    /// Forgets a deleted object, so one created again under its name is news.
    pub fn forget(&self, name: &str) {
        self.seen.lock().expect("change filter lock").remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::ChangeFilter;

    #[test]
    fn only_a_changed_fingerprint_wakes_and_a_recreated_object_is_news() {
        let filter = ChangeFilter::default();
        let wake = || vec!["reconcile"];
        assert_eq!(
            filter.wake_if_changed("beijing", "Ready".into(), wake),
            ["reconcile"]
        );
        assert!(
            filter
                .wake_if_changed("beijing", "Ready".into(), wake)
                .is_empty()
        );
        assert_eq!(
            filter.wake_if_changed("beijing", "Unreachable".into(), wake),
            ["reconcile"]
        );
        assert_eq!(
            filter.wake_if_changed("tianjin", "Unreachable".into(), wake),
            ["reconcile"]
        );
        filter.forget("beijing");
        assert_eq!(
            filter.wake_if_changed("beijing", "Unreachable".into(), wake),
            ["reconcile"],
            "deleted and created again with the same fields"
        );
    }
}
