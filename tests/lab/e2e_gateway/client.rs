//! The gateway cases' client: `curl` from this machine to a Gateway's NodePort, over TLS
//! when asked, and what it answered; and a directory for the test's certificate files.

use std::{collections::BTreeMap, path::Path, time::Duration};

use mesh_lab::cluster::node_ip;
use serde_json::Value;

use super::support::{TestLab, eventually};

/// One answer as the client outside saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    headers: BTreeMap<String, String>,
    /// The echo backend's report (`Null` when the body was not one).
    pub echo: Value,
}

impl Reply {
    /// The backend pod's name, as its echo says.
    pub fn pod(&self) -> &str {
        self.echo["pod"].as_str().unwrap_or_default()
    }

    /// A response header's value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// A request header as the backend saw it ("" when absent).
    pub fn seen(&self, name: &str) -> &str {
        self.echo["headers"][name].as_str().unwrap_or_default()
    }
}

/// One request from outside the cluster.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    method: &'a str,
    host: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    /// Over TLS (SNI `host`), trusting this PEM file only.
    ca: Option<&'a Path>,
}

/// A GET of `path` on `host`.
pub fn get<'a>(host: &'a str, path: &'a str) -> Call<'a> {
    Call {
        method: "GET",
        host,
        path,
        headers: &[],
        ca: None,
    }
}

impl<'a> Call<'a> {
    /// The same call with another method.
    pub fn method(self, method: &'a str) -> Self {
        Call { method, ..self }
    }

    /// The same call over TLS, trusting only the certificate in `ca`.
    pub fn tls(self, ca: &'a Path) -> Self {
        Call {
            ca: Some(ca),
            ..self
        }
    }

    /// The same call with these request headers.
    pub fn headers(self, headers: &'a [(&'a str, &'a str)]) -> Self {
        Call { headers, ..self }
    }
}

/// A Gateway as this machine reaches it: node 1's address and the NodePort of its Service.
pub struct GatewayClient {
    address: String,
}

impl GatewayClient {
    /// The client for port `port` of Gateway `namespace/gateway`.
    pub fn new(lab: &TestLab, namespace: &str, gateway: &str, port: u16) -> Self {
        let state = lab.lab.state();
        let service = (state.plan.services.iter())
            .find(|s| s.namespace == namespace && s.name == format!("{gateway}-mesh"))
            .unwrap_or_else(|| panic!("no Service for Gateway {namespace}/{gateway}"));
        let node_port = (service.ports.iter())
            .find(|p| p.port == port)
            .and_then(|p| p.node_port)
            .unwrap_or_else(|| panic!("Gateway {namespace}/{gateway} has no NodePort for {port}"));
        GatewayClient {
            address: format!("{}:{node_port}", node_ip(1)),
        }
    }

    /// `curl` from this machine; `None` when no HTTP answer came.
    pub async fn send(&self, call: Call<'_>) -> Option<Reply> {
        let mut command = tokio::process::Command::new("curl");
        command
            .args(["-sS", "--max-time", "5", "-D", "-", "-X", call.method])
            .args(["-H", &format!("host: {}", call.host)]);
        for (name, value) in call.headers {
            command.args(["-H", &format!("{name}: {value}")]);
        }
        let url = match call.ca {
            None => format!("http://{}{}", self.address, call.path),
            Some(ca) => {
                let to = format!("{}:443:{}", call.host, self.address);
                command.args(["--connect-to", &to]).arg("--cacert").arg(ca);
                format!("https://{}{}", call.host, call.path)
            }
        };
        let output = command.arg(url).output().await.expect("curl");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.lines();
        let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Some(Reply {
            status,
            headers,
            echo: serde_json::from_str(body).unwrap_or(Value::Null),
        })
    }

    /// Sends `call` until it is answered with `status` (routes reach a gateway a little
    /// after the lab is ready); panics with the case's name otherwise.
    pub async fn expect(&self, case: &str, call: Call<'_>, status: u16) -> Reply {
        let what = format!(
            "{case}: {} {}{} via {} answering {status}",
            call.method, call.host, call.path, self.address
        );
        eventually(&what, Duration::from_secs(15), || async {
            self.send(call).await.filter(|r| r.status == status)
        })
        .await
    }

    /// Asserts that `call` reaches a pod of Deployment `backend`.
    pub async fn reaches(&self, case: &str, call: Call<'_>, backend: &str) {
        let reply = self.expect(case, call, 200).await;
        assert!(
            reply.pod().starts_with(&format!("{backend}-")),
            "{case}: {} {}{} should reach {backend}: {reply:?}",
            call.method,
            call.host,
            call.path
        );
    }
}

/// A directory of this test's files, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mesh-e2e-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }

    /// Writes `text` to file `name` in it; its path.
    pub fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
