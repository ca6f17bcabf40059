//! The JSON echo: answers an HTTP request with who answered and what it saw.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::{
    POD_HEADER, VERSION_HEADER, Workload, client, faults::Verdict, retry_simulation::Outcome,
    server::Connection,
};

/// Answers one request with JSON naming the pod and describing the request; 503 when the
/// request drew a failure, or the status its retry simulation asks for. `None`: the simulation
/// asks for the connection to be closed instead.
pub(crate) async fn answer(
    workload: &Workload,
    connection: Connection,
    req: Request<Incoming>,
) -> Option<Response<Full<Bytes>>> {
    let mut status = match workload.retry_simulation.outcome(req.uri().query()).await {
        Outcome::Drop => return None,
        Outcome::Fail(status) => status,
        Outcome::Serve => match workload.faults.draw().await {
            Verdict::Serve => StatusCode::OK,
            Verdict::Fail => StatusCode::SERVICE_UNAVAILABLE,
        },
    };
    let called = match &workload.call {
        Some(url) => Some(match client::call_once(url, req.headers()).await {
            Ok(answer) => answer.as_u16().to_string(),
            Err(error) => {
                status = StatusCode::BAD_GATEWAY;
                error.to_string()
            }
        }),
        None => None,
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| req.uri().authority().map(|authority| authority.as_str()))
        .unwrap_or("");
    let report = serde_json::json!({
        "pod": workload.pod,
        "version": workload.version,
        "method": req.method().as_str(),
        "host": host,
        "path": req.uri().path_and_query().map_or("/", |path| path.as_str()),
        "port": connection.local.port(),
        "peer": connection.peer.to_string(),
        "protocol": format!("{:?}", req.version()),
        "headers": headers_seen(req.headers()),
        "tls": connection.tls.as_deref(),
        "called": called,
    });
    let mut body = report.to_string();
    body.push('\n');
    let _ = req.into_body().collect().await;
    let response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(POD_HEADER, workload.pod.as_str())
        .header(VERSION_HEADER, workload.version.as_str())
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
    Some(response)
}

/// Request headers by name; repeated headers joined with ", ", binary values marked.
pub(crate) fn headers_seen(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::<String, String>::new();
    for (name, value) in headers {
        let value = value.to_str().unwrap_or("<binary>");
        seen.entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_are_joined_in_order() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", "1".parse().expect("value"));
        headers.append("x-a", "2".parse().expect("value"));
        headers.append(
            "x-b",
            http::HeaderValue::from_bytes(b"\xff").expect("value"),
        );
        let seen = headers_seen(&headers);
        assert_eq!(seen["x-a"], "1, 2");
        assert_eq!(seen["x-b"], "<binary>");
    }
}
