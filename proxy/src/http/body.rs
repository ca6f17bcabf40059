//! The bodies the proxy answers with: one it makes up itself (errors, redirects, direct answers,
//! admin pages) or one streamed from an endpoint. An enum rather than a boxed trait object: a
//! response costs no allocation and no virtual call per frame.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;

use super::{BoxError, pool::UpstreamBody};
use crate::{
    balance::Pick,
    istio_metrics::{Record, ResponseFlag},
    limits::Permit,
};

/// A response body.
// Boxing the upstream variant would cost an allocation per response; a body is moved only a
// few times on its way out.
#[allow(clippy::large_enum_variant)]
pub enum Body {
    /// The whole content at once.
    Full(Full<Bytes>),
    /// Streamed from an endpoint, which counts as in flight until the body is finished or
    /// dropped.
    Upstream {
        /// The endpoint's body.
        body: UpstreamBody,
        /// The endpoint, released with the body.
        pick: Pick,
        /// The request's place under the cluster's limit on requests, if it has one.
        permit: Option<Permit>,
        /// The request's standard metrics, recorded when the body ends.
        recording: Recording,
    },
}

/// A request's standard metrics, recorded when the response body is done with (finished, or
/// dropped when the client goes away, flagged DC): its bytes counted and its gRPC status read
/// on the way; an upstream that breaks off the body flags it UC.
#[derive(Default)]
pub struct Recording {
    record: Option<Record>,
    ended: bool,
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            if !self.ended && record.flag == ResponseFlag::None {
                record.flag = ResponseFlag::DownstreamConnectionTermination;
            }
            record.finish();
        }
    }
}

impl Recording {
    /// Records `record` when the body is done with; `ended` when it has nothing to send.
    pub fn start(&mut self, record: Record, ended: bool) {
        self.record = Some(record);
        self.ended = ended;
    }

    fn polled(&mut self, polled: &Poll<Option<Result<Frame<Bytes>, BoxError>>>, end: bool) {
        match polled {
            Poll::Ready(Some(Ok(frame))) => self.saw(frame),
            Poll::Ready(Some(Err(_))) => {
                if let Some(record) = &mut self.record {
                    record.flag = ResponseFlag::UpstreamConnectionTermination;
                }
                self.ended = true;
            }
            Poll::Ready(None) => self.ended = true,
            Poll::Pending => {}
        }
        self.ended |= end;
    }

    fn saw(&mut self, frame: &Frame<Bytes>) {
        let Some(record) = &mut self.record else {
            return;
        };
        if let Some(data) = frame.data_ref() {
            record.response_bytes += data.len() as u64;
        } else if let Some(trailers) = frame.trailers_ref() {
            record.grpc = record.grpc.or_else(|| grpc_status(trailers));
        }
    }
}

/// The `grpc-status` in headers or trailers.
pub fn grpc_status(headers: &http::HeaderMap) -> Option<u8> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    value.parse().ok()
}

/// A body with the whole content at once.
pub fn full(bytes: Bytes) -> Body {
    Body::Full(Full::new(bytes))
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Full(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|never: Infallible| match never {}),
            Body::Upstream {
                body, recording, ..
            } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                recording.polled(&polled, body.is_end_stream());
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(body) => body.is_end_stream(),
            Body::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(body) => body.size_hint(),
            Body::Upstream { body, .. } => body.size_hint(),
        }
    }
}
