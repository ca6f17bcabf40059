//! Circuit breaking: a cluster's limits on connections, waiting requests, requests in flight
//! and retries in flight. A limit refuses at once rather than queueing without bound; the
//! counters are shared by every generation of the cluster, so a config change neither resets
//! nor doubles them.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
};

use mesh_proto::config::v1 as pb;
use tokio::sync::Notify;

/// Which limit refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// `max_connections`.
    Connections,
    /// `max_pending_requests`.
    PendingRequests,
    /// `max_requests`.
    Requests,
    /// `max_retries`.
    Retries,
}

/// A cluster's limits and their counters.
#[derive(Clone, Default)]
pub struct Limits {
    max_connections: Option<u32>,
    max_pending: Option<u32>,
    max_requests: Option<u32>,
    max_retries: Option<u32>,
    counters: Arc<Counters>,
}

/// What is in use now, against each limit.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU32,
    pending: AtomicU32,
    requests: AtomicU32,
    retries: AtomicU32,
    /// Woken when a connection closes or goes idle: a waiting request may go on.
    freed: Notify,
}

/// One unit of a limit in use, given back when dropped.
pub struct Permit {
    counters: Arc<Counters>,
    kind: Overflow,
}

// === impl Limits ===

impl Limits {
    /// The limits a cluster's pool settings ask for; counters carried over from `previous`.
    pub fn new(pool: &pb::ConnectionPool, previous: Option<&Limits>) -> Self {
        let limit = |n: u32| (n > 0).then_some(n);
        Limits {
            max_connections: limit(pool.max_connections),
            max_pending: limit(pool.max_pending_requests),
            max_requests: limit(pool.max_requests),
            max_retries: limit(pool.max_retries),
            counters: previous.map(|p| p.counters.clone()).unwrap_or_default(),
        }
    }

    /// Whether connections are limited (HTTP/1.1 requests may then wait for one).
    pub fn limits_connections(&self) -> bool {
        self.max_connections.is_some()
    }

    /// A place among the requests in flight: `Ok(None)` when they are not limited, the
    /// overflow when none is free.
    pub fn request(&self) -> Result<Option<Permit>, Overflow> {
        self.acquire(Overflow::Requests, self.max_requests)
    }

    /// A retry in flight.
    pub fn retry(&self) -> Result<Option<Permit>, Overflow> {
        self.acquire(Overflow::Retries, self.max_retries)
    }

    /// A new connection.
    pub fn connection(&self) -> Result<Option<Permit>, Overflow> {
        self.acquire(Overflow::Connections, self.max_connections)
    }

    /// A place among the requests waiting for a connection.
    pub fn pending(&self) -> Result<Option<Permit>, Overflow> {
        self.acquire(Overflow::PendingRequests, self.max_pending)
    }

    /// Resolves when a connection of the cluster closes or goes idle (arm it with `enable`
    /// before looking, so a wake-up in between is not missed).
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.counters.freed.notified()
    }

    /// Whether a new connection would be allowed now.
    pub fn connection_available(&self) -> bool {
        self.max_connections
            .is_none_or(|max| self.counters.connections.load(Ordering::Acquire) < max)
    }

    /// Wakes the requests waiting for a connection.
    pub fn wake_waiting(&self) {
        self.counters.freed.notify_waiters();
    }

    fn acquire(&self, kind: Overflow, max: Option<u32>) -> Result<Option<Permit>, Overflow> {
        let Some(max) = max else {
            return Ok(None);
        };
        let counter = self.counters.counter(kind);
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| kind)?;
        Ok(Some(Permit {
            counters: self.counters.clone(),
            kind,
        }))
    }
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits")
            .field("max_connections", &self.max_connections)
            .field("max_pending", &self.max_pending)
            .field("max_requests", &self.max_requests)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

// === impl Counters ===

impl Counters {
    fn counter(&self, kind: Overflow) -> &AtomicU32 {
        match kind {
            Overflow::Connections => &self.connections,
            Overflow::PendingRequests => &self.pending,
            Overflow::Requests => &self.requests,
            Overflow::Retries => &self.retries,
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.counters
            .counter(self.kind)
            .fetch_sub(1, Ordering::AcqRel);
        if self.kind == Overflow::Connections {
            self.counters.freed.notify_waiters();
        }
    }
}

// === impl Overflow ===

impl Overflow {
    /// The metric label and `x-mesh-error` reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::Connections => "max_connections",
            Overflow::PendingRequests => "max_pending_requests",
            Overflow::Requests => "max_requests",
            Overflow::Retries => "max_retries",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_refuses_once_reached_and_a_dropped_permit_frees_its_place() {
        let pool = pb::ConnectionPool {
            max_requests: 2,
            ..Default::default()
        };
        let limits = Limits::new(&pool, None);
        let a = limits.request().unwrap();
        let _b = limits.request().unwrap();
        assert_eq!(limits.request().err(), Some(Overflow::Requests));
        drop(a);
        assert!(limits.request().unwrap().is_some());
        assert!(
            limits.retry().unwrap().is_none(),
            "no retry limit: no permit needed"
        );
    }

    #[test]
    fn counters_carry_over_to_the_next_generation() {
        let pool = pb::ConnectionPool {
            max_connections: 1,
            ..Default::default()
        };
        let first = Limits::new(&pool, None);
        let _open = first.connection().unwrap();
        let next = Limits::new(&pool, Some(&first));
        assert_eq!(next.connection().err(), Some(Overflow::Connections));
    }
}
