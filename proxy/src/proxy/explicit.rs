//! Listeners the proxy binds itself because config names them (gateways, tests), kept in step
//! with the config: new ones bound before a config is committed, removed ones stopped after.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    ProxyState,
    connection::{Kind, accept_loop},
};
use crate::config::Snapshot;

/// The explicit listeners running now, by configured address.
#[derive(Default)]
pub(super) struct ExplicitListeners {
    running: Mutex<HashMap<SocketAddr, Running>>,
}

struct Running {
    stop: CancellationToken,
    bound: SocketAddr,
}

/// Sockets bound for a config that is not committed yet.
pub(super) type Bound = Vec<(SocketAddr, TcpListener)>;

// === impl ExplicitListeners ===

impl ExplicitListeners {
    /// The configured addresses being served now.
    pub(super) fn running(&self) -> Vec<SocketAddr> {
        self.running.lock().keys().copied().collect()
    }

    /// Binds every explicit listener of `snapshot` not in `running`; fails with one message per
    /// listener that cannot be bound (nothing stays bound then).
    pub(super) async fn bind_new(
        snapshot: &Snapshot,
        running: &[SocketAddr],
    ) -> Result<Bound, Vec<String>> {
        let mut bound = Vec::new();
        let mut errors = Vec::new();
        for listener in snapshot
            .explicit_listeners()
            .iter()
            .filter(|l| !running.contains(&l.addr))
        {
            match TcpListener::bind(listener.addr).await {
                Ok(socket) => bound.push((listener.addr, socket)),
                Err(error) => errors.push(format!(
                    "listener {:?}: cannot bind {}: {error} (is another process using the port?)",
                    listener.name, listener.addr
                )),
            }
        }
        if errors.is_empty() {
            Ok(bound)
        } else {
            Err(errors)
        }
    }

    /// Starts accepting on freshly bound listeners.
    pub(super) fn start(&self, state: &Arc<ProxyState>, bound: Bound) {
        let mut running = self.running.lock();
        for (addr, socket) in bound {
            let stop = state.drain.child_token();
            let local = socket.local_addr().unwrap_or(addr);
            tracing::info!(%addr, bound = %local, "explicit listener accepting");
            running.insert(
                addr,
                Running {
                    stop: stop.clone(),
                    bound: local,
                },
            );
            tokio::spawn(accept_loop(
                state.clone(),
                socket,
                Kind::Explicit(addr),
                stop,
            ));
        }
    }

    /// Stops accepting on listeners `snapshot` no longer has; their connections finish.
    pub(super) fn stop_removed(&self, snapshot: &Snapshot) {
        self.running.lock().retain(|addr, running| {
            let keep = snapshot.explicit_listener(*addr).is_some();
            if !keep {
                tracing::info!(%addr, "explicit listener removed from config; no longer accepting");
                running.stop.cancel();
            }
            keep
        });
    }

    /// Where the listener configured at `addr` is bound.
    pub(super) fn bound_addr(&self, addr: SocketAddr) -> Option<SocketAddr> {
        self.running.lock().get(&addr).map(|r| r.bound)
    }
}
