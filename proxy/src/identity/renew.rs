//! Keeping a certificate current: renew at half of its remaining life; on failure retry with
//! exponential backoff and jitter, serving with the old certificate meanwhile.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use super::{CaClient, IdentityStore};
use crate::{metrics::Metrics, xds::Backoff};

/// The first retry after a failed request.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// Retries slow down to one every this long.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Fetches a certificate now and renews it for as long as the task runs.
pub async fn run(mut client: CaClient, store: IdentityStore, metrics: Arc<Metrics>) {
    let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
    loop {
        let wait = match client.fetch().await {
            Ok(cert) => {
                backoff.reset();
                metrics.certificate_renewed(true, cert.not_after);
                let wait = cert
                    .renew_at()
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                tracing::info!(identity = %cert.identity, serial = %cert.serial,
                    renew_in = ?wait, "workload certificate in force");
                store.set(cert);
                wait
            }
            Err(error) => {
                metrics.certificate_renewed(false, SystemTime::UNIX_EPOCH);
                let delay = backoff.next_delay();
                match store.current() {
                    Some(old) => tracing::warn!(?delay, expires = ?old.not_after,
                        "cannot renew the workload certificate, keeping the current one: {error}"),
                    None => tracing::warn!(
                        ?delay,
                        "cannot get a workload certificate; not ready until one arrives: {error}"
                    ),
                }
                delay
            }
        };
        tokio::time::sleep(wait).await;
    }
}
