//! `mesh-workload call URL`: GET requests over HTTP/1.1 keep-alive or HTTP/2 (h2c), counted
//! by status and by the pod and version that answered.

use std::{io::ErrorKind, sync::Arc};

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode, header::CONNECTION};
use http_body_util::{BodyExt, Empty};
use hyper::{
    body::Incoming,
    client::conn::{http1, http2},
};

use super::{
    ClientError, connection, header_text,
    request::RequestHead,
    runner::{Caller, Load, run},
    summary::{Outcome, Summary},
    target::{HttpUrl, Target},
};
use crate::workload::{POD_HEADER, VERSION_HEADER};

/// One `mesh-workload call` run.
#[derive(Clone, Debug)]
pub struct HttpPlan {
    /// Where to send.
    pub url: HttpUrl,
    /// Extra request headers; a `host` header replaces the URL's authority.
    pub headers: Vec<(String, String)>,
    /// HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    pub http2: bool,
    /// A new connection for every request instead of keep-alive.
    pub new_connection_each: bool,
    /// How many requests and how.
    pub load: Load,
}

/// Sends the plan's requests and counts how they went; fails only when the plan's request
/// cannot be made at all.
pub async fn call_http(plan: HttpPlan) -> Result<Summary, ClientError> {
    let mut head = RequestHead::new(
        Method::GET,
        &plan.url.authority,
        &plan.url.path,
        &plan.headers,
        plan.http2,
    )?;
    if plan.new_connection_each && !plan.http2 {
        head.insert(CONNECTION, "close");
    }
    let head = Arc::new(head);
    let target = Arc::new(plan.url.target);
    let summary = run(plan.load, || HttpCaller {
        target: target.clone(),
        head: head.clone(),
        http2: plan.http2,
        new_connection_each: plan.new_connection_each,
        sender: None,
    })
    .await;
    Ok(summary)
}

/// How an HTTP answer counts: 2xx succeeds, any other status is the failure's reason.
fn judged(status: StatusCode, headers: &HeaderMap) -> Outcome {
    Outcome {
        pod: header_text(headers, POD_HEADER),
        version: header_text(headers, VERSION_HEADER),
        failure: (!status.is_success()).then(|| status.as_u16().to_string()),
    }
}

/// A worker on one connection, one request at a time.
struct HttpCaller {
    target: Arc<Target>,
    head: Arc<RequestHead>,
    http2: bool,
    new_connection_each: bool,
    /// The connection kept for the next request.
    sender: Option<Sender>,
}

impl Caller for HttpCaller {
    async fn call(&mut self, _is_last: bool) -> Outcome {
        match self.exchange().await {
            Ok(outcome) => outcome,
            Err(error) => Outcome::error(&error),
        }
    }

    fn reset(&mut self) {
        self.sender = None;
    }
}

impl HttpCaller {
    /// Sends the request on the kept connection, or on a new one when there is none or the
    /// server had closed it, and reads the answer to its end.
    async fn exchange(&mut self) -> Result<Outcome, ClientError> {
        let kept = self.sender.take().filter(|sender| !sender.is_closed());
        let (sender, response) = match kept {
            Some(mut kept) => match kept.send(&self.head).await {
                Ok(response) => (kept, response),
                Err(error) if closed_before_answering(&error) => self.send_on_new().await?,
                Err(error) => return Err(ClientError::Send(error)),
            },
            None => self.send_on_new().await?,
        };
        let (head, mut body) = response.into_parts();
        while let Some(frame) = body.frame().await {
            frame.map_err(ClientError::Body)?;
        }
        if !self.new_connection_each {
            self.sender = Some(sender);
        }
        Ok(judged(head.status, &head.headers))
    }

    /// Sends the request on a new connection.
    async fn send_on_new(&self) -> Result<(Sender, Response<Incoming>), ClientError> {
        let mut sender = if self.http2 {
            Sender::Http2(connection::http2(&self.target).await?)
        } else {
            Sender::Http1(connection::http1(&self.target).await?)
        };
        let response = sender.send(&self.head).await.map_err(ClientError::Send)?;
        Ok((sender, response))
    }
}

/// True when a request on a kept connection got no answer because the server had closed
/// the connection (as one may an idle keep-alive connection), so that a new connection may
/// carry the GET again.
fn closed_before_answering(error: &hyper::Error) -> bool {
    let reset = std::error::Error::source(error)
        .and_then(|cause| cause.downcast_ref::<std::io::Error>())
        .is_some_and(|io| {
            matches!(
                io.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            )
        });
    error.is_canceled() || error.is_closed() || error.is_incomplete_message() || reset
}

/// A connection's request sender, of either version.
enum Sender {
    /// HTTP/1.1.
    Http1(http1::SendRequest<Empty<Bytes>>),
    /// HTTP/2.
    Http2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    /// True once the connection can carry no more requests.
    fn is_closed(&self) -> bool {
        match self {
            Self::Http1(sender) => sender.is_closed(),
            Self::Http2(sender) => sender.is_closed(),
        }
    }

    /// Sends a request with `head` once the connection is ready; the answer's head.
    async fn send(&mut self, head: &RequestHead) -> Result<Response<Incoming>, hyper::Error> {
        let request = head.request(Empty::new());
        match self {
            Self::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
            Self::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }
}
