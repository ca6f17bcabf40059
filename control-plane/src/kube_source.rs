//! The Kubernetes source: kube-rs watchers and reflectors for every kind the [`Store`] holds
//! (Services, EndpointSlices, Pods, Namespaces, Istio's networking and security kinds, the
//! Gateway API's GatewayClass, Gateway, HTTPRoute and GRPCRoute), all feeding one
//! [`ObjectSink`], usually the store published through a `watch` channel.
//!
//! Each kind is one kube-rs `watcher` (list, then watch from the list's resourceVersion with
//! bookmarks, paging with `watcher::Config::page_size`) under `default_backoff`, re-listing on
//! any 410 Gone, into a `reflector` whose complete re-lists reach the sink as one
//! `replace_all`. Objects decode one by one, so an object that does not fit its type is
//! reported ([`BrokenObject`]) and treated as absent while the rest of its kind flows on.
//! Watch errors are logged with the kind and a hint, and retried; a kind the server does not
//! serve (its CRD is not installed) counts as listed and empty until it appears.

mod broken;
mod driver;
mod kind_stream;
mod kinds;
mod lenient;
mod relist;
mod sink;

pub use broken::{BrokenObject, BrokenObjects};
pub use sink::ObjectSink;

use crate::store::Kind;
#[cfg(doc)]
use crate::store::Store;

use futures_util::stream;
use kube::Client;
use kube::runtime::watcher;
use std::collections::BTreeSet;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The running Kubernetes source; dropping it stops every watch.
#[derive(Debug)]
pub struct KubeSource {
    task: JoinHandle<()>,
    changes: watch::Receiver<u64>,
    broken: watch::Receiver<BrokenObjects>,
    synced: watch::Receiver<BTreeSet<Kind>>,
}

impl KubeSource {
    /// Starts watching every kind through `client` (on the current tokio runtime), feeding
    /// `sink`. `config` applies to every kind; `watcher::Config::default()` suits a cluster.
    pub fn spawn(client: Client, sink: impl ObjectSink, config: watcher::Config) -> Self {
        let (changes, changes_rx) = watch::channel(0);
        let (broken, broken_rx) = watch::channel(BrokenObjects::new());
        let (synced, synced_rx) = watch::channel(BTreeSet::new());
        let updates = stream::select_all(kinds::kind_streams(&client, &config));
        let outputs = driver::Outputs {
            changes,
            broken,
            synced,
        };
        let task = tokio::spawn(driver::run(sink, updates, outputs));
        Self {
            task,
            changes: changes_rx,
            broken: broken_rx,
            synced: synced_rx,
        }
    }

    /// Waits until every kind has been listed completely once: the sink then mirrors the
    /// cluster, and config computed from it is whole.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        // The sender lives in the task, which runs as long as `self`.
        let _ = synced
            .wait_for(|synced| synced.len() == Kind::ALL.len())
            .await;
    }

    /// Changes seen: counts updates that changed the sink, so the push debouncer can wait on
    /// `changed()`. Bookmarks and re-lists that find nothing new do not move it.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// The objects currently unreadable, updated as they appear and get fixed.
    pub fn broken_objects(&self) -> watch::Receiver<BrokenObjects> {
        self.broken.clone()
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}
