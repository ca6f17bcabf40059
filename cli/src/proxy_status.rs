//! `mesh proxy-status [POD]`: every proxy's sync state as the control plane records it, or for
//! one pod, what the control plane would send it compared with what its proxy runs.

use crate::output::{out, outln};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use mesh_control_plane::xds::SyncStatus;
use serde_json::Value;

use crate::{
    config_diff::{self, Comparison, Sides},
    http_get::Endpoint,
    locate, runtime, status_table,
};

/// Exit status when a pod's config differs from what the control plane would send.
const DIFFERS: u8 = 1;

/// Exit status when the control plane or the proxy cannot be asked.
const FAILED: u8 = 2;

/// `mesh proxy-status` options.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 when the table is printed or POD runs what the control \
plane would send it; 1 when POD's config differs; 2 when the control plane or the proxy could \
not be asked."
)]
pub struct ProxyStatusArgs {
    /// A pod to compare, NAME.NAMESPACE (or NAME with -n): what the control plane would send
    /// it against what its proxy runs (its /config_dump).
    pod: Option<String>,
    /// The pod's namespace, when POD is a bare name.
    #[arg(short, long)]
    namespace: Option<String>,
    /// The control plane's monitoring URL, e.g. http://127.0.0.1:15014 (default: the lab's).
    #[arg(long, env = "MESH_CONTROL_PLANE")]
    control_plane: Option<String>,
    /// The pod's proxy admin URL, e.g. http://127.0.0.1:15000 (default: in the lab's pod).
    #[arg(long, requires = "pod")]
    proxy_admin: Option<String>,
    /// The lab to look in when no URL is given.
    #[arg(long, env = "MESH_LAB_NAME", default_value = "mesh")]
    lab: String,
    /// How to print the table.
    #[arg(short, long, value_enum, default_value_t = Output::Table, conflicts_with = "pod")]
    output: Output,
}

/// How to print the table.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// The columns of `istioctl proxy-status`.
    Table,
    /// The table and each proxy's rejections (NACK errors).
    Wide,
    /// The control plane's sync status as JSON, with its name.
    Json,
}

/// Runs `mesh proxy-status`.
pub fn run(args: ProxyStatusArgs) -> ExitCode {
    runtime::block_on("proxy-status", FAILED, async {
        match &args.pod {
            Some(pod) => compare_pod(&args, pod).await,
            None => table(&args).await,
        }
    })
}

async fn table(args: &ProxyStatusArgs) -> anyhow::Result<ExitCode> {
    let control_plane = locate::control_plane(args.control_plane.as_deref(), &args.lab)?;
    let body = get_ok(&control_plane.endpoint, "/debug/syncz", "the control plane").await?;
    let status: SyncStatus = serde_json::from_str(&body).with_context(|| {
        format!(
            "the control plane at {} answered /debug/syncz with something else than its sync status",
            control_plane.endpoint
        )
    })?;
    match args.output {
        Output::Json => {
            let json = serde_json::json!({
                "controlPlane": control_plane.name,
                "proxies": status.proxies,
            });
            outln!("{}", serde_json::to_string_pretty(&json)?);
        }
        Output::Table | Output::Wide => {
            out!(
                "{}",
                status_table::render(&status, &control_plane.name, args.output == Output::Wide)
            );
            if status.proxies.is_empty() {
                eprintln!(
                    "no proxy is connected to the control plane at {}",
                    control_plane.endpoint
                );
            }
            let rejecting = status
                .proxies
                .iter()
                .filter(|p| !status_table::nacks(p).is_empty())
                .count();
            if rejecting > 0 && args.output == Output::Table {
                eprintln!(
                    "{rejecting} proxy(ies) rejected config; `mesh proxy-status -o wide` shows why"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn compare_pod(args: &ProxyStatusArgs, pod: &str) -> anyhow::Result<ExitCode> {
    let (name, namespace) = pod_ref(pod, args.namespace.as_deref())?;
    let id = format!("{name}.{namespace}");
    let control_plane = locate::control_plane(args.control_plane.as_deref(), &args.lab)?;
    let admin = locate::proxy_admin(args.proxy_admin.as_deref(), &args.lab, &namespace, &name)?;

    let path = format!("/debug/config?proxy={id}");
    let expected = get_json(&control_plane.endpoint, &path, "the control plane").await?;
    let running = get_json(&admin, "/config_dump", &format!("the proxy of {id}")).await?;
    let control_plane_side = format!(
        "control plane {} (generation {})",
        control_plane.name, expected["generation"]
    );
    let proxy_side = format!("proxy {id} (/config_dump)");
    let sides = Sides {
        control_plane: &control_plane_side,
        proxy: &proxy_side,
    };
    let mut differs = false;
    for (ty, comparison) in config_diff::compare(&expected, &running, sides) {
        match comparison {
            Comparison::Match => outln!("{} Match", ty.title),
            Comparison::Differ(diff) => {
                differs = true;
                outln!("{} Don't Match", ty.title);
                out!("{diff}");
            }
        }
    }
    let clusters = get_json(&admin, "/clusters", &format!("the proxy of {id}")).await?;
    for line in ejected_lines(&clusters) {
        outln!("{line}");
    }
    Ok(if differs {
        ExitCode::from(DIFFERS)
    } else {
        ExitCode::SUCCESS
    })
}

/// One line per endpoint the proxy's outlier detection has ejected (its `/clusters`), after a
/// heading; nothing when none is.
fn ejected_lines(clusters: &serde_json::Value) -> Vec<String> {
    let mut lines = Vec::new();
    for cluster in clusters["clusters"].as_array().into_iter().flatten() {
        for endpoint in cluster["endpoints"].as_array().into_iter().flatten() {
            let ejected = &endpoint["ejected"];
            if ejected.is_null() {
                continue;
            }
            lines.push(format!(
                "  {} {}: {} (ejection {}, {:.0}s left)",
                cluster["name"].as_str().unwrap_or("?"),
                endpoint["address"].as_str().unwrap_or("?"),
                ejected["reason"].as_str().unwrap_or("?"),
                ejected["ejections"],
                ejected["remaining_seconds"].as_f64().unwrap_or(0.0),
            ));
        }
    }
    if !lines.is_empty() {
        lines.insert(0, "Ejected endpoints (outlier detection):".to_owned());
    }
    lines
}

/// `NAME.NAMESPACE`, or `NAME` in `namespace` (default `default`).
pub(crate) fn pod_ref(pod: &str, namespace: Option<&str>) -> anyhow::Result<(String, String)> {
    let usage = "write the pod as NAME.NAMESPACE (e.g. web-1.shop) or NAME -n NAMESPACE";
    if pod.is_empty() || pod.contains('/') {
        bail!("{pod:?} is not a pod reference: {usage}");
    }
    let (name, ns) = match pod.rsplit_once('.') {
        Some((name, ns)) if !name.is_empty() && !ns.is_empty() => (name, ns),
        Some(_) => bail!("{pod:?} is not a pod reference: {usage}"),
        None => (pod, namespace.unwrap_or("default")),
    };
    if let Some(given) = namespace
        && given != ns
    {
        bail!("{pod:?} is in namespace {ns}, but -n says {given}: {usage}");
    }
    Ok((name.to_owned(), ns.to_owned()))
}

/// GETs `path` from `who` at `endpoint`; anything but 200 is an error with the answer's text.
pub(crate) async fn get_ok(endpoint: &Endpoint, path: &str, who: &str) -> anyhow::Result<String> {
    let answer = endpoint
        .get(path)
        .await
        .with_context(|| format!("cannot ask {who}"))?;
    if !answer.status.is_success() {
        bail!(
            "{who} at {endpoint} answered {path} with {}: {}",
            answer.status,
            answer.body.trim()
        );
    }
    Ok(answer.body)
}

pub(crate) async fn get_json(endpoint: &Endpoint, path: &str, who: &str) -> anyhow::Result<Value> {
    let body = get_ok(endpoint, path, who).await?;
    serde_json::from_str(&body).with_context(|| {
        format!("{who} at {endpoint} answered {path} with something else than JSON")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejected_endpoints_are_listed_with_why_and_for_how_long() {
        let clusters = serde_json::json!({ "clusters": [
            { "name": "outbound|80||web", "endpoints": [
                { "address": "10.244.0.5:8080", "ejected": null },
                { "address": "10.244.0.6:8080", "ejected":
                    { "reason": "consecutive_5xx", "ejections": 2, "remaining_seconds": 59.6 } },
            ] },
        ] });
        assert_eq!(
            ejected_lines(&clusters),
            [
                "Ejected endpoints (outlier detection):",
                "  outbound|80||web 10.244.0.6:8080: consecutive_5xx (ejection 2, 60s left)",
            ]
        );
        let none = serde_json::json!({ "clusters": [{ "name": "a", "endpoints": [] }] });
        assert!(ejected_lines(&none).is_empty());
    }

    #[test]
    fn pods_are_name_dot_namespace_or_a_name_with_a_namespace() {
        let parsed = |pod, ns| pod_ref(pod, ns).map_err(|e| e.to_string());
        let pair = |a: &str, b: &str| Ok((a.to_owned(), b.to_owned()));
        assert_eq!(parsed("web-1.shop", None), pair("web-1", "shop"));
        assert_eq!(parsed("web-1.shop", Some("shop")), pair("web-1", "shop"));
        assert_eq!(parsed("web-1", Some("shop")), pair("web-1", "shop"));
        assert_eq!(parsed("web-1", None), pair("web-1", "default"));
        assert_eq!(parsed("a.b.shop", None), pair("a.b", "shop"));
        for (bad, ns) in [
            ("shop/web-1", None),
            ("web-1.", None),
            ("web-1.shop", Some("x")),
        ] {
            let error = parsed(bad, ns).expect_err(bad);
            assert!(error.contains("NAME.NAMESPACE"), "{error}");
        }
    }
}
