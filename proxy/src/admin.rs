//! The proxy's own HTTP endpoints: admin (15000, localhost only: `/config_dump`, `/logging`),
//! health (15021: `/healthz/ready`, `/healthz/live`) and Prometheus metrics (15090: `/metrics`).

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{
    http::{Body, local_response},
    proxy::ProxyState,
};

/// Changes the log filter at run time; returns a message for the operator on failure.
pub type SetLogLevel = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Which set of endpoints a port serves.
#[derive(Clone)]
pub enum AdminPort {
    /// `/config_dump` and `/logging`.
    Admin(Option<SetLogLevel>),
    /// `/healthz/ready` and `/healthz/live`.
    Health,
    /// `/metrics`.
    Metrics,
}

/// Serves one admin port until the process ends.
pub async fn serve(listener: TcpListener, port: AdminPort, state: Arc<ProxyState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "admin accept failed");
                continue;
            }
        };
        let port = port.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (port, state) = (port.clone(), state.clone());
                async move {
                    let response = match app_health(&port, &state, req.uri().path()).await {
                        Some(response) => response,
                        None if matches!(port, AdminPort::Admin(_))
                            && req.uri().path() == "/probe" =>
                        {
                            tls_probe(&state, req.uri().query()).await
                        }
                        None => answer(&port, &state, &req),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
}

/// `/probe?cluster=NAME&endpoint=IP:PORT`: a real connection to one endpoint (`tls-check --probe`).
async fn tls_probe(state: &ProxyState, query: Option<&str>) -> Response<Body> {
    let param = |name| crate::route::matching::query_param(query, name);
    let (Some(cluster), Some(endpoint)) = (param("cluster"), param("endpoint")) else {
        return text(
            StatusCode::BAD_REQUEST,
            "/probe needs ?cluster=NAME&endpoint=IP:PORT\n",
        );
    };
    let Ok(endpoint) = endpoint.parse() else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("{endpoint:?} is not an IP:PORT\n"),
        );
    };
    match crate::tls_probe::probe(state, &cluster.replace("%7C", "|"), endpoint).await {
        Ok(answer) => json(answer),
        Err(why) => text(StatusCode::NOT_FOUND, format!("{why}\n")),
    }
}

/// `/app-health/...` on the health port: the app's own probe, run by the sidecar.
async fn app_health(port: &AdminPort, state: &ProxyState, path: &str) -> Option<Response<Body>> {
    if !matches!(port, AdminPort::Health) || !path.starts_with("/app-health/") {
        return None;
    }
    let Some(probes) = &state.settings.app_probes else {
        return Some(text(
            StatusCode::NOT_FOUND,
            "this proxy runs no app probes (no --app-probes)\n",
        ));
    };
    Some(match probes.run(path).await {
        Some((status, body)) => text(status, body),
        None => text(StatusCode::NOT_FOUND, format!("no app probe at {path}\n")),
    })
}

fn answer(port: &AdminPort, state: &ProxyState, req: &Request<Incoming>) -> Response<Body> {
    match (port, req.method(), req.uri().path()) {
        (AdminPort::Health, _, "/healthz/live") => text(StatusCode::OK, "live"),
        (AdminPort::Health, _, "/healthz/ready") if state.is_ready() => {
            text(StatusCode::OK, "ready")
        }
        (AdminPort::Health, _, "/healthz/ready") => {
            text(StatusCode::SERVICE_UNAVAILABLE, "not ready")
        }
        (AdminPort::Metrics, _, "/metrics" | "/stats/prometheus") => {
            let mut response = text(StatusCode::OK, state.metrics.render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        (AdminPort::Admin(_), &Method::GET, "/config_dump") => config_dump(state),
        (AdminPort::Admin(_), &Method::GET, "/certs") => certs(state),
        (AdminPort::Admin(_), &Method::GET, "/clusters") => clusters(state),
        (AdminPort::Admin(set), &Method::POST, "/logging") => logging(set.as_ref(), req),
        (AdminPort::Admin(_), _, "/") => text(
            StatusCode::OK,
            "mesh-proxy admin: GET /config_dump, GET /clusters, GET /certs, POST /logging?level=<filter>\n",
        ),
        _ => local_response(
            StatusCode::NOT_FOUND,
            "admin_not_found",
            "no such admin endpoint",
            false,
        ),
    }
}

/// The config in force; private keys (of terminated TLS, and of origination from Secrets) are
/// shown as `[redacted]`.
fn config_dump(state: &ProxyState) -> Response<Body> {
    let snapshot = state.config.load();
    let mut config = snapshot.config();
    redact(&mut config);
    let dump = serde_json::json!({
        "version": snapshot.version,
        "config": config,
    });
    json(dump)
}

/// Replaces the private keys a config carries inline with `[redacted]`.
fn redact(config: &mut mesh_proto::config::v1::ProxyConfig) {
    let certificates = (config.listeners.iter_mut())
        .filter_map(|l| l.tls.as_mut())
        .flat_map(|tls| tls.certificates.iter_mut());
    for certificate in certificates {
        certificate.private_key = "[redacted]".to_owned();
    }
    let origination = (config.clusters.iter_mut()).filter_map(|c| c.tls.as_mut());
    for tls in origination.filter(|tls| !tls.private_key_pem.is_empty()) {
        tls.private_key_pem = "[redacted]".to_owned();
    }
}

/// The live state of every cluster traffic has used: each endpoint's health, load, and
/// ejection by outlier detection (why, for how much longer, how many times in a row).
fn clusters(state: &ProxyState) -> Response<Body> {
    let snapshot = state.config.load();
    let mut clusters: Vec<_> = snapshot.clusters_in_use().collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    let clusters: Vec<_> = clusters
        .iter()
        .map(|cluster| {
            let balancer = &cluster.balancer;
            let endpoints: Vec<_> = balancer
                .endpoints()
                .iter()
                .map(|e| {
                    let ejected = balancer.ejection(e).map(|ejection| {
                        serde_json::json!({
                            "reason": ejection.reason.as_str(),
                            "remaining_seconds": ejection.remaining.as_secs_f64(),
                            "ejections": ejection.ejections,
                        })
                    });
                    serde_json::json!({
                        "address": e.addr().to_string(),
                        "healthy": e.is_healthy(),
                        "in_flight": e.in_flight(),
                        "ejected": ejected,
                    })
                })
                .collect();
            serde_json::json!({ "name": cluster.name, "endpoints": endpoints })
        })
        .collect();
    json(serde_json::json!({ "version": snapshot.version, "clusters": clusters }))
}

/// The workload certificate in force: identity, serial, validity, root, time to renewal.
fn certs(state: &ProxyState) -> Response<Body> {
    let Some(identity) = &state.settings.identity else {
        return text(
            StatusCode::NOT_FOUND,
            "this proxy has no workload identity (no --ca-token-file)\n",
        );
    };
    let Some(cert) = identity.current() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no workload certificate yet: the CA has not answered\n",
        );
    };
    let now = std::time::SystemTime::now();
    let seconds_until = |at: std::time::SystemTime| match at.duration_since(now) {
        Ok(ahead) => ahead.as_secs_f64(),
        Err(behind) => -behind.duration().as_secs_f64(),
    };
    let dump = serde_json::json!({
        "identity": cert.identity,
        "serial": cert.serial,
        "not_before": rfc3339(cert.not_before),
        "not_after": rfc3339(cert.not_after),
        "renew_at": rfc3339(cert.renew_at()),
        "seconds_to_renewal": seconds_until(cert.renew_at()).max(0.0),
        "seconds_to_expiry": seconds_until(cert.not_after),
        "root_subject": cert.root_subject,
        "root_pem": cert.root_pem,
    });
    json(dump)
}

fn rfc3339(at: std::time::SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn json(value: serde_json::Value) -> Response<Body> {
    let mut response = text(
        StatusCode::OK,
        serde_json::to_string_pretty(&value).unwrap_or_default(),
    );
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn logging(set: Option<&SetLogLevel>, req: &Request<Incoming>) -> Response<Body> {
    let Some(set) = set else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "log level cannot be changed in this process",
        );
    };
    let level = req
        .uri()
        .query()
        .and_then(|q| crate::route::matching::query_param(Some(q), "level"));
    match level.map(|l| set(l)) {
        Some(Ok(())) => text(
            StatusCode::OK,
            format!("log filter set to {}", level.unwrap_or_default()),
        ),
        Some(Err(message)) => text(StatusCode::BAD_REQUEST, message),
        None => text(
            StatusCode::BAD_REQUEST,
            "usage: POST /logging?level=<filter>, e.g. level=debug or level=mesh_proxy=trace",
        ),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(crate::http::full(body.into()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use mesh_proto::config::v1::{
        Cluster, Listener, ProxyConfig, ServerCertificate, TlsTermination, UpstreamTls,
    };

    #[test]
    fn the_config_dump_shows_no_private_key() {
        let mut config = ProxyConfig {
            listeners: vec![Listener {
                tls: Some(TlsTermination {
                    certificates: vec![ServerCertificate {
                        certificate_chain: "CHAIN".to_owned(),
                        private_key: "SERVER KEY".to_owned(),
                        ..Default::default()
                    }],
                }),
                ..Default::default()
            }],
            clusters: vec![Cluster {
                tls: Some(UpstreamTls {
                    client_certificate_pem: "CLIENT CHAIN".to_owned(),
                    private_key_pem: "CLIENT KEY".to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        super::redact(&mut config);
        let dump = serde_json::to_string(&config).expect("json");
        assert!(!dump.contains("KEY"), "{dump}");
        assert!(
            dump.contains("CLIENT CHAIN") && dump.contains("[redacted]"),
            "{dump}"
        );
    }
}
