//! The threads that serve connections. Each worker runs a single-threaded runtime with its own
//! upstream connection pools, as nginx's worker processes do: an accepted connection is handed
//! to one worker, round robin, and everything it does from then on (its requests, their upstream
//! connections, the tasks those spawn) stays on that thread. A request never wakes another
//! thread, never waits for work stealing, and never shares a pool lock with another worker.

use std::{
    future::Future,
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::runtime::{Builder, Handle};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::http::Pools;

/// Every worker, and which one gets the next connection.
pub(super) struct Workers {
    workers: Box<[Worker]>,
    next: AtomicUsize,
    /// Ends the worker threads.
    stop: CancellationToken,
}

/// One worker: where its connections run, and its upstream pools.
#[derive(Clone)]
pub(super) struct Worker {
    runtime: Handle,
    pools: Arc<Pools>,
}

// === impl Workers ===

impl Workers {
    /// Starts `count` worker threads; with 0, connections are served on the runtime that calls
    /// this (in-process use and tests).
    pub(super) fn start(count: usize) -> io::Result<Self> {
        let stop = CancellationToken::new();
        let workers = if count == 0 {
            vec![Worker::new(Handle::current())]
        } else {
            (0..count)
                .map(|i| spawn_thread(i, stop.clone()).map(Worker::new))
                .collect::<io::Result<_>>()?
        };
        Ok(Workers {
            workers: workers.into_boxed_slice(),
            next: AtomicUsize::new(0),
            stop,
        })
    }

    /// The worker that serves the next connection.
    pub(super) fn next(&self) -> &Worker {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        &self.workers[i]
    }

    /// Every worker's upstream pools.
    pub(super) fn pools(&self) -> impl Iterator<Item = &Pools> {
        self.workers.iter().map(|w| &*w.pools)
    }

    /// Ends the worker threads (and drops what they still run) when the guard is dropped.
    pub(super) fn stop_on_drop(&self) -> DropGuard {
        self.stop.clone().drop_guard()
    }
}

/// A thread running a single-threaded runtime until `stop` fires.
fn spawn_thread(index: usize, stop: CancellationToken) -> io::Result<Handle> {
    let runtime = Builder::new_current_thread().enable_all().build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name(format!("mesh-worker-{index}"))
        .spawn(move || runtime.block_on(stop.cancelled_owned()))?;
    Ok(handle)
}

// === impl Worker ===

impl Worker {
    fn new(runtime: Handle) -> Self {
        Worker {
            runtime,
            pools: Arc::new(Pools::default()),
        }
    }

    /// This worker's upstream pools.
    pub(super) fn pools(&self) -> &Arc<Pools> {
        &self.pools
    }

    /// Runs `future` on this worker's thread.
    pub(super) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        drop(self.runtime.spawn(future));
    }
}
