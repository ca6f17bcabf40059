//! The tries of one request: each gets a copy of the request's head, numbered in
//! `x-mesh-attempt-count`, and its own view of the body, as long as the body can be sent again.

use http::{HeaderName, HeaderValue, Request, request::Parts};
use hyper::body::Incoming;

use super::{REPLAY_LIMIT, ReplayBody, RequestBody, RetryPolicy};

/// `x-mesh-attempt-count`: which try of the request this is, 1 for the first.
pub static X_MESH_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-mesh-attempt-count");

/// One try's request.
pub(super) enum Sent {
    /// An ordinary request.
    Request(Request<RequestBody>),
    /// A protocol upgrade (WebSocket): the client's own request, tried once.
    Upgrade(Request<Incoming>),
}

/// The tries of one request.
pub(super) struct Tries<'a> {
    /// The route's retry policy, if it retries.
    pub(super) policy: Option<&'a RetryPolicy>,
    /// Tries handed out so far.
    pub(super) made: u32,
    source: Source,
}

/// What the tries are made from.
enum Source {
    /// Sent as it came, once: there is no retry policy, the body is too large to keep, or the
    /// request is an upgrade. `None` once taken.
    Once(Option<Request<Incoming>>, bool),
    /// A head to copy and no body.
    Empty(Parts),
    /// A head to copy and a body kept for replay.
    Replay(Parts, ReplayBody),
}

impl<'a> Tries<'a> {
    /// The tries of `req` under `policy`; `mirrored` keeps the body for mirrors' copies too.
    pub(super) fn new(
        req: Request<Incoming>,
        policy: Option<&'a RetryPolicy>,
        upgrade: bool,
        mirrored: bool,
    ) -> Self {
        let source = match policy {
            None if !mirrored => Source::Once(Some(req), upgrade),
            _ if upgrade => Source::Once(Some(req), true),
            _ => {
                let (parts, body) = req.into_parts();
                let hint = http_body::Body::size_hint(&body);
                if http_body::Body::is_end_stream(&body) {
                    Source::Empty(parts)
                } else if hint.lower() > REPLAY_LIMIT as u64 {
                    // Known to be too large to keep: streamed once, never retried.
                    Source::Once(Some(Request::from_parts(parts, body)), false)
                } else {
                    Source::Replay(parts, ReplayBody::new(body))
                }
            }
        };
        Tries {
            policy,
            made: 0,
            source,
        }
    }

    /// A copy of the request for a mirror, with `host` as its authority; `None` when its body
    /// is not kept (too large, or an upgrade).
    pub(super) fn mirror(&self, host: &HeaderValue) -> Option<Request<RequestBody>> {
        let (parts, body) = match &self.source {
            Source::Once(..) => return None,
            Source::Empty(parts) => (parts, RequestBody::Empty),
            Source::Replay(parts, body) => (parts, RequestBody::Replay(body.follower())),
        };
        let mut head = copy_head(parts, 1);
        head.headers.remove(&X_MESH_ATTEMPT_COUNT);
        if head.uri.authority().is_some() {
            let mut uri = head.uri.clone().into_parts();
            uri.authority = host.to_str().ok().and_then(|h| h.parse().ok());
            if let Ok(with_host) = http::Uri::from_parts(uri) {
                head.uri = with_host;
            }
        } else {
            head.headers.insert(http::header::HOST, host.clone());
        }
        Some(Request::from_parts(head, body))
    }

    /// The next try's request; `None` when the request cannot be sent again (its body was sent
    /// once, or outgrew what is kept for replay).
    pub(super) fn next(&mut self) -> Option<Sent> {
        let attempt = self.made + 1;
        let sent = match &mut self.source {
            Source::Once(req, upgrade) => {
                let req = req.take()?;
                if *upgrade {
                    Sent::Upgrade(req)
                } else {
                    let mut req = req.map(RequestBody::Streamed);
                    if self.policy.is_some() {
                        req.headers_mut()
                            .insert(X_MESH_ATTEMPT_COUNT.clone(), HeaderValue::from(attempt));
                    }
                    Sent::Request(req)
                }
            }
            Source::Empty(parts) => Sent::Request(Request::from_parts(
                copy_head(parts, attempt),
                RequestBody::Empty,
            )),
            Source::Replay(parts, body) => {
                let body = RequestBody::Replay(body.next_try()?);
                Sent::Request(Request::from_parts(copy_head(parts, attempt), body))
            }
        };
        self.made = attempt;
        Some(sent)
    }
}

/// A copy of a request head for one try, numbered.
fn copy_head(parts: &Parts, attempt: u32) -> Parts {
    let mut req = Request::new(());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    let headers = req.headers_mut();
    *headers = parts.headers.clone();
    headers.insert(X_MESH_ATTEMPT_COUNT.clone(), HeaderValue::from(attempt));
    req.into_parts().0
}
