//! The DNS resolver of the proxy: the pod's `/etc/resolv.conf`, or servers given on the command
//! line. Names are asked for as absolute names (ServiceEntry hosts are fully qualified), so the
//! pod's search list costs no extra queries; answers are not cached here, the schedule keeps
//! them for their TTL.

use std::{net::SocketAddr, time::Duration};

use hickory_resolver::{
    Resolver,
    config::{NameServerConfig, ResolverConfig},
    net::{NetError, runtime::TokioRuntimeProvider},
};

/// Where the proxy's DNS questions go.
#[derive(Clone, Debug, Default)]
pub struct DnsSettings {
    /// The DNS servers to ask; empty means those of `/etc/resolv.conf`.
    pub servers: Vec<SocketAddr>,
}

/// A resolver for DNS clusters' names.
pub(super) struct DnsResolver(Resolver<TokioRuntimeProvider>);

/// One answer: the addresses and how long they may be used.
pub(super) struct Answer {
    pub addrs: Vec<std::net::IpAddr>,
    pub ttl: Duration,
}

/// Why a name has no answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum LookupError {
    /// The server says the name has no address (NXDOMAIN or no A/AAAA records).
    #[error("no address for this name: {0}")]
    NoRecords(NetError),
    /// No usable answer (timeout, refused, unreachable server).
    #[error("{0}")]
    Failed(NetError),
}

impl DnsResolver {
    /// A resolver asking `settings`' servers, else the system's.
    pub(super) fn new(settings: &DnsSettings) -> Result<Self, NetError> {
        let mut builder = if settings.servers.is_empty() {
            Resolver::builder_tokio()?
        } else {
            let servers = settings.servers.iter().map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            });
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers.collect()),
                TokioRuntimeProvider::default(),
            )
        };
        builder.options_mut().cache_size = 0;
        builder.build().map(DnsResolver)
    }

    /// The addresses of `name` (a host name, asked for as an absolute name).
    pub(super) async fn lookup(&self, name: &str) -> Result<Answer, LookupError> {
        let absolute = format!("{}.", name.trim_end_matches('.'));
        match self.0.lookup_ip(absolute).await {
            Ok(found) => Ok(Answer {
                addrs: found.iter().collect(),
                // The shortest TTL of the answer's records (CNAMEs included).
                ttl: (found.as_lookup().answers().iter())
                    .map(|record| Duration::from_secs(record.ttl.into()))
                    .min()
                    .unwrap_or_default(),
            }),
            Err(error) if error.is_no_records_found() => Err(LookupError::NoRecords(error)),
            Err(error) => Err(LookupError::Failed(error)),
        }
    }
}
