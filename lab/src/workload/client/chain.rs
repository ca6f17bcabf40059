//! One GET made by a server in the middle of a chain of services (`serve --call URL`), before
//! it answers: the trace context of the request being served is passed on, as an app
//! instrumented for tracing passes it.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, header::HOST};
use http_body_util::{BodyExt, Empty};

use super::{ClientError, connection, target::HttpUrl};

/// The headers that carry trace context (W3C Trace Context, B3) and the request id.
const PROPAGATED: [&str; 9] = [
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-request-id",
];

/// GETs `url` over a new HTTP/1.1 connection, passing on the trace headers of `received`;
/// the answer's status.
pub async fn call_once(url: &HttpUrl, received: &HeaderMap) -> Result<StatusCode, ClientError> {
    let mut sender = connection::http1::<Empty<Bytes>>(&url.target).await?;
    let mut request = Request::get(url.path.as_str()).header(HOST, url.authority.as_str());
    for name in PROPAGATED {
        for value in received.get_all(name) {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(Empty::new())
        .map_err(|source| ClientError::BadRequestTarget {
            authority: url.authority.clone(),
            path: url.path.clone(),
            source,
        })?;
    let response = sender
        .send_request(request)
        .await
        .map_err(ClientError::Send)?;
    let status = response.status();
    response
        .into_body()
        .collect()
        .await
        .map_err(ClientError::Body)?;
    Ok(status)
}
