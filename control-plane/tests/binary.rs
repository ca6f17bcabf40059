//! The `mesh-control-plane` binary in folder mode: ready once the first config is published,
//! a proxy gets the folder's Services, an edited folder reaches the proxy, and `/debug/syncz`
//! shows it SYNCED.

#[path = "xds/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "xds/sim.rs"]
#[allow(dead_code)]
mod sim;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use mesh_control_plane::xds::ResourceType;
use mesh_test_support::{KillOnDrop, free_port, http_get};
use sim::{SimOptions, SimProxy};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_mode_serves_proxies_and_follows_edits() {
    let dir = std::env::temp_dir().join(format!("mesh-cp-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("web.yaml"), WEB).unwrap();
    let (xds, monitoring) = (free_port(), free_port());
    let _cp = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_mesh-control-plane"))
            .arg("--manifests")
            .arg(&dir)
            .args(["--xds-addr", &format!("127.0.0.1:{xds}")])
            .args(["--monitoring-addr", &format!("127.0.0.1:{monitoring}")])
            // The simulated proxies speak plain h2c; xds_tls.rs runs the binary over TLS.
            .arg("--plaintext-xds")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Readiness: the monitoring port answers 200 once the first config is published.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !http_get(("127.0.0.1", monitoring), "/healthz/ready").is_ok_and(|(s, _)| s == 200) {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let proxy = SimProxy::spawn(
        &format!("http://127.0.0.1:{xds}"),
        "sleep.shop",
        SimOptions::default(),
    );
    let has = |name: &'static str| {
        move |s: &sim::SimState| {
            s.held
                .get(&ResourceType::Cluster)
                .is_some_and(|c| c.contains_key(name))
        }
    };
    proxy
        .wait(
            "the web cluster",
            has("outbound|80||web.shop.svc.cluster.local"),
        )
        .await;

    std::fs::write(dir.join("api.yaml"), API).unwrap();
    proxy
        .wait(
            "the api cluster after the edit",
            has("outbound|9090||api.shop.svc.cluster.local"),
        )
        .await;

    let (status, syncz) = http_get(("127.0.0.1", monitoring), "/debug/syncz").unwrap();
    assert_eq!(status, 200);
    let syncz: serde_json::Value = serde_json::from_str(&syncz).unwrap();
    assert_eq!(syncz["proxies"][0]["id"], "sleep.shop", "{syncz}");
    let (_, metrics) = http_get(("127.0.0.1", monitoring), "/metrics").unwrap();
    assert!(metrics.contains("mesh_cp_translations_total"), "{metrics}");
    assert!(metrics.contains("mesh_cp_connected_proxies 1"), "{metrics}");
    std::fs::remove_dir_all(&dir).unwrap();
}
