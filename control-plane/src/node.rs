//! A connected proxy, as its node metadata describes it: what translation needs to know to
//! compute that proxy's config (its namespace and labels select routes and policies).

use std::collections::BTreeMap;

/// The proxy's identity and workload metadata, sent on the first discovery request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyNode {
    /// Unique id of the proxy, `<pod>.<namespace>` for sidecars.
    pub id: String,
    /// Pod name.
    pub pod: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod labels (VirtualService `sourceLabels`, policies' selectors).
    pub labels: BTreeMap<String, String>,
    /// Service account: the workload identity.
    pub service_account: String,
    /// Pod IP.
    pub ip: String,
    /// The proxy's version string.
    pub proxy_version: String,
}
