//! Answers the proxy gives itself when it cannot forward a request, with a body that says why.

use std::{net::SocketAddr, time::Duration};

use super::{Body, full};
use crate::{limits::Overflow, metrics::UpstreamFailure};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// `x-mesh-overloaded: true`: on answers to requests a cluster's limits refused.
pub static X_MESH_OVERLOADED: http::HeaderName = http::HeaderName::from_static("x-mesh-overloaded");

/// `x-mesh-error`: names the proxy's reason on every answer it makes up itself.
pub static X_MESH_ERROR: http::HeaderName = http::HeaderName::from_static("x-mesh-error");

/// Why the proxy could not get an answer from upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No endpoint could be picked.
    #[error("no healthy upstream: cluster {cluster:?} has no endpoints")]
    NoEndpoint {
        /// The cluster.
        cluster: String,
    },
    /// Connecting to the endpoint failed.
    #[error("upstream connect error: {addr}: {source}")]
    Connect {
        /// The endpoint.
        addr: SocketAddr,
        /// The socket error (refused, unreachable...).
        source: std::io::Error,
    },
    /// The mesh TLS handshake with the endpoint failed (wrong identity, unknown root...).
    #[error("upstream TLS handshake failed: {addr}: {source}")]
    Tls {
        /// The endpoint.
        addr: SocketAddr,
        /// rustls' error, as an I/O error.
        source: std::io::Error,
    },
    /// The cluster wants TLS whose settings cannot be used (its files did not load).
    #[error("cluster {cluster:?} cannot secure connections: its TLS settings did not load")]
    TlsSettings {
        /// The cluster.
        cluster: String,
    },
    /// Connecting took too long.
    #[error("upstream connect timeout: {addr} did not accept within {timeout:?}")]
    ConnectTimeout {
        /// The endpoint.
        addr: SocketAddr,
        /// The limit.
        timeout: Duration,
    },
    /// The connection failed while the request was in flight.
    #[error("upstream reset before response headers: {addr}: {source}")]
    Reset {
        /// The endpoint.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The route's timeout passed.
    #[error("upstream request timeout after {0:?}")]
    Timeout(Duration),
    /// A limit of the cluster's connection pool (circuit breaking) refused the request.
    #[error("upstream overflow: the cluster's {} limit is reached", .0.as_str())]
    Overloaded(Overflow),
    /// One try's limit (the retry policy's per-try timeout) passed.
    #[error("upstream per-try timeout after {0:?}")]
    TryTimeout(Duration),
}

// === impl UpstreamError ===

impl UpstreamError {
    /// The metric reason.
    pub fn failure(&self) -> UpstreamFailure {
        match self {
            UpstreamError::NoEndpoint { .. } => UpstreamFailure::NoEndpoint,
            UpstreamError::Connect { .. }
            | UpstreamError::Tls { .. }
            | UpstreamError::TlsSettings { .. } => UpstreamFailure::ConnectError,
            UpstreamError::ConnectTimeout { .. } => UpstreamFailure::ConnectTimeout,
            UpstreamError::Reset { .. } => UpstreamFailure::Reset,
            UpstreamError::Timeout(_) | UpstreamError::TryTimeout(_) => UpstreamFailure::Timeout,
            UpstreamError::Overloaded(_) => UpstreamFailure::Overflow,
        }
    }

    /// Whether the endpoint was tried and gave no answer (as outlier detection counts
    /// local-origin failures): not for a cluster without endpoints or usable TLS settings.
    pub fn is_local_failure(&self) -> bool {
        !matches!(
            self,
            UpstreamError::NoEndpoint { .. }
                | UpstreamError::TlsSettings { .. }
                | UpstreamError::Overloaded(_)
        )
    }

    /// The status the client gets: 504 for timeouts, 503 otherwise (as Envoy answers).
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::Timeout(_) | UpstreamError::TryTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A response made by the proxy. gRPC clients get a trailers-only answer with a gRPC status,
/// so their libraries report UNAVAILABLE / DEADLINE_EXCEEDED instead of a protocol error.
pub fn local_response(
    status: StatusCode,
    reason: &str,
    message: &str,
    grpc: bool,
) -> Response<Body> {
    let mut builder = Response::builder();
    if grpc {
        let code = match status {
            StatusCode::GATEWAY_TIMEOUT => "4",
            StatusCode::NOT_FOUND => "12",
            StatusCode::SERVICE_UNAVAILABLE => "14",
            _ => "13",
        };
        builder = builder
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header("grpc-status", code)
            .header("grpc-message", percent_encode(message));
    } else {
        builder = builder
            .status(status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    }
    let body = if grpc {
        Bytes::new()
    } else {
        Bytes::from(format!("{message}\n"))
    };
    let mut response = builder
        .body(full(body))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())));
    if let Ok(value) = HeaderValue::from_str(reason) {
        response.headers_mut().insert(X_MESH_ERROR.clone(), value);
    }
    response
}

/// grpc-message is percent-encoded (gRPC over HTTP/2 spec).
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
