//! Running pods as kubelet would: mesh-init and the sidecar first when meshed (once the control
//! plane is ready), then the containers, each restarted with back-off when it exits; and the
//! readiness probes.

use std::{
    net::Ipv4Addr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{RunningPod, Shared};
use crate::{
    cluster::{PodPlan, PodRole, Readiness},
    pods::{self, PROXY_CONTAINER},
};

/// How often a starting sidecar is asked whether it is ready.
const SIDECAR_POLL: Duration = Duration::from_millis(50);

impl Shared {
    /// Starts the pod's processes in a task of its own, stopped with the lab or by
    /// [`Shared::stop_pod`].
    pub(super) fn start_pod(self: &Arc<Self>, pod: PodPlan) {
        if pod.role == PodRole::ClusterDns {
            return; // the lab serves DNS itself
        }
        let stop = self.stop.child_token();
        let key = pod.key();
        let task = tokio::spawn(run_pod(self.clone(), pod, stop.clone()));
        self.lock_running().insert(key, RunningPod { stop, task });
    }

    /// Stops the pod's processes (SIGTERM, then SIGKILL after the grace period).
    pub(super) async fn stop_pod(&self, key: &str) {
        let running = self.lock_running().remove(key);
        if let Some(pod) = running {
            pod.stop.cancel();
            let _ = pod.task.await;
        }
    }
}

/// Probes every pod; quickly while it is not ready, then once a second.
pub(super) async fn probe_loop(shared: Arc<Shared>) {
    let mut round: u32 = 0;
    loop {
        let pods = shared.lock_state().plan.pods.clone();
        for pod in &pods {
            let key = pod.key();
            if shared.is_ready(&key) && !round.is_multiple_of(4) {
                continue;
            }
            let ready = probe_pod(&shared, pod).await;
            shared.set_ready(&key, ready);
        }
        round = round.wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn probe_pod(shared: &Shared, pod: &PodPlan) -> bool {
    if pod.role == PodRole::ClusterDns {
        return true; // served by the lab itself, bound before any pod starts
    }
    let (netns_name, running) = {
        let state = shared.lock_state();
        let Some(status) = state.pods.get(&pod.key()) else {
            return false;
        };
        let running = status.containers.values().all(|c| c.pid.is_some());
        (status.netns.clone(), running)
    };
    if !running {
        return false;
    }
    let ip = pod.ip;
    let mut checks: Vec<(Ipv4Addr, Readiness)> = pod
        .containers()
        .iter()
        .map(|c| (ip, c.readiness.clone()))
        .collect();
    if pod.meshed() {
        let sidecar = Readiness::HttpGet {
            port: 15021,
            path: "/healthz/ready".to_owned(),
        };
        checks.push((Ipv4Addr::LOCALHOST, sidecar));
    }
    tokio::task::spawn_blocking(move || {
        checks
            .into_iter()
            .all(|(ip, check)| pods::probe(&netns_name, ip, check))
    })
    .await
    .unwrap_or(false)
}

/// Starts one pod: mesh-init and the sidecar first when meshed, then every container, each
/// restarted with back-off when it exits, until `stop`.
async fn run_pod(shared: Arc<Shared>, pod: PodPlan, stop: CancellationToken) {
    let netns_name = shared.names.pod(&pod);
    let mut containers = JoinSet::new();
    if let Some(sidecar) = &pod.sidecar {
        let log = shared.log(&pod, "mesh-init");
        let init = {
            let (launcher, netns_name, sidecar) =
                (shared.launcher.clone(), netns_name.clone(), sidecar.clone());
            tokio::task::spawn_blocking(move || launcher.run_mesh_init(&netns_name, &sidecar, &log))
                .await
        };
        if !matches!(init, Ok(Ok(()))) {
            tracing::error!(pod = %pod.key(), "mesh-init failed; see `mesh lab logs {} -c mesh-init`", pod.key());
            shared.update_container(&pod, PROXY_CONTAINER, |c| {
                c.last_exit = Some("mesh-init failed".to_owned())
            });
            return;
        }
        // As a sidecar injected in a cluster, it needs the control plane to become ready.
        if !wait_for_control_plane(&shared, &stop).await {
            return;
        }
        containers.spawn(keep_running(
            shared.clone(),
            pod.clone(),
            None,
            stop.clone(),
        ));
        // The app starts once its sidecar is ready, so its first calls are already meshed.
        loop {
            let netns_name = netns_name.clone();
            if tokio::task::spawn_blocking(move || pods::proxy_ready(&netns_name))
                .await
                .unwrap_or(false)
            {
                shared.update_container(&pod, PROXY_CONTAINER, |c| c.ready = true);
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(SIDECAR_POLL) => {}
                () = stop.cancelled() => return,
            }
        }
    }
    for index in 0..pod.containers().len() {
        containers.spawn(keep_running(
            shared.clone(),
            pod.clone(),
            Some(index),
            stop.clone(),
        ));
    }
    while containers.join_next().await.is_some() {}
}

/// Waits until the control plane is ready and the rules and DNS that lead to it are applied;
/// false if stopped first.
async fn wait_for_control_plane(shared: &Shared, stop: &CancellationToken) -> bool {
    let mut written = shared.written.subscribe();
    loop {
        let generation = shared.generation.load(Ordering::SeqCst);
        if shared.control_plane_ready() && *written.borrow_and_update() >= generation {
            return true;
        }
        tokio::select! {
            changed = written.changed() => if changed.is_err() { return false },
            () = stop.cancelled() => return false,
        }
    }
}

/// Runs one container (or, with `None`, the sidecar) and restarts it when it exits.
async fn keep_running(
    shared: Arc<Shared>,
    pod: PodPlan,
    container: Option<usize>,
    stop: CancellationToken,
) {
    let netns_name = shared.names.pod(&pod);
    let name = match container {
        Some(index) => pod.containers()[index].name.clone(),
        None => PROXY_CONTAINER.to_owned(),
    };
    let log = shared.log(&pod, &name);
    let mut restarts: u32 = 0;
    loop {
        let spawned = match container {
            Some(index) => {
                shared
                    .launcher
                    .spawn_container(&netns_name, &pod.containers()[index], &log)
            }
            None => match &pod.sidecar {
                Some(sidecar) => shared
                    .launcher
                    .spawn_proxy(&netns_name, &pod, sidecar, &log),
                None => Err(std::io::Error::other("the pod has no sidecar")),
            },
        };
        let exit = match spawned {
            Ok(mut child) => {
                let pid = child.id();
                shared.update_container(&pod, &name, |c| c.pid = pid);
                tokio::select! {
                    status = child.wait() => match status {
                        Ok(status) => status.to_string(),
                        Err(e) => e.to_string(),
                    },
                    () = stop.cancelled() => {
                        terminate(child).await;
                        return;
                    }
                }
            }
            Err(e) => format!("cannot start: {e}"),
        };
        let _ = pods::append(&log, &format!("[mesh lab] {name} ended: {exit}\n"));
        restarts += 1;
        shared.update_container(&pod, &name, |c| {
            c.pid = None;
            c.ready = false;
            c.restarts = restarts;
            c.last_exit = Some(exit);
        });
        shared.set_ready(&pod.key(), false);
        // kubelet's back-off: 10 s doubling to 5 min; shorter here, a lab wants to converge fast.
        let backoff = Duration::from_millis(100 * 2u64.pow(restarts.min(7)));
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// SIGTERM, then SIGKILL after the grace period.
async fn terminate(mut child: tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}
