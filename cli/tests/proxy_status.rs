//! `mesh proxy-status` against the real `mesh-control-plane` (folder mode) and real
//! `mesh-proxy` processes in discovery mode, all on loopback ports: every proxy SYNCED; a
//! cluster the proxies reject shows STALE with its NACK, and as a difference between what the
//! control plane would send and what the proxy runs; a proxy that went away leaves the table;
//! config sent over a held link shows STALE and as a difference until it arrives; clear errors
//! for an unknown proxy, an unreachable control plane and no lab. (`lab_debug.rs` runs the
//! same commands in a real lab.)

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{Arc, Condvar, Mutex, PoisonError},
};

use mesh_test_support::{KillOnDrop, free_port, http_get, run_or_skip, why_not_built};
use serde_json::Value;

#[path = "support/output.rs"]
mod output;

use output::{rows, stderr, stdout, wait_until};

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: 10.96.0.20
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
"#;

const API: &str = r#"
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec:
  clusterIP: 10.96.0.21
  selector: { app: api }
  ports: [{ name: grpc, port: 9090 }]
"#;

/// A cluster the proxy rejects: TLS origination whose roots file is not on the proxy's machine,
/// so every proxy NACKs the cluster that asks for it.
const TLS_ORIGINATION: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: shop }
spec:
  host: web
  trafficPolicy: { tls: { mode: SIMPLE, caCertificates: /nonexistent/mesh-test/ca.pem } }
"#;

/// A folder for the test's files (manifests, the root certificate), removed when it ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "mesh-cli-proxy-status-{test}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The sibling binaries, or `None` (with the reason printed) when they are not built; in CI
/// their absence fails the test.
fn binaries() -> Option<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_BIN_EXE_mesh"))
        .parent()
        .expect("the target dir");
    let why_not = why_not_built(dir, &["mesh-control-plane", "mesh-proxy"]);
    run_or_skip("proxy_status", why_not)
        .then(|| (dir.join("mesh-control-plane"), dir.join("mesh-proxy")))
}

/// The control plane's `/debug/syncz`.
fn syncz(monitoring: u16) -> Value {
    http_get(("127.0.0.1", monitoring), "/debug/syncz")
        .ok()
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or(Value::Null)
}

/// The state of type `ty` (CDS, EDS, LDS, RDS, TDS) of proxy `id` in a sync status.
fn state<'a>(syncz: &'a Value, id: &str, ty: &str) -> Option<&'a Value> {
    let proxy = syncz["proxies"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == id)?;
    proxy["types"].as_array()?.iter().find(|t| t["type"] == ty)
}

fn all_synced(syncz: &Value, id: &str) -> bool {
    ["CDS", "EDS", "LDS", "RDS", "TDS"]
        .iter()
        .all(|ty| state(syncz, id, ty).is_some_and(|t| t["state"] == "SYNCED"))
}

/// A running control plane in folder mode, serving discovery over TLS.
struct ControlPlane {
    _process: KillOnDrop,
    /// The discovery port.
    xds: u16,
    /// The mesh root certificate the discovery server's certificate chains to.
    root_cert: PathBuf,
    /// The monitoring port.
    monitoring: u16,
}

/// Starts the control plane on `manifests`; returns once it is ready.
fn control_plane(binary: &Path, manifests: &Path, scratch: &Path) -> ControlPlane {
    let (xds, monitoring) = (free_port(), free_port());
    let root_cert = scratch.join("root.pem");
    let child = Command::new(binary)
        .arg("--manifests")
        .arg(manifests)
        .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
        .args(["--xds-san", "127.0.0.1"])
        .arg("--root-cert-out")
        .arg(&root_cert)
        .args(["--monitoring-addr", &format!("127.0.0.1:{monitoring}")])
        .args(["--debounce-ms", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mesh-control-plane");
    let process = KillOnDrop(child);
    wait_until("the control plane's /healthz/ready", || {
        http_get(("127.0.0.1", monitoring), "/healthz/ready").is_ok_and(|(status, _)| status == 200)
    });
    ControlPlane {
        _process: process,
        xds,
        root_cert,
        monitoring,
    }
}

/// A running proxy in discovery mode for pod `name.namespace`, dialing the control plane at
/// `xds` (its port, or a relay's), and its admin port.
fn proxy(
    binary: &Path,
    cp: &ControlPlane,
    xds: u16,
    name: &str,
    namespace: &str,
    labels: &str,
) -> (KillOnDrop, u16) {
    let (admin, health) = (free_port(), free_port());
    let child = Command::new(binary)
        .args(["--discovery-address", &format!("https://127.0.0.1:{xds}")])
        .arg("--discovery-root-cert")
        .arg(&cp.root_cert)
        .args(["--outbound-addr", "off", "--inbound-addr", "off"])
        .args(["--metrics-addr", "off"])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
        .args(["--health-addr", &format!("127.0.0.1:{health}")])
        .env("POD_NAME", name)
        .env("POD_NAMESPACE", namespace)
        .env("MESH_POD_LABELS", labels)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mesh-proxy");
    let running = KillOnDrop(child);
    wait_until("the proxy's /healthz/ready", || {
        http_get(("127.0.0.1", health), "/healthz/ready").is_ok_and(|(status, _)| status == 200)
    });
    (running, admin)
}

/// A TCP relay in front of the control plane's discovery port, like a slow link: while held,
/// what the control plane sends waits in the relay (the proxy's own bytes still flow).
struct Relay {
    port: u16,
    held: Arc<(Mutex<bool>, Condvar)>,
}

impl Relay {
    fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().expect("its address").port();
        let held = Arc::new((Mutex::new(false), Condvar::new()));
        let gate = held.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (Ok(mut to_server), Ok(mut from_client)) =
                    (server.try_clone(), client.try_clone())
                else {
                    continue;
                };
                std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_server));
                let gate = gate.clone();
                std::thread::spawn(move || forward_unless_held(server, client, &gate));
            }
        });
        Relay { port, held }
    }

    fn hold(&self, held: bool) {
        let (flag, changed) = &*self.held;
        *flag.lock().unwrap_or_else(PoisonError::into_inner) = held;
        changed.notify_all();
    }
}

/// Copies `from` to `to`, each chunk waiting while the gate is held.
fn forward_unless_held(mut from: TcpStream, mut to: TcpStream, gate: &(Mutex<bool>, Condvar)) {
    let mut chunk = [0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut chunk) {
        let (flag, changed) = gate;
        let guard = flag.lock().unwrap_or_else(PoisonError::into_inner);
        drop(changed.wait_while(guard, |held| *held));
        if to.write_all(&chunk[..n]).is_err() {
            return;
        }
    }
}

/// Runs `mesh` with `args`, without a lab to fall back on.
fn mesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .env("MESH_LAB_NAME", "mesh-cli-test-no-such-lab")
        .env_remove("MESH_CONTROL_PLANE")
        .output()
        .expect("run mesh")
}

/// The row whose first cell is `name` (`NAME` for the header).
fn row(table: &str, name: &str) -> Option<Vec<String>> {
    rows(table)
        .into_iter()
        .find(|cells| cells.first().is_some_and(|c| c == name))
}

#[test]
fn proxy_status_follows_proxies_through_sync_rejection_and_departure() {
    let Some((cp_binary, proxy_binary)) = binaries() else {
        return;
    };
    let scratch = Scratch::new("sync");
    let manifests = scratch.0.join("manifests");
    std::fs::create_dir_all(&manifests).expect("manifests dir");
    std::fs::write(manifests.join("web.yaml"), WEB).expect("write web.yaml");
    let cp = control_plane(&cp_binary, &manifests, &scratch.0);
    let monitoring = cp.monitoring;
    let (_web, web_admin) = proxy(&proxy_binary, &cp, cp.xds, "web-1", "shop", "app=web");
    let (sleep, sleep_admin) = proxy(&proxy_binary, &cp, cp.xds, "sleep", "shop", "app=sleep");
    wait_until("both proxies SYNCED", || {
        let status = syncz(monitoring);
        all_synced(&status, "web-1.shop") && all_synced(&status, "sleep.shop")
    });

    let cp_url = format!("http://127.0.0.1:{monitoring}");
    let sleep_admin_url = format!("http://127.0.0.1:{sleep_admin}");
    let web_admin_url = format!("http://127.0.0.1:{web_admin}");
    let output = mesh(&["proxy-status", "--control-plane", &cp_url]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert_eq!(
        row(&table, "NAME").expect("a header"),
        [
            "NAME",
            "CDS",
            "LDS",
            "EDS",
            "RDS",
            "TDS",
            "CONTROL-PLANE",
            "VERSION"
        ]
    );
    let control_plane_name = format!("127.0.0.1:{monitoring}");
    for id in ["web-1.shop", "sleep.shop"] {
        let cells = row(&table, id).unwrap_or_else(|| panic!("a row for {id}:\n{table}"));
        assert_eq!(
            cells[1..],
            [
                "SYNCED",
                "SYNCED",
                "SYNCED",
                "SYNCED",
                "SYNCED",
                &control_plane_name,
                env!("CARGO_PKG_VERSION")
            ],
            "{table}"
        );
    }

    // A synced proxy runs exactly what the control plane would send it.
    let output = mesh(&[
        "proxy-status",
        "sleep.shop",
        "--control-plane",
        &cp_url,
        "--proxy-admin",
        &sleep_admin_url,
    ]);
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

    // A cluster both proxies reject: they keep their last good clusters, and say why.
    std::fs::write(manifests.join("tls-origination.yaml"), TLS_ORIGINATION)
        .expect("write the rule");
    wait_until("both proxies NACK the clusters", || {
        let status = syncz(monitoring);
        ["web-1.shop", "sleep.shop"].iter().all(|id| {
            state(&status, id, "CDS")
                .is_some_and(|t| t["state"] == "STALE" && t["nack"].is_object())
        })
    });
    let output = mesh(&["proxy-status", "--control-plane", &cp_url]);
    assert!(output.status.success(), "{}", stderr(&output));
    let cells = row(&stdout(&output), "web-1.shop").expect("a row for web-1.shop");
    assert_eq!(
        cells[1..5],
        ["STALE", "SYNCED", "SYNCED", "SYNCED"],
        "{}",
        stdout(&output)
    );
    assert!(stderr(&output).contains("-o wide"), "{}", stderr(&output));

    let output = mesh(&["proxy-status", "--control-plane", &cp_url, "-o", "wide"]);
    let wide = stdout(&output);
    assert!(row(&wide, "NAME").is_some_and(|h| h.last().map(String::as_str) == Some("NACK")));
    let nack = row(&wide, "sleep.shop")
        .and_then(|r| r.last().cloned())
        .unwrap_or_default();
    assert!(nack.starts_with("CDS version "), "{wide}");
    assert!(
        nack.contains(
            "TLS origination: cannot read ca_certificates \"/nonexistent/mesh-test/ca.pem\""
        ),
        "{wide}"
    );

    let output = mesh(&["proxy-status", "--control-plane", &cp_url, "-o", "json"]);
    let json: Value = serde_json::from_str(&stdout(&output)).expect("-o json prints JSON");
    assert_eq!(json["controlPlane"], control_plane_name.as_str());
    let cds = state(&json, "sleep.shop", "CDS").expect("sleep.shop CDS");
    assert!(
        cds["nack"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("TLS origination")),
        "{json}"
    );

    // The control plane would send the unusable TLS origination; the proxy runs its last good
    // clusters.
    let output = mesh(&[
        "proxy-status",
        "web-1",
        "-n",
        "shop",
        "--control-plane",
        &cp_url,
        "--proxy-admin",
        &web_admin_url,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(report.starts_with("Clusters Don't Match\n"), "{report}");
    assert!(
        report.contains(&format!(
            "--- control plane {control_plane_name} (generation "
        )),
        "{report}"
    );
    assert!(
        report.contains("+++ proxy web-1.shop (/config_dump)"),
        "{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.starts_with('-') && l.contains("SIMPLE")),
        "TLS origination is only on the control plane's side:\n{report}"
    );
    assert!(
        report.ends_with("Listeners Match\nRoutes Match\nEndpoints Match\nTelemetry Match\n"),
        "{report}"
    );

    // Fixed: back in sync.
    std::fs::remove_file(manifests.join("tls-origination.yaml")).expect("remove the rule");
    wait_until("web-1.shop SYNCED again", || {
        all_synced(&syncz(monitoring), "web-1.shop")
    });
    let output = mesh(&[
        "proxy-status",
        "web-1.shop",
        "--control-plane",
        &cp_url,
        "--proxy-admin",
        &web_admin_url,
    ]);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );

    // A proxy that went away leaves the table.
    drop(sleep);
    wait_until("sleep.shop gone from the sync status", || {
        syncz(monitoring)["proxies"]
            .as_array()
            .is_some_and(|p| p.len() == 1)
    });
    let output = mesh(&["proxy-status", "--control-plane", &cp_url]);
    let table = stdout(&output);
    assert!(row(&table, "sleep.shop").is_none(), "{table}");
    assert!(row(&table, "web-1.shop").is_some(), "{table}");

    // Asking about a proxy the control plane does not know is an error, not a diff.
    let output = mesh(&[
        "proxy-status",
        "sleep.shop",
        "--control-plane",
        &cp_url,
        "--proxy-admin",
        &sleep_admin_url,
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no proxy \"sleep.shop\" is connected"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn proxy_status_says_where_it_looked_when_nothing_answers() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let output = mesh(&["proxy-status", "--control-plane", &url]);
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    assert!(error.contains("cannot ask the control plane"), "{error}");
    assert!(error.contains(&url), "{error}");

    let output = mesh(&["proxy-status"]);
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    assert!(error.contains("--control-plane URL"), "{error}");
    assert!(
        error.contains("no lab named mesh-cli-test-no-such-lab is running"),
        "{error}"
    );

    let output = mesh(&["proxy-status", "shop/web-1", "--control-plane", &url]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("NAME.NAMESPACE"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn proxy_status_pod_shows_config_a_proxy_has_not_received_yet() {
    let Some((cp_binary, proxy_binary)) = binaries() else {
        return;
    };
    let scratch = Scratch::new("in-flight");
    let manifests = scratch.0.join("manifests");
    std::fs::create_dir_all(&manifests).expect("manifests dir");
    std::fs::write(manifests.join("web.yaml"), WEB).expect("write web.yaml");
    let cp = control_plane(&cp_binary, &manifests, &scratch.0);
    let relay = Relay::start(cp.xds);
    let (_web, admin) = proxy(&proxy_binary, &cp, relay.port, "web-1", "shop", "app=web");
    wait_until("web-1.shop SYNCED", || {
        all_synced(&syncz(cp.monitoring), "web-1.shop")
    });

    // A new Service while the link to the proxy is held: sent, not yet received.
    relay.hold(true);
    std::fs::write(manifests.join("api.yaml"), API).expect("write api.yaml");
    wait_until("the api cluster sent to web-1.shop", || {
        let status = syncz(cp.monitoring);
        state(&status, "web-1.shop", "CDS").is_some_and(|t| t["state"] == "STALE")
    });
    let cp_url = format!("http://127.0.0.1:{}", cp.monitoring);
    let output = mesh(&["proxy-status", "--control-plane", &cp_url]);
    let cells = row(&stdout(&output), "web-1.shop").expect("a row for web-1.shop");
    assert_eq!(cells[1], "STALE", "{}", stdout(&output));
    assert!(
        !stderr(&output).contains("rejected"),
        "in flight is no NACK"
    );

    let admin_url = format!("http://127.0.0.1:{admin}");
    let compare = || {
        mesh(&[
            "proxy-status",
            "web-1.shop",
            "--control-plane",
            &cp_url,
            "--proxy-admin",
            &admin_url,
        ])
    };
    let output = compare();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(report.starts_with("Clusters Don't Match\n"), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with('-') && l.contains("outbound|9090||api.shop.svc.cluster.local")),
        "the api cluster is only on the control plane's side:\n{report}"
    );

    relay.hold(false);
    wait_until("web-1.shop SYNCED after the link clears", || {
        all_synced(&syncz(cp.monitoring), "web-1.shop")
    });
    let output = compare();
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
}
