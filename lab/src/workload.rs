//! The lab's built-in workload: an HTTP/1.1 and h2c echo server that answers with who it is
//! (pod name, `version` label) and what it saw (method, path, headers, peer), and can be told
//! to fail or delay a share of requests, so routing and resilience can be seen without images.

use std::{collections::BTreeMap, convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::net::TcpListener;

/// Who the workload is and how it misbehaves.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    /// The pod's name, reported in every answer.
    pub pod: String,
    /// The pod's `version` label.
    pub version: String,
    /// Share of requests (0–100) answered 503.
    pub fail_percent: f64,
    /// Share of requests (0–100) delayed by `delay`.
    pub delay_percent: f64,
    /// How long delayed requests wait.
    pub delay: Duration,
}

/// Serves `listener` until the process ends.
pub async fn serve(listener: TcpListener, workload: Workload) {
    let workload = Arc::new(workload);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let workload = workload.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let workload = workload.clone();
                async move { Ok::<_, Infallible>(workload.answer(req, peer).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

// === impl Workload ===

impl Workload {
    /// Answers one request with JSON describing it.
    pub async fn answer(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        if fastrand::f64() * 100.0 < self.delay_percent {
            tokio::time::sleep(self.delay).await;
        }
        let failing = fastrand::f64() * 100.0 < self.fail_percent;
        let headers: BTreeMap<&str, &str> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("<binary>")))
            .collect();
        let report = serde_json::json!({
            "pod": self.pod,
            "version": self.version,
            "method": req.method().as_str(),
            "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
            "protocol": format!("{:?}", req.version()),
            "peer": peer.to_string(),
            "headers": headers,
        });
        let mut body = report.to_string();
        body.push('\n');
        let _ = req.into_body().collect().await;
        let status = if failing {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("x-pod", self.pod.as_str())
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }
}
