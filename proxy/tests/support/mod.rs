//! Test rig for in-process proxy tests: upstream servers that report what they saw, a proxy
//! started from YAML with its explicit listener on a free port, and small HTTP clients.

#![allow(dead_code, missing_docs)]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use mesh_proxy::{
    config::{EncodedConfig, Snapshot},
    metrics::Metrics,
    proxy::{Proxy, ProxyListeners, Settings},
};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

/// What an upstream answers with: its name, what it saw, and how the request reached it.
pub fn seen(name: &str, req: &Request<Incoming>, peer: SocketAddr) -> Value {
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    serde_json::json!({
        "upstream": name,
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "version": format!("{:?}", req.version()),
        "headers": headers,
        "peer": peer.to_string(),
    })
}

/// A running upstream HTTP server (HTTP/1.1 and h2c on one port).
pub struct Upstream {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
}

/// An upstream that answers every request with JSON describing it, after `delay`.
pub async fn echo_upstream(name: &'static str) -> Upstream {
    upstream_with_delay(name, Duration::ZERO).await
}

/// An echo upstream that waits `delay` before answering.
pub async fn upstream_with_delay(name: &'static str, delay: Duration) -> Upstream {
    upstream_at(name, "127.0.0.1:0".parse().expect("addr"), delay).await
}

/// An echo upstream bound at `addr`.
pub async fn upstream_at(name: &'static str, addr: SocketAddr, delay: Duration) -> Upstream {
    let listener = TcpListener::bind(addr).await.expect("bind upstream");
    let addr = listener.local_addr().expect("local addr");
    let requests = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (req_count, conn_count) = (requests.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            conn_count.fetch_add(1, Ordering::SeqCst);
            let req_count = req_count.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    req_count.fetch_add(1, Ordering::SeqCst);
                    let body = seen(name, &req, peer).to_string();
                    async move {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let _ = req.into_body().collect().await;
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("x-upstream", name)
                                .header("connection", "keep-alive")
                                .header("keep-alive", "timeout=30")
                                .body(Full::new(Bytes::from(body)))
                                .expect("valid response"),
                        )
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        requests,
        connections,
    }
}

/// A proxy serving `yaml`, whose one explicit listener is configured at 127.0.0.1:0.
pub struct TestProxy {
    pub proxy: Proxy,
    pub addr: SocketAddr,
}

/// Starts a proxy in-process. `{NAME}` placeholders in `yaml` are replaced by `vars`.
pub async fn start_proxy(yaml: &str, vars: &[(&str, SocketAddr)]) -> TestProxy {
    start_proxy_with(yaml, vars, Settings::default()).await
}

/// Starts a proxy in-process with these command-line settings.
pub async fn start_proxy_with(
    yaml: &str,
    vars: &[(&str, SocketAddr)],
    settings: Settings,
) -> TestProxy {
    let mut text = yaml.to_owned();
    for (name, addr) in vars {
        text = text.replace(&format!("{{{name}}}"), &addr.to_string());
    }
    let config =
        mesh_proxy::config::parse(&text, "test.yaml".as_ref()).expect("test config parses");
    let snapshot = Snapshot::compile(EncodedConfig::encode(&config), None)
        .unwrap_or_else(|e| panic!("test config invalid: {e:?}"));
    let proxy = Proxy::start(
        snapshot,
        ProxyListeners::default(),
        settings,
        Metrics::new(),
    )
    .await
    .expect("proxy starts");
    let addr = proxy
        .explicit_bound_addr("127.0.0.1:0".parse().expect("addr"))
        .expect("test config has an explicit listener at 127.0.0.1:0");
    TestProxy { proxy, addr }
}

/// A config with one explicit HTTP listener routing everything to cluster `up` at `{UP}`.
pub const SIMPLE: &str = r#"
listeners:
- { name: test, address: "127.0.0.1:0", mode: EXPLICIT, route_config: test }
routes:
- name: test
  virtual_hosts:
  - { name: any, domains: ["*"], routes: [ { match: { prefix: / }, route: { destinations: [{ cluster: up }] } } ] }
clusters: [ { name: up } ]
endpoints: [ { cluster: up, endpoints: [{ address: "{UP}" }] } ]
"#;

/// An HTTP/1.1 client on one connection.
pub struct H1Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl H1Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect to proxy");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        H1Client { sender }
    }

    pub async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> (StatusCode, http::HeaderMap, Bytes) {
        self.sender.ready().await.expect("connection ready");
        let response = self.sender.send_request(req).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, body)
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, http::HeaderMap, Bytes) {
        self.send(request(path)).await
    }
}

/// A GET with Host `web`.
pub fn request(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "web")
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

/// One GET on a new connection.
pub async fn get(addr: SocketAddr, path: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    H1Client::connect(addr).await.get(path).await
}

/// Parses an echo upstream's answer.
pub fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)))
}
