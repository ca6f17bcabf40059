//! `mesh proxy-config secret POD`: the workload certificate a pod's sidecar holds, read from its
//! admin port (`/certs`): identity, serial, validity, the root it chains to, time to renewal.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use crate::{
    locate,
    output::{out, outln},
    proxy_status::{get_json, pod_ref},
    runtime,
};

/// Exit status when the proxy cannot be asked.
const FAILED: u8 = 2;

/// `mesh proxy-config` options.
#[derive(Args)]
pub struct ProxyConfigArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// The workload certificate of a pod's sidecar: identity, serial, validity, root, renewal.
    Secret(SecretArgs),
}

#[derive(Args)]
#[command(after_help = "Exit status: 0 when printed; 2 when the proxy could not be asked.")]
struct SecretArgs {
    /// The pod, NAME.NAMESPACE (or NAME with -n).
    pod: String,
    /// The pod's namespace, when POD is a bare name.
    #[arg(short, long)]
    namespace: Option<String>,
    /// The pod's proxy admin URL, e.g. http://127.0.0.1:15000 (default: in the lab's pod).
    #[arg(long)]
    proxy_admin: Option<String>,
    /// The lab to look in when no URL is given.
    #[arg(long, env = "MESH_LAB_NAME", default_value = "mesh")]
    lab: String,
    /// How to print it.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// How to print the certificate.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// One row per certificate: the workload's and its root.
    Table,
    /// The sidecar's `/certs` answer.
    Json,
}

/// Runs `mesh proxy-config`.
pub fn run(args: ProxyConfigArgs) -> ExitCode {
    let What::Secret(args) = args.what;
    runtime::block_on("proxy-config secret", FAILED, secret(&args))
}

async fn secret(args: &SecretArgs) -> anyhow::Result<ExitCode> {
    let (name, namespace) = pod_ref(&args.pod, args.namespace.as_deref())?;
    let admin = locate::proxy_admin(args.proxy_admin.as_deref(), &args.lab, &namespace, &name)?;
    let who = format!("the proxy of {name}.{namespace}");
    let certs = get_json(&admin, "/certs", &who).await?;
    match args.output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&certs)?),
        Output::Table => out!("{}", table(&certs).context("reading /certs")?),
    }
    Ok(ExitCode::SUCCESS)
}

/// The certificate and its root as aligned rows.
fn table(certs: &Value) -> anyhow::Result<String> {
    let field = |key: &str| -> anyhow::Result<String> {
        certs[key]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {key}"))
    };
    let renewal = certs["seconds_to_renewal"].as_f64().unwrap_or_default();
    let rows = [
        [
            "TYPE".to_owned(),
            "IDENTITY / SUBJECT".to_owned(),
            "SERIAL".to_owned(),
            "NOT BEFORE".to_owned(),
            "NOT AFTER".to_owned(),
            "RENEWS IN".to_owned(),
        ],
        [
            "Cert Chain".to_owned(),
            field("identity")?,
            field("serial")?,
            field("not_before")?,
            field("not_after")?,
            human(renewal),
        ],
        [
            "ROOTCA".to_owned(),
            field("root_subject")?,
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
        ],
    ];
    Ok(crate::output::columns(&rows))
}

/// Seconds as `12h3m`, `4m10s` or `9s`.
fn human(seconds: f64) -> String {
    let total = seconds.max(0.0) as u64;
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_the_certificate_and_its_root() {
        let certs = serde_json::json!({
            "identity": "spiffe://cluster.local/ns/shop/sa/sleep",
            "serial": "0a1b",
            "not_before": "2026-12-04T16:25:38Z",
            "not_after": "2026-12-05T16:30:38Z",
            "seconds_to_renewal": 43197.4,
            "root_subject": "O=mesh, CN=mesh root CA 8ffe",
        });
        let text = table(&certs).expect("table");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TYPE"), "{text}");
        assert!(
            lines[1].contains("spiffe://cluster.local/ns/shop/sa/sleep"),
            "{text}"
        );
        assert!(lines[1].ends_with("11h59m"), "{text}");
        assert!(lines[2].contains("CN=mesh root CA 8ffe"), "{text}");
        assert!(table(&serde_json::json!({})).is_err());
        assert_eq!(human(250.0), "4m10s");
        assert_eq!(human(9.0), "9s");
    }
}
