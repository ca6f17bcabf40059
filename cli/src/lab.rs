//! `mesh lab up|status|exec|logs|scale|traces|down`.

use crate::output::{out, outln};
use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{ExitCode, Stdio},
    time::Duration,
};

use anyhow::Context;
use clap::{Args, Subcommand};
use mesh_lab::{
    control, netns,
    state::{self, LabState},
    status,
    supervisor::{self, Lab, LabOptions},
    topology::LabNames,
};

/// `mesh lab` and its subcommands.
#[derive(Args)]
pub struct LabArgs {
    /// The lab's name; several labs can run side by side.
    #[arg(
        long,
        visible_alias = "lab",
        global = true,
        env = "MESH_LAB_NAME",
        default_value = "mesh"
    )]
    name: String,
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Build the lab from a folder of manifests and start every pod; returns once all are ready.
    Up {
        /// The manifests folder (Namespaces, Deployments, Pods, Services, ...).
        #[arg(short = 'f', long = "filename")]
        manifests: PathBuf,
        /// How many nodes.
        #[arg(long, default_value_t = 2)]
        nodes: u8,
        /// Stay in the foreground as the lab's supervisor (stop with Ctrl-C).
        #[arg(long)]
        foreground: bool,
        /// How long to wait for every pod to be ready.
        #[arg(long, default_value = "60", value_parser = seconds)]
        timeout: Duration,
        /// Where mesh-proxy, mesh-init and mesh-workload are (default: next to `mesh`).
        #[arg(long, env = "MESH_LAB_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        /// Do not link this machine to the node network (by default it is, at 172.18.0.1, so
        /// NodePorts answer on the node addresses from here).
        #[arg(long)]
        no_host_link: bool,
    },
    /// Nodes, pods (ready, restarts, IP, node, sidecar) and Services with their endpoints.
    Status,
    /// Run a command inside a pod's network namespace.
    Exec {
        /// The pod: NAME, NAMESPACE/NAME, or deploy/NAME (its first ready pod).
        pod: String,
        /// The pod's namespace, when not in the reference.
        #[arg(short, long)]
        namespace: Option<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Print a pod's logs (every container, or one).
    Logs {
        /// The pod: NAME, NAMESPACE/NAME, or deploy/NAME.
        pod: String,
        /// The pod's namespace, when not in the reference.
        #[arg(short, long)]
        namespace: Option<String>,
        /// Only this container (`mesh-proxy` for the sidecar, `mesh-init` for capture rules).
        #[arg(short, long)]
        container: Option<String>,
    },
    /// Set a Deployment's number of pods in the running lab (the control plane and the
    /// sidecars follow).
    Scale {
        /// The Deployment: deploy/NAME (or deployment/NAME).
        deployment: String,
        /// How many pods it should have.
        #[arg(long)]
        replicas: u32,
        /// The Deployment's namespace.
        #[arg(short, long, default_value = "default")]
        namespace: String,
    },
    /// The newest traces of the lab's trace collector, as trees of spans (root first,
    /// children indented under their parent).
    Traces(crate::lab_traces::TracesArgs),
    /// Stop the lab and remove every namespace, link, rule, process and file it made
    /// (also after a crash of `up`).
    Down,
}

fn seconds(text: &str) -> Result<Duration, String> {
    let number = text.trim_end_matches('s');
    number
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{text:?} is not a number of seconds"))
}

/// Runs a `mesh lab` command.
pub fn run(args: LabArgs) -> ExitCode {
    let result = match args.command {
        LabCommand::Up {
            manifests,
            nodes,
            foreground,
            timeout,
            bin_dir,
            no_host_link,
        } => up(
            LabOptions {
                name: args.name.clone(),
                manifests,
                nodes,
                bin_dir: bin_dir.unwrap_or_default(),
                ready_timeout: timeout,
                host_link: !no_host_link,
            },
            foreground,
        ),
        LabCommand::Status => LabState::read(&args.name)
            .map(|state| out!("{}", status::render(&state)))
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        LabCommand::Exec {
            pod,
            namespace,
            command,
        } => exec(&args.name, &pod, namespace.as_deref(), &command),
        LabCommand::Logs {
            pod,
            namespace,
            container,
        } => logs(&args.name, &pod, namespace.as_deref(), container.as_deref()),
        LabCommand::Scale {
            deployment,
            replicas,
            namespace,
        } => scale(&args.name, &deployment, replicas, namespace),
        LabCommand::Traces(traces) => return crate::lab_traces::run(&args.name, traces),
        LabCommand::Down => down(&args.name),
    };
    result.unwrap_or_else(|error| {
        eprintln!("mesh lab: {error:#}");
        ExitCode::FAILURE
    })
}

/// `mesh lab up`: `options.bin_dir` empty means next to `mesh`.
fn up(mut options: LabOptions, foreground: bool) -> anyhow::Result<ExitCode> {
    if !nix::unistd::Uid::effective().is_root() {
        anyhow::bail!("the lab makes network namespaces and iptables rules: run it as root");
    }
    if options.bin_dir.as_os_str().is_empty() {
        options.bin_dir = std::env::current_exe()
            .context("finding the mesh binary")?
            .parent()
            .context("the mesh binary has no folder")?
            .to_path_buf();
    }
    options.manifests = std::fs::canonicalize(&options.manifests)
        .with_context(|| format!("manifests folder {}", options.manifests.display()))?;
    if foreground {
        return supervise(options);
    }
    start_in_background(&options)
}

/// Starts `mesh lab up --foreground` detached and waits for its "ready" line.
fn start_in_background(options: &LabOptions) -> anyhow::Result<ExitCode> {
    let name = options.name.as_str();
    let log_path = PathBuf::from(state::STATE_ROOT).join(format!("{name}.log"));
    std::fs::create_dir_all(state::STATE_ROOT)?;
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["lab", "--name", name, "up", "--foreground", "--nodes"])
        .arg(options.nodes.to_string())
        .arg("--timeout")
        .arg(options.ready_timeout.as_secs().to_string())
        .arg("--bin-dir")
        .arg(&options.bin_dir)
        .arg("-f")
        .arg(&options.manifests)
        .args((!options.host_link).then_some("--no-host-link"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the lab supervisor")?;
    let stdout = child.stdout.take().context("supervisor stdout")?;
    let mut first_line = String::new();
    BufReader::new(stdout).read_line(&mut first_line)?;
    if first_line.trim() == "ready" {
        let state = LabState::read(name)?;
        out!("{}", status::render(&state));
        outln!("\nsupervisor log: {}", log_path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    eprintln!("{log}");
    anyhow::bail!(
        "the lab did not start (log above, also in {})",
        log_path.display()
    )
}

/// Runs the lab in this process until SIGINT or SIGTERM.
fn supervise(options: LabOptions) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MESH_LAB_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let lab = tokio::select! {
            lab = Lab::start(options) => lab?,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted while starting"),
            _ = terminate.recv() => anyhow::bail!("terminated while starting"),
        };
        // The readiness line `mesh lab up` waits for; stdout is not used after it.
        outln!("ready");
        tracing::info!("lab {} is ready", lab.names().lab);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stopping the lab");
        lab.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn exec(
    name: &str,
    pod: &str,
    namespace: Option<&str>,
    command: &[String],
) -> anyhow::Result<ExitCode> {
    let state = LabState::read(name)?;
    let key = state
        .find_pod(pod, namespace)
        .with_context(|| format!("no pod {pod} in lab {name}; see `mesh lab status`"))?;
    let netns_name = &state.pods[&key].netns;
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", netns_name])
        .args(command)
        .env(
            "PATH",
            format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()),
        )
        .status()
        .context("running ip netns exec")?;
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}

fn logs(
    name: &str,
    pod: &str,
    namespace: Option<&str>,
    container: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let state = LabState::read(name)?;
    let key = state
        .find_pod(pod, namespace)
        .with_context(|| format!("no pod {pod} in lab {name}; see `mesh lab status`"))?;
    let mut names: Vec<String> = state.pods[&key].containers.keys().cloned().collect();
    if state.pods[&key]
        .containers
        .contains_key(mesh_lab::pods::PROXY_CONTAINER)
    {
        names.insert(0, "mesh-init".to_owned());
    }
    if let Some(container) = container {
        anyhow::ensure!(
            names.iter().any(|n| n == container),
            "pod {key} has no container {container}; it has {}",
            names.join(", ")
        );
        names = vec![container.to_owned()];
    }
    let several = names.len() > 1;
    for container in names {
        let path = state::log_file(name, &key, &container);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if several {
            outln!("==> {key} {container} <==");
        }
        out!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

fn scale(
    name: &str,
    deployment: &str,
    replicas: u32,
    namespace: String,
) -> anyhow::Result<ExitCode> {
    let Some(("deploy" | "deployment", deployment)) = deployment.split_once('/') else {
        anyhow::bail!("{deployment:?} is not a Deployment; write deploy/NAME");
    };
    let request = control::Request::Scale {
        namespace,
        deployment: deployment.to_owned(),
        replicas,
    };
    match control::send(&control::socket_path(name), &request)? {
        control::Reply::Done(what) => {
            outln!("{what}");
            Ok(ExitCode::SUCCESS)
        }
        control::Reply::Failed(why) => anyhow::bail!("{why}"),
    }
}

fn down(name: &str) -> anyhow::Result<ExitCode> {
    if let Ok(state) = LabState::read(name) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(state.supervisor_pid)?);
        if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_ok() {
            // The supervisor stops its pods gracefully; wait for it, within reason.
            for _ in 0..200 {
                if nix::sys::signal::kill(pid, None).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    // Whatever is left (a supervisor killed with -9, a crash): remove it by name.
    let names = LabNames::new(name);
    let left = netns::list(&names.prefix());
    supervisor::teardown(&names);
    let _ = std::fs::remove_file(PathBuf::from(state::STATE_ROOT).join(format!("{name}.log")));
    outln!(
        "lab {name} is down{}",
        if left.is_empty() {
            String::new()
        } else {
            format!(" (removed {} namespaces)", left.len())
        }
    );
    Ok(ExitCode::SUCCESS)
}
