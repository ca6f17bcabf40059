//! Names of DNS clusters (ServiceEntries with `resolution: DNS`) turned into endpoint addresses:
//! `resolver` asks the pod's resolver (or the servers given on the command line), `schedule`
//! keeps each name's last answer and when to ask again (its TTL, or a backoff after a failure),
//! and `refresh` is the task that re-resolves due names and swaps in a snapshot built with the
//! new addresses whenever they change.

mod refresh;
mod resolver;
mod schedule;

use std::{collections::HashMap, net::IpAddr, sync::Arc};

pub(crate) use refresh::run;
pub use resolver::DnsSettings;

/// The addresses resolved for DNS clusters' names, as one snapshot uses them.
#[derive(Clone, Debug, Default)]
pub struct Resolved(Arc<HashMap<String, Arc<[IpAddr]>>>);

impl Resolved {
    /// The addresses of `name`; none before its first answer or when it has none.
    pub fn addrs(&self, name: &str) -> &[IpAddr] {
        self.0.get(name).map_or(&[], |addrs| addrs)
    }
}

impl FromIterator<(String, Arc<[IpAddr]>)> for Resolved {
    fn from_iter<T: IntoIterator<Item = (String, Arc<[IpAddr]>)>>(iter: T) -> Self {
        Resolved(Arc::new(iter.into_iter().collect()))
    }
}
