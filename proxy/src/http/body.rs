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
use crate::{balance::Pick, limits::Permit};

/// A response body.
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
    },
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
            Body::Upstream { body, .. } => Pin::new(body).poll_frame(cx),
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
