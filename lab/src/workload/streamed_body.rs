//! A body fed frame by frame from another task: the echo's streamed gRPC replies and
//! trailers, and the client's messages on a streaming call.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// Frames a task has yet to hand to the connection; backpressure through a small buffer.
pub(crate) struct StreamedBody {
    frames: mpsc::Receiver<Frame<Bytes>>,
}

impl StreamedBody {
    /// A body and the sender that feeds it; the body ends when the sender is dropped.
    pub(crate) fn new() -> (mpsc::Sender<Frame<Bytes>>, Self) {
        let (sender, frames) = mpsc::channel(8);
        (sender, Self { frames })
    }
}

impl Body for StreamedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .frames
            .poll_recv(cx)
            .map(|frame| frame.map(Ok))
    }
}
