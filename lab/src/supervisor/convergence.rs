//! Waiting for the sidecars: once a resync has written the cluster folder, the control plane
//! reads it and pushes; the lab counts that generation as applied when every ready sidecar runs
//! the endpoints it implies (read from each sidecar's `/config_dump`), so "ready" and
//! [`super::Lab::wait_until`] mean the proxies know it too.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::time::Instant;

use super::Shared;
use crate::{
    cluster::{CLUSTER_DOMAIN, ClusterPlan, PodPlan, Protocol},
    pods::{self, PROXY_CONTAINER},
};

/// How often the sidecars are asked while they lag.
const POLL: Duration = Duration::from_millis(100);
/// How long the lab waits for the sidecars before it counts a generation applied anyway (a
/// control plane that is down cannot push; waiters must not hang on it).
const TIMEOUT: Duration = Duration::from_secs(15);

/// Endpoint addresses by cluster name.
type Endpoints = BTreeMap<String, Vec<String>>;

/// Marks each written generation applied once the sidecars run it, until the lab stops.
pub(super) async fn convergence_loop(shared: Arc<Shared>) {
    let mut written = shared.written.subscribe();
    'generations: loop {
        let generation = *written.borrow_and_update();
        let deadline = Instant::now() + TIMEOUT;
        while !sidecars_converged(&shared).await {
            if Instant::now() >= deadline {
                tracing::warn!(
                    generation,
                    "the sidecars did not get the cluster's endpoints within {TIMEOUT:?}; \
                     see `mesh lab logs` of the control plane"
                );
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                changed = written.changed() => match changed {
                    Ok(()) => continue 'generations,
                    Err(_) => return,
                },
            }
        }
        shared.synced.send_replace(generation);
        if written.changed().await.is_err() {
            return;
        }
    }
}

/// Whether every ready sidecar has, for each Service cluster it knows, the ready endpoints.
async fn sidecars_converged(shared: &Shared) -> bool {
    let (expected, sidecars) = {
        let state = shared.lock_state();
        let ready = |pod: &PodPlan| state.pods.get(&pod.key()).is_some_and(|s| s.ready);
        let expected = expected_endpoints(&state.plan, ready);
        let sidecars: Vec<String> = state
            .pods
            .values()
            .filter(|s| {
                s.containers
                    .get(PROXY_CONTAINER)
                    .is_some_and(|c| c.ready && c.pid.is_some())
            })
            .map(|s| s.netns.clone())
            .collect();
        (expected, sidecars)
    };
    let running = tokio::task::spawn_blocking(move || {
        sidecars
            .iter()
            .filter_map(|netns| pods::sidecar_config(netns))
            .map(|dump| running_endpoints(&dump))
            .collect::<Vec<Endpoints>>()
    })
    .await
    .unwrap_or_default();
    running.iter().all(|known| agrees(&expected, known))
}

/// Whether a sidecar's endpoints are the expected ones for every Service cluster it has (a
/// cluster it lacks may be hidden from it by `exportTo`).
fn agrees(expected: &Endpoints, known: &Endpoints) -> bool {
    known
        .iter()
        .all(|(cluster, addresses)| expected.get(cluster).is_none_or(|e| e == addresses))
}

/// Each Service port's default cluster and its ready endpoints, as the control plane names them.
fn expected_endpoints(plan: &ClusterPlan, ready: impl Fn(&PodPlan) -> bool) -> Endpoints {
    let mut expected = Endpoints::new();
    for service in &plan.services {
        let host = format!(
            "{}.{}.svc.{CLUSTER_DOMAIN}",
            service.name, service.namespace
        );
        for port in service.ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
            let mut addresses: Vec<String> = plan
                .endpoints(service, port, &ready)
                .into_iter()
                .map(|e| format!("{}:{}", e.ip, e.port))
                .collect();
            addresses.sort();
            expected.insert(format!("outbound|{}||{host}", port.port), addresses);
        }
    }
    expected
}

/// The endpoints a sidecar runs, by cluster.
fn running_endpoints(dump: &serde_json::Value) -> Endpoints {
    let mut running = Endpoints::new();
    for assignment in dump["config"]["endpoints"].as_array().into_iter().flatten() {
        let Some(cluster) = assignment["cluster"].as_str() else {
            continue;
        };
        let mut addresses: Vec<String> = assignment["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["address"].as_str().map(str::to_owned))
            .collect();
        addresses.sort();
        running.insert(cluster.to_owned(), addresses);
    }
    running
}

#[cfg(test)]
mod tests;
