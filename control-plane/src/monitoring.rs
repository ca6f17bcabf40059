//! The control plane's monitoring port (15014): `/metrics` (Prometheus text), `/debug/syncz`
//! (per proxy and type: sent and ACKed versions, NACKs, as JSON), `/debug/config` (what a
//! proxy would be sent now, in the shape of the proxy's own `/config_dump`) and
//! `/healthz/ready`.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{Response, StatusCode, Uri, header::CONTENT_TYPE};
use http_body_util::Full;
use hyper::service::service_fn;
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
            let service = service_fn(move |request: http::Request<_>| {
                let response = answer(&monitoring, request.uri());
                async move { Ok::<_, Infallible>(response) }
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

fn answer(monitoring: &Monitoring, uri: &Uri) -> Response<Full<Bytes>> {
    match uri.path() {
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
        "/debug/syncz" => json(&monitoring.server.sync_status()),
        "/debug/config" => match query_param(uri.query(), "proxy") {
            None => json(&overview(&monitoring.server)),
            Some("") => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "?proxy= needs a proxy id as /debug/syncz shows it, e.g. ?proxy=web-1.shop\n",
            ),
            Some(id) => match monitoring.server.config_for(id) {
                Some((generation, config)) => json(&serde_json::json!({
                    "proxy": id,
                    "generation": generation,
                    "config": &*config,
                })),
                None => reply(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    format!(
                        "no proxy {id:?} is connected to this control plane; \
                         /debug/config lists the connected ones (ids are <pod>.<namespace>)\n"
                    ),
                ),
            },
        },
        "/debug/tlscheck" => match query_param(uri.query(), "proxy").filter(|id| !id.is_empty()) {
            None => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "?proxy= needs a proxy id as /debug/syncz shows it, e.g. ?proxy=web-1.shop\n",
            ),
            Some(id) => match monitoring.server.tls_check_for(id) {
                Some(rows) => json(&serde_json::json!({ "proxy": id, "rows": rows })),
                None => reply(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    format!("no proxy {id:?} is connected to this control plane\n"),
                ),
            },
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
            format!(
                "no page {other}; try /metrics, /debug/syncz, /debug/config, /debug/tlscheck, /healthz/ready\n"
            ),
        ),
    }
}

/// `/debug/config` without a proxy: the latest generation and the connected proxies.
fn overview(server: &DiscoveryServer) -> serde_json::Value {
    let proxies: Vec<_> = server
        .sync_status()
        .proxies
        .into_iter()
        .map(|p| serde_json::json!({ "id": p.id, "generation": p.generation }))
        .collect();
    serde_json::json!({ "generation": server.generation(), "proxies": proxies })
}

/// The raw value of `name` in a query string (proxy ids need no percent-decoding).
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find_map(|(key, value)| (key == name).then_some(value))
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(json) => reply(StatusCode::OK, "application/json", json),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            e.to_string(),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::xds::ConfigSnapshot;

    fn monitoring(generation: u64) -> Monitoring {
        let (_, snapshots) = tokio::sync::watch::channel(Arc::new(ConfigSnapshot::uniform(
            generation,
            Default::default(),
        )));
        let (_, ready) = tokio::sync::watch::channel(true);
        Monitoring {
            server: DiscoveryServer::new(snapshots).expect("server"),
            registry: Registry::new(),
            ready,
        }
    }

    fn get(monitoring: &Monitoring, uri: &str) -> (StatusCode, String) {
        let response = answer(monitoring, &uri.parse().expect("uri"));
        let status = response.status();
        let body = response.into_body();
        let bytes = futures_util::FutureExt::now_or_never(http_body_util::BodyExt::collect(body))
            .expect("a full body is ready")
            .expect("infallible")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[test]
    fn debug_config_lists_the_generation_and_rejects_unknown_proxies() {
        let monitoring = monitoring(7);
        let (status, body) = get(&monitoring, "/debug/config");
        assert_eq!(status, StatusCode::OK);
        let overview: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(overview["generation"], 7);
        assert_eq!(overview["proxies"], serde_json::json!([]));

        let (status, body) = get(&monitoring, "/debug/config?proxy=web-1.shop");
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("\"web-1.shop\""), "{body}");
        let (status, body) = get(&monitoring, "/debug/config?x=1&proxy=");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("?proxy=web-1.shop"), "{body}");
    }

    #[test]
    fn query_params_are_found_by_name() {
        assert_eq!(query_param(Some("a=1&proxy=b.c"), "proxy"), Some("b.c"));
        assert_eq!(query_param(Some("proxy"), "proxy"), Some(""));
        assert_eq!(query_param(Some("proxyx=1"), "proxy"), None);
        assert_eq!(query_param(None, "proxy"), None);
    }
}
