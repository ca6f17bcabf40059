//! The `mesh-proxy` binary as a child process: started with its ports on free loopback
//! addresses, killed when the test ends (even when it fails), its stderr kept and printed on
//! failure; plus small HTTP helpers for its admin, health and metrics ports.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::StatusCode;
use mesh_test_support::{free_addr, http_get, prometheus::Metrics};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use parking_lot::Mutex;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::Notify,
    time::Instant,
};

/// The bound on every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often a readiness poll asks again.
const POLL: Duration = Duration::from_millis(20);

/// A config with one explicit listener at `listen` routing every request to `route_to`, and one
/// cluster (with one endpoint) per entry of `clusters`.
pub fn config(listen: SocketAddr, route_to: &str, clusters: &[(&str, SocketAddr)]) -> String {
    let mut yaml = format!(
        r#"listeners:
- {{ name: web, address: "{listen}", mode: EXPLICIT, route_config: web }}
routes:
- name: web
  virtual_hosts:
  - {{ name: any, domains: ["*"], routes: [ {{ match: {{ prefix: / }}, route: {{ destinations: [{{ cluster: {route_to} }}] }} }} ] }}
clusters:
"#
    );
    for (name, _) in clusters {
        yaml.push_str(&format!("- {{ name: {name} }}\n"));
    }
    yaml.push_str("endpoints:\n");
    for (name, addr) in clusters {
        yaml.push_str(&format!(
            "- {{ cluster: {name}, endpoints: [{{ address: \"{addr}\" }}] }}\n"
        ));
    }
    yaml
}

/// A scratch directory under Cargo's target tmpdir, removed on drop.
pub struct ScratchDir(PathBuf);

/// A running `mesh-proxy`, killed on drop.
pub struct ProxyProcess {
    child: Child,
    /// The child's process id.
    pub pid: i32,
    /// `--admin-addr`.
    pub admin: SocketAddr,
    /// `--health-addr`.
    pub health: SocketAddr,
    /// `--metrics-addr`.
    pub metrics: SocketAddr,
    stderr: Stderr,
    dir: ScratchDir,
}

/// Everything the child wrote to stderr so far, and a wake-up for each new line.
#[derive(Clone, Default)]
pub struct Stderr {
    text: Arc<Mutex<String>>,
    more: Arc<Notify>,
}

/// How a proxy that was expected to fail at startup ended.
pub struct Failed {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its whole stderr.
    pub stderr: String,
}

// === impl ScratchDir ===

impl ScratchDir {
    /// A new empty directory named after `name`, unique within this test binary's runs.
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("mesh-proxy-process")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        ScratchDir(path)
    }

    /// The config file's path.
    pub fn config_path(&self) -> PathBuf {
        self.0.join("proxy.yaml")
    }

    /// Replaces the config file in one step (write aside, rename), so the proxy's file poll
    /// never reads half of it.
    pub fn write_config(&self, yaml: &str) {
        let aside = self.0.join("proxy.yaml.new");
        std::fs::write(&aside, yaml).expect("write config");
        std::fs::rename(&aside, self.config_path()).expect("replace config");
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// === impl ProxyProcess ===

impl ProxyProcess {
    /// Starts the proxy on `yaml` with `extra` flags and waits until it reports ready.
    pub async fn start(name: &str, yaml: &str, extra: &[&str]) -> Self {
        let proxy = Self::spawn(name, yaml, extra);
        proxy.wait_ready().await;
        proxy
    }

    /// Starts the proxy without waiting for it.
    pub fn spawn(name: &str, yaml: &str, extra: &[&str]) -> Self {
        let dir = ScratchDir::new(name);
        dir.write_config(yaml);
        let (admin, health, metrics) = (free_addr(), free_addr(), free_addr());
        let mut command = command(&dir.config_path(), extra);
        command
            .args(["--admin-addr", &admin.to_string()])
            .args(["--health-addr", &health.to_string()])
            .args(["--metrics-addr", &metrics.to_string()]);
        let mut child = command.spawn().expect("spawn mesh-proxy");
        let pid = child.id().expect("child pid") as i32;
        let stderr = Stderr::collect(&mut child);
        ProxyProcess {
            child,
            pid,
            admin,
            health,
            metrics,
            stderr,
            dir,
        }
    }

    /// Runs the proxy on `yaml` with `extra` flags, expecting it to exit by itself within
    /// [`WAIT`]. Admin, health and metrics ports are off unless `extra` sets them.
    pub async fn run_to_exit(name: &str, yaml: &str, extra: &[&str]) -> Failed {
        let dir = ScratchDir::new(name);
        dir.write_config(yaml);
        let mut command = command(&dir.config_path(), extra);
        for flag in ["--admin-addr", "--health-addr", "--metrics-addr"] {
            if !extra.contains(&flag) {
                command.args([flag, "off"]);
            }
        }
        let mut child = command.spawn().expect("spawn mesh-proxy");
        let stderr = Stderr::collect(&mut child);
        let status = match tokio::time::timeout(WAIT, child.wait()).await {
            Ok(status) => status.expect("wait for mesh-proxy"),
            Err(_) => panic!(
                "mesh-proxy did not exit within {WAIT:?} (expected a startup error); stderr:\n{}",
                stderr.text()
            ),
        };
        stderr.closed().await;
        Failed {
            status,
            stderr: stderr.text(),
        }
    }

    /// The scratch directory holding the config file.
    pub fn dir(&self) -> &ScratchDir {
        &self.dir
    }

    /// The lines the proxy wrote to stdout so far, once there are at least `count` (bounded).
    pub async fn stdout_lines(&self, count: usize) -> Vec<String> {
        let path = stdout_path(&self.dir.config_path());
        let read = || std::fs::read_to_string(&path).unwrap_or_default();
        let deadline = Instant::now() + WAIT;
        loop {
            let text = read();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if lines.len() >= count || Instant::now() >= deadline {
                return lines;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Everything the proxy wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Sends `signal` to the proxy.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid), signal)
            .unwrap_or_else(|e| panic!("cannot send {signal} to the proxy: {e}"));
    }

    /// Polls `/healthz/ready` until it answers 200.
    pub async fn wait_ready(&self) {
        self.wait_readiness(StatusCode::OK).await;
    }

    /// Polls `/healthz/ready` until it answers `want`; fails when the proxy exits first.
    pub async fn wait_readiness(&self, want: StatusCode) {
        let deadline = Instant::now() + WAIT;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Ok((status, _)) = try_get(self.health, "/healthz/ready").await {
                if status == want {
                    return;
                }
                last = format!("answered {status}");
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "/healthz/ready did not answer {want} within {WAIT:?} ({last}); stderr:\n{}",
            self.stderr()
        );
    }

    /// The config version in force, from `/config_dump`.
    pub async fn config_version(&self) -> u64 {
        let (status, body) = get_text(self.admin, "/config_dump").await;
        assert_eq!(status, StatusCode::OK, "/config_dump failed: {body}");
        let dump: serde_json::Value = serde_json::from_str(&body).expect("/config_dump is JSON");
        dump["version"]
            .as_u64()
            .unwrap_or_else(|| panic!("/config_dump has no numeric version: {body}"))
    }

    /// Polls `/config_dump` until its version is above `previous`; returns the new version.
    pub async fn wait_config_version_above(&self, previous: u64) -> u64 {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let version = self.config_version().await;
            if version > previous {
                return version;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "config version stayed at {previous} for {WAIT:?}; stderr:\n{}",
            self.stderr()
        );
    }

    /// The value of the sample of `name` carrying all of `labels`, from `/metrics`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (status, text) = get_text(self.metrics, "/metrics").await;
        assert_eq!(status, StatusCode::OK, "/metrics failed: {text}");
        Metrics::parse(&text).value(name, labels)
    }

    /// Polls `/metrics` until the sample reaches `at_least`.
    pub async fn wait_metric_at_least(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        at_least: f64,
    ) -> f64 {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.metric(name, labels).await;
            if let Some(value) = last.filter(|v| *v >= at_least) {
                return value;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "{name}{labels:?} did not reach {at_least} within {WAIT:?} (last {last:?}); stderr:\n{}",
            self.stderr()
        );
    }

    /// Waits until the proxy's stderr contains `needle`.
    pub async fn wait_stderr_contains(&self, needle: &str) {
        // `wait_for` also returns when the proxy closes its stderr (it exited): check again.
        let _ = tokio::time::timeout(WAIT, self.stderr.wait_for(needle)).await;
        let stderr = self.stderr();
        assert!(
            stderr.contains(needle),
            "stderr did not mention {needle:?} within {WAIT:?}; stderr:\n{stderr}"
        );
    }

    /// Waits up to `limit` for the proxy to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => {
                let status = status.expect("wait for mesh-proxy");
                self.stderr.closed().await;
                status
            }
            Err(_) => panic!(
                "mesh-proxy did not exit within {limit:?}; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// The proxy's current and peak resident memory in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("read /proc/PID/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no {name} in /proc/{}/status", self.pid))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "---- mesh-proxy (pid {}) stderr ----\n{}",
                self.pid,
                self.stderr()
            );
        }
    }
}

// === impl Stderr ===

impl Stderr {
    /// Reads the child's stderr, line by line, into the buffer.
    fn collect(child: &mut Child) -> Self {
        let stderr = Stderr::default();
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut text = sink.text.lock();
                text.push_str(&line);
                text.push('\n');
                drop(text);
                sink.more.notify_waiters();
            }
            // End of output: mark it so `closed` returns.
            sink.text.lock().push_str(END_OF_STDERR);
            sink.more.notify_waiters();
        });
        stderr
    }

    fn text(&self) -> String {
        self.text.lock().replace(END_OF_STDERR, "")
    }

    async fn wait_for(&self, needle: &str) {
        loop {
            let more = self.more.notified();
            let text = self.text.lock().clone();
            if text.contains(needle) || text.ends_with(END_OF_STDERR) {
                return;
            }
            more.await;
        }
    }

    /// Waits (bounded) until the child closed its stderr, so the text is complete.
    async fn closed(&self) {
        let _ = tokio::time::timeout(WAIT, self.wait_for(END_OF_STDERR)).await;
    }
}

/// Marks the end of the child's stderr in the buffer.
const END_OF_STDERR: &str = "\u{0}<end of stderr>";

fn command(config: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mesh-proxy"));
    command
        .arg("--config")
        .arg(config)
        .args([
            "--outbound-addr",
            "off",
            "--inbound-addr",
            "off",
            "--log",
            "info",
        ])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(stdout_file(config))
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The file the child's stdout goes to: beside its config.
fn stdout_path(config: &Path) -> PathBuf {
    config.with_file_name("stdout.log")
}

fn stdout_file(config: &Path) -> Stdio {
    std::fs::File::create(stdout_path(config)).map_or_else(|_| Stdio::null(), Stdio::from)
}

/// One GET on a new HTTP/1.1 connection; the body as text.
pub async fn get_text(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    match tokio::time::timeout(WAIT, try_get(addr, path)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => panic!("GET http://{addr}{path} failed: {error}"),
        Err(_) => panic!("GET http://{addr}{path} got no answer within {WAIT:?}"),
    }
}

/// [`http_get`] off the runtime's threads (it blocks).
async fn try_get(
    addr: SocketAddr,
    path: &str,
) -> Result<(StatusCode, String), Box<dyn std::error::Error + Send + Sync>> {
    let path = path.to_owned();
    let (status, body) = tokio::task::spawn_blocking(move || http_get(addr, &path)).await??;
    Ok((StatusCode::from_u16(status)?, body))
}

/// Awaits `future` for at most `limit`, failing with `what` when it takes longer.
pub async fn within<T>(
    limit: Duration,
    what: &str,
    future: impl std::future::Future<Output = T>,
) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: nothing within {limit:?}"),
    }
}
