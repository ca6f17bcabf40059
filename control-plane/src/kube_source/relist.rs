//! kube-rs's watcher re-lists after a 410 Gone that arrives as a watch `ERROR` event, but an
//! HTTP 410 answer to the watch request itself leaves it re-watching from the same expired
//! resourceVersion forever (kube-rs issue #1042; reachable through proxies and aggregated API
//! servers). This wrapper restarts the watcher from scratch, which re-lists, on any 410.

use futures_util::stream::{self, Stream, StreamExt};
use kube::Api;
use kube::Resource;
use kube::runtime::watcher::{self, Event, watcher};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// A watcher that starts over with a fresh list whenever the server says 410 Gone.
pub fn relisting_watcher<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let start = watcher(api.clone(), config.clone()).boxed();
    stream::unfold(
        (api, config, start),
        |(api, config, mut current)| async move {
            let item = current.next().await?;
            if let Err(error) = &item
                && is_gone(error)
            {
                current = watcher(api.clone(), config.clone()).boxed();
            }
            Some((item, (api, config, current)))
        },
    )
}

/// Whether the error is the server saying our resourceVersion is too old.
fn is_gone(error: &watcher::Error) -> bool {
    status_code(error) == Some(410)
}

/// The HTTP status the API server answered with, when the error carries one.
pub(super) fn status_code(error: &watcher::Error) -> Option<u16> {
    match error {
        watcher::Error::WatchError(status) => Some(status.code),
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn status(code: u16) -> Box<Status> {
        Box::new(Status {
            code,
            ..Status::default()
        })
    }

    #[test]
    fn every_form_of_410_counts_as_gone() {
        assert!(is_gone(&watcher::Error::WatchError(status(410))));
        assert!(is_gone(&watcher::Error::WatchFailed(kube::Error::Api(
            status(410)
        ))));
        assert!(is_gone(&watcher::Error::WatchStartFailed(
            kube::Error::Api(status(410))
        )));
        assert!(!is_gone(&watcher::Error::WatchFailed(kube::Error::Api(
            status(500)
        ))));
        assert!(!is_gone(&watcher::Error::NoResourceVersion));
    }
}
