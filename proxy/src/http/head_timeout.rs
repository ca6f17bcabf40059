//! The slow-loris guard of HTTP/1 client connections: a connection that spends too long waiting
//! for a request head (a client trickling one in, or an idle keep-alive connection) is closed.
//!
//! hyper's own `header_read_timeout` arms a new timer for every request, and registering it
//! often wakes the event loop through a syscall. This guard keeps one timer per connection
//! instead: requests only bump two counters, and the timer looks at them every `limit / CHECKS`.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::{Body, BoxError};

/// How many times per `limit` a connection is looked at: it is closed after waiting between
/// `limit` and `limit + limit / CHECKS`.
const CHECKS: u32 = 3;

/// What one connection's requests have done so far.
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Request heads received.
    started: AtomicU64,
    /// Requests whose response has been sent (or abandoned).
    finished: AtomicU64,
}

/// A request being served: counts as finished when dropped.
pub(super) struct InProgress(Arc<Activity>);

/// A response body that keeps its request in progress until it has been sent.
pub(super) struct Tracked {
    body: Body,
    _request: InProgress,
}

// === impl Activity ===

impl Activity {
    /// Counts a request head received.
    pub(super) fn start(self: &Arc<Self>) -> InProgress {
        self.started.fetch_add(1, Ordering::Relaxed);
        InProgress(self.clone())
    }

    /// Resolves once the connection has waited `limit` for a request head, with no request
    /// in progress all that time.
    pub(super) async fn stalled(&self, limit: Duration) {
        let tick = limit / CHECKS;
        let mut seen = 0;
        let mut waited = Duration::ZERO;
        loop {
            tokio::time::sleep(tick).await;
            let started = self.started.load(Ordering::Relaxed);
            let idle = self.finished.load(Ordering::Relaxed) == started;
            if idle && started == seen {
                waited += tick;
                if waited >= limit {
                    return;
                }
            } else {
                // A request came or is in progress: the wait starts again from here.
                seen = if idle { started } else { u64::MAX };
                waited = Duration::ZERO;
            }
        }
    }
}

// === impl InProgress ===

impl InProgress {
    /// Keeps the request in progress until `response`'s body has been sent.
    pub(super) fn track(self, response: Response<Body>) -> Response<Tracked> {
        response.map(|body| Tracked {
            body,
            _request: self,
        })
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

// === impl Tracked ===

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_sends_a_head_is_stalled_after_the_limit() {
        let activity = Activity::default();
        let start = tokio::time::Instant::now();
        activity.stalled(LIMIT).await;
        assert_eq!(start.elapsed(), LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_progress_is_never_cut_and_the_wait_restarts_after_it() {
        let activity = Arc::new(Activity::default());
        let start = tokio::time::Instant::now();
        let request = activity.start();
        let stalled = tokio::spawn({
            let activity = activity.clone();
            async move { activity.stalled(LIMIT).await }
        });
        tokio::time::sleep(LIMIT * 3).await;
        assert!(
            !stalled.is_finished(),
            "cut while a request was in progress"
        );
        drop(request);
        stalled.await.expect("watcher");
        let waited = start.elapsed() - LIMIT * 3;
        assert!(
            waited >= LIMIT && waited <= LIMIT + LIMIT / CHECKS,
            "stalled {waited:?} after the request finished"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_keep_a_connection_open() {
        let activity = Arc::new(Activity::default());
        let stalled = tokio::spawn({
            let activity = activity.clone();
            async move { activity.stalled(LIMIT).await }
        });
        for _ in 0..10 {
            tokio::time::sleep(LIMIT / 2).await;
            drop(activity.start());
        }
        assert!(!stalled.is_finished(), "a busy connection was cut");
    }
}
