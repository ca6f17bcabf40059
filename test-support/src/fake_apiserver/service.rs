//! The HTTP side: routes a request to a list or a watch, streams watch events as
//! newline-delimited JSON, answers errors with `Status` bodies, and logs every request.

use super::access_review::{self, Access};
use super::cluster::{Cluster, WatchStart};
use super::resources::{parse_collection, parse_object};
use super::selectors::Selector;
use super::service_proxy::{self, Targets};
use super::token_review::{self, FakeToken};
use super::version::{self, Version};
use super::wire::ApiError;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Duration;

/// Response body: a whole JSON document or a stream of watch lines.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The method, e.g. `GET` or `PATCH`.
    pub method: Method,
    /// Path without the query.
    pub path: String,
    /// Decoded query parameters.
    pub query: BTreeMap<String, String>,
}

impl RecordedRequest {
    /// Whether this was a watch.
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|v| v == "true" || v == "1")
    }

    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

/// State shared by all connections.
pub struct Shared {
    /// The objects, history and watches.
    pub cluster: Mutex<Cluster>,
    /// Every request so far, in arrival order (after it was served or its watch registered).
    pub requests: tokio::sync::watch::Sender<Vec<RecordedRequest>>,
    /// Service-account tokens TokenReviews know.
    pub tokens: Mutex<BTreeMap<String, FakeToken>>,
    /// What SelfSubjectAccessReviews answer.
    pub access: Mutex<Access>,
    /// Where the service proxy forwards to.
    pub proxies: Mutex<Targets>,
    /// What `/version` answers.
    pub version: Mutex<Version>,
}

/// Serves one request.
pub async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Body> {
    let recorded = RecordedRequest {
        method: request.method().clone(),
        path: request.uri().path().to_string(),
        query: parse_query(request.uri().query().unwrap_or_default()),
    };
    let (parts, body) = request.into_parts();
    let failure = shared
        .cluster
        .lock()
        .expect("cluster lock")
        .take_failure(&recorded.path);
    let response = match (failure, body.collect().await) {
        (Some(error), _) => Err(error),
        (None, Err(error)) => Err(ApiError::bad_request(format!("reading the body: {error}"))),
        (None, Ok(body)) => match service_proxy::parse(&recorded.path) {
            Some(proxied) => {
                service_proxy::forward(&shared.proxies, proxied, &parts, body.to_bytes())
                    .await
                    .map(|response| response.map(|body| body.boxed_unsync()))
            }
            None => respond(shared, &parts, &body.to_bytes(), &recorded),
        },
    };
    let response = response.unwrap_or_else(|error| {
        json_response(
            StatusCode::from_u16(error.code).expect("valid code"),
            &error.status(),
        )
    });
    shared.requests.send_modify(|log| log.push(recorded));
    response
}

fn respond(
    shared: &Shared,
    request: &http::request::Parts,
    body: &[u8],
    recorded: &RecordedRequest,
) -> Result<Response<Body>, ApiError> {
    let accept = request
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    if let Some(accept) = accept
        && (accept.contains("as=") || !(accept.contains("json") || accept.contains("*/*")))
    {
        return Err(ApiError::not_acceptable(format!(
            "the fake serves plain JSON only, not {accept}"
        )));
    }
    if request.method == Method::GET && recorded.path == version::PATH {
        let version = shared.version.lock().expect("version lock").body();
        return Ok(json_response(StatusCode::OK, &version));
    }
    let mut cluster = shared.cluster.lock().expect("cluster lock");
    match request.method {
        Method::GET => read(&mut cluster, recorded),
        Method::POST if recorded.path == token_review::PATH => {
            let tokens = shared.tokens.lock().expect("tokens lock");
            let answer = token_review::review(&json_body(body)?, &tokens);
            Ok(json_response(StatusCode::CREATED, &answer))
        }
        Method::POST if recorded.path == access_review::PATH => {
            let access = shared.access.lock().expect("access lock");
            let answer = access.review(&json_body(body)?);
            Ok(json_response(StatusCode::CREATED, &answer))
        }
        Method::POST => {
            let collection = parse_collection(&recorded.path).ok_or_else(|| {
                ApiError::not_found(format!("the server could not find {}", recorded.path))
            })?;
            let created = cluster.create(&collection, json_body(body)?)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        Method::PATCH => {
            let content_type = request
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if content_type != "application/merge-patch+json" {
                return Err(ApiError::unsupported_media_type(format!(
                    "the fake applies JSON merge patches only, not {content_type:?}"
                )));
            }
            let object = parse_object(&recorded.path).ok_or_else(|| {
                ApiError::not_found(format!("the server could not find {}", recorded.path))
            })?;
            let status_only = match object.subresource.as_deref() {
                None => false,
                Some("status") => true,
                Some(other) => {
                    return Err(ApiError::not_found(format!(
                        "the fake has no subresource {other:?}"
                    )));
                }
            };
            let patched = cluster.merge_patch(&object, &json_body(body)?, status_only)?;
            Ok(json_response(StatusCode::OK, &patched))
        }
        ref other => Err(ApiError::method_not_allowed(format!(
            "the fake serves GET, POST and PATCH, not {other}"
        ))),
    }
}

fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
}

/// A list, a watch, or one object.
fn read(cluster: &mut Cluster, recorded: &RecordedRequest) -> Result<Response<Body>, ApiError> {
    let Some(collection) = parse_collection(&recorded.path) else {
        let object = parse_object(&recorded.path)
            .filter(|o| o.subresource.is_none())
            .ok_or_else(|| {
                ApiError::not_found(format!("the server could not find {}", recorded.path))
            })?;
        return Ok(json_response(StatusCode::OK, &cluster.get_object(&object)?));
    };
    let selector = Selector::parse(
        recorded.param("labelSelector"),
        recorded.param("fieldSelector"),
    )
    .map_err(ApiError::bad_request)?;
    if recorded.is_watch() {
        let timeout = recorded
            .param("timeoutSeconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1800);
        let bookmarks = recorded.param("allowWatchBookmarks") == Some("true");
        let start = cluster.watch(
            collection,
            selector,
            recorded.param("resourceVersion"),
            bookmarks,
        )?;
        return Ok(watch_response(start, Duration::from_secs(timeout)));
    }
    let limit = match recorded.param("limit") {
        None => None,
        Some(limit) => Some(
            limit
                .parse()
                .map_err(|_| ApiError::bad_request(format!("limit: Invalid value: {limit:?}")))?,
        ),
    }
    .filter(|limit| *limit > 0);
    let list = cluster.list(
        &collection,
        &selector,
        limit,
        recorded.param("continue"),
        recorded.param("resourceVersion"),
    )?;
    Ok(json_response(StatusCode::OK, &list))
}

fn watch_response(start: WatchStart, timeout: Duration) -> Response<Body> {
    let live = stream::unfold(start.live, |live| async move {
        let mut live = live?;
        let line = live.recv().await?;
        Some((line, Some(live)))
    });
    let lines = stream::iter(start.initial)
        .chain(live)
        .take_until(tokio::time::sleep(timeout))
        .map(|line| Ok::<_, Infallible>(Frame::data(line)));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(StreamBody::new(lines).boxed_unsync())
        .expect("a valid response")
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("a JSON value serializes");
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)).boxed_unsync())
        .expect("a valid response")
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || {
            std::str::from_utf8(bytes.get(i + 1..i + 3)?)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if hex().is_some() => {
                out.extend(hex());
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_decoded() {
        let query = parse_query("labelSelector=app%3Dweb%2C%21canary&watch=true&x=a+b");
        assert_eq!(query["labelSelector"], "app=web,!canary");
        assert_eq!(query["watch"], "true");
        assert_eq!(query["x"], "a b");
    }
}
