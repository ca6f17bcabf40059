//! A lab per test: started from manifest text, removed when the test ends (also on panic,
//! through `Lab`'s drop), with helpers to run the workload's client inside a pod and to read
//! a sidecar's metrics.

#![allow(dead_code, clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use mesh_lab::{
    cluster::PodPlan,
    netns,
    supervisor::{Lab, LabOptions},
};
use mesh_test_support::{http_get, prometheus::Metrics};
use serde_json::Value;

/// Whether a root-only test can run here; in CI (`CI=true`) a missing requirement is a failure.
pub fn require_root(test: &str) -> bool {
    mesh_test_support::require_root(test, &["ip", "iptables-restore", "setpriv", "sysctl"])
}

/// The folder holding the workspace's binaries (mesh-proxy, mesh-init, mesh-control-plane,
/// mesh-workload, mesh): the profile folder this test runs from (`target/<profile>/deps/..`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the profile folder")
        .to_path_buf();
    for binary in [
        "mesh-proxy",
        "mesh-init",
        "mesh-control-plane",
        "mesh-workload",
    ] {
        assert!(
            dir.join(binary).exists(),
            "{binary} is not built in {}; run `cargo build --workspace` first",
            dir.display()
        );
    }
    dir
}

/// A running lab for one test.
pub struct TestLab {
    pub lab: Lab,
    manifests: PathBuf,
}

impl TestLab {
    /// Starts lab `name` (unique per test) from manifest text.
    pub async fn start(name: &str, manifests: &str) -> TestLab {
        TestLab::start_files(name, &[("manifests.yaml", manifests)]).await
    }

    /// Starts lab `name` from manifest files (name, text), so a test can edit one later.
    pub async fn start_files(name: &str, files: &[(&str, &str)]) -> TestLab {
        TestLab::start_with(name, files, false).await
    }

    /// Starts lab `name` from manifest files, with this machine linked to the node network
    /// when `host_link` (one such lab at a time).
    pub async fn start_with(name: &str, files: &[(&str, &str)], host_link: bool) -> TestLab {
        let dir = std::env::temp_dir().join(format!("mesh-e2e-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        let lab = Lab::start(LabOptions {
            name: name.to_owned(),
            manifests: dir.clone(),
            nodes: 2,
            bin_dir: bin_dir(),
            ready_timeout: Duration::from_secs(60),
            host_link,
        })
        .await
        .unwrap_or_else(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            panic!("lab {name} did not start: {e}")
        });
        TestLab {
            lab,
            manifests: dir,
        }
    }

    /// Replaces a manifest file whole (a temporary file renamed over it), as an editor saves.
    pub fn write_manifest(&self, file: &str, text: &str) {
        let tmp = self.manifests.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.manifests.join(file)).unwrap();
    }

    /// Every proxy's sync state, from `mesh proxy-status -o json` (the control plane's
    /// `/debug/syncz`, asked inside its pod).
    pub async fn proxy_status(&self) -> Value {
        self.try_proxy_status()
            .await
            .unwrap_or_else(|e| panic!("mesh proxy-status failed: {e}"))
    }

    /// [`TestLab::proxy_status`], or why `mesh proxy-status` failed (e.g. a control plane that
    /// is still starting).
    pub async fn try_proxy_status(&self) -> Result<Value, String> {
        let mesh = bin_dir().join("mesh");
        assert!(
            mesh.exists(),
            "mesh is not built in {}; run `cargo build --workspace` first",
            bin_dir().display()
        );
        let output = tokio::process::Command::new(mesh)
            .args(["proxy-status", "--lab", &self.lab.names().lab, "-o", "json"])
            .output()
            .await
            .expect("run mesh proxy-status");
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "{}{stdout}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        serde_json::from_str(&stdout).map_err(|e| format!("proxy-status {stdout:?}: {e}"))
    }

    /// The traces the lab's collector (a pod `collector-*` in namespace `observability`)
    /// holds whose root span came from `service`.
    pub async fn traces_from(&self, service: &str) -> Vec<Value> {
        let collector = self.pod("observability", "collector-");
        let (status, body) = self
            .curl(&collector, "GET", "http://127.0.0.1:8080/traces")
            .await;
        assert_eq!(status, "200", "{body}");
        let traces: Vec<Value> = serde_json::from_str(&body).expect("traces JSON");
        (traces.into_iter())
            .filter(|t| {
                (t["spans"].as_array().into_iter().flatten())
                    .any(|s| s["parent_span_id"] == "" && s["service"] == service)
            })
            .collect()
    }

    /// Runs `mesh <args> --lab <this lab> -o json` and returns its JSON output.
    pub async fn mesh_json(&self, args: &[&str]) -> Value {
        let output = tokio::process::Command::new(bin_dir().join("mesh"))
            .args(args)
            .args(["--lab", &self.lab.names().lab, "-o", "json"])
            .output()
            .await
            .expect("run mesh");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "mesh {args:?} failed: {}{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("mesh {args:?}: {stdout:?}: {e}"))
    }

    /// Runs `mesh <args> --lab <this lab>`: whether it succeeded, its stdout and its stderr.
    pub async fn mesh(&self, args: &[&str]) -> (bool, String, String) {
        let output = tokio::process::Command::new(bin_dir().join("mesh"))
            .args(args)
            .args(["--lab", &self.lab.names().lab])
            .output()
            .await
            .expect("run mesh");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// The pod's sidecar config in force (its `/config_dump`).
    pub async fn sidecar_config(&self, pod: &PodPlan) -> Value {
        let netns_name = self.lab.names().pod(pod);
        let text = tokio::task::spawn_blocking(move || {
            netns::run_inside(&netns_name, || http_get("127.0.0.1:15000", "/config_dump")).unwrap()
        })
        .await
        .unwrap()
        .map(|(_, body)| body)
        .expect("GET the sidecar's /config_dump");
        let dump: Value = serde_json::from_str(&text).unwrap_or_default();
        dump["config"].clone()
    }

    /// The endpoint addresses of `cluster` in the pod's sidecar config (its `/config_dump`).
    pub async fn sidecar_endpoints(&self, pod: &PodPlan, cluster: &str) -> Vec<String> {
        let config = self.sidecar_config(pod).await;
        let mut addresses: Vec<String> = config["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["cluster"] == cluster)
            .flat_map(|e| e["endpoints"].as_array().cloned().unwrap_or_default())
            .filter_map(|e| e["address"].as_str().map(str::to_owned))
            .collect();
        addresses.sort();
        addresses
    }

    /// The pod's sidecar's live cluster state (its admin `/clusters`).
    pub async fn sidecar_clusters(&self, pod: &PodPlan) -> Value {
        let netns_name = self.lab.names().pod(pod);
        let text = tokio::task::spawn_blocking(move || {
            netns::run_inside(&netns_name, || http_get("127.0.0.1:15000", "/clusters")).unwrap()
        })
        .await
        .unwrap()
        .map(|(_, body)| body)
        .expect("GET the sidecar's /clusters");
        serde_json::from_str(&text).unwrap_or_default()
    }

    /// `mesh proxy-status POD` for one pod: its exit status and output.
    pub async fn pod_status(&self, pod: &PodPlan) -> (i32, String) {
        let output = tokio::process::Command::new(bin_dir().join("mesh"))
            .args(["proxy-status", &format!("{}.{}", pod.name, pod.namespace)])
            .args(["--lab", &self.lab.names().lab])
            .output()
            .await
            .expect("run mesh proxy-status POD");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }

    /// The first pod of `namespace` whose name starts with `prefix`.
    pub fn pod(&self, namespace: &str, prefix: &str) -> PodPlan {
        self.lab
            .state()
            .plan
            .pods
            .into_iter()
            .find(|p| p.namespace == namespace && p.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no pod {namespace}/{prefix}*"))
    }

    /// Every pod of `namespace` whose name starts with `prefix`.
    pub fn pods(&self, namespace: &str, prefix: &str) -> Vec<PodPlan> {
        self.lab
            .state()
            .plan
            .pods
            .into_iter()
            .filter(|p| p.namespace == namespace && p.name.starts_with(prefix))
            .collect()
    }

    /// Runs a command in the pod (as `mesh lab exec` does); returns stdout, panics on failure.
    pub async fn exec(&self, pod: &PodPlan, argv: &[&str]) -> String {
        let netns_name = self.lab.names().pod(pod);
        let mut command = tokio::process::Command::new("ip");
        command.args(["netns", "exec", &netns_name]).args(argv).env(
            "PATH",
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir().display()),
        );
        let output = command.output().await.expect("ip netns exec");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{argv:?} in {} failed: {}\n{stdout}",
            pod.key(),
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs `curl -X method URL` in the pod: the status code (`000` when no answer came) and
    /// the body.
    pub async fn curl(&self, pod: &PodPlan, method: &str, url: &str) -> (String, String) {
        let netns_name = self.lab.names().pod(pod);
        let output = tokio::process::Command::new("ip")
            .args(["netns", "exec", &netns_name])
            .args(["curl", "-sS", "--max-time", "5", "-X", method])
            .args(["-w", "\n%{http_code}", url])
            .output()
            .await
            .expect("ip netns exec curl");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (status.to_owned(), body.to_owned())
    }

    /// Runs `mesh-workload <subcommand> <args>` in the pod and returns its JSON summary.
    pub async fn call(&self, pod: &PodPlan, args: &[&str]) -> Value {
        let mut argv = vec!["mesh-workload"];
        argv.extend_from_slice(args);
        let out = self.exec(pod, &argv).await;
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("summary {out:?}: {e}"))
    }

    /// The pod's sidecar metrics, fetched from inside the pod.
    pub async fn metrics(&self, pod: &PodPlan) -> Metrics {
        let netns_name = self.lab.names().pod(pod);
        let (_, text) = tokio::task::spawn_blocking(move || {
            netns::run_inside(&netns_name, || http_get("127.0.0.1:15090", "/metrics")).unwrap()
        })
        .await
        .unwrap()
        .expect("GET the sidecar's /metrics");
        Metrics::parse(&text)
    }

    /// Stops the lab and removes its manifests.
    pub async fn stop(self) {
        let names = self.lab.names().clone();
        self.lab.stop().await;
        let _ = std::fs::remove_dir_all(&self.manifests);
        assert!(
            netns::list(&names.prefix()).is_empty(),
            "the lab left namespaces behind"
        );
    }
}

/// Polls `check` (every 100 ms) until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts by key from a summary's object field (`pods` or `versions`).
pub fn counts(summary: &Value, field: &str) -> BTreeMap<String, u64> {
    summary[field]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}
