//! One kind's watch: kube-rs's watcher (re-listing on any 410), its default backoff and its
//! reflector, turned into the updates the sink needs. The reflector buffers a re-list and
//! swaps it in whole, so a re-list reaches the sink as one complete set of objects.

use super::broken::BrokenObject;
use super::kinds::WatchedKind;
use super::lenient::Lenient;
use super::relist::{relisting_watcher, status_code};
use crate::store::{Kind, Object, ObjectRef};
use futures_util::future;
use futures_util::stream::{Stream, StreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};

/// What one kind's watch tells the sink.
#[derive(Debug)]
pub(super) enum Update {
    /// An object was created or changed.
    Apply(Object),
    /// An object was deleted.
    Delete(ObjectRef),
    /// An object was created or changed into something that does not decode.
    Broken(BrokenObject),
    /// A complete list of one kind: exactly these objects exist, these are broken.
    Listed {
        /// The kind listed.
        kind: Kind,
        /// Every readable object of the kind.
        objects: Vec<Object>,
        /// Every unreadable one.
        broken: Vec<BrokenObject>,
    },
}

/// The updates of kind `K`, forever: errors are logged and retried with backoff.
pub(super) fn updates<K: WatchedKind>(
    client: Client,
    config: watcher::Config,
) -> impl Stream<Item = Update> + Send + 'static {
    let (reader, writer) = reflector::store();
    relisting_watcher(Api::<Lenient<K>>::all(client), config)
        .default_backoff()
        .reflect(writer)
        .filter_map(move |event| future::ready(update::<K>(&reader, event)))
}

fn update<K: WatchedKind>(
    reader: &Store<Lenient<K>>,
    event: watcher::Result<Event<Lenient<K>>>,
) -> Option<Update> {
    match event {
        Err(error) => {
            log_watch_error(K::KIND, &error);
            // A kind the server does not serve (its CRD is not installed) has no objects: say
            // so, so that readiness does not wait for it; the retries pick up a later install.
            let not_served = matches!(error, watcher::Error::InitialListFailed(_))
                && status_code(&error) == Some(404);
            not_served.then(|| Update::Listed {
                kind: K::KIND,
                objects: Vec::new(),
                broken: Vec::new(),
            })
        }
        Ok(Event::Apply(Lenient::Valid(object))) => Some(Update::Apply(K::into_object(object))),
        Ok(Event::Apply(Lenient::Broken(body))) => {
            Some(Update::Broken(BrokenObject::new(K::KIND, &body)))
        }
        Ok(Event::Delete(object)) => {
            let metadata = object.meta();
            let namespace = metadata.namespace.clone().unwrap_or_default();
            let name = metadata.name.clone().unwrap_or_default();
            Some(Update::Delete(ObjectRef::new(K::KIND, namespace, name)))
        }
        Ok(Event::InitDone) => {
            let mut objects = Vec::new();
            let mut broken = Vec::new();
            for object in reader.state() {
                match &*object {
                    Lenient::Valid(object) => objects.push(K::into_object(object.clone())),
                    Lenient::Broken(body) => broken.push(BrokenObject::new(K::KIND, body)),
                }
            }
            Some(Update::Listed {
                kind: K::KIND,
                objects,
                broken,
            })
        }
        Ok(Event::Init | Event::InitApply(_)) => None,
    }
}

fn log_watch_error(kind: Kind, error: &watcher::Error) {
    let code = status_code(error);
    if code == Some(410) {
        tracing::info!(%kind, %error, "resourceVersion expired; re-listing");
    } else {
        tracing::warn!(%kind, %error, hint = hint(code), "watch failed; retrying with backoff");
    }
}

/// What the operator can do about a failing watch.
fn hint(code: Option<u16>) -> &'static str {
    match code {
        Some(401) => "the control plane's credentials were refused",
        Some(403) => "grant the control plane's ServiceAccount list and watch on this kind",
        Some(404) => "install the kind's CustomResourceDefinition",
        _ => "the API server or the network failed; the watch resumes by itself",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_point_at_what_to_fix() {
        assert!(hint(Some(404)).contains("CustomResourceDefinition"));
        assert!(hint(Some(403)).contains("ServiceAccount"));
        assert!(hint(None).contains("resumes"));
    }
}
