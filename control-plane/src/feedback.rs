//! Feedback to users in a cluster: after every translation, Kubernetes Events on the objects
//! translation found problems with (`events`), and Gateway API status conditions on routes,
//! Gateways and GatewayClasses that belong to mesh (`conditions`). In folder mode the same
//! problems go to the log and to `mesh analyze` instead.
//!
//! A write that fails (the API server is away, a status changed under us: 409) is retried with
//! the newest review after a pause; the next translation recomputes everything anyway.

mod conditions;
mod events;

use std::{sync::Arc, time::Duration};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Client,
    api::{Api, DynamicObject, Patch, PatchParams},
    runtime::events::{Recorder, Reporter},
};
use tokio::sync::watch;

use conditions::status_patches;
use events::{Reported, event_for};

use crate::publish::Review;

/// How long to wait before retrying writes that failed.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Writes Events and status for every review, until the reviews end.
pub async fn run(client: Client, mut reviews: watch::Receiver<Arc<Review>>) {
    let reporter = Reporter {
        controller: "mesh-control-plane".to_owned(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let mut reported = Reported::default();
    let mut retry = false;
    loop {
        if retry {
            tokio::select! {
                changed = reviews.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(RETRY_AFTER) => {}
            }
        } else if reviews.changed().await.is_err() {
            return;
        }
        let review = reviews.borrow_and_update().clone();
        let events_ok = publish_events(&recorder, &review, &mut reported).await;
        let status_ok = write_status(&client, &review).await;
        retry = !(events_ok && status_ok);
    }
}

/// Publishes an Event for each new problem; false when some could not be published.
async fn publish_events(recorder: &Recorder, review: &Review, reported: &mut Reported) -> bool {
    let mut ok = true;
    for problem in reported.new_problems(&review.problems) {
        let Some(object) = problem.object.as_ref().and_then(|o| review.store.object(o)) else {
            // An object that did not decode is not in the store; its problem is logged.
            reported.insert(problem);
            continue;
        };
        match recorder
            .publish(&event_for(&problem), &object.kube_reference())
            .await
        {
            Ok(()) => reported.insert(problem),
            Err(error) => {
                tracing::warn!(object = %object.object_ref(), %error, "cannot publish an Event; will retry");
                ok = false;
            }
        }
    }
    ok
}

/// Patches the status of every object whose status should change; false when some patch
/// failed.
async fn write_status(client: &Client, review: &Review) -> bool {
    let store = &review.store;
    let now = serde_json::to_value(Time(Timestamp::now()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut ok = true;
    for patch in status_patches(store, &review.problems, &review.listeners, &now) {
        let Some(object) = store.object(&patch.object) else {
            continue;
        };
        let resource = object.api_resource();
        let api: Api<DynamicObject> = if patch.object.namespace.is_empty() {
            Api::all_with(client.clone(), &resource)
        } else {
            Api::namespaced_with(client.clone(), &patch.object.namespace, &resource)
        };
        let params = PatchParams::default();
        match api
            .patch_status(&patch.object.name, &params, &Patch::Merge(&patch.body))
            .await
        {
            Ok(_) => tracing::debug!(object = %patch.object, "status written"),
            Err(error) => {
                tracing::warn!(object = %patch.object, %error, "cannot write status; will retry");
                ok = false;
            }
        }
    }
    ok
}
