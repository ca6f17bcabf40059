//! The one task that applies every kind's updates to the sink, keeps the broken-object
//! report, and tells the push side when the sink really changed.

use super::broken::BrokenObjects;
use super::kind_stream::Update;
use super::sink::ObjectSink;
use crate::store::Kind;
use futures_util::stream::{Stream, StreamExt};
use std::collections::BTreeSet;
use tokio::sync::watch;

/// The driver's outputs, each a `watch` channel so readers see the latest state.
pub(super) struct Outputs {
    /// Counts updates that changed the sink.
    pub changes: watch::Sender<u64>,
    /// Objects that could not be read.
    pub broken: watch::Sender<BrokenObjects>,
    /// Kinds that have been listed completely at least once.
    pub synced: watch::Sender<BTreeSet<Kind>>,
}

/// Applies updates to `sink` until the stream ends.
pub(super) async fn run(
    sink: impl ObjectSink,
    updates: impl Stream<Item = Update>,
    outputs: Outputs,
) {
    let mut updates = std::pin::pin!(updates);
    while let Some(update) = updates.next().await {
        if apply(&sink, update, &outputs) {
            outputs
                .changes
                .send_modify(|count| *count = count.wrapping_add(1));
        }
    }
}

/// Applies one update; whether the sink changed.
fn apply(sink: &impl ObjectSink, update: Update, outputs: &Outputs) -> bool {
    match update {
        Update::Apply(object) => {
            let object_ref = object.object_ref();
            outputs
                .broken
                .send_if_modified(|broken| broken.remove(&object_ref).is_some());
            sink.apply(object)
        }
        Update::Delete(object_ref) => {
            outputs
                .broken
                .send_if_modified(|broken| broken.remove(&object_ref).is_some());
            sink.delete(&object_ref)
        }
        Update::Broken(report) => {
            tracing::warn!("{report}");
            let changed = sink.delete(&report.object);
            outputs.broken.send_modify(|broken| {
                broken.insert(report.object.clone(), report);
            });
            changed
        }
        Update::Listed {
            kind,
            objects,
            broken,
        } => {
            let changed = sink.replace_all(kind, objects);
            outputs.broken.send_if_modified(|known| {
                let (mut previous, others) = std::mem::take(known)
                    .into_iter()
                    .partition::<BrokenObjects, _>(|(object, _)| object.kind == kind);
                *known = others;
                let mut modified = false;
                for report in broken {
                    // Reported once per version, not again on every re-list.
                    if previous.remove(&report.object).as_ref() != Some(&report) {
                        tracing::warn!("{report}");
                        modified = true;
                    }
                    known.insert(report.object.clone(), report);
                }
                modified || !previous.is_empty()
            });
            outputs
                .synced
                .send_if_modified(|synced| synced.insert(kind));
            changed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_source::BrokenObject;
    use crate::store::{ObjectRef, Store};

    fn outputs() -> (Outputs, watch::Receiver<BrokenObjects>) {
        let (broken, reports) = watch::channel(BrokenObjects::new());
        let outputs = Outputs {
            changes: watch::Sender::new(0),
            broken,
            synced: watch::Sender::new(BTreeSet::new()),
        };
        (outputs, reports)
    }

    fn listed(broken: Vec<BrokenObject>) -> Update {
        Update::Listed {
            kind: Kind::Service,
            objects: Vec::new(),
            broken,
        }
    }

    #[test]
    fn a_relist_reports_a_broken_object_once_and_forgets_it_when_gone() {
        let sink = watch::Sender::new(Store::new());
        let (outputs, mut reports) = outputs();
        let report = BrokenObject {
            object: ObjectRef::new(Kind::Service, "shop", "bad"),
            resource_version: "7".into(),
            error: "invalid type".into(),
        };

        apply(&sink, listed(vec![report.clone()]), &outputs);
        assert!(reports.has_changed().unwrap());
        assert_eq!(
            reports.borrow_and_update().get(&report.object),
            Some(&report)
        );

        apply(&sink, listed(vec![report.clone()]), &outputs);
        assert!(
            !reports.has_changed().unwrap(),
            "the same version is not reported again"
        );

        apply(&sink, listed(Vec::new()), &outputs);
        assert!(reports.borrow_and_update().is_empty());
        assert!(outputs.synced.borrow().contains(&Kind::Service));
    }
}
