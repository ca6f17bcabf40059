//! The task that keeps DNS clusters' endpoints current: whenever a config arrives it tracks the
//! names its DNS clusters use, asks for each due name, and when any name's addresses change it
//! rebuilds the snapshot in force with them (the same config, so nothing else changes).

use std::sync::Arc;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::{
    resolver::{DnsResolver, LookupError},
    schedule::Schedule,
};
use crate::proxy::ProxyState;

/// Resolves the names of the config's DNS clusters until the proxy drains.
pub(crate) async fn run(state: Arc<ProxyState>) {
    let mut configs = state.config.watch();
    let mut schedule = Schedule::default();
    // Made when a config first has a DNS cluster: most sidecars never need one.
    let mut resolver: Option<DnsResolver> = None;
    loop {
        let snapshot = state.config.load();
        let now = Instant::now();
        let mut changed = schedule.track(snapshot.dns_names().iter().map(String::as_str), now);
        let due = schedule.due(now);
        if !due.is_empty() {
            let resolver = match &resolver {
                Some(resolver) => resolver,
                None => match DnsResolver::new(&state.settings.dns) {
                    Ok(made) => resolver.insert(made),
                    Err(error) => {
                        tracing::error!(%error, "cannot make the DNS resolver; DNS clusters have no endpoints");
                        return;
                    }
                },
            };
            let answers = join_all(due.iter().map(|name| resolver.lookup(name))).await;
            let now = Instant::now();
            for (name, outcome) in due.iter().zip(answers) {
                report(&state, name, &outcome);
                changed |= schedule.record(name, &outcome, now);
            }
        }
        if changed {
            state.apply_resolved(schedule.resolved()).await;
            continue;
        }
        let next = schedule.next_due();
        tokio::select! {
            _ = state.drain.cancelled() => return,
            _ = configs.changed() => {}
            () = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

/// Counts and logs one lookup's outcome.
fn report(state: &ProxyState, name: &str, outcome: &Result<super::resolver::Answer, LookupError>) {
    match outcome {
        Ok(answer) => {
            state.metrics.dns_lookup("found");
            tracing::debug!(name, addrs = ?answer.addrs, ttl = ?answer.ttl, "resolved");
        }
        Err(error @ LookupError::NoRecords(_)) => {
            state.metrics.dns_lookup("no_records");
            tracing::warn!(name, %error, "DNS name of a cluster does not resolve; asking again later");
        }
        Err(error @ LookupError::Failed(_)) => {
            state.metrics.dns_lookup("failed");
            tracing::warn!(name, %error, "DNS lookup failed; keeping the last addresses and asking again later");
        }
    }
}
