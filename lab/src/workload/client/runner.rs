//! Drives a client run: splits the requests among concurrent workers, each making one
//! request at a time on its own connection, and merges what they counted.

use std::time::Duration;

use tokio::task::JoinSet;

use super::summary::{Outcome, Summary};

/// How many requests, how many at once, and how long each may take.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Requests in all.
    pub count: u64,
    /// Workers sending at the same time, each with its own connection.
    pub concurrency: usize,
    /// Longest wait for one request's answer.
    pub timeout: Duration,
}

/// One worker's way of making requests, one at a time.
pub(crate) trait Caller: Send + 'static {
    /// Makes one request; `is_last` says that no more follow on this worker.
    fn call(&mut self, is_last: bool) -> impl Future<Output = Outcome> + Send;

    /// Forgets the connection after a request that timed out half way.
    fn reset(&mut self);
}

/// Runs `load` with one caller per worker and sums up the outcomes.
pub(crate) async fn run<C: Caller>(load: Load, mut new_caller: impl FnMut() -> C) -> Summary {
    let workers = (load.concurrency.max(1) as u64).min(load.count);
    let mut running = JoinSet::new();
    for worker in 0..workers {
        let share = load.count / workers + u64::from(worker < load.count % workers);
        running.spawn(work(new_caller(), share, load.timeout));
    }
    let mut summary = Summary::default();
    while let Some(finished) = running.join_next().await {
        match finished {
            Ok(counted) => summary.merge(counted),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    summary
}

/// One worker: `share` requests in a row.
async fn work<C: Caller>(mut caller: C, share: u64, timeout: Duration) -> Summary {
    let mut summary = Summary::default();
    for sent in 1..=share {
        let outcome = match tokio::time::timeout(timeout, caller.call(sent == share)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                caller.reset();
                Outcome::failed(format!("no answer within {timeout:?}"))
            }
        };
        summary.record(outcome);
    }
    summary
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };

    use super::*;

    /// Answers as worker `id`; each call waits `delay` (paused time), the last says so.
    struct Counting {
        id: u64,
        delay: Duration,
        resets: Arc<AtomicU64>,
    }

    impl Caller for Counting {
        async fn call(&mut self, is_last: bool) -> Outcome {
            tokio::time::sleep(self.delay).await;
            Outcome {
                pod: Some(format!("worker-{}", self.id)),
                version: is_last.then(|| "last".to_owned()),
                failure: None,
            }
        }

        fn reset(&mut self) {
            self.resets.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn callers(delay: Duration) -> (impl FnMut() -> Counting, Arc<AtomicU64>) {
        let workers = Arc::new(AtomicU64::new(0));
        let resets = Arc::new(AtomicU64::new(0));
        let counted = resets.clone();
        let new_caller = move || Counting {
            id: workers.fetch_add(1, Ordering::Relaxed),
            delay,
            resets: resets.clone(),
        };
        (new_caller, counted)
    }

    #[tokio::test(start_paused = true)]
    async fn splits_the_count_over_concurrent_workers() {
        let (new_caller, _) = callers(Duration::from_secs(1));
        let start = tokio::time::Instant::now();
        let load = Load {
            count: 10,
            concurrency: 3,
            timeout: Duration::from_secs(5),
        };
        let summary = run(load, new_caller).await;
        assert_eq!((summary.total, summary.ok), (10, 10));
        let shares: Vec<u64> = summary.pods.values().copied().collect();
        assert_eq!(shares, vec![4, 3, 3]);
        assert_eq!(
            summary.versions["last"], 3,
            "each worker knows its last call"
        );
        // Three at a time: four rounds of one second, not ten.
        assert_eq!(start.elapsed(), Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn never_starts_more_workers_than_requests() {
        let (new_caller, _) = callers(Duration::ZERO);
        let load = Load {
            count: 2,
            concurrency: 8,
            timeout: Duration::from_secs(1),
        };
        let summary = run(load, new_caller).await;
        assert_eq!(summary.pods.len(), 2);
        assert_eq!(summary.total, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_over_the_timeout_fails_and_resets_its_caller() {
        let (new_caller, resets) = callers(Duration::from_secs(10));
        let load = Load {
            count: 2,
            concurrency: 1,
            timeout: Duration::from_secs(1),
        };
        let summary = run(load, new_caller).await;
        assert_eq!((summary.total, summary.failed), (2, 2));
        assert_eq!(summary.failures["no answer within 1s"], 2);
        assert_eq!(resets.load(Ordering::Relaxed), 2);
    }
}
