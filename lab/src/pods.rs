//! Running a pod's processes the way kubelet and an injected pod would: mesh-init's rules in
//! the pod's namespace, mesh-proxy as uid 1337, then the containers; and readiness probes
//! made from inside the pod's namespace.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use mesh_control_plane::ca::lab_token::LabTokenKey;

use crate::{
    cluster::{ContainerPlan, PodPlan, Readiness, discovery_address},
    netns::{self, CommandError},
};

/// The sidecar's container name in status and logs.
pub const PROXY_CONTAINER: &str = "mesh-proxy";
/// The proxy's health port (`/healthz/ready`).
const PROXY_HEALTH_PORT: u16 = 15021;
/// The proxy's admin port (`/config_dump`; localhost only).
const PROXY_ADMIN_PORT: u16 = 15000;
/// The pod annotation that sets the lifetime of the sidecar's certificate, e.g. `60s`.
pub const CERT_LIFETIME_ANNOTATION: &str = "mesh.io/cert-lifetime";
/// The sidecar's uid and gid.
const PROXY_UID: u32 = 1337;
/// How long a pod's CA token lasts (a new one is written whenever its sidecar starts).
const CA_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Where the lab's binaries are and how pods' processes are started.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The folder holding mesh-proxy, mesh-init and mesh-workload.
    pub bin_dir: PathBuf,
    /// The mesh root certificate sidecars verify the control plane with.
    pub mesh_root: PathBuf,
    /// The key that signs the pods' CA tokens.
    pub token_key: PathBuf,
    /// Where each pod's CA token is written for its sidecar.
    pub tokens_dir: PathBuf,
}

impl Launcher {
    /// `PATH` for pods: the lab's binaries first, then the system's.
    pub fn path(&self) -> String {
        format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            self.bin_dir.display()
        )
    }

    /// Writes the pod's resolv.conf (cluster DNS) and hosts file for `ip netns exec`.
    pub fn write_pod_files(
        &self,
        netns_name: &str,
        pod: &PodPlan,
        resolv_conf: &str,
    ) -> std::io::Result<()> {
        netns::write_etc_file(netns_name, "resolv.conf", resolv_conf)?;
        let hostname = pod.hostname.as_deref().unwrap_or(&pod.name);
        let hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost\n{}\t{hostname}\n",
            pod.ip
        );
        netns::write_etc_file(netns_name, "hosts", &hosts)
    }

    /// Runs mesh-init in the pod's namespace with options from the pod's annotations.
    pub fn run_mesh_init(
        &self,
        netns_name: &str,
        pod: &PodPlan,
        log: &Path,
    ) -> Result<(), CommandError> {
        let mut args = vec!["netns".to_owned(), "exec".to_owned(), netns_name.to_owned()];
        args.push(self.bin_dir.join("mesh-init").display().to_string());
        for (annotation, flag) in [
            ("mesh.io/include-inbound-ports", "--inbound-ports"),
            ("mesh.io/exclude-inbound-ports", "--exclude-inbound-ports"),
            ("mesh.io/exclude-outbound-ports", "--exclude-outbound-ports"),
            ("mesh.io/exclude-outbound-cidrs", "--exclude-outbound-cidrs"),
            ("mesh.io/include-outbound-cidrs", "--include-outbound-cidrs"),
        ] {
            if let Some(value) = pod.annotations.get(annotation) {
                args.push(format!("{flag}={value}"));
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = netns::run("ip", &refs);
        let text = match &result {
            Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        let _ = append(log, &text);
        result.map(drop)
    }

    /// Writes the pod's CA token (what kubelet projects into a pod), readable by the sidecar's
    /// uid only, and returns its path.
    pub fn write_ca_token(&self, pod: &PodPlan) -> std::io::Result<PathBuf> {
        let key = LabTokenKey::load(&self.token_key).map_err(std::io::Error::other)?;
        let token = key.mint(
            &pod.namespace,
            &pod.service_account,
            &pod.name,
            CA_TOKEN_LIFETIME,
            std::time::SystemTime::now(),
        );
        std::fs::create_dir_all(&self.tokens_dir)?;
        let path = self
            .tokens_dir
            .join(format!("{}.{}", pod.namespace, pod.name));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(token.as_bytes())?;
        let proxy_uid = Some(nix::unistd::Uid::from_raw(PROXY_UID));
        let proxy_gid = Some(nix::unistd::Gid::from_raw(PROXY_UID));
        nix::unistd::chown(&path, proxy_uid, proxy_gid).map_err(std::io::Error::from)?;
        Ok(path)
    }

    /// Starts the sidecar in the pod's namespace as uid/gid 1337, taking its config from the
    /// control plane with the pod's metadata and its certificate from the CA with the pod's
    /// token, as the injector sets it up.
    pub fn spawn_proxy(
        &self,
        netns_name: &str,
        pod: &PodPlan,
        log: &Path,
    ) -> std::io::Result<tokio::process::Child> {
        let token = self.write_ca_token(pod)?;
        let proxy = self.bin_dir.join("mesh-proxy");
        let argv = [
            "setpriv",
            "--reuid=1337",
            "--regid=1337",
            "--clear-groups",
            "--",
            &proxy.display().to_string(),
            "--discovery-address",
            &discovery_address(),
            "--discovery-root-cert",
            &self.mesh_root.display().to_string(),
            "--ca-token-file",
            &token.display().to_string(),
        ]
        .map(str::to_owned);
        let labels: Vec<String> = pod.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut env = vec![
            ("POD_NAME", pod.name.clone()),
            ("POD_NAMESPACE", pod.namespace.clone()),
            ("POD_IP", pod.ip.to_string()),
            ("SERVICE_ACCOUNT", pod.service_account.clone()),
            ("MESH_POD_LABELS", labels.join(",")),
        ];
        // The certificate lifetime the sidecar asks for (the CA caps it at its own).
        if let Some(lifetime) = pod.annotations.get(CERT_LIFETIME_ANNOTATION) {
            env.push(("MESH_CERT_LIFETIME", lifetime.clone()));
        }
        let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        self.spawn(netns_name, &argv, &env, log)
    }

    /// Starts one container's command in the pod's namespace.
    pub fn spawn_container(
        &self,
        netns_name: &str,
        container: &ContainerPlan,
        log: &Path,
    ) -> std::io::Result<tokio::process::Child> {
        self.spawn(netns_name, &container.argv, &container.env, log)
    }

    fn spawn(
        &self,
        netns_name: &str,
        argv: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> std::io::Result<tokio::process::Child> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let err = out.try_clone()?;
        tokio::process::Command::new("ip")
            .args(["netns", "exec", netns_name])
            .args(argv)
            .env_clear()
            .env("PATH", self.path())
            .env("HOME", "/root")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
    }
}

/// Appends a line to a log file.
pub fn append(log: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    file.write_all(text.as_bytes())
}

/// Whether the sidecar reports ready, asked from inside the pod's namespace.
pub fn proxy_ready(netns_name: &str) -> bool {
    probe(
        netns_name,
        Ipv4Addr::LOCALHOST,
        Readiness::HttpGet {
            port: PROXY_HEALTH_PORT,
            path: "/healthz/ready".to_owned(),
        },
    )
}

/// The sidecar's running config (its admin `/config_dump`), asked from inside the pod's
/// namespace; `None` while it does not answer.
pub fn sidecar_config(netns_name: &str) -> Option<serde_json::Value> {
    let fetch = || {
        let mut stream = connect(Ipv4Addr::LOCALHOST, PROXY_ADMIN_PORT)?;
        stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
        let request = format!(
            "GET /config_dump HTTP/1.1\r\nhost: 127.0.0.1:{PROXY_ADMIN_PORT}\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).ok()?;
        let start = response.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        serde_json::from_slice(&response[start..]).ok()
    };
    netns::run_inside(netns_name, fetch).ok().flatten()
}

/// Runs one readiness check from inside the pod's namespace against `ip`, the pod's IP as
/// kubelet probes it (from inside, the capture rules leave it alone: it never reaches the
/// sidecar), or 127.0.0.1 for the sidecar's own ports.
pub fn probe(netns_name: &str, ip: Ipv4Addr, readiness: Readiness) -> bool {
    let check = move || match readiness {
        Readiness::Running => true,
        Readiness::TcpPorts(ports) => ports.iter().all(|port| connect(ip, *port).is_some()),
        Readiness::HttpGet { port, path } => http_ok(ip, port, &path).unwrap_or(false),
    };
    netns::run_inside(netns_name, check).unwrap_or(false)
}

fn connect(ip: Ipv4Addr, port: u16) -> Option<TcpStream> {
    let address = SocketAddr::from((ip, port));
    TcpStream::connect_timeout(&address, PROBE_TIMEOUT).ok()
}

fn http_ok(ip: Ipv4Addr, port: u16, path: &str) -> Option<bool> {
    let mut stream = connect(ip, port)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {ip}:{port}\r\nuser-agent: mesh-lab-probe\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200": 2xx and 3xx count as ready, as kubelet counts them.
    Some(matches!(head.get(9), Some(b'2' | b'3')))
}
