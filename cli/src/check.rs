//! `mesh check`: is this cluster fit for the mesh (`--pre-install`), and is the installed mesh
//! healthy? Like `linkerd check` and `istioctl x precheck`: one line per check, √ or ×, a hint
//! under every ×, exit 1 when any check failed.

mod admission;
mod client;
mod control_plane;
mod crds;
mod permissions;
mod report;
mod version;
mod webhook;

use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::runtime;
use report::Report;

/// Exit status when some check failed.
const FAILED: u8 = 1;

/// The control plane's Deployment, the injector's Service and the webhook configuration, as
/// the chart names them.
const CONTROL_PLANE: &str = "mesh-control-plane";
const INJECTOR_SERVICE: &str = "mesh-injector";
const WEBHOOK_CONFIG: &str = "mesh-sidecar-injector";

/// `mesh check` options.
#[derive(Args)]
#[command(after_help = "Exit status: 0 when every check passed; 1 when any failed (×).")]
pub struct CheckArgs {
    /// Check whether the mesh can be installed: the Kubernetes version and whether you may
    /// create what the chart installs. Without it, check the installed mesh.
    #[arg(long)]
    pre_install: bool,
    /// The mesh's namespace.
    #[arg(short, long, default_value = "mesh-system")]
    namespace: String,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long)]
    context: Option<String>,
}

/// Runs `mesh check`.
pub fn run(args: CheckArgs) -> ExitCode {
    runtime::block_on("check", FAILED, check(&args))
}

async fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let mut report = Report::new();
    let (client, server) =
        client::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await?;

    report.section("Kubernetes API");
    let reachable = version::check(&client, &server, &mut report).await;
    if reachable {
        if args.pre_install {
            report.section("Permissions to install the mesh");
            permissions::check(&client, &args.namespace, &mut report).await;
        } else {
            installed(&client, &args.namespace, &mut report).await;
        }
    }
    Ok(report.finish())
}

/// The checks of an installed mesh.
async fn installed(client: &kube::Client, namespace: &str, report: &mut Report) {
    report.section("CRDs");
    crds::check(client, report).await;
    report.section("Control plane");
    control_plane::check(client, namespace, report).await;
    report.section("Injection webhook");
    let service = webhook::check(client, namespace, report).await;
    admission::check(client, &service, report).await;
}
