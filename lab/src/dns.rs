//! The lab's cluster DNS: what CoreDNS's `kubernetes` plugin answers for `cluster.local`.
//!
//! [`DnsRecords`] is an immutable table built from the cluster's Services and pods;
//! [`ClusterDns`] serves the current table over UDP and TCP on sockets handed in (the supervisor
//! binds them inside a pod network namespace) and swaps in a new table atomically whenever
//! Services or pods change. [`resolv_conf`] is the `/etc/resolv.conf` kubelet gives a pod.
//!
//! What it answers, as CoreDNS does:
//! - `svc.ns.svc.cluster.local` A: the ClusterIP, or every ready endpoint of a headless Service;
//! - `host.svc.ns.svc.cluster.local` A: one endpoint of a headless Service, named by its hostname
//!   (or its pod's `hostname` when the pod's `subdomain` is the Service) or else its dashed IP;
//! - `_port._proto.svc.ns.svc.cluster.local` SRV for every named port;
//! - `10-244-1-7.ns.pod.cluster.local` A for every pod (CoreDNS's `pods verified` mode);
//! - PTR for ClusterIPs and pod IPs;
//! - NODATA (NOERROR, no answer, SOA in authority) for a name that exists with another type, and
//!   NXDOMAIN with the SOA for an unknown name in the cluster domain; TTL 5 s; AA set.
//!
//! Names outside the cluster domain (and `in-addr.arpa`) get NXDOMAIN without AA: the lab has no
//! upstream resolver. NXDOMAIN rather than REFUSED, because glibc treats REFUSED as a failing
//! server: it sends every such query again (`attempts`, per nameserver) and reports a temporary
//! failure (`EAI_AGAIN`, "Temporary failure in name resolution") instead of "Name or service not
//! known" (`EAI_NONAME`), so programs take a missing name for an outage and retry. With NXDOMAIN
//! the search-list walk (`nosuch.ns.svc.cluster.local`, ..., `nosuch.`) is one quick round trip
//! per candidate and ends in `EAI_NONAME` (checked with glibc 2.36).

mod answer;
mod records;
mod resolv_conf;
mod server;
mod wire;

#[cfg(test)]
mod tests;

pub use records::{
    DnsRecords, DnsRecordsBuilder, DnsRecordsError, EXTERNAL_NAMES_ANNOTATION, EXTERNAL_ZONE,
    HeadlessEndpoint, PortProtocol, ServiceAddress, ServicePortName,
};
pub use resolv_conf::resolv_conf;
pub use server::ClusterDns;
