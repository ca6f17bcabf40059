//! The app's kubelet probes, run by the sidecar. The injector points each probe of the app at
//! the sidecar's health port (`/app-health/<container>/readyz` or `/livez`), so probes keep
//! working when PeerAuthentication is STRICT and kubelet's plain text would be refused; the
//! sidecar runs the original probe (an HTTP GET or a TCP connect) against the app itself, from
//! 127.0.0.6 as it delivers inbound traffic, and answers with the outcome.
//!
//! The probes come as JSON (`--app-probes`, env `MESH_APP_PROBES`), a map from the health path to
//! the original probe in Kubernetes' form, ports resolved to numbers:
//! `{"/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080}, "timeoutSeconds": 1}}`.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::http::connect_tcp;

/// Where probes come from: the address the capture rules let through.
const PROBE_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6));
/// The User-Agent of the app's probes.
const APP_PROBE_AGENT: &str = "mesh-proxy/app-probe";
/// Kubernetes' default probe timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The app's probes by health path, and the address the app is probed at.
#[derive(Debug, Default)]
pub struct AppProbes {
    probes: HashMap<String, AppProbe>,
    target: Option<IpAddr>,
}

/// One original probe.
#[derive(Debug, Clone, PartialEq)]
pub enum AppProbe {
    /// `httpGet`: a 2xx or 3xx answer is success.
    Http {
        /// The app's port.
        port: u16,
        /// The path (and query) asked for.
        path: String,
        /// The Host header, when the probe sets one.
        host: Option<String>,
        /// Further headers.
        headers: Vec<(HeaderName, HeaderValue)>,
        /// How long the probe may take.
        timeout: Duration,
    },
    /// `tcpSocket`: a connection is success.
    Tcp {
        /// The app's port.
        port: u16,
        /// How long connecting may take.
        timeout: Duration,
    },
}

// === impl AppProbes ===

impl AppProbes {
    /// Parses the probes' JSON; `target` is the pod IP (127.0.0.1 when unknown).
    pub fn parse(json: &str, target: Option<IpAddr>) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| format!("--app-probes is not JSON: {e}"))?;
        let map = value
            .as_object()
            .ok_or("--app-probes must be a JSON object from health path to probe")?;
        let mut probes = HashMap::new();
        for (path, probe) in map {
            if !path.starts_with("/app-health/") {
                return Err(format!(
                    "--app-probes: {path:?} is not an /app-health/<container>/<readyz|livez> path"
                ));
            }
            let probe = AppProbe::parse(probe).map_err(|e| format!("--app-probes {path}: {e}"))?;
            probes.insert(path.clone(), probe);
        }
        Ok(AppProbes { probes, target })
    }

    /// Runs the probe behind `path`; `None` when there is none.
    pub async fn run(&self, path: &str) -> Option<(StatusCode, String)> {
        let probe = self.probes.get(path)?;
        let ip = self.target.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        Some(probe.run(ip).await)
    }
}

// === impl AppProbe ===

impl AppProbe {
    fn parse(probe: &Value) -> Result<Self, String> {
        let timeout = probe["timeoutSeconds"]
            .as_u64()
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        let port = |action: &Value| -> Result<u16, String> {
            action["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    "port must be a number (named ports are resolved by the injector)".to_owned()
                })
        };
        if let Some(get) = probe.get("httpGet") {
            if get["scheme"]
                .as_str()
                .is_some_and(|s| !s.eq_ignore_ascii_case("HTTP"))
            {
                return Err("only scheme HTTP is supported".to_owned());
            }
            let mut headers = Vec::new();
            let mut host = get["host"].as_str().map(str::to_owned);
            for header in get["httpHeaders"].as_array().into_iter().flatten() {
                let (Some(name), Some(value)) = (header["name"].as_str(), header["value"].as_str())
                else {
                    return Err("httpHeaders need name and value".to_owned());
                };
                if name.eq_ignore_ascii_case("host") {
                    host = Some(value.to_owned());
                    continue;
                }
                let name =
                    HeaderName::try_from(name).map_err(|e| format!("header {name:?}: {e}"))?;
                let value =
                    HeaderValue::try_from(value).map_err(|e| format!("header value: {e}"))?;
                headers.push((name, value));
            }
            return Ok(AppProbe::Http {
                port: port(get)?,
                path: get["path"].as_str().unwrap_or("/").to_owned(),
                host,
                headers,
                timeout,
            });
        }
        if let Some(tcp) = probe.get("tcpSocket") {
            return Ok(AppProbe::Tcp {
                port: port(tcp)?,
                timeout,
            });
        }
        Err("a probe needs httpGet or tcpSocket".to_owned())
    }

    /// Runs the probe against the app at `ip`: 200 for a connection, the app's own status for
    /// an HTTP answer, 503 with the reason when the app cannot be reached.
    async fn run(&self, ip: IpAddr) -> (StatusCode, String) {
        let (port, timeout) = match self {
            AppProbe::Http { port, timeout, .. } | AppProbe::Tcp { port, timeout } => {
                (*port, *timeout)
            }
        };
        let addr = SocketAddr::new(ip, port);
        let answer = tokio::time::timeout(timeout, async {
            let stream = connect_tcp(addr, timeout, Some(PROBE_SOURCE))
                .await
                .map_err(|e| e.to_string())?;
            match self {
                AppProbe::Tcp { .. } => Ok((StatusCode::OK, format!("connected to {addr}\n"))),
                AppProbe::Http {
                    path,
                    host,
                    headers,
                    ..
                } => {
                    let host = host.as_deref();
                    http_get(stream, addr, path, host, headers, APP_PROBE_AGENT).await
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer from {addr} within {timeout:?}")));
        answer.unwrap_or_else(|why| (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")))
    }
}

/// One HTTP/1.1 GET of `path` over `stream` (connected to `addr`): the answer's status and a
/// line saying what answered, or why there was no answer. The body is not read.
pub(crate) async fn http_get(
    stream: tokio::net::TcpStream,
    addr: SocketAddr,
    path: &str,
    host: Option<&str>,
    headers: &[(HeaderName, HeaderValue)],
    user_agent: &'static str,
) -> Result<(StatusCode, String), String> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP to {addr}: {e}"))?;
    tokio::spawn(connection);
    let host = host.map_or_else(|| addr.to_string(), str::to_owned);
    let mut request = Request::get(path)
        .header(header::HOST, host)
        .header(header::USER_AGENT, user_agent)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("probe request for {path:?}: {e}"))?;
    request.headers_mut().extend(headers.iter().cloned());
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP to {addr}: {e}"))?;
    let status = response.status();
    Ok((status, format!("{addr}{path} answered {status}\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_parse_from_kubernetes_form_and_bad_ones_say_why() {
        let probes = AppProbes::parse(
            r#"{"/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080,
                 "httpHeaders": [{"name": "Host", "value": "web.local"}, {"name": "x-probe", "value": "1"}]},
                 "timeoutSeconds": 3},
                "/app-health/web/livez": {"tcpSocket": {"port": 8080}}}"#,
            None,
        )
        .expect("parses");
        assert_eq!(
            probes.probes["/app-health/web/livez"],
            AppProbe::Tcp {
                port: 8080,
                timeout: DEFAULT_TIMEOUT
            }
        );
        let AppProbe::Http {
            host,
            headers,
            timeout,
            ..
        } = &probes.probes["/app-health/web/readyz"]
        else {
            panic!("an HTTP probe");
        };
        assert_eq!(host.as_deref(), Some("web.local"));
        assert_eq!(headers.len(), 1);
        assert_eq!(*timeout, Duration::from_secs(3));
        for (bad, why) in [
            ("[]", "JSON object"),
            (r#"{"/ready": {"tcpSocket": {"port": 1}}}"#, "/app-health/"),
            (
                r#"{"/app-health/a/readyz": {"httpGet": {"port": "http"}}}"#,
                "named ports",
            ),
            (
                r#"{"/app-health/a/readyz": {"httpGet": {"port": 1, "scheme": "HTTPS"}}}"#,
                "HTTP",
            ),
            (
                r#"{"/app-health/a/readyz": {"exec": {}}}"#,
                "httpGet or tcpSocket",
            ),
        ] {
            let error = AppProbes::parse(bad, None).expect_err(bad);
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
