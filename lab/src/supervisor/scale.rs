//! Scaling a Deployment of the running lab: the plan changes, new pods get a namespace, an
//! address, DNS, capture rules, a sidecar and their app; surplus pods leave the endpoints first,
//! then stop and are removed; the rules, DNS and the cluster folder follow.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use super::{Lab, LabError, Shared, add_pod_network, pod_status};
use crate::{
    cluster::{PodPlan, ScaleChange},
    control::{Reply, Request},
    netns, state,
};

/// How long surplus pods may wait for the sidecars to stop sending to them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

impl Lab {
    /// Scales Deployment `namespace/deployment` to `replicas` pods; returns once new pods are
    /// started (not yet ready) and surplus ones are gone.
    pub async fn scale(
        &self,
        namespace: &str,
        deployment: &str,
        replicas: u32,
    ) -> Result<ScaleChange, LabError> {
        scale(&self.shared, namespace, deployment, replicas).await
    }
}

/// Answers a request from `mesh lab`.
pub(super) async fn answer(shared: Arc<Shared>, request: Request) -> Reply {
    match request {
        Request::Scale {
            namespace,
            deployment,
            replicas,
        } => match scale(&shared, &namespace, &deployment, replicas).await {
            Ok(change) => Reply::Done(describe(&namespace, &deployment, replicas, &change)),
            Err(error) => Reply::Failed(error.to_string()),
        },
    }
}

fn describe(namespace: &str, deployment: &str, replicas: u32, change: &ScaleChange) -> String {
    let names = |pods: &[PodPlan]| {
        pods.iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!("deployment {namespace}/{deployment} scaled to {replicas}");
    if !change.added.is_empty() {
        text.push_str(&format!("; started {}", names(&change.added)));
    }
    if !change.removed.is_empty() {
        text.push_str(&format!("; removed {}", names(&change.removed)));
    }
    text
}

async fn scale(
    shared: &Arc<Shared>,
    namespace: &str,
    deployment: &str,
    replicas: u32,
) -> Result<ScaleChange, LabError> {
    let _one_at_a_time = shared.scaling.lock().await;
    let change = {
        let mut state = shared.lock_state();
        let change = state
            .plan
            .scale(&shared.manifests, namespace, deployment, replicas)
            .map_err(|e| LabError::Scale(e.0.join("; ")))?;
        for pod in &change.removed {
            state.pods.remove(&pod.key());
        }
        for pod in &change.added {
            state.pods.insert(pod.key(), pod_status(&shared.names, pod));
        }
        shared.changed(&state);
        change
    };
    tracing::info!(
        deployment = %format!("{namespace}/{deployment}"),
        replicas,
        added = change.added.len(),
        removed = change.removed.len(),
        "scaled"
    );
    if !change.removed.is_empty() {
        // As the endpoints controller does before kubelet stops a pod: the sidecars stop
        // sending to the surplus pods first, so no request meets a stopping one.
        let generation = shared.generation.load(Ordering::SeqCst);
        let mut synced = shared.synced.subscribe();
        let left_endpoints = synced.wait_for(|s| *s >= generation);
        if tokio::time::timeout(DRAIN_TIMEOUT, left_endpoints)
            .await
            .is_err()
        {
            tracing::warn!("stopping surplus pods before the sidecars dropped them");
        }
    }
    let mut stopping = tokio::task::JoinSet::new();
    for pod in change.removed.clone() {
        stopping.spawn(remove_pod(shared.clone(), pod));
    }
    while stopping.join_next().await.is_some() {}
    for (index, pod) in change.added.iter().enumerate() {
        if let Err(error) = add_pod(shared, pod).await {
            // The pods not started leave the plan again, so the lab runs what it says.
            let mut state = shared.lock_state();
            for unstarted in &change.added[index..] {
                state.pods.remove(&unstarted.key());
                state.plan.pods.retain(|p| p.key() != unstarted.key());
            }
            shared.changed(&state);
            return Err(error);
        }
    }
    Ok(change)
}

/// Stops a surplus pod and removes its namespace and logs.
async fn remove_pod(shared: Arc<Shared>, pod: PodPlan) {
    shared.stop_pod(&pod.key()).await;
    let (netns_name, logs) = (
        shared.names.pod(&pod),
        state::log_file(&shared.names.lab, &pod.key(), "any"),
    );
    let removed = tokio::task::spawn_blocking(move || {
        if let Some(dir) = logs.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        netns::delete(&netns_name)
    })
    .await;
    if let Ok(Err(error)) = removed {
        tracing::warn!(pod = %pod.key(), "removing the pod's namespace: {error}");
    }
}

/// Gives a new pod its namespace on its node's bridge and starts it.
async fn add_pod(shared: &Arc<Shared>, pod: &PodPlan) -> Result<(), LabError> {
    let link = shared.next_link.fetch_add(1, Ordering::SeqCst);
    let plan = shared.lock_state().plan.clone();
    let (names, launcher, added) = (shared.names.clone(), shared.launcher.clone(), pod.clone());
    tokio::task::spawn_blocking(move || add_pod_network(&names, &plan, &launcher, &added, link))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    shared.start_pod(pod.clone());
    Ok(())
}
