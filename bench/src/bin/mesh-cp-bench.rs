//! `mesh-cp-bench`: the control-plane benchmark (see bench/README.md, "Control plane"). Runs the
//! real `mesh-control-plane` on a generated mesh, times an endpoint change to simulated proxies,
//! measures a real proxy's memory and a full translation, and writes JSON and markdown.

use std::{
    cell::Cell,
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use mesh_bench::{
    control_plane::{
        manifests::Mesh,
        monitoring::Monitoring,
        process::Process,
        proxy_memory::{self, ProxyCommand},
        push::{self, PushSettings, Target},
        results::{ControlPlaneReport, ControlPlaneUsage},
        translation,
    },
    report::{Machine, Meta},
};
use tokio::time::Instant;

/// Benchmarks the control plane: push latency, translation, memory and CPU.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The mesh-control-plane binary.
    #[arg(long, default_value = "target/release/mesh-control-plane")]
    control_plane: PathBuf,
    /// The mesh-proxy binary.
    #[arg(long, default_value = "target/release/mesh-proxy")]
    proxy: PathBuf,
    /// Services in the mesh.
    #[arg(long, default_value_t = 1_000)]
    services: usize,
    /// Endpoints (pods) per service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Simulated proxy counts, one push phase each.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    proxies: Vec<usize>,
    /// Endpoint changes timed per phase.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Simulated proxies use state-of-the-world streams instead of delta.
    #[arg(long)]
    sotw: bool,
    /// Repetitions of the in-process translation.
    #[arg(long, default_value_t = 10)]
    translations: usize,
    /// The control plane's debounce, ms.
    #[arg(long, default_value_t = 100)]
    debounce_ms: u64,
    /// The control plane's discovery address.
    #[arg(long, default_value = "127.0.0.1:25012")]
    xds_addr: SocketAddr,
    /// The control plane's monitoring address.
    #[arg(long, default_value = "127.0.0.1:25014")]
    monitoring_addr: SocketAddr,
    /// Working directory for manifests and logs (kept afterwards).
    #[arg(long)]
    work: PathBuf,
    /// The git commit measured.
    #[arg(long, default_value = "unknown")]
    commit: String,
    /// The command line to record.
    #[arg(long, default_value = "mesh-cp-bench")]
    command: String,
    /// Date and time to record.
    #[arg(long)]
    date: String,
    /// Where to write the JSON report.
    #[arg(long)]
    json: PathBuf,
    /// Where to write the markdown tables.
    #[arg(long)]
    markdown: PathBuf,
}

/// Waits until the control plane has translated more than `count` times.
async fn wait_for_translation(monitoring: Monitoring, count: f64) -> Result<()> {
    let deadline = tokio::time::Instant::now() + READY_PATIENCE;
    while monitoring.metrics().await?.value(push::TRANSLATIONS) <= count {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the control plane did not translate the changed folder"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// How long the control plane may take to publish its first config.
const READY_PATIENCE: Duration = Duration::from_secs(120);
/// The idle control plane's CPU is measured over this long.
const IDLE_WINDOW: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let load_average = fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let mesh = Mesh {
        services: args.services,
        endpoints: args.endpoints,
    };
    let small = Mesh {
        services: 10,
        endpoints: args.endpoints,
    };
    let (mesh_dir, small_dir) = (args.work.join("mesh"), args.work.join("mesh-small"));
    mesh.write(&mesh_dir)?;
    small.write(&small_dir)?;

    eprintln!("-- translating {} services in process", mesh.services);
    let translation = translation::measure(&mesh_dir, mesh.services, args.translations)?;
    let proxy = ProxyCommand {
        binary: args.proxy.clone(),
        discovery: format!("http://{}", args.xds_addr),
        delta: !args.sotw,
    };
    let monitoring = Monitoring(args.monitoring_addr);

    eprintln!("-- a real proxy with {} services", small.services);
    let mut proxy_memory = Vec::new();
    {
        let (_cp, _) = start_control_plane(&args, &small_dir, monitoring).await?;
        let measured = proxy_memory::measure(&proxy, monitoring, small, None, &args.work).await?;
        proxy_memory.push(measured);
    }

    eprintln!("-- the control plane with {} services", mesh.services);
    let (cp, startup) = start_control_plane(&args, &mesh_dir, monitoring).await?;
    let first_translation_ms = monitoring.metrics().await?.value(push::TRANSLATION_SUM) * 1e3;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = cp.cpu_time()?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let control_plane = ControlPlaneUsage {
        startup_s: startup.as_secs_f64(),
        first_translation_ms,
        idle_rss_kib: cp.rss_kib()?,
        idle_cpu_percent: cp.cpu_time()?.percent_since(cpu_before, IDLE_WINDOW),
    };
    eprintln!("-- a real proxy with {} services", mesh.services);
    proxy_memory.push(proxy_memory::measure(&proxy, monitoring, mesh, None, &args.work).await?);
    let scope = mesh.scope_to_first_namespace(&mesh_dir)?;
    let translated = monitoring.metrics().await?.value(push::TRANSLATIONS);
    wait_for_translation(monitoring, translated).await?;
    let scoped = proxy_memory::measure(&proxy, monitoring, mesh, Some(&scope), &args.work).await?;
    proxy_memory.push(scoped);
    mesh.unscope(&mesh_dir)?;
    wait_for_translation(monitoring, translated + 1.0).await?;

    let target = Target {
        process: &cp,
        monitoring,
        url: format!("http://{}", args.xds_addr),
        mesh,
        dir: &mesh_dir,
        endpoint_down: Cell::new(false),
    };
    let mut phases = Vec::new();
    for &proxies in &args.proxies {
        eprintln!("-- {proxies} simulated proxies, {} changes", args.rounds);
        let settings = PushSettings {
            proxies,
            delta: !args.sotw,
            rounds: args.rounds,
        };
        let phase = push::measure(&target, settings).await?;
        eprintln!(
            "   change seen -> ACK p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            phase.seen_to_ack_ms.p50, phase.seen_to_ack_ms.p99, phase.seen_to_ack_ms.max
        );
        phases.push(phase);
    }
    drop(cp);

    let settings = format!(
        "{} streams; {} changes per phase (one endpoint of one service turning not ready, then \
         ready again); control plane with --debounce-ms {} and its folder poll (250 ms); \
         simulated proxies in the benchmark's process, sharing the machine's CPUs with the \
         control plane",
        if args.sotw {
            "state-of-the-world"
        } else {
            "delta"
        },
        args.rounds,
        args.debounce_ms
    );
    let mut report = ControlPlaneReport {
        meta: Meta {
            date: args.date.clone(),
            commit: args.commit.clone(),
            command: args.command.clone(),
            machine: Machine::this(),
            settings,
        },
        load_average,
        services: mesh.services,
        endpoints_per_service: mesh.endpoints,
        translation,
        control_plane,
        proxy_memory,
        push: phases,
        goals: Vec::new(),
    };
    report.check_goals();
    let json = serde_json::to_string_pretty(&report)?;
    fs::write(&args.json, json + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    let markdown = report.markdown();
    fs::write(&args.markdown, &markdown)
        .with_context(|| format!("writing {}", args.markdown.display()))?;
    println!("{markdown}");
    Ok(())
}

/// Starts the control plane on `dir` and waits until it has published its first config.
async fn start_control_plane(
    args: &Args,
    dir: &Path,
    monitoring: Monitoring,
) -> Result<(Process, Duration)> {
    let mut command = Command::new(&args.control_plane);
    command
        .arg("--manifests")
        .arg(dir)
        .args(["--xds-addr", &args.xds_addr.to_string()])
        .args(["--monitoring-addr", &args.monitoring_addr.to_string()])
        .args(["--debounce-ms", &args.debounce_ms.to_string()])
        // The simulated proxies speak plain h2c; the real proxy follows them.
        .arg("--plaintext-xds")
        .args(["--log", "warn"]);
    let started = Instant::now();
    let name = format!("mesh-control-plane-{}", dir.display()).replace('/', "_");
    let process = Process::spawn(&name, command, &args.work)?;
    while !monitoring.ready().await {
        process.ensure_alive()?;
        if started.elapsed() > READY_PATIENCE {
            bail!("the control plane did not become ready within {READY_PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((process, started.elapsed()))
}
