//! `mesh-init`: writes the pod's capture rules (or, with `--cleanup`, removes them).

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use mesh_init::backend::{self, Backend};
use mesh_init::options::{self, RawOptions};
use mesh_init::{Family, Iptables, RuleSet};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// Every option also reads from the environment variable shown in `--help`; lists are
/// comma-separated.
#[derive(Parser, Debug)]
#[command(
    name = "mesh-init",
    version,
    about = "Writes the nat rules that capture a pod's TCP traffic into its mesh sidecar"
)]
struct Cli {
    /// Inbound ports to capture: "*" for all, a list, or "" for none.
    #[arg(long, env = options::INBOUND_PORTS.env, default_value = "*")]
    inbound_ports: String,
    /// Inbound ports never captured, besides 15021 and 15090 (the proxy's health and metrics
    /// ports, which never are).
    #[arg(long, env = options::EXCLUDE_INBOUND_PORTS.env, default_value = "")]
    exclude_inbound_ports: String,
    /// Outbound destination ports never captured.
    #[arg(long, env = options::EXCLUDE_OUTBOUND_PORTS.env, default_value = "")]
    exclude_outbound_ports: String,
    /// Outbound destination CIDRs never captured (IPv4 and IPv6 may be mixed).
    #[arg(long, env = options::EXCLUDE_OUTBOUND_CIDRS.env, default_value = "")]
    exclude_outbound_cidrs: String,
    /// Outbound destination CIDRs captured: "*" for all, a list, or "" for none.
    #[arg(long, env = options::INCLUDE_OUTBOUND_CIDRS.env, default_value = "*")]
    include_outbound_cidrs: String,
    /// The proxy's uid: its traffic is never captured.
    #[arg(long, env = options::PROXY_UID_SETTING.env, default_value_t = options::PROXY_UID)]
    proxy_uid: u32,
    /// The proxy's gid: its traffic is never captured.
    #[arg(long, env = options::PROXY_GID_SETTING.env, default_value_t = options::PROXY_GID)]
    proxy_gid: u32,
    /// Where captured outbound connections are redirected.
    #[arg(
        long,
        env = options::OUTBOUND_PORT_SETTING.env,
        default_value_t = options::OUTBOUND_CAPTURE_PORT
    )]
    outbound_capture_port: u16,
    /// Where captured inbound connections are redirected.
    #[arg(
        long,
        env = options::INBOUND_PORT_SETTING.env,
        default_value_t = options::INBOUND_CAPTURE_PORT
    )]
    inbound_capture_port: u16,
    /// iptables backend; "auto" uses the one that already holds rules (nft if none does).
    #[arg(long, env = "MESH_IPTABLES_BACKEND", value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// IPv6 rules; "auto" writes them when the kernel has IPv6.
    #[arg(long, env = "MESH_IPV6", value_enum, default_value_t = Ipv6::Auto)]
    ipv6: Ipv6,
    /// Print the iptables-restore input, one section per family, and change nothing.
    #[arg(long, env = "MESH_DRY_RUN", value_parser = clap::builder::FalseyValueParser::new())]
    dry_run: bool,
    /// Remove our jumps and chains, and nothing else, instead of writing rules.
    #[arg(long, env = "MESH_CLEANUP", value_parser = clap::builder::FalseyValueParser::new())]
    cleanup: bool,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "mesh_init=debug".
    #[arg(long, env = "MESH_INIT_LOG", default_value = "info")]
    log: String,
}

/// `--backend` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Auto,
    Legacy,
    Nft,
}

/// `--ipv6` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Ipv6 {
    Auto,
    On,
    Off,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mesh-init: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let options = cli.raw_options().parse()?;
    let families: Vec<Family> = match cli.ipv6 {
        Ipv6::On => Family::ALL.to_vec(),
        Ipv6::Off => vec![Family::V4],
        Ipv6::Auto if backend::ipv6_available() => Family::ALL.to_vec(),
        Ipv6::Auto => vec![Family::V4],
    };
    if cli.dry_run {
        return dry_run(cli, &options, &families);
    }
    let backend = choose_backend(cli.backend, &families)?;
    let tables: Vec<Iptables> = families
        .iter()
        .map(|&family| Iptables { backend, family })
        .collect();
    // Read every family's table before changing any, so a failure changes nothing.
    if cli.cleanup {
        let plans = tables
            .iter()
            .map(|t| t.cleanup_plan())
            .collect::<Result<Vec<_>, _>>()?;
        for (table, plan) in tables.iter().zip(plans) {
            match plan {
                Some(input) => {
                    table.restore(&input)?;
                    info!(family = %table.family, %backend, "removed mesh chains and jumps");
                }
                None => info!(family = %table.family, %backend, "no mesh rules to remove"),
            }
        }
        return Ok(());
    }
    let rule_sets: Vec<RuleSet> = families
        .iter()
        .map(|&f| RuleSet::build(&options, f))
        .collect();
    let plans = tables.iter().zip(&rule_sets).map(|(t, r)| t.plan(r));
    let plans = plans.collect::<Result<Vec<_>, _>>()?;
    for ((table, rules), input) in tables.iter().zip(&rule_sets).zip(plans) {
        table.restore(&input)?;
        let count = rules.rules.len();
        info!(family = %table.family, %backend, rules = count, "capture rules applied");
    }
    Ok(())
}

/// Prints what would be fed to each restore. When the current table cannot be read (no
/// iptables, no privileges), prints the input for a table without our rules and says so.
fn dry_run(cli: &Cli, options: &options::Options, families: &[Family]) -> anyhow::Result<()> {
    let backend = match choose_backend(cli.backend, families) {
        Ok(backend) => backend,
        Err(error) => {
            warn!("{error:#}; showing the nft backend's input");
            Backend::Nft
        }
    };
    for &family in families {
        let table = Iptables { backend, family };
        let (plan, header) = if cli.cleanup {
            let plan = table
                .cleanup_plan()
                .context("reading the current nat table")?;
            let plan = plan.unwrap_or_else(|| "# no mesh chains or jumps: nothing to do\n".into());
            (plan, "cleanup")
        } else {
            let rules = RuleSet::build(options, family);
            let plan = table.plan(&rules).unwrap_or_else(|error| {
                warn!(%family, "{error}; showing the input for a table without mesh rules");
                rules.render()
            });
            (plan, "apply")
        };
        let binary = backend.restore(family);
        print!("# {header}: {binary} --noflush ({family}, {backend} backend)\n{plan}");
    }
    Ok(())
}

fn choose_backend(choice: BackendChoice, families: &[Family]) -> anyhow::Result<Backend> {
    let backend = match choice {
        BackendChoice::Legacy => Backend::Legacy,
        BackendChoice::Nft => Backend::Nft,
        BackendChoice::Auto => match backend::detect(families) {
            Some(detection) => {
                info!(backend = %detection.backend, reason = %detection.reason, "backend detected");
                return Ok(detection.backend);
            }
            None => bail!("iptables-restore not found; install the iptables package"),
        },
    };
    for &family in families {
        for binary in [backend.restore(family), backend.save(family)] {
            if backend::find_binary(&binary).is_none() {
                bail!("{binary} not found; install the iptables package");
            }
        }
    }
    Ok(backend)
}

fn init_tracing(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

// === impl Cli ===

impl Cli {
    fn raw_options(&self) -> RawOptions {
        RawOptions {
            inbound_ports: self.inbound_ports.clone(),
            exclude_inbound_ports: self.exclude_inbound_ports.clone(),
            exclude_outbound_ports: self.exclude_outbound_ports.clone(),
            exclude_outbound_cidrs: self.exclude_outbound_cidrs.clone(),
            include_outbound_cidrs: self.include_outbound_cidrs.clone(),
            proxy_uid: self.proxy_uid,
            proxy_gid: self.proxy_gid,
            outbound_capture_port: self.outbound_capture_port,
            inbound_capture_port: self.inbound_capture_port,
        }
    }
}
