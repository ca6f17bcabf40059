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
