//! Client connections of the load generator: HTTP/1.1 keep-alive or HTTP/2 (h2c with prior
//! knowledge, or h2 by ALPN over TLS), over TCP with Nagle's algorithm off, or over TLS that
//! trusts one CA file; kept alive, or one per request.

use std::{path::Path, sync::Arc};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header::HOST};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

/// The server under test and the request every lane sends to it.
#[derive(Clone, Debug)]
pub struct Target {
    /// `host:port` to connect to.
    pub addr: String,
    /// Whether to speak h2c (HTTP/2 with prior knowledge) rather than HTTP/1.1.
    pub http2: bool,
    /// The full URL (HTTP/2 sends it as `:scheme`, `:authority` and `:path`).
    uri: Uri,
    /// The path and query (HTTP/1.1 sends it with a `Host` header).
    path: Uri,
    /// For `https://` URLs: the TLS client and the name it sends and verifies.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// Whether every request opens a connection of its own (closed after the response).
    pub new_connections: bool,
}

/// One way of sending requests: a whole HTTP/1.1 connection, or a handle on a shared HTTP/2
/// connection.
pub enum Sender {
    /// HTTP/1.1 keep-alive: one request at a time.
    Http1(http1::SendRequest<Empty<Bytes>>),
    /// HTTP/2: every handle on the connection has its own stream.
    Http2(http2::SendRequest<Empty<Bytes>>),
}

// === impl Target ===

impl Target {
    /// Reads a `http://host:port/path` URL, or an `https://` one whose server is verified
    /// against the PEM certificates in `ca`.
    pub fn parse(url: &str, http2: bool, ca: Option<&Path>) -> Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("{url:?} is not a URL"))?;
        let authority = uri
            .authority()
            .with_context(|| format!("{url:?} has no host"))?;
        let (scheme, tls, default_port) = match (uri.scheme_str(), ca) {
            (Some("http"), _) => ("http", None, 80),
            (Some("https"), Some(ca)) => {
                ("https", Some(tls_client(ca, authority.host(), http2)?), 443)
            }
            (Some("https"), None) => bail!("{url:?}: an https:// URL needs --cacert"),
            _ => bail!("{url:?}: only http:// and https:// URLs are supported"),
        };
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(default_port)
        );
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        let path = Uri::try_from(path_and_query).with_context(|| format!("path of {url:?}"))?;
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority.clone())
            .path_and_query(path_and_query)
            .build()
            .with_context(|| format!("rebuilding {url:?}"))?;
        Ok(Self {
            addr,
            http2,
            uri,
            path,
            tls,
            new_connections: false,
        })
    }

    /// The URL requested.
    pub fn url(&self) -> String {
        self.uri.to_string()
    }

    /// The request to send, in the form the protocol wants.
    fn request(&self) -> Result<Request<Empty<Bytes>>> {
        let request = if self.http2 {
            Request::get(self.uri.clone())
        } else {
            let host = self.uri.authority().map_or("localhost", |a| a.as_str());
            Request::get(self.path.clone()).header(HOST, host)
        };
        Ok(request.body(Empty::new())?)
    }
}

/// A TLS client trusting only the certificates in the PEM file `ca`, for `host`, offering
/// h2 or http/1.1 by ALPN, never resuming a session.
fn tls_client(
    ca: &Path,
    host: &str,
    http2: bool,
) -> Result<(Arc<ClientConfig>, ServerName<'static>)> {
    let mut roots = RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("{}: not a PEM certificate", ca.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![if http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    // Every new connection is a full handshake, the cost a gateway pays for a new client.
    config.resumption = rustls::client::Resumption::disabled();
    let name = ServerName::try_from(host.to_owned())
        .with_context(|| format!("{host:?} is not a server name"))?;
    Ok((Arc::new(config), name))
}

/// Opens a connection to the target (TCP, then TLS for https) and runs the HTTP handshake;
/// the connection is driven by a task of its own.
pub async fn connect(target: &Target) -> Result<Sender> {
    let tcp = TcpStream::connect(&target.addr)
        .await
        .with_context(|| format!("connecting to {}: is the server running?", target.addr))?;
    tcp.set_nodelay(true)?;
    match &target.tls {
        None => handshake(target, TokioIo::new(tcp)).await,
        Some((config, name)) => {
            let tls = TlsConnector::from(config.clone())
                .connect(name.clone(), tcp)
                .await
                .with_context(|| format!("TLS handshake with {}", target.addr))?;
            handshake(target, TokioIo::new(tls)).await
        }
    }
}

/// The HTTP handshake over an open connection.
async fn handshake<I>(target: &Target, io: TokioIo<I>) -> Result<Sender>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if target.http2 {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
            .await
            .with_context(|| format!("HTTP/2 handshake with {}", target.addr))?;
        tokio::spawn(connection);
        Ok(Sender::Http2(sender))
    } else {
        let (sender, connection) = http1::handshake(io)
            .await
            .with_context(|| format!("HTTP/1.1 handshake with {}", target.addr))?;
        tokio::spawn(connection);
        Ok(Sender::Http1(sender))
    }
}

// === impl Sender ===

impl Sender {
    /// Another handle on the same connection; HTTP/1.1 has none (one request at a time).
    pub fn share(&self) -> Option<Sender> {
        match self {
            Sender::Http1(_) => None,
            Sender::Http2(sender) => Some(Sender::Http2(sender.clone())),
        }
    }

    /// Whether the connection is gone and must be replaced.
    pub fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }

    /// Whether the connection serves one request at a time (and is unusable after a timeout).
    pub fn is_http1(&self) -> bool {
        matches!(self, Sender::Http1(_))
    }

    /// Sends one request and reads the whole response body; returns the response's status.
    pub async fn send(&mut self, target: &Target) -> Result<StatusCode> {
        let request = target.request()?;
        let response = match self {
            Sender::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Sender::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
        };
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("http://127.0.0.1:18081/a?b=c", false, None).unwrap();
        assert_eq!(t.addr, "127.0.0.1:18081");
        assert_eq!(t.url(), "http://127.0.0.1:18081/a?b=c");
        let r = t.request().unwrap();
        assert_eq!(r.uri(), "/a?b=c");
        assert_eq!(r.headers()[HOST], "127.0.0.1:18081");

        let t = Target::parse("http://localhost", true, None).unwrap();
        assert_eq!(t.addr, "localhost:80");
        assert_eq!(t.request().unwrap().uri(), "http://localhost/");
    }

    #[test]
    fn rejects_other_schemes() {
        assert!(Target::parse("https://127.0.0.1/", false, None).is_err());
        assert!(Target::parse("ftp://127.0.0.1/", false, None).is_err());
        assert!(Target::parse("127.0.0.1:80", false, None).is_err());
    }
}
