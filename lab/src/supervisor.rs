//! A running lab: builds the network, serves cluster DNS, runs the control plane and every
//! pod's processes (restarting them as kubelet would), probes readiness, and on every readiness
//! change resyncs what depends on endpoints: kube-proxy's rules on each node, DNS records, and
//! the cluster folder the control plane reads (from which it pushes the sidecars' config).
//! Deployments can be scaled while it runs, by [`Lab::scale`] or `mesh lab scale`.

mod convergence;
mod resync;
mod runtime;
mod scale;

use std::{
    collections::{BTreeMap, HashMap},
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{sync::watch, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    cluster::{CLUSTER_DNS_IP, CLUSTER_DOMAIN, ClusterPlan, PodPlan, PodRole},
    control,
    dns::{self, ClusterDns},
    gateways,
    kubeproxy::{self, KubeProxy},
    manifest::Manifests,
    mesh_root, netns,
    pods::{Launcher, PROXY_CONTAINER},
    state::{self, ContainerStatus, LabState, PodStatus},
    topology::{self, LabNames},
};

/// How a lab is started.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The lab's name: its namespaces are `mlab-<name>-...`.
    pub name: String,
    /// The manifests folder.
    pub manifests: PathBuf,
    /// How many nodes.
    pub nodes: u8,
    /// Where mesh-proxy, mesh-init, mesh-control-plane and mesh-workload are.
    pub bin_dir: PathBuf,
    /// How long `start` waits for every pod to be ready.
    pub ready_timeout: Duration,
    /// Whether to link this machine to the node network, so NodePorts answer here on the
    /// node addresses (one lab at a time).
    pub host_link: bool,
}

/// Why a lab could not start or change.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The manifests could not be read.
    #[error(transparent)]
    Manifests(#[from] crate::manifest::ManifestError),
    /// The manifests cannot run, or a change cannot be made.
    #[error(transparent)]
    Plan(#[from] crate::cluster::PlanError),
    /// A Deployment cannot be scaled as asked.
    #[error("cannot scale: {0}")]
    Scale(String),
    /// A lab of that name runs already.
    #[error(
        "a lab named {name} is already running (supervisor pid {pid}); stop it with `mesh lab down --name {name}`"
    )]
    AlreadyRunning {
        /// Its name.
        name: String,
        /// Its supervisor.
        pid: u32,
    },
    /// Building the network or running a system command failed.
    #[error(transparent)]
    Command(#[from] netns::CommandError),
    /// kube-proxy's rules could not be applied.
    #[error("kube-proxy on {node}: {source}")]
    KubeProxy {
        /// The node.
        node: String,
        /// What failed.
        source: kubeproxy::KubeProxyError,
    },
    /// The DNS records could not be built.
    #[error("cluster DNS: {0}")]
    Dns(#[from] dns::DnsRecordsError),
    /// The lab's mesh root CA could not be made.
    #[error("the lab's mesh root CA: {0}")]
    Ca(#[from] mesh_control_plane::ca::CaError),
    /// A file could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being written.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Pods did not become ready in time.
    #[error("pods not ready after {timeout:?}: {pods}; see `mesh lab logs POD`")]
    NotReady {
        /// The wait.
        timeout: Duration,
        /// Which pods, with their state.
        pods: String,
    },
}

/// A running lab. Dropping it without [`Lab::stop`] still removes everything it made.
pub struct Lab {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
}

struct Shared {
    names: LabNames,
    manifests: Manifests,
    launcher: Launcher,
    /// The state, with the plan it runs (scaling changes it).
    state: Mutex<LabState>,
    dns: ClusterDns,
    kube_proxies: Mutex<Vec<KubeProxy>>,
    resync: tokio::sync::Notify,
    ready: watch::Sender<usize>,
    /// Bumped on every readiness or pod change (under the state lock).
    generation: AtomicU64,
    /// The generation whose endpoints the last successful resync wrote (rules, DNS, folder).
    written: watch::Sender<u64>,
    /// The generation whose endpoints the sidecars run too.
    synced: watch::Sender<u64>,
    /// Cancelled when the lab stops; each pod's token is a child of it.
    stop: CancellationToken,
    /// Each started pod's stop token and task, by `namespace/name`.
    running: Mutex<HashMap<String, RunningPod>>,
    /// The next host-side link number (links are never reused while the lab runs).
    next_link: AtomicUsize,
    /// One scale at a time.
    scaling: tokio::sync::Mutex<()>,
}

/// A started pod.
struct RunningPod {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Lab {
    /// Builds and starts the lab, returning once every pod is ready.
    pub async fn start(options: LabOptions) -> Result<Lab, LabError> {
        let mut manifests = Manifests::read_dir(&options.manifests)?;
        let gateway_warnings = gateways::add_workloads(&mut manifests);
        let mut plan = ClusterPlan::new(&manifests, options.nodes)?;
        plan.warnings.extend(gateway_warnings);
        plan.add_control_plane(control_plane_argv(&options))?;
        for warning in &plan.warnings {
            tracing::warn!("{warning}");
        }
        refuse_if_running(&options.name)?;
        let names = LabNames::new(&options.name);
        topology::remove_all(&names);
        let _ = std::fs::remove_dir_all(state::lab_dir(&options.name));
        mesh_root::create(&options.name)?;

        let built = tokio::task::spawn_blocking({
            let (options, names) = (options.clone(), names.clone());
            move || build(options, names, plan, manifests)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let shared = match built {
            Ok(shared) => Arc::new(shared),
            Err(error) => {
                teardown(&names);
                return Err(error);
            }
        };
        let mut lab = Lab {
            shared: shared.clone(),
            tasks: JoinSet::new(),
        };
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| LabError::Io { what, source }
        };
        let dns_io = io("binding cluster DNS on port 53");
        let (udp, tcp) = netns::run_inside(&dns_pod_netns(&shared), bind_dns)?.map_err(dns_io)?;
        let udp = tokio::net::UdpSocket::from_std(udp).map_err(io("cluster DNS"))?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(io("cluster DNS"))?;
        let control = control::bind(&control::socket_path(&options.name))
            .map_err(io("binding the supervisor's socket"))?;
        lab.spawn_until_stopped(shared.dns.clone().serve(udp, tcp));
        lab.spawn_until_stopped(control::serve(control, {
            let shared = shared.clone();
            move |request| scale::answer(shared.clone(), request)
        }));
        lab.spawn_until_stopped(resync::resync_loop(shared.clone()));
        lab.spawn_until_stopped(convergence::convergence_loop(shared.clone()));
        lab.spawn_until_stopped(runtime::probe_loop(shared.clone()));
        // The control plane first: meshed pods wait for it before their sidecars start.
        let (mut pods, control_plane) = {
            let state = shared.lock_state();
            (
                state.plan.pods.clone(),
                state.plan.control_plane().map(PodPlan::key),
            )
        };
        pods.sort_by_key(|p| Some(p.key()) != control_plane);
        for pod in pods {
            shared.start_pod(pod);
        }
        shared.resync.notify_one();
        lab.wait_ready(options.ready_timeout).await?;
        Ok(lab)
    }

    /// A copy of the lab's current state.
    pub fn state(&self) -> LabState {
        self.shared.lock_state().clone()
    }

    /// Waits until `condition` holds for the state whose readiness the rules, DNS and the
    /// sidecars (through the control plane) have all applied; false if `timeout` passes first.
    pub async fn wait_until(
        &self,
        condition: impl Fn(&LabState) -> bool,
        timeout: Duration,
    ) -> bool {
        let mut synced = self.shared.synced.subscribe();
        let shared = &self.shared;
        let applied = async {
            loop {
                let generation = shared.generation.load(Ordering::SeqCst);
                if *synced.borrow_and_update() >= generation && condition(&shared.lock_state()) {
                    return;
                }
                if synced.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, applied).await.is_ok()
    }

    /// The lab's names.
    pub fn names(&self) -> &LabNames {
        &self.shared.names
    }

    /// Stops every process (SIGTERM, then SIGKILL after a grace period) and removes every
    /// namespace, link, rule and file the lab made.
    pub async fn stop(mut self) {
        self.shared.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        let running: Vec<RunningPod> = self.shared.lock_running().drain().map(|(_, p)| p).collect();
        for pod in running {
            let _ = pod.task.await;
        }
        teardown(&self.shared.names);
    }

    /// Runs `task` until the lab stops.
    fn spawn_until_stopped(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.shared.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = task => {}
                () = stop.cancelled() => {}
            }
        });
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), LabError> {
        let total = self.shared.lock_state().pods.len();
        let mut ready = self.shared.ready.subscribe();
        let mut synced = self.shared.synced.subscribe();
        let shared = &self.shared;
        // Ready means every pod is, and the rules, DNS and sidecars already know it.
        let all_ready_and_synced = async {
            let _ = ready.wait_for(|n| *n == total).await;
            let generation = shared.generation.load(Ordering::SeqCst);
            let _ = synced.wait_for(|s| *s >= generation).await;
        };
        if tokio::time::timeout(timeout, all_ready_and_synced)
            .await
            .is_ok()
        {
            return Ok(());
        }
        let state = self.state();
        let pods = state
            .pods
            .iter()
            .filter(|(_, s)| !s.ready)
            .map(|(key, s)| {
                let containers: Vec<String> = s
                    .containers
                    .iter()
                    .map(|(name, c)| match (&c.pid, &c.last_exit) {
                        (Some(_), _) => format!("{name} running"),
                        (None, Some(exit)) => format!("{name} {exit}"),
                        (None, None) => format!("{name} waiting"),
                    })
                    .collect();
                format!("{key} ({})", containers.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(LabError::NotReady { timeout, pods })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.shared.stop.is_cancelled() {
            self.shared.stop.cancel();
            self.tasks.abort_all();
            for (_, pod) in self.shared.lock_running().drain() {
                pod.task.abort();
            }
            teardown(&self.shared.names);
        }
    }
}

/// Removes the lab's namespaces (killing their processes) and its state folder.
pub fn teardown(names: &LabNames) {
    for error in topology::remove_all(names) {
        tracing::warn!("teardown: {error}");
    }
    let _ = std::fs::remove_dir_all(state::lab_dir(&names.lab));
}

/// The tracing provider the lab's control plane knows.
const LAB_TRACING_PROVIDER: &str = "otel=otel-collector.observability:4317";

/// The cluster folder: what the lab's API server would show, written on every resync.
fn cluster_dir(lab: &str) -> PathBuf {
    state::lab_dir(lab).join("cluster")
}

/// The control plane reads the user's manifests with the cluster folder layered over them
/// (so a Service there, with its ClusterIP, replaces the user's), and serves discovery over TLS
/// with a certificate from the lab's mesh root. Telemetry objects may name the tracing provider
/// `otel`: a collector behind the Service `otel-collector` of namespace `observability`.
fn control_plane_argv(options: &LabOptions) -> Vec<String> {
    let path = |p: PathBuf| p.display().to_string();
    vec![
        "mesh-control-plane".to_owned(),
        "--manifests".to_owned(),
        path(options.manifests.clone()),
        "--manifests".to_owned(),
        path(cluster_dir(&options.name)),
        "--ca-cert".to_owned(),
        path(mesh_root::cert_path(&options.name)),
        "--ca-key".to_owned(),
        path(mesh_root::key_path(&options.name)),
        "--lab-token-key".to_owned(),
        path(mesh_root::token_key_path(&options.name)),
        "--tracing-provider".to_owned(),
        LAB_TRACING_PROVIDER.to_owned(),
    ]
}

fn refuse_if_running(name: &str) -> Result<(), LabError> {
    let Ok(state) = LabState::read(name) else {
        return Ok(());
    };
    let pid = nix::unistd::Pid::from_raw(i32::try_from(state.supervisor_pid).unwrap_or(0));
    let alive =
        state.supervisor_pid != std::process::id() && nix::sys::signal::kill(pid, None).is_ok();
    if alive {
        return Err(LabError::AlreadyRunning {
            name: name.to_owned(),
            pid: state.supervisor_pid,
        });
    }
    Ok(())
}

/// Builds the network and the shared state (blocking: runs `ip` and `iptables-restore`).
fn build(
    options: LabOptions,
    names: LabNames,
    plan: ClusterPlan,
    manifests: Manifests,
) -> Result<Shared, LabError> {
    topology::build_nodes(&names, &plan)?;
    if options.host_link
        && let Err(why) = topology::link_host(&names)
    {
        tracing::warn!("node addresses are not reachable from this machine: {why}");
    }
    let launcher = Launcher {
        bin_dir: options.bin_dir.clone(),
        mesh_root: mesh_root::cert_path(&options.name),
        token_key: mesh_root::token_key_path(&options.name),
        volumes_dir: mesh_root::volumes_dir(&options.name),
    };
    let mut pods = BTreeMap::new();
    for (index, pod) in plan.pods.iter().enumerate() {
        add_pod_network(&names, &plan, &launcher, pod, index)?;
        pods.insert(pod.key(), pod_status(&names, pod));
    }
    let mut kube_proxies = Vec::new();
    for node in &plan.nodes {
        let netns_name = names.node(&node.name);
        let proxy = KubeProxy::new(netns_name).map_err(|source| LabError::KubeProxy {
            node: node.name.clone(),
            source,
        })?;
        kube_proxies.push(proxy);
    }
    let state = LabState {
        name: names.lab.clone(),
        supervisor_pid: std::process::id(),
        manifests: options.manifests.clone(),
        plan: plan.clone(),
        pods,
    };
    state.write().map_err(|source| LabError::Io {
        what: "the lab's state file".to_owned(),
        source,
    })?;
    // The control plane finds the cluster as it is (nothing ready yet) when it starts.
    resync::write_cluster_folder(&names.lab, &plan, &manifests, |_| false)?;
    let dns = ClusterDns::new(resync::dns_records(&plan, |_| false)?);
    let (ready, _) = watch::channel(0);
    let (written, _) = watch::channel(0);
    let (synced, _) = watch::channel(0);
    Ok(Shared {
        names,
        manifests,
        launcher,
        next_link: AtomicUsize::new(plan.pods.len()),
        state: Mutex::new(state),
        dns,
        kube_proxies: Mutex::new(kube_proxies),
        resync: tokio::sync::Notify::new(),
        ready,
        generation: AtomicU64::new(0),
        written,
        synced,
        stop: CancellationToken::new(),
        running: Mutex::new(HashMap::new()),
        scaling: tokio::sync::Mutex::new(()),
    })
}

/// Creates the pod's namespace on its node's bridge and its /etc files (blocking).
fn add_pod_network(
    names: &LabNames,
    plan: &ClusterPlan,
    launcher: &Launcher,
    pod: &PodPlan,
    link: usize,
) -> Result<(), LabError> {
    let node = plan
        .nodes
        .iter()
        .find(|n| n.name == pod.node)
        .unwrap_or_else(|| unreachable!("the plan places pods on its nodes"));
    topology::add_pod(names, pod, node.gateway, link)?;
    let netns_name = names.pod(pod);
    let resolv = dns::resolv_conf(&pod.namespace, CLUSTER_DOMAIN, CLUSTER_DNS_IP);
    launcher
        .write_pod_files(&netns_name, pod, &resolv)
        .map_err(|source| LabError::Io {
            what: format!("/etc/netns/{netns_name}"),
            source,
        })
}

/// A new pod's status: every container waiting.
fn pod_status(names: &LabNames, pod: &PodPlan) -> PodStatus {
    let mut containers: BTreeMap<String, ContainerStatus> = pod
        .containers()
        .iter()
        .map(|c| (c.name.clone(), ContainerStatus::default()))
        .collect();
    if pod.meshed() {
        containers.insert(PROXY_CONTAINER.to_owned(), ContainerStatus::default());
    }
    PodStatus {
        netns: names.pod(pod),
        ready: false,
        containers,
    }
}

/// Binds the DNS sockets; runs inside the DNS pod's namespace.
fn bind_dns() -> std::io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 53));
    let udp = std::net::UdpSocket::bind(address)?;
    let tcp = std::net::TcpListener::bind(address)?;
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

fn dns_pod_netns(shared: &Shared) -> String {
    let state = shared.lock_state();
    let pod = state
        .plan
        .pods
        .iter()
        .find(|p| p.role == PodRole::ClusterDns)
        .unwrap_or_else(|| unreachable!("the plan always has the DNS pod"));
    shared.names.pod(pod)
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, LabState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_running(&self) -> MutexGuard<'_, HashMap<String, RunningPod>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_ready(&self, key: &str) -> bool {
        self.lock_state().pods.get(key).is_some_and(|s| s.ready)
    }

    /// Whether the control plane's pod is ready.
    fn control_plane_ready(&self) -> bool {
        let state = self.lock_state();
        state
            .plan
            .control_plane()
            .and_then(|pod| state.pods.get(&pod.key()))
            .is_some_and(|s| s.ready)
    }

    fn update_container(
        &self,
        pod: &PodPlan,
        container: &str,
        change: impl FnOnce(&mut ContainerStatus),
    ) {
        let mut state = self.lock_state();
        if let Some(status) = state
            .pods
            .get_mut(&pod.key())
            .and_then(|p| p.containers.get_mut(container))
        {
            change(status);
        }
        let _ = state.write();
    }

    /// Records a pod's readiness; on a change, asks for a resync.
    fn set_ready(&self, key: &str, ready: bool) {
        let mut state = self.lock_state();
        let Some(status) = state.pods.get_mut(key) else {
            return;
        };
        if status.ready == ready {
            return;
        }
        status.ready = ready;
        self.changed(&state);
        drop(state);
        tracing::info!(pod = key, ready, "readiness changed");
    }

    /// After a change of readiness or pods (under the state lock): bumps the generation,
    /// records the state, asks for a resync and tells readiness waiters.
    fn changed(&self, state: &LabState) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let count = state.pods.values().filter(|p| p.ready).count();
        let _ = state.write();
        self.resync.notify_one();
        self.ready.send_replace(count);
    }

    fn log(&self, pod: &PodPlan, container: &str) -> PathBuf {
        state::log_file(&self.names.lab, &pod.key(), container)
    }
}
