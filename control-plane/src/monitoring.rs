//! The control plane's monitoring port (15014): `/metrics` (Prometheus text), `/debug/syncz`
//! (per proxy and type: sent and ACKed versions, NACKs, as JSON) and `/healthz/ready`.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::CONTENT_TYPE};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;

use crate::xds::DiscoveryServer;

/// What the monitoring port reports on.
pub struct Monitoring {
    /// The discovery server (sync status and its metrics).
    pub server: DiscoveryServer,
    /// The control plane's own metrics.
    pub registry: Registry,
    /// Whether the first config was published.
    pub ready: tokio::sync::watch::Receiver<bool>,
}

/// Serves the monitoring port on `listener` forever.
pub async fn serve(listener: TcpListener, monitoring: Monitoring) {
    let monitoring = Arc::new(monitoring);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "monitoring port: accept failed");
                continue;
            }
        };
        let monitoring = monitoring.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let monitoring = monitoring.clone();
                async move { Ok::<_, Infallible>(answer(&monitoring, &request)) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "monitoring connection ended");
            }
        });
    }
}

fn answer(monitoring: &Monitoring, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    match request.uri().path() {
        "/metrics" => {
            let mut families = monitoring.registry.gather();
            families.extend(monitoring.server.registry().gather());
            let mut text = Vec::new();
            match TextEncoder::new().encode(&families, &mut text) {
                Ok(()) => reply(StatusCode::OK, "text/plain; version=0.0.4", text),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    e.to_string(),
                ),
            }
        }
        "/debug/syncz" => match serde_json::to_vec_pretty(&monitoring.server.sync_status()) {
            Ok(json) => reply(StatusCode::OK, "application/json", json),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                e.to_string(),
            ),
        },
        "/healthz/ready" if *monitoring.ready.borrow() => {
            reply(StatusCode::OK, "text/plain", "ready\n")
        }
        "/healthz/ready" => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "no config published yet\n",
        ),
        other => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("no page {other}; try /metrics, /debug/syncz, /healthz/ready\n"),
        ),
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

/// Binds the monitoring port, naming it in the error.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind the monitoring port {addr}: {e}"))
}
