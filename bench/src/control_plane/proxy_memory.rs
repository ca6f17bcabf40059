//! A real mesh-proxy's memory with the mesh's config: the proxy runs in discovery mode against
//! the control plane as a sidecar of service 0, and its RSS is read once it has ACKed every
//! type of the latest config and had a moment to settle.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{manifests::Mesh, monitoring::Monitoring, process::Process, push::wait_for};

/// How long the proxy may settle after its ACKs before its RSS is read.
const SETTLE: Duration = Duration::from_secs(2);

/// The proxy's memory with one mesh.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProxyMemory {
    /// Services in the mesh.
    pub services: usize,
    /// The Sidecar resource scoping what the proxy receives, if any.
    #[serde(default)]
    pub scope: Option<String>,
    /// Resident memory after it ACKed the config and settled (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident memory until then (VmHWM), KiB.
    pub peak_rss_kib: u64,
}

/// How to run the proxy.
#[derive(Clone, Debug)]
pub struct ProxyCommand {
    /// The mesh-proxy binary.
    pub binary: PathBuf,
    /// The control plane's discovery URL.
    pub discovery: String,
    /// Use the delta stream.
    pub delta: bool,
}

/// Starts the proxy, waits for its ACKs of the control plane's current config, reads its RSS.
pub async fn measure(
    proxy: &ProxyCommand,
    monitoring: Monitoring,
    mesh: Mesh,
    scope: Option<&str>,
    log_dir: &Path,
) -> Result<ProxyMemory> {
    let service = Mesh::service(0);
    let pod = format!("{}-real", service.name);
    let id = format!("{pod}.{}", service.namespace);
    let generation = monitoring
        .metrics()
        .await?
        .value("mesh_cp_translations_total") as u64;
    let mut command = Command::new(&proxy.binary);
    command
        .args(["--discovery-address", &proxy.discovery])
        .args(["--pod-name", &pod, "--pod-namespace", &service.namespace])
        .args(["--pod-labels", &format!("app={}", service.name)])
        .args(["--service-account", &service.name, "--pod-ip", "10.128.0.1"])
        .args(["--outbound-addr", "127.0.0.1:26001"])
        .args(["--inbound-addr", "127.0.0.1:26006"])
        .args(["--admin-addr", "127.0.0.1:26000"])
        .args(["--health-addr", "127.0.0.1:26021"])
        .args(["--metrics-addr", "127.0.0.1:26090"])
        .args(["--log", "warn"]);
    if proxy.delta {
        command.arg("--discovery-delta");
    }
    let name = format!(
        "mesh-proxy-{}{}",
        mesh.services,
        if scope.is_some() { "-scoped" } else { "" }
    );
    let process = Process::spawn(&name, command, log_dir)?;
    wait_for(monitoring, "the real proxy's ACKs", |status| {
        status
            .proxies
            .iter()
            .any(|p| p.id == id && p.generation == generation && p.is_synced())
    })
    .await?;
    tokio::time::sleep(SETTLE).await;
    process.ensure_alive()?;
    let memory = ProxyMemory {
        services: mesh.services,
        scope: scope.map(str::to_owned),
        rss_kib: process.rss_kib()?,
        peak_rss_kib: process.peak_rss_kib()?,
    };
    drop(process);
    wait_for(monitoring, "the real proxy to leave", |s| {
        s.proxies.is_empty()
    })
    .await?;
    Ok(memory)
}
