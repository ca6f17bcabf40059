//! `mesh-proxy --wait-ready=<DURATION>`: wait until the sidecar on the health port reports
//! ready, then exit. The injector runs it as the sidecar's `lifecycle.postStart` hook on clusters
//! without native sidecars: kubelet starts the next containers (the app) only once the hook
//! returns, so the app never starts before its sidecar can carry its traffic.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use http::StatusCode;
use tokio::time::Instant;

use crate::{app_probe::http_get, http::connect_tcp};

/// How often the health port is asked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The path that answers 200 once the proxy serves.
const READY_PATH: &str = "/healthz/ready";

/// The longest one attempt may take, so a hung connection cannot eat the whole wait.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// The shortest time one attempt gets, even the last one at the deadline.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);

/// The User-Agent of the readiness polls.
const USER_AGENT: &str = "mesh-proxy/wait-ready";

/// Why the wait ended without a ready proxy.
#[derive(Debug, thiserror::Error)]
pub enum WaitReadyError {
    /// The health port is switched off, so readiness cannot be asked.
    #[error("--wait-ready needs the health port, but --health-addr is \"off\"")]
    HealthOff,
    /// The health address does not parse.
    #[error("--health-addr {0:?} is not an ip:port address")]
    BadAddress(String),
    /// No 200 within the limit.
    #[error(
        "mesh-proxy was not ready within {limit:?}: http://{addr}{READY_PATH} last said: {last} \
         (see the mesh-proxy container's log: kubectl logs POD -c mesh-proxy)"
    )]
    TimedOut {
        /// Where readiness was asked.
        addr: SocketAddr,
        /// The limit given with --wait-ready.
        limit: Duration,
        /// The last answer, or why there was none.
        last: String,
    },
}

/// The address to dial for the health port bound at `health_addr`: a wildcard address is
/// reached on loopback.
pub fn dial_addr(health_addr: &str) -> Result<SocketAddr, WaitReadyError> {
    if health_addr == "off" {
        return Err(WaitReadyError::HealthOff);
    }
    let mut addr: SocketAddr = health_addr
        .parse()
        .map_err(|_| WaitReadyError::BadAddress(health_addr.to_owned()))?;
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    Ok(addr)
}

/// Asks `GET /healthz/ready` at `addr` every [`POLL_INTERVAL`] until it answers 200, for at
/// most `limit`.
pub async fn wait_ready(addr: SocketAddr, limit: Duration) -> Result<(), WaitReadyError> {
    let deadline = Instant::now() + limit;
    loop {
        let started = Instant::now();
        let attempt_timeout = ATTEMPT_TIMEOUT
            .min(deadline.saturating_duration_since(started))
            .max(MIN_ATTEMPT_TIMEOUT);
        let last = match tokio::time::timeout(attempt_timeout, ask(addr, attempt_timeout)).await {
            Ok(Ok(StatusCode::OK)) => return Ok(()),
            Ok(Ok(status)) => format!("answered {status}"),
            Ok(Err(why)) => why,
            Err(_) => format!("no answer within {attempt_timeout:?}"),
        };
        tracing::debug!(%addr, %last, "not ready yet");
        if Instant::now() >= deadline {
            return Err(WaitReadyError::TimedOut { addr, limit, last });
        }
        // The last question is asked at the deadline itself.
        tokio::time::sleep_until((started + POLL_INTERVAL).min(deadline)).await;
    }
}

/// One readiness question: the status, or why there was none.
async fn ask(addr: SocketAddr, timeout: Duration) -> Result<StatusCode, String> {
    let stream = connect_tcp(addr, timeout, None)
        .await
        .map_err(|e| e.to_string())?;
    let (status, _) = http_get(stream, addr, READY_PATH, None, &[], USER_AGENT).await?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_health_addresses_are_dialled_on_loopback() {
        let dial = |text| dial_addr(text).expect(text).to_string();
        assert_eq!(dial("0.0.0.0:15021"), "127.0.0.1:15021");
        assert_eq!(dial("[::]:15021"), "[::1]:15021");
        assert_eq!(dial("10.1.2.3:15021"), "10.1.2.3:15021");
        assert!(matches!(dial_addr("off"), Err(WaitReadyError::HealthOff)));
        assert!(matches!(
            dial_addr("localhost"),
            Err(WaitReadyError::BadAddress(_))
        ));
    }
}
