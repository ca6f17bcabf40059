//! The webhook's HTTPS server: `POST /inject` on 15017, TLS from the caller's certificate.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use k8s_openapi::api::core::v1::Namespace;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::review::{Verdict, answer};
use crate::settings::InjectionConfig;

/// The largest AdmissionReview accepted (the API server's own request limit is 3 MiB).
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long a client may take to send a request's headers or finish its TLS handshake.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A namespace lookup by name (the control plane's view of the cluster).
pub type NamespaceLookup = Arc<dyn Fn(&str) -> Option<Namespace> + Send + Sync>;

/// What the webhook answers with.
#[derive(Clone)]
pub struct Webhook {
    /// The injection config.
    pub config: Arc<InjectionConfig>,
    /// Where namespaces' labels come from.
    pub namespaces: NamespaceLookup,
}

/// Serves the webhook on `listener` with `tls` until the task is dropped.
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, webhook: Webhook) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "webhook accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let webhook = webhook.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(READ_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "webhook TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request| {
                let webhook = webhook.clone();
                async move { Ok::<_, Infallible>(handle(request, &webhook).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "webhook connection ended");
            }
        });
    }
}

async fn handle(request: Request<Incoming>, webhook: &Webhook) -> Response<Full<Bytes>> {
    if request.uri().path() != "/inject" {
        return text(StatusCode::NOT_FOUND, "the webhook serves POST /inject\n");
    }
    if request.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            tracing::warn!("webhook request over {MAX_BODY} bytes refused");
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the AdmissionReview is over 4 MiB\n",
            );
        }
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}\n"),
            );
        }
    };
    let lookup = &*webhook.namespaces;
    let (status, body, verdict) = answer(&body, &webhook.config, lookup);
    match &verdict {
        Verdict::Injected => tracing::info!("webhook: pod injected"),
        Verdict::Unchanged(why) => tracing::debug!(%why, "webhook: pod unchanged"),
        Verdict::Denied(why) => tracing::warn!(%why, "webhook: pod refused"),
        Verdict::BadRequest(why) => tracing::warn!(%why, "webhook: bad request"),
    }
    let content_type = if status == StatusCode::OK {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.to_owned())));
    *response.status_mut() = status;
    response
}
