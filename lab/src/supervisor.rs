//! A running lab: builds the network, serves cluster DNS, runs every pod's processes (restarting
//! them as kubelet would), probes readiness, and on every readiness change resyncs what depends
//! on endpoints: kube-proxy's rules on each node, DNS records, and the sidecars' config.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::watch, task::JoinSet};

use crate::{
    cluster::{
        CLUSTER_DNS_IP, CLUSTER_DOMAIN, ClusterPlan, POD_CIDR, PodPlan, PodRole, Protocol,
        ServiceKind,
    },
    dns::{
        self, ClusterDns, DnsRecords, HeadlessEndpoint, PortProtocol, ServiceAddress,
        ServicePortName,
    },
    kubeproxy::{self, KubeProxy, ProxierConfig},
    manifest::Manifests,
    netns,
    pods::{self, Launcher, PROXY_CONTAINER},
    proxyconfig::proxy_config,
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
    /// Where mesh-proxy, mesh-init and mesh-workload are.
    pub bin_dir: PathBuf,
    /// How long `start` waits for every pod to be ready.
    pub ready_timeout: Duration,
}

/// Why a lab could not start.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The manifests could not be read.
    #[error(transparent)]
    Manifests(#[from] crate::manifest::ManifestError),
    /// The manifests cannot run.
    #[error(transparent)]
    Plan(#[from] crate::cluster::PlanError),
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
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

struct Shared {
    names: LabNames,
    plan: ClusterPlan,
    launcher: Launcher,
    state: Mutex<LabState>,
    dns: ClusterDns,
    kube_proxies: Mutex<Vec<KubeProxy>>,
    resync: tokio::sync::Notify,
    ready: watch::Sender<usize>,
    /// Bumped on every readiness change (under the state lock).
    generation: AtomicU64,
    /// The generation whose endpoints the last successful resync applied.
    synced: watch::Sender<u64>,
}

impl Lab {
    /// Builds and starts the lab, returning once every pod is ready.
    pub async fn start(options: LabOptions) -> Result<Lab, LabError> {
        let manifests = Manifests::read_dir(&options.manifests)?;
        let plan = ClusterPlan::new(&manifests, options.nodes)?;
        for warning in &plan.warnings {
            tracing::warn!("{warning}");
        }
        refuse_if_running(&options.name)?;
        let names = LabNames::new(&options.name);
        topology::remove_all(&names);
        let _ = std::fs::remove_dir_all(state::lab_dir(&options.name));

        let built = tokio::task::spawn_blocking({
            let (options, names) = (options.clone(), names.clone());
            move || build(options, names, plan)
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
        let (stop, stopped) = watch::channel(false);
        let mut lab = Lab {
            shared: shared.clone(),
            stop,
            tasks: JoinSet::new(),
        };
        let io = |source| LabError::Io {
            what: "binding cluster DNS on port 53".to_owned(),
            source,
        };
        let (udp, tcp) = netns::run_inside(&dns_pod_netns(&shared), bind_dns)?.map_err(io)?;
        let udp = tokio::net::UdpSocket::from_std(udp).map_err(io)?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(io)?;
        let dns_server = shared.dns.clone().serve(udp, tcp);
        let mut dns_stopped = stopped.clone();
        lab.tasks.spawn(async move {
            tokio::select! {
                () = dns_server => {}
                _ = dns_stopped.changed() => {}
            }
        });
        lab.tasks
            .spawn(resync_loop(shared.clone(), stopped.clone()));
        lab.tasks.spawn(probe_loop(shared.clone(), stopped.clone()));
        for pod in shared
            .plan
            .pods
            .iter()
            .filter(|p| matches!(p.role, PodRole::Containers(_)))
        {
            lab.tasks
                .spawn(run_pod(shared.clone(), pod.clone(), stopped.clone()));
        }
        shared.resync.notify_one();
        lab.wait_ready(options.ready_timeout).await?;
        Ok(lab)
    }

    /// A copy of the lab's current state.
    pub fn state(&self) -> LabState {
        self.shared.lock_state().clone()
    }

    /// Waits until `condition` holds for the state whose readiness the rules, DNS and
    /// sidecars have all applied; false if `timeout` passes first.
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
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        teardown(&self.shared.names);
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), LabError> {
        let total = self.shared.plan.pods.len();
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
        if !*self.stop.borrow() {
            let _ = self.stop.send(true);
            self.tasks.abort_all();
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
fn build(options: LabOptions, names: LabNames, plan: ClusterPlan) -> Result<Shared, LabError> {
    topology::build_nodes(&names, &plan)?;
    let launcher = Launcher {
        bin_dir: options.bin_dir.clone(),
    };
    let mut pods = BTreeMap::new();
    for (index, pod) in plan.pods.iter().enumerate() {
        let node = plan
            .nodes
            .iter()
            .find(|n| n.name == pod.node)
            .unwrap_or_else(|| unreachable!("the plan places pods on its nodes"));
        topology::add_pod(&names, pod, node.gateway, index)?;
        let netns_name = names.pod(pod);
        let resolv = dns::resolv_conf(&pod.namespace, CLUSTER_DOMAIN, CLUSTER_DNS_IP);
        launcher
            .write_pod_files(&netns_name, pod, &resolv)
            .map_err(|source| LabError::Io {
                what: format!("/etc/netns/{netns_name}"),
                source,
            })?;
        let mut containers: BTreeMap<String, ContainerStatus> = pod
            .containers()
            .iter()
            .map(|c| (c.name.clone(), ContainerStatus::default()))
            .collect();
        if pod.meshed {
            containers.insert(PROXY_CONTAINER.to_owned(), ContainerStatus::default());
        }
        pods.insert(
            pod.key(),
            PodStatus {
                netns: netns_name,
                ready: false,
                containers,
            },
        );
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
    let dns = ClusterDns::new(dns_records(&plan, |_| false)?);
    let (ready, _) = watch::channel(0);
    let (synced, _) = watch::channel(0);
    Ok(Shared {
        names,
        plan,
        launcher,
        state: Mutex::new(state),
        dns,
        kube_proxies: Mutex::new(kube_proxies),
        resync: tokio::sync::Notify::new(),
        ready,
        generation: AtomicU64::new(0),
        synced,
    })
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
    let pod = shared
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

    fn is_ready(&self, pod: &PodPlan) -> bool {
        self.lock_state()
            .pods
            .get(&pod.key())
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
        self.generation.fetch_add(1, Ordering::SeqCst);
        let count = state.pods.values().filter(|p| p.ready).count();
        let _ = state.write();
        drop(state);
        tracing::info!(pod = key, ready, "readiness changed");
        self.resync.notify_one();
        self.ready.send_replace(count);
    }

    fn proxy_config_path(&self, pod: &PodPlan) -> PathBuf {
        state::lab_dir(&self.names.lab)
            .join("proxy")
            .join(format!("{}_{}.json", pod.namespace, pod.name))
    }

    fn log(&self, pod: &PodPlan, container: &str) -> PathBuf {
        state::log_file(&self.names.lab, &pod.key(), container)
    }
}

/// Brings kube-proxy rules, DNS and sidecar configs in line with readiness, whenever asked.
async fn resync_loop(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shared.resync.notified() => {}
            _ = stopped.changed() => return,
        }
        let work = shared.clone();
        let result = tokio::task::spawn_blocking(move || resync(&work)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!("resync failed: {error}"),
            Err(error) => tracing::error!("resync panicked: {error}"),
        }
    }
}

fn resync(shared: &Shared) -> Result<(), LabError> {
    let (ready, generation) = {
        let state = shared.lock_state();
        let ready: BTreeMap<String, bool> = state
            .pods
            .iter()
            .map(|(k, s)| (k.clone(), s.ready))
            .collect();
        (ready, shared.generation.load(Ordering::SeqCst))
    };
    let is_ready = |pod: &PodPlan| ready.get(&pod.key()).copied().unwrap_or(false);
    let ports = kube_proxy_ports(&shared.plan, is_ready);
    let config = ProxierConfig {
        cluster_cidr: POD_CIDR,
    };
    for proxy in shared
        .kube_proxies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter_mut()
    {
        proxy
            .sync(&config, &ports)
            .map_err(|source| LabError::KubeProxy {
                node: proxy.netns().to_owned(),
                source,
            })?;
    }
    shared.dns.update(dns_records(&shared.plan, is_ready)?);
    let proxies =
        serde_json::to_vec_pretty(&proxy_config(&shared.plan, is_ready)).map_err(|e| {
            LabError::Io {
                what: "the sidecar config".to_owned(),
                source: std::io::Error::other(e),
            }
        })?;
    for pod in shared.plan.pods.iter().filter(|p| p.meshed) {
        write_proxy_config(shared, pod, &proxies)?;
        let pid = shared
            .lock_state()
            .pods
            .get(&pod.key())
            .and_then(|s| s.containers.get(PROXY_CONTAINER))
            .filter(|c| c.ready)
            .and_then(|c| c.pid);
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            // The proxy also notices the file change by itself; the signal makes it immediate.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGHUP,
            );
        }
    }
    shared.synced.send_replace(generation);
    Ok(())
}

fn write_proxy_config(shared: &Shared, pod: &PodPlan, config: &[u8]) -> Result<(), LabError> {
    let path = shared.proxy_config_path(pod);
    let io = |source| LabError::Io {
        what: format!("sidecar config {}", path.display()),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, config).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)
}

/// Service ports with ready endpoints, as kube-proxy sees them (headless ones have no rules).
fn kube_proxy_ports(
    plan: &ClusterPlan,
    ready: impl Fn(&PodPlan) -> bool,
) -> Vec<kubeproxy::ServicePort> {
    let mut ports = Vec::new();
    for service in &plan.services {
        let Some(cluster_ip) = service.cluster_ip else {
            continue;
        };
        for port in &service.ports {
            ports.push(kubeproxy::ServicePort {
                namespace: service.namespace.clone(),
                service: service.name.clone(),
                port_name: port.name.clone(),
                protocol: match port.protocol {
                    Protocol::Tcp => kubeproxy::Protocol::Tcp,
                    Protocol::Udp => kubeproxy::Protocol::Udp,
                },
                cluster_ip,
                port: port.port,
                node_port: port.node_port,
                affinity_timeout: service.affinity_timeout,
                endpoints: plan
                    .endpoints(service, port, &ready)
                    .into_iter()
                    .map(|e| kubeproxy::Endpoint {
                        ip: e.ip,
                        port: e.port,
                    })
                    .collect(),
            });
        }
    }
    ports
}

/// The cluster's DNS records given which pods are ready.
fn dns_records(
    plan: &ClusterPlan,
    ready: impl Fn(&PodPlan) -> bool,
) -> Result<DnsRecords, LabError> {
    let mut builder = DnsRecords::builder(CLUSTER_DOMAIN);
    for service in &plan.services {
        let headless = service.kind == ServiceKind::Headless;
        let address = match service.cluster_ip {
            Some(ip) if !headless => ServiceAddress::ClusterIp(ip),
            _ => {
                let mut endpoints: Vec<HeadlessEndpoint> = Vec::new();
                for port in service.ports.iter().take(1) {
                    for endpoint in plan.endpoints(service, port, &ready) {
                        let pod = plan.pod(&service.namespace, &endpoint.pod);
                        let hostname = pod
                            .filter(|p| p.subdomain.as_deref() == Some(&service.name))
                            .and_then(|p| p.hostname.clone());
                        endpoints.push(HeadlessEndpoint {
                            ip: endpoint.ip,
                            hostname,
                        });
                    }
                }
                ServiceAddress::Headless(endpoints)
            }
        };
        let ports: Vec<ServicePortName> = service
            .ports
            .iter()
            .map(|p| ServicePortName {
                name: p.name.clone(),
                protocol: match p.protocol {
                    Protocol::Tcp => PortProtocol::Tcp,
                    Protocol::Udp => PortProtocol::Udp,
                },
                port: p.port,
            })
            .collect();
        builder.add_service(&service.namespace, &service.name, address, &ports);
    }
    for pod in plan.pods.iter().filter(|p| ready(p)) {
        builder.add_pod(
            &pod.namespace,
            pod.ip,
            pod.hostname.as_deref(),
            pod.subdomain.as_deref(),
        );
    }
    Ok(builder.build()?)
}

/// Probes every pod; quickly while it is not ready, then once a second.
async fn probe_loop(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let mut round: u32 = 0;
    loop {
        for pod in &shared.plan.pods {
            let was_ready = shared.is_ready(pod);
            if was_ready && !round.is_multiple_of(4) {
                continue;
            }
            let ready = probe_pod(&shared, pod).await;
            shared.set_ready(&pod.key(), ready);
        }
        round = round.wrapping_add(1);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stopped.changed() => return,
        }
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
    let mut checks: Vec<crate::cluster::Readiness> = pod
        .containers()
        .iter()
        .map(|c| c.readiness.clone())
        .collect();
    if pod.meshed {
        checks.push(crate::cluster::Readiness::HttpGet {
            port: 15021,
            path: "/healthz/ready".to_owned(),
        });
    }
    tokio::task::spawn_blocking(move || {
        checks
            .into_iter()
            .all(|check| pods::probe(&netns_name, check))
    })
    .await
    .unwrap_or(false)
}

/// Starts one pod: mesh-init and the sidecar first when meshed, then every container, each
/// restarted with back-off when it exits, until the lab stops.
async fn run_pod(shared: Arc<Shared>, pod: PodPlan, stopped: watch::Receiver<bool>) {
    let netns_name = shared.names.pod(&pod);
    let mut containers = JoinSet::new();
    if pod.meshed {
        let log = shared.log(&pod, "mesh-init");
        let init = {
            let (launcher, netns_name, pod) =
                (shared.launcher.clone(), netns_name.clone(), pod.clone());
            tokio::task::spawn_blocking(move || launcher.run_mesh_init(&netns_name, &pod, &log))
                .await
        };
        if !matches!(init, Ok(Ok(()))) {
            tracing::error!(pod = %pod.key(), "mesh-init failed; see `mesh lab logs {} -c mesh-init`", pod.key());
            shared.update_container(&pod, PROXY_CONTAINER, |c| {
                c.last_exit = Some("mesh-init failed".to_owned())
            });
            return;
        }
        let config = serde_json::to_vec(&proxy_config(&shared.plan, |p| shared.is_ready(p)))
            .unwrap_or_default();
        if let Err(error) = write_proxy_config(&shared, &pod, &config) {
            tracing::error!(pod = %pod.key(), "{error}");
            return;
        }
        containers.spawn(keep_running(
            shared.clone(),
            pod.clone(),
            None,
            stopped.clone(),
        ));
        // The app starts once its sidecar is ready, so its first calls are already meshed.
        let mut ready_wait = stopped.clone();
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
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = ready_wait.changed() => return,
            }
        }
    }
    for index in 0..pod.containers().len() {
        containers.spawn(keep_running(
            shared.clone(),
            pod.clone(),
            Some(index),
            stopped.clone(),
        ));
    }
    while containers.join_next().await.is_some() {}
}

/// Runs one container (or, with `None`, the sidecar) and restarts it when it exits.
async fn keep_running(
    shared: Arc<Shared>,
    pod: PodPlan,
    container: Option<usize>,
    mut stopped: watch::Receiver<bool>,
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
            None => shared
                .launcher
                .spawn_proxy(&netns_name, &shared.proxy_config_path(&pod), &log),
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
                    _ = stopped.changed() => {
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
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.changed() => return,
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
