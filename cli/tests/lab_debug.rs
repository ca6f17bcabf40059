//! The debugging commands in a real lab (root): `proxy-status` reaching the control plane and
//! the sidecars inside their pods' namespaces, `proxy-config secret` and `tls-check` (with
//! `--probe`) against a meshed pod.

#[path = "support/output.rs"]
mod output;

use std::{path::Path, process::Command};

use mesh_test_support::{run_or_skip, why_not_built, why_not_root};
use output::{rows, stderr, stdout, wait_until};

/// Stops the lab even when an assertion fails half way.
struct LabDown(&'static str);

impl Drop for LabDown {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_mesh"))
            .args(["lab", "--name", self.0, "down"])
            .output();
    }
}

#[test]
fn proxy_status_in_a_lab_reaches_the_control_plane_and_sidecars_inside_their_pods() {
    const LAB: &str = "pstatus";
    let bins = Path::new(env!("CARGO_BIN_EXE_mesh"))
        .parent()
        .expect("target dir");
    let binaries = [
        "mesh-proxy",
        "mesh-init",
        "mesh-workload",
        "mesh-control-plane",
    ];
    let why_not = why_not_root(&[]).or_else(|| why_not_built(bins, &binaries));
    if !run_or_skip("proxy_status_in_a_lab", why_not) {
        return;
    }
    let _down = LabDown(LAB);
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/examples/shop");
    let up = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(["lab", "--name", LAB, "up", "-f"])
        .arg(&shop)
        .output()
        .expect("run mesh lab up");
    assert!(up.status.success(), "{}{}", stdout(&up), stderr(&up));

    // Every proxy of the shop (the sidecars of sleep, two web-v1 and one web-v2, and the
    // ingress gateway) connects to the lab's control plane; `up` returns once pods are
    // ready, so each has had a complete config.
    let lab_mesh = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mesh"))
            .args(args)
            .args(["--lab", LAB])
            .env_remove("MESH_CONTROL_PLANE")
            .output()
            .expect("run mesh")
    };
    let mut table = String::new();
    wait_until("five SYNCED proxies in the lab", || {
        let output = lab_mesh(&["proxy-status"]);
        table = stdout(&output);
        let synced = rows(&table)
            .iter()
            .filter(|cells| cells.get(1..6) == Some(&["SYNCED"; 5].map(String::from)))
            .count();
        output.status.success() && synced == 5
    });
    let sleep = rows(&table)
        .into_iter()
        .find(|cells| cells.first().is_some_and(|c| c.starts_with("sleep-")))
        .unwrap_or_else(|| panic!("a sleep pod:\n{table}"));
    assert!(sleep[6].starts_with("mesh-control-plane-"), "{table}");

    let output = lab_mesh(&["proxy-status", &sleep[0]]);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert_eq!(
        stdout(&output),
        "Clusters Match\nListeners Match\nRoutes Match\nEndpoints Match\nTelemetry Match\n"
    );
    // The sidecar's workload certificate, from its admin port inside the pod.
    let output = lab_mesh(&["proxy-config", "secret", &sleep[0]]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    assert!(
        text.contains("spiffe://cluster.local/ns/shop/sa/") && text.contains("ROOTCA"),
        "{text}"
    );
    // What sleep sends web against what web accepts: auto mTLS to PERMISSIVE sidecars.
    let output = lab_mesh(&["tls-check", &sleep[0], "web.shop"]);
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    let web = rows(&text)
        .into_iter()
        .find(|cells| {
            cells
                .first()
                .is_some_and(|c| c == "web.shop.svc.cluster.local:80")
        })
        .unwrap_or_else(|| panic!("a row for web:\n{text}"));
    assert_eq!(
        web[1..4],
        ["OK", "PERMISSIVE", "AUTO"].map(String::from),
        "{text}"
    );
    let output = lab_mesh(&["proxy-status", "coredns", "-n", "kube-system"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no mesh-proxy sidecar"),
        "{}",
        stderr(&output)
    );
}
