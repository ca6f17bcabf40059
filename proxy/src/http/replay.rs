//! Request bodies sent upstream, and the replayable kind that lets a request be tried again.
//!
//! A replayable body streams the client's body to the first try as it arrives (nothing waits
//! for the whole body) and keeps a copy of what passed, up to a limit. A later try sends the
//! copy, then goes on reading the client where the earlier try stopped. Past the limit the copy
//! is dropped: the try in progress still streams everything, but no further try can be made.
//!
//! A mirror's copy follows: it sends what the tries have read, waiting for more, and never
//! reads the client itself, so the request never waits for its mirrors. A copy that falls
//! behind past the limit ends with an error.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use parking_lot::Mutex;

use super::BoxError;

/// The most of a request body kept for retries.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// A request body on its way upstream.
pub enum RequestBody {
    /// No body: every try sends the same nothing, at no cost.
    Empty,
    /// The client's body, sent once.
    Streamed(Incoming),
    /// One try's view of a body that can be sent again.
    Replay(ReplayBody),
}

/// One try's view of a replayable body.
pub struct ReplayBody<B = Incoming> {
    shared: Arc<Mutex<Shared<B>>>,
    /// Which try this view belongs to; only the newest may read the client's body.
    try_number: u32,
    /// How many recorded frames this try has sent.
    sent: usize,
    /// A mirror's copy: it follows the tries instead of reading the client.
    follower: bool,
}

/// What every try of one request shares.
struct Shared<B> {
    /// The client's body; `None` once it has ended or failed.
    source: Option<B>,
    /// The frames read from the client so far, while they fit the limit.
    recorded: Vec<Recorded>,
    recorded_len: usize,
    /// The body outgrew the limit (or failed): no further try can be made.
    unreplayable: bool,
    /// The newest try.
    current: u32,
    /// Mirror copies waiting for the tries to read more.
    followers: Vec<std::task::Waker>,
}

enum Recorded {
    Data(Bytes),
    Trailers(HeaderMap),
}

// === impl ReplayBody ===

impl<B: HttpBody> ReplayBody<B> {
    /// The first try's view of the client's body.
    pub fn new(source: B) -> Self {
        let ended = source.is_end_stream();
        ReplayBody {
            shared: Arc::new(Mutex::new(Shared {
                source: (!ended).then_some(source),
                recorded: Vec::new(),
                recorded_len: 0,
                unreplayable: false,
                current: 1,
                followers: Vec::new(),
            })),
            try_number: 1,
            sent: 0,
            follower: false,
        }
    }

    /// A copy for a mirror, which follows the tries.
    pub fn follower(&self) -> Self {
        ReplayBody {
            shared: self.shared.clone(),
            try_number: 0,
            sent: 0,
            follower: true,
        }
    }

    /// The next try's view, from the start of the body; `None` when the body can no longer be
    /// replayed (it outgrew the limit or the client's body failed). Earlier views stop working.
    pub fn next_try(&self) -> Option<Self> {
        let mut shared = self.shared.lock();
        if shared.unreplayable {
            return None;
        }
        shared.current += 1;
        Some(ReplayBody {
            shared: self.shared.clone(),
            try_number: shared.current,
            sent: 0,
            follower: false,
        })
    }
}

impl<B> HttpBody for ReplayBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut shared = this.shared.lock();
        if this.follower {
            return shared.follow(&mut this.sent, cx);
        }
        if shared.current != this.try_number {
            return Poll::Ready(Some(Err("the request is being retried".into())));
        }
        if let Some(frame) = shared.recorded.get(this.sent) {
            this.sent += 1;
            return Poll::Ready(Some(Ok(match frame {
                Recorded::Data(data) => Frame::data(data.clone()),
                Recorded::Trailers(trailers) => Frame::trailers(trailers.clone()),
            })));
        }
        let Some(source) = shared.source.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(source).poll_frame(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                shared.source = None;
                shared.wake_followers();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                shared.source = None;
                shared.unreplayable = true;
                shared.wake_followers();
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if shared.source.as_ref().is_some_and(|s| s.is_end_stream()) {
                    shared.source = None;
                }
                shared.record(&frame);
                this.sent = shared.recorded.len();
                shared.wake_followers();
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let shared = self.shared.lock();
        (self.follower || shared.current == self.try_number)
            && shared.source.is_none()
            && !(self.follower && shared.unreplayable)
            && self.sent >= shared.recorded.len()
    }

    fn size_hint(&self) -> SizeHint {
        let shared = self.shared.lock();
        let replayed: usize = (shared.recorded.get(self.sent..).into_iter().flatten())
            .map(|f| match f {
                Recorded::Data(data) => data.len(),
                Recorded::Trailers(_) => 0,
            })
            .sum();
        let mut hint = shared
            .source
            .as_ref()
            .map(HttpBody::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0));
        let replayed = replayed as u64;
        // The upper bound first: a lower bound above the old upper one would not be a hint.
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + replayed);
        }
        hint.set_lower(hint.lower() + replayed);
        hint
    }
}

// === impl Shared ===

impl<B> Shared<B> {
    /// A follower's next frame: a recorded one, the end once the client's body has ended, or
    /// a wait for the tries to read more.
    fn follow(
        &mut self,
        sent: &mut usize,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.unreplayable {
            return Poll::Ready(Some(Err(
                "the request body outgrew what a mirror keeps".into()
            )));
        }
        if let Some(frame) = self.recorded.get(*sent) {
            *sent += 1;
            return Poll::Ready(Some(Ok(match frame {
                Recorded::Data(data) => Frame::data(data.clone()),
                Recorded::Trailers(trailers) => Frame::trailers(trailers.clone()),
            })));
        }
        if self.source.is_none() {
            return Poll::Ready(None);
        }
        self.followers.push(cx.waker().clone());
        Poll::Pending
    }

    fn wake_followers(&mut self) {
        for waker in self.followers.drain(..) {
            waker.wake();
        }
    }

    /// Keeps a copy of a frame read from the client while the copy fits the limit.
    fn record(&mut self, frame: &Frame<Bytes>) {
        if self.unreplayable {
            return;
        }
        let recorded = if let Some(data) = frame.data_ref() {
            self.recorded_len += data.len();
            Recorded::Data(data.clone())
        } else if let Some(trailers) = frame.trailers_ref() {
            Recorded::Trailers(trailers.clone())
        } else {
            return;
        };
        if self.recorded_len > REPLAY_LIMIT {
            self.unreplayable = true;
            self.recorded = Vec::new();
            return;
        }
        self.recorded.push(recorded);
    }
}

// === impl RequestBody ===

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Streamed(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            RequestBody::Replay(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Streamed(body) => body.is_end_stream(),
            RequestBody::Replay(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Streamed(body) => body.size_hint(),
            RequestBody::Replay(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body_util::{BodyExt, StreamBody};

    type Chunks = StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>>>;

    fn body(chunks: &[&'static [u8]]) -> Chunks {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(stream::iter(frames))
    }

    async fn read<B>(body: B) -> Result<Vec<u8>, BoxError>
    where
        B: HttpBody<Data = Bytes, Error = BoxError>,
    {
        Ok(body.collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn a_retry_sends_the_same_bytes() {
        let first = ReplayBody::new(body(&[b"hello ", b"world"]));
        let second = first.next_try().expect("replayable");
        assert!(read(first).await.is_err(), "a superseded try stops");
        // The second try was made before anything was read: it must still get it all.
        let third = second.next_try().expect("replayable");
        assert!(read(second).await.is_err());
        let mut third = third;
        let mut seen = Vec::new();
        while let Some(frame) = third.frame().await {
            seen.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(seen, b"hello world");
        // A try made after the whole body was read replays it whole.
        let fourth = third.next_try().expect("replayable");
        assert_eq!(read(fourth).await.unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn a_retry_after_a_partial_read_replays_then_continues() {
        let mut first = ReplayBody::new(body(&[b"a", b"b", b"c"]));
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b"a"));
        let second = first.next_try().expect("replayable");
        assert_eq!(second.size_hint().lower(), 1, "the recorded byte is known");
        assert_eq!(read(second).await.unwrap(), b"abc");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_streams_once_and_cannot_be_replayed() {
        static BIG: [u8; 40 * 1024] = [7; 40 * 1024];
        let mut first = ReplayBody::new(body(&[&BIG, &BIG]));
        let mut seen = 0;
        while let Some(frame) = first.frame().await {
            seen += frame.unwrap().into_data().unwrap().len();
        }
        assert_eq!(seen, 80 * 1024, "the try in progress gets everything");
        assert!(first.next_try().is_none());
    }

    #[tokio::test]
    async fn an_empty_body_ends_at_once_on_every_try() {
        let first = ReplayBody::new(http_body_util::Empty::<Bytes>::new().map_err(BoxError::from));
        assert!(first.is_end_stream());
        let second = first.next_try().unwrap();
        assert!(second.is_end_stream());
        assert_eq!(second.size_hint().exact(), Some(0));
    }
}
