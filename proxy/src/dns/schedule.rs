//! When each DNS cluster name is asked for next, with its last answer: a name with addresses is
//! asked again when its TTL runs out (within 1 s to 5 min), a failed name after a backoff that
//! doubles from 1 s to 30 s. A failure keeps the last addresses (a server outage does not empty
//! the cluster); an answer with no address empties them.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc, time::Duration};

use tokio::time::Instant;

use super::{
    Resolved,
    resolver::{Answer, LookupError},
};

/// The shortest wait before asking for a name again, whatever its TTL.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// The longest wait before asking for a name again, whatever its TTL.
const MAX_REFRESH: Duration = Duration::from_secs(300);
/// The wait after a first failure; it doubles with each failure after.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait after failures.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Every name being resolved.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    names: BTreeMap<String, Entry>,
}

/// One name's last answer and when to ask again.
#[derive(Debug)]
struct Entry {
    addrs: Arc<[IpAddr]>,
    due: Instant,
    failures: u32,
}

impl Schedule {
    /// Keeps exactly the `wanted` names: new ones are due now, the others are forgotten.
    /// Returns whether a forgotten name had addresses (the resolved set changed).
    pub(super) fn track<'a>(
        &mut self,
        wanted: impl Iterator<Item = &'a str>,
        now: Instant,
    ) -> bool {
        let mut kept = BTreeMap::new();
        for name in wanted {
            let entry = self.names.remove(name).unwrap_or(Entry {
                addrs: Arc::from([]),
                due: now,
                failures: 0,
            });
            kept.insert(name.to_owned(), entry);
        }
        let dropped = self.names.values().any(|e| !e.addrs.is_empty());
        self.names = kept;
        dropped
    }

    /// The names due to be asked for at `now`.
    pub(super) fn due(&self, now: Instant) -> Vec<String> {
        (self.names.iter())
            .filter(|(_, e)| e.due <= now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// When the next name is due; `None` when there are none.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.names.values().map(|e| e.due).min()
    }

    /// Records the outcome of asking for `name` at `now`; returns whether its addresses changed.
    pub(super) fn record(
        &mut self,
        name: &str,
        outcome: &Result<Answer, LookupError>,
        now: Instant,
    ) -> bool {
        let Some(entry) = self.names.get_mut(name) else {
            return false;
        };
        let addrs = match outcome {
            Ok(answer) => {
                entry.failures = 0;
                entry.due = now + answer.ttl.clamp(MIN_REFRESH, MAX_REFRESH);
                let mut addrs = answer.addrs.clone();
                addrs.sort();
                addrs.dedup();
                Some(addrs)
            }
            Err(error) => {
                entry.failures += 1;
                let doublings = entry.failures.saturating_sub(1).min(16);
                entry.due = now + (FIRST_RETRY * 2u32.pow(doublings)).min(MAX_RETRY);
                matches!(error, LookupError::NoRecords(_)).then(Vec::new)
            }
        };
        match addrs {
            Some(addrs) if *entry.addrs != *addrs => {
                entry.addrs = addrs.into();
                true
            }
            _ => false,
        }
    }

    /// Every name's addresses now.
    pub(super) fn resolved(&self) -> Resolved {
        (self.names.iter())
            .map(|(name, e)| (name.clone(), e.addrs.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
