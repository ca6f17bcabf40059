//! `mesh tls-check POD [SERVICE]`: for every service port the pod reaches, what its servers
//! accept (PeerAuthentication) against what the pod's sidecar sends (DestinationRule, else auto
//! mTLS), and why a pair cannot talk. Asked from the control plane (`/debug/tlscheck`).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use mesh_control_plane::translate::TlsCheckRow;

use crate::{
    locate,
    output::{out, outln},
    proxy_status::{get_json, pod_ref},
    runtime,
};

/// Exit status when some pair cannot talk.
const CONFLICT: u8 = 1;
/// Exit status when the control plane cannot be asked.
const FAILED: u8 = 2;

/// `mesh tls-check` options.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 when every row is OK; 1 when some row is CONFLICT; 2 \
when the control plane could not be asked."
)]
pub struct TlsCheckArgs {
    /// The client pod, NAME.NAMESPACE (or NAME with -n).
    pod: String,
    /// Only this service: a host (web.shop.svc.cluster.local), NAME.NAMESPACE, or HOST:PORT.
    service: Option<String>,
    /// The pod's namespace, when POD is a bare name.
    #[arg(short, long)]
    namespace: Option<String>,
    /// The control plane's monitoring URL, e.g. http://127.0.0.1:15014 (default: the lab's).
    #[arg(long, env = "MESH_CONTROL_PLANE")]
    control_plane: Option<String>,
    /// The lab to look in when no URL is given.
    #[arg(long, env = "MESH_LAB_NAME", default_value = "mesh")]
    lab: String,
    /// How to print the rows.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Also connect from the pod's sidecar to one endpoint of each row: the mesh TLS version,
    /// cipher and the peer's identity, and whether plain text is refused.
    #[arg(long)]
    probe: bool,
    /// The pod's proxy admin URL for --probe, e.g. http://127.0.0.1:15000 (default: in the
    /// lab's pod).
    #[arg(long, requires = "probe")]
    proxy_admin: Option<String>,
}

/// How to print the rows.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// `HOST:PORT STATUS SERVER CLIENT AUTHN-POLICY DESTINATION-RULE`, then each conflict's
    /// reason.
    Table,
    /// The rows as JSON.
    Json,
}

/// Runs `mesh tls-check`.
pub fn run(args: TlsCheckArgs) -> ExitCode {
    runtime::block_on("tls-check", FAILED, check(&args))
}

async fn check(args: &TlsCheckArgs) -> anyhow::Result<ExitCode> {
    let (name, namespace) = pod_ref(&args.pod, args.namespace.as_deref())?;
    let id = format!("{name}.{namespace}");
    let control_plane = locate::control_plane(args.control_plane.as_deref(), &args.lab)?;
    let path = format!("/debug/tlscheck?proxy={id}");
    let answer = get_json(&control_plane.endpoint, &path, "the control plane").await?;
    let rows: Vec<TlsCheckRow> = serde_json::from_value(answer["rows"].clone())
        .context("the control plane's /debug/tlscheck answer has no rows")?;
    let rows: Vec<TlsCheckRow> = rows
        .into_iter()
        .filter(|row| args.service.as_deref().is_none_or(|s| selects(s, row)))
        .collect();
    if let Some(service) = &args.service
        && rows.is_empty()
    {
        anyhow::bail!("{id} reaches no service {service:?}");
    }
    let probes = match args.probe {
        true => Some(probe_all(args, &name, &namespace, &rows).await?),
        false => None,
    };
    match (args.output, &probes) {
        (Output::Json, None) => outln!("{}", serde_json::to_string_pretty(&rows)?),
        (Output::Json, Some(probes)) => {
            let rows: Vec<serde_json::Value> = rows
                .iter()
                .zip(probes)
                .map(|(row, probe)| {
                    let mut value = serde_json::to_value(row).unwrap_or_default();
                    value["probe"] = probe.clone();
                    value
                })
                .collect();
            outln!("{}", serde_json::to_string_pretty(&rows)?);
        }
        (Output::Table, _) => out!("{}", table(&rows)),
    }
    if let (Output::Table, Some(probes)) = (args.output, &probes) {
        out!("{}", probe_table(&rows, probes));
    }
    let conflicts = rows.iter().any(|r| r.status != "OK");
    Ok(if conflicts {
        ExitCode::from(CONFLICT)
    } else {
        ExitCode::SUCCESS
    })
}

/// Probes one endpoint of every row from the pod's sidecar (its admin `/probe`).
async fn probe_all(
    args: &TlsCheckArgs,
    name: &str,
    namespace: &str,
    rows: &[TlsCheckRow],
) -> anyhow::Result<Vec<serde_json::Value>> {
    let admin = locate::proxy_admin(args.proxy_admin.as_deref(), &args.lab, namespace, name)?;
    let mut probes = Vec::new();
    for row in rows {
        let Some(endpoint) = row.endpoints.first() else {
            probes.push(serde_json::json!({ "error": "no endpoint" }));
            continue;
        };
        let path = format!(
            "/probe?cluster={}&endpoint={endpoint}",
            row.cluster.replace('|', "%7C")
        );
        let who = format!("the proxy of {name}.{namespace}");
        let probe = get_json(&admin, &path, &who)
            .await
            .unwrap_or_else(|e| serde_json::json!({ "error": format!("{e:#}") }));
        probes.push(probe);
    }
    Ok(probes)
}

/// What each probe found, one line per row.
fn probe_table(rows: &[TlsCheckRow], probes: &[serde_json::Value]) -> String {
    let mut text = String::from("\nPROBE (from the pod's sidecar to one endpoint)\n");
    for (row, probe) in rows.iter().zip(probes) {
        let mtls = &probe["mtls"];
        let tls = match (mtls["used"].as_bool(), mtls["ok"].as_bool()) {
            (Some(true), Some(true)) => format!(
                "mTLS {} {} peer {}",
                mtls["version"].as_str().unwrap_or("?"),
                mtls["cipher"].as_str().unwrap_or("?"),
                mtls["peer"].as_str().unwrap_or("-"),
            ),
            (Some(true), _) => format!("mTLS FAILED: {}", mtls["error"].as_str().unwrap_or("?")),
            (Some(false), _) => "plain text (no mTLS to this endpoint)".to_owned(),
            _ => format!("not probed: {}", probe["error"].as_str().unwrap_or("?")),
        };
        let plaintext = &probe["plaintext"];
        let plain = match plaintext["refused"].as_bool() {
            Some(true) => format!(
                "plain text refused ({})",
                plaintext["how"].as_str().unwrap_or("?")
            ),
            Some(false) => "plain text accepted".to_owned(),
            None => String::new(),
        };
        let endpoint = probe["endpoint"].as_str().unwrap_or("-");
        text.push_str(&format!(
            "{}:{} via {endpoint}: {tls}; {plain}\n",
            row.host, row.port
        ));
    }
    text
}

/// Whether `service` names the row's host (whole, `name.namespace`, or with its port).
fn selects(service: &str, row: &TlsCheckRow) -> bool {
    let (name, port) = match service.rsplit_once(':') {
        Some((name, port)) => (name, port.parse::<u32>().ok()),
        None => (service, None),
    };
    let host = row.host == name || row.host.starts_with(&format!("{name}.svc"));
    host && port.is_none_or(|p| p == row.port)
}

/// The rows as aligned columns, then one line per conflict saying why.
fn table(rows: &[TlsCheckRow]) -> String {
    let header = [
        "HOST:PORT",
        "STATUS",
        "SERVER",
        "CLIENT",
        "AUTHN-POLICY",
        "DESTINATION-RULE",
    ]
    .map(str::to_owned);
    let cells: Vec<[String; 6]> = std::iter::once(header)
        .chain(rows.iter().map(|r| {
            [
                format!("{}:{}", r.host, r.port),
                r.status.clone(),
                r.server.clone(),
                r.client.clone(),
                r.authn_policy.clone(),
                r.destination_rule.clone(),
            ]
        }))
        .collect();
    let mut text = crate::output::columns(&cells);
    for row in rows.iter().filter(|r| !r.reason.is_empty()) {
        text.push_str(&format!("{}:{}: {}\n", row.host, row.port, row.reason));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(host: &str, port: u32, status: &str) -> TlsCheckRow {
        TlsCheckRow {
            host: host.to_owned(),
            port,
            status: status.to_owned(),
            server: "STRICT".to_owned(),
            client: "DISABLE".to_owned(),
            authn_policy: "shop/default".to_owned(),
            destination_rule: "shop/web".to_owned(),
            reason: if status == "OK" {
                String::new()
            } else {
                "the client sends plain text".to_owned()
            },
            cluster: format!("outbound|{port}||{host}"),
            endpoints: vec!["10.244.1.7:8080".to_owned()],
        }
    }

    #[test]
    fn services_are_named_by_host_short_name_or_port() {
        let web = row("web.shop.svc.cluster.local", 80, "OK");
        assert!(selects("web.shop", &web));
        assert!(selects("web.shop.svc.cluster.local", &web));
        assert!(selects("web.shop:80", &web));
        assert!(!selects("web.shop:81", &web));
        assert!(!selects("web.other", &web));
    }

    #[test]
    fn the_table_lines_up_and_explains_each_conflict() {
        let text = table(&[
            row("a.shop.svc.cluster.local", 80, "OK"),
            row("web.shop.svc.cluster.local", 80, "CONFLICT"),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("HOST:PORT"), "{text}");
        assert_eq!(lines[0].find("STATUS"), lines[1].find("OK"), "{text}");
        assert!(lines[2].contains("CONFLICT"), "{text}");
        assert_eq!(
            lines[3],
            "web.shop.svc.cluster.local:80: the client sends plain text"
        );
    }
}
