//! The API server's service proxy, `/api/v1/namespaces/{ns}/services/{service}/proxy/{path}`:
//! the request is forwarded to a plain-HTTP target a test chose for the service, and its answer
//! comes back as it is. Without a target the answer is the real server's 503 for a service
//! with no endpoints; a target that cannot be reached gives its 503 "error trying to reach
//! service".

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::wire::ApiError;

/// The forwarding targets, by (namespace, service as the path names it).
#[derive(Debug, Default)]
pub struct Targets {
    targets: BTreeMap<(String, String), String>,
}

impl Targets {
    /// Forwards `service` in `namespace` to `target` (`http://host:port`) from now on.
    pub fn set(&mut self, namespace: &str, service: &str, target: &str) {
        let authority = target.trim_start_matches("http://").trim_end_matches('/');
        self.targets.insert(
            (namespace.to_owned(), service.to_owned()),
            authority.to_owned(),
        );
    }

    fn get(&self, proxied: &Proxied) -> Option<String> {
        let key = (proxied.namespace.clone(), proxied.service.clone());
        self.targets.get(&key).cloned()
    }
}

/// A service-proxy request path, taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct Proxied {
    namespace: String,
    service: String,
    /// The path at the service, from its leading `/`.
    path: String,
}

/// Parses a service-proxy path; `None` for any other path.
pub fn parse(path: &str) -> Option<Proxied> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, rest) = rest.split_once("/services/")?;
    let (service, rest) = rest.split_once("/proxy")?;
    if namespace.contains('/') || service.contains('/') {
        return None;
    }
    let path = if rest.is_empty() { "/" } else { rest };
    path.starts_with('/').then(|| Proxied {
        namespace: namespace.to_owned(),
        service: service.to_owned(),
        path: path.to_owned(),
    })
}

/// Forwards one request to the service's target and hands back its answer.
pub async fn forward(
    targets: &std::sync::Mutex<Targets>,
    proxied: Proxied,
    request: &http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let target = targets.lock().expect("proxies lock").get(&proxied);
    let Some(authority) = target else {
        return Err(ApiError::service_unavailable(format!(
            "no endpoints available for service \"{}\"",
            proxied.service
        )));
    };
    let unreachable = |error: String| {
        ApiError::service_unavailable(format!("error trying to reach service: {error}"))
    };
    let stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| unreachable(format!("dial tcp {authority}: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(connection);
    let path_and_query = match request.uri.query() {
        Some(query) => format!("{}?{query}", proxied.path),
        None => proxied.path,
    };
    let mut forwarded = Request::builder()
        .method(request.method.clone())
        .uri(path_and_query)
        .header(header::HOST, authority.as_str());
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(value) = request.headers.get(&name) {
            forwarded = forwarded.header(name, value);
        }
    }
    let forwarded = forwarded
        .body(Full::new(body))
        .map_err(|e| ApiError::bad_request(format!("cannot forward the request: {e}")))?;
    let answer = sender
        .send_request(forwarded)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status: StatusCode = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let body = answer
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let content_type = content_type.unwrap_or(HeaderValue::from_static("text/plain"));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_proxy_paths_name_namespace_service_and_path() {
        let proxied =
            parse("/api/v1/namespaces/mesh-system/services/https:mesh-injector:443/proxy/inject")
                .expect("a service proxy path");
        assert_eq!(
            proxied,
            Proxied {
                namespace: "mesh-system".into(),
                service: "https:mesh-injector:443".into(),
                path: "/inject".into(),
            }
        );
        let root = parse("/api/v1/namespaces/shop/services/web/proxy").expect("the root");
        assert_eq!(root.path, "/");
        assert!(parse("/api/v1/namespaces/shop/services/web").is_none());
        assert!(parse("/api/v1/namespaces/shop/services/web/proxyfoo").is_none());
        assert!(parse("/api/v1/namespaces/shop/pods/web/proxy/x").is_none());
    }
}
