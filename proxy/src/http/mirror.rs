//! Mirroring: copies of a share of a route's requests go to other clusters, fire and forget.
//! A copy never holds its request up: it runs on a task of its own, its answer is read and
//! dropped, it ends at a deadline, and at most `MAX_IN_FLIGHT` copies are in flight in the
//! proxy (more are skipped and counted), so a slow or black-holed mirror costs the client
//! nothing and the proxy bounded memory.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{HeaderValue, Request};
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::{ConnectSettings, Pools, RequestBody, UpstreamVersion};
use crate::{config::Cluster, metrics::Direction, proxy::ProxyState, tls::Carried};

/// The most mirror copies in flight in the proxy at once.
const MAX_IN_FLIGHT: usize = 256;
/// How long a copy may take when its route sets no timeout.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Why a copy was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// `MAX_IN_FLIGHT` copies were in flight.
    Busy,
    /// The request body is not kept for copies (too large, or an upgrade).
    Body,
}

impl Skipped {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Skipped::Busy => "busy",
            Skipped::Body => "body",
        }
    }
}

/// The authority of a mirrored copy: the request's with `-shadow` after the host (as Envoy
/// marks shadow traffic), before any port.
pub fn shadow_authority(authority: &str) -> Option<HeaderValue> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            (host, port)
        }
        _ => (authority, ""),
    };
    let shadow = match port {
        "" => format!("{host}-shadow"),
        port => format!("{host}-shadow:{port}"),
    };
    HeaderValue::from_str(&shadow).ok()
}

/// Sends `copy` to an endpoint of `cluster` on a task of its own, within `deadline` (or the
/// default); the answer is counted in the cluster's metrics and dropped.
pub(super) fn send(
    state: &Arc<ProxyState>,
    pools: &Arc<Pools>,
    cluster: Arc<Cluster>,
    version: UpstreamVersion,
    copy: Request<RequestBody>,
    deadline: Option<Duration>,
) -> Result<(), Skipped> {
    if IN_FLIGHT.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        return Err(Skipped::Busy);
    }
    let (state, pools) = (state.clone(), pools.clone());
    let task = state.tasks.clone();
    task.spawn(async move {
        // Each worker runs its tasks in turn: going to the back of the line lets the primary's
        // connection write its request before the copy's work is done.
        tokio::task::yield_now().await;
        let start = Instant::now();
        let deadline = deadline.unwrap_or(DEFAULT_DEADLINE);
        let sent = tokio::time::timeout(deadline, deliver(&state, &pools, &cluster, version, copy));
        let metrics = cluster.metrics(&state.metrics, Direction::Outbound);
        match sent.await {
            Ok(Some(status)) => metrics.request(status, start.elapsed()),
            Ok(None) => {}
            Err(_) => tracing::debug!(cluster = %cluster.name, "mirror copy timed out"),
        }
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    });
    Ok(())
}

/// Sends the copy and reads its answer to the end; the status when one came.
async fn deliver(
    state: &ProxyState,
    pools: &Pools,
    cluster: &Cluster,
    version: UpstreamVersion,
    copy: Request<RequestBody>,
) -> Option<u16> {
    let pick = cluster.balancer.pick(None)?;
    let carried = match version {
        UpstreamVersion::Http1 => Carried::Http1,
        UpstreamVersion::Http2 => Carried::Http2,
    };
    let mesh = state.mesh_tls.as_deref();
    let tls = cluster.client_tls(pick.endpoint(), mesh, carried).ok()?;
    let settings = ConnectSettings {
        connect_timeout: cluster.connect_timeout,
        max_requests_per_connection: cluster.max_requests_per_connection,
        keepalive: cluster.keepalive,
        limits: &cluster.limits,
        max_idle: cluster.max_idle_per_endpoint,
        idle_timeout: cluster.idle_timeout,
        source: cluster.source,
    };
    let response = match pools.send(pick.addr(), version, settings, tls, copy).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(cluster = %cluster.name, %error, "mirror copy failed");
            return None;
        }
    };
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_mark_goes_after_the_host_and_before_the_port() {
        let shadow = |a| shadow_authority(a).unwrap();
        assert_eq!(shadow("web"), "web-shadow");
        assert_eq!(shadow("web.shop:8080"), "web.shop-shadow:8080");
        assert_eq!(shadow("[fd00::1]:80"), "[fd00::1]-shadow:80");
    }
}
