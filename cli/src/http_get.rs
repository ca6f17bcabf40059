//! One HTTP/1.1 GET to a mesh debug port: at a URL reached from here, or at 127.0.0.1 inside a
//! lab pod's network namespace (the control plane's 15014, a sidecar's 15000).

use std::{
    fmt,
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header::HOST};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long connecting plus the whole exchange may take: a stopped process must not hang us.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The largest body read (a config dump of a big mesh is a few MiB).
const MAX_BODY: usize = 64 << 20;

/// Where a debug port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `http://host:port`, reached from this machine.
    Url {
        /// `host:port`.
        authority: String,
    },
    /// `127.0.0.1:port` inside a lab pod's network namespace.
    InPod {
        /// The pod, `namespace/name`.
        pod: String,
        /// Its network namespace.
        netns: String,
        /// The port.
        port: u16,
    },
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body as text.
    pub body: String,
}

// === impl Endpoint ===

impl Endpoint {
    /// Parses a base URL such as `http://127.0.0.1:15014` (port 80 when none is given).
    pub fn parse_url(text: &str) -> anyhow::Result<Endpoint> {
        let uri: Uri = text
            .parse()
            .with_context(|| format!("{text:?} is not a URL; write it as http://HOST:PORT"))?;
        if uri.scheme_str() != Some("http") {
            bail!(
                "{text:?}: only http:// URLs are served by mesh debug ports; write http://HOST:PORT"
            );
        }
        let Some(authority) = uri.authority() else {
            bail!("{text:?} names no host; write it as http://HOST:PORT");
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            bail!("{text:?}: give the base URL only (http://HOST:PORT), without a path");
        }
        let port = authority.port_u16().unwrap_or(80);
        Ok(Endpoint::Url {
            authority: format!("{}:{port}", authority.host()),
        })
    }

    /// GETs `path` (with its query) from the endpoint.
    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        tokio::time::timeout(TIMEOUT, self.exchange(path))
            .await
            .unwrap_or_else(|_| {
                bail!(
                    "no answer within {}s (is the process stopped?)",
                    TIMEOUT.as_secs()
                )
            })
            .with_context(|| format!("GET {path} from {self}"))
    }

    async fn exchange(&self, path: &str) -> anyhow::Result<Answer> {
        let (stream, host) = match self {
            Endpoint::Url { authority } => (
                TcpStream::connect(authority.as_str()).await?,
                authority.clone(),
            ),
            Endpoint::InPod { netns, port, .. } => {
                (connect_in(netns, *port).await?, format!("127.0.0.1:{port}"))
            }
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header(HOST, host)
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the body: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Url { authority } => write!(f, "http://{authority}"),
            Endpoint::InPod { pod, port, .. } => {
                write!(f, "127.0.0.1:{port} in lab pod {pod}")
            }
        }
    }
}

/// Connects to `127.0.0.1:port` inside `netns`; the socket stays in that namespace.
async fn connect_in(netns: &str, port: u16) -> anyhow::Result<TcpStream> {
    let netns = netns.to_owned();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = tokio::task::spawn_blocking(move || {
        mesh_lab::netns::run_inside(&netns, move || {
            std::net::TcpStream::connect_timeout(&addr, TIMEOUT)
        })
    })
    // The blocking task, entering the namespace, then connecting: each may fail.
    .await???;
    stream.set_nonblocking(true)?;
    Ok(TcpStream::from_std(stream)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_parse_and_anything_else_says_how_to_write_one() {
        let url = |t| Endpoint::parse_url(t).map(|e| e.to_string());
        assert_eq!(
            url("http://127.0.0.1:15014").expect("ok"),
            "http://127.0.0.1:15014"
        );
        assert_eq!(
            url("http://cp.mesh-system/").expect("ok"),
            "http://cp.mesh-system:80"
        );
        for bad in [
            "127.0.0.1:15014",
            "https://cp:15014",
            "http://cp:1/debug",
            "not a url",
        ] {
            let error = format!("{:#}", Endpoint::parse_url(bad).expect_err(bad));
            assert!(error.contains("http://HOST:PORT"), "{bad}: {error}");
        }
    }

    /// A network namespace for one test, deleted when it ends.
    struct Netns(String);

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = mesh_lab::netns::delete(&self.0);
        }
    }

    #[tokio::test]
    async fn a_pod_endpoint_is_reached_on_the_pods_own_localhost() {
        let test = "a_pod_endpoint_is_reached_on_the_pods_own_localhost";
        if !mesh_test_support::require_root(test, &["ip"]) {
            return;
        }
        let netns = Netns(format!("mesh-cli-http-{}", std::process::id()));
        mesh_lab::netns::create(&netns.0).expect("ip netns add");
        // A one-request server on 127.0.0.1 inside the namespace: the listening socket stays
        // there, so only a connection made inside can reach it.
        let listener = mesh_lab::netns::run_inside(&netns.0, || {
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        })
        .expect("enter the namespace")
        .expect("bind inside");
        let port = listener.local_addr().expect("its address").port();
        let server = std::thread::spawn(move || {
            use std::io::{BufRead, BufReader, Write};
            let (mut stream, _) = listener.accept().expect("a connection");
            let mut reader = BufReader::new(&stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("a request");
            // Read the whole head, so closing leaves nothing unread (which would reset).
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let body = format!("inside: {}", request_line.trim());
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .expect("answer");
        });
        let endpoint = Endpoint::InPod {
            pod: "shop/web-1".into(),
            netns: netns.0.clone(),
            port,
        };
        assert_eq!(
            endpoint.to_string(),
            format!("127.0.0.1:{port} in lab pod shop/web-1")
        );
        let answer = endpoint.get("/config_dump").await.expect("an answer");
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, "inside: GET /config_dump HTTP/1.1");
        server.join().expect("the server thread");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_named_in_the_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let endpoint = Endpoint::parse_url(&format!("http://127.0.0.1:{port}")).expect("url");
        let error = format!(
            "{:#}",
            endpoint.get("/debug/syncz").await.expect_err("closed")
        );
        assert!(
            error.contains(&format!("http://127.0.0.1:{port}")),
            "{error}"
        );
        assert!(error.contains("refused"), "{error}");
    }
}
