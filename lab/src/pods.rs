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
    cluster::{ContainerPlan, PodPlan, Readiness, SidecarPlan, VolumeContent},
    netns::{self, CommandError},
};

pub use mesh_injector::{CERT_LIFETIME_ANNOTATION, PROXY_CONTAINER};
/// The proxy's health port (`/healthz/ready`).
const PROXY_HEALTH_PORT: u16 = 15021;
/// The proxy's admin port (`/config_dump`; localhost only).
const PROXY_ADMIN_PORT: u16 = 15000;
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
    /// Where each pod's sidecar volumes are written.
    pub volumes_dir: PathBuf,
}

impl Launcher {
    /// A command line whose program is one of the lab's binaries (`mesh-init`, `mesh-proxy`)
    /// named by its path in the lab's folder.
    fn resolve_argv(&self, argv: &[String]) -> Vec<String> {
        let mut resolved = argv.to_vec();
        if let Some(program) = resolved.first_mut() {
            let local = self.bin_dir.join(&*program);
            if !program.contains('/') && local.exists() {
                *program = local.display().to_string();
            }
        }
        resolved
    }

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

    /// Runs the injected `mesh-init` container's command in the pod's namespace (nothing for a
    /// gateway's proxy).
    pub fn run_mesh_init(
        &self,
        netns_name: &str,
        sidecar: &SidecarPlan,
        log: &Path,
    ) -> Result<(), CommandError> {
        let Some(init_argv) = &sidecar.init_argv else {
            return Ok(()); // a gateway's proxy: nothing to capture
        };
        let mut args = vec!["netns".to_owned(), "exec".to_owned(), netns_name.to_owned()];
        args.extend(self.resolve_argv(init_argv));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = netns::run("ip", &refs);
        let text = match &result {
            Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        let _ = append(log, &text);
        result.map(drop)
    }

    /// Writes the sidecar's volumes for `pod` (its CA token, the mesh root, its labels) into
    /// the pod's folder, as kubelet would mount them, and returns each mount path with the
    /// folder standing in for it. The token is written anew each time, readable by the
    /// sidecar's uid only.
    pub fn write_volumes(
        &self,
        pod: &PodPlan,
        sidecar: &SidecarPlan,
    ) -> std::io::Result<Vec<(String, PathBuf)>> {
        let pod_dir = self
            .volumes_dir
            .join(format!("{}.{}", pod.namespace, pod.name));
        let (uid, gid) = sidecar.run_as;
        let owner = (
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        );
        let mut mounts = Vec::new();
        for (index, volume) in sidecar.volumes.iter().enumerate() {
            let dir = pod_dir.join(index.to_string());
            std::fs::create_dir_all(&dir)?;
            match &volume.content {
                VolumeContent::Token { path } => {
                    let key = LabTokenKey::load(&self.token_key).map_err(std::io::Error::other)?;
                    let token = key.mint(
                        &pod.namespace,
                        &pod.service_account,
                        &pod.name,
                        CA_TOKEN_LIFETIME,
                        std::time::SystemTime::now(),
                    );
                    let file = dir.join(path);
                    write_private(&file, token.as_bytes())?;
                    nix::unistd::chown(&file, owner.0, owner.1).map_err(std::io::Error::from)?;
                }
                VolumeContent::RootCert { key } => {
                    std::fs::copy(&self.mesh_root, dir.join(key))?;
                }
                VolumeContent::PodInfo(files) => {
                    for (file, field) in files {
                        let map = match field.as_str() {
                            "metadata.labels" => &pod.labels,
                            _ => &pod.annotations,
                        };
                        std::fs::write(dir.join(file), downward_map(map))?;
                    }
                }
            }
            mounts.push((volume.mount_path.clone(), dir));
        }
        Ok(mounts)
    }

    /// Starts the injected sidecar in the pod's namespace as its uid and gid, with its env's
    /// mount paths pointing at the volumes the lab wrote.
    pub fn spawn_proxy(
        &self,
        netns_name: &str,
        pod: &PodPlan,
        sidecar: &SidecarPlan,
        log: &Path,
    ) -> std::io::Result<tokio::process::Child> {
        let mounts = self.write_volumes(pod, sidecar)?;
        let (uid, gid) = sidecar.run_as;
        let mut argv = vec![
            "setpriv".to_owned(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".to_owned(),
            "--".to_owned(),
        ];
        argv.extend(self.resolve_argv(&sidecar.proxy.argv));
        let env: Vec<(String, String)> = sidecar
            .proxy
            .env
            .iter()
            .map(|(name, value)| (name.clone(), mounted(value, &mounts)))
            .collect();
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

/// `value` with a leading mount path replaced by the folder that stands in for it.
fn mounted(value: &str, mounts: &[(String, PathBuf)]) -> String {
    for (mount_path, dir) in mounts {
        if let Some(rest) = value.strip_prefix(mount_path.as_str())
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return format!("{}{rest}", dir.display());
        }
    }
    value.to_owned()
}

/// A map in the downward API's file form: `key="value"` per line, values quoted as Go does.
fn downward_map(map: &std::collections::BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}\n", serde_json::Value::String(v.clone())))
        .collect()
}

/// Writes `bytes` to a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}
