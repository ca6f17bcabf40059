//! Where the Kubernetes source puts what it sees: the control plane's object store.

use crate::store::{Kind, Object, ObjectRef, Store};
use tokio::sync::watch;

/// Receives the watched objects; each call says whether the sink changed. Calls come from one
/// task, in the order the server's events arrived for each kind.
pub trait ObjectSink: Send + Sync + 'static {
    /// An object was created or changed.
    fn apply(&self, object: Object) -> bool;
    /// An object was deleted, or changed into a form that cannot be read.
    fn delete(&self, object: &ObjectRef) -> bool;
    /// A complete list of `kind`: afterwards the sink holds exactly `objects` of that kind.
    fn replace_all(&self, kind: Kind, objects: Vec<Object>) -> bool;
}

/// The store published through a `watch` channel: readers take cheap snapshots with
/// `borrow().clone()` and wake on every real change.
impl ObjectSink for watch::Sender<Store> {
    fn apply(&self, object: Object) -> bool {
        self.send_if_modified(|store| store.apply(object))
    }

    fn delete(&self, object: &ObjectRef) -> bool {
        self.send_if_modified(|store| store.delete(object.kind, &object.namespace, &object.name))
    }

    fn replace_all(&self, kind: Kind, objects: Vec<Object>) -> bool {
        self.send_if_modified(|store| {
            store.replace_all(kind, objects).unwrap_or_else(|error| {
                tracing::error!(%error, "a re-list was not applied");
                false
            })
        })
    }
}
