//! The cluster's DNS names: built once from Services and pods, then only read.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    time::{SystemTime, UNIX_EPOCH},
};

use hickory_proto::rr::{
    LowerName, Name, RData, Record,
    rdata::{SOA, SRV},
};

/// How long clients may cache an answer, in seconds: CoreDNS's default.
pub(crate) const TTL_SECS: u32 = 5;

/// The reverse zone that PTR names live in.
const REVERSE_ZONE: &str = "in-addr.arpa.";

/// The zone of names outside the cluster that lab pods may claim (the lab's "internet"), by the
/// pod annotation [`EXTERNAL_NAMES_ANNOTATION`].
pub const EXTERNAL_ZONE: &str = "example.test.";

/// The pod annotation listing (comma-separated) names under [`EXTERNAL_ZONE`] that resolve to
/// the pod: how a lab test stands up an "external" API with a DNS name of its own.
pub const EXTERNAL_NAMES_ANNOTATION: &str = "lab.mesh.dev/dns-names";

/// A Service's address as DNS serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAddress {
    /// A virtual IP: the Service's name resolves to it.
    ClusterIp(Ipv4Addr),
    /// No virtual IP: the Service's name resolves to every ready endpoint.
    Headless(Vec<HeadlessEndpoint>),
}

/// A ready endpoint of a headless Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadlessEndpoint {
    /// The pod's IP.
    pub ip: Ipv4Addr,
    /// The endpoint's hostname (`hostname.svc.ns.svc.<domain>`); when absent, the pod's own
    /// `hostname` if its `subdomain` is this Service, else the dashed IP (`10-244-1-7`).
    pub hostname: Option<String>,
}

/// The transport protocol of a Service port, as it appears in SRV names (`_tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortProtocol {
    /// TCP (`_tcp`).
    Tcp,
    /// UDP (`_udp`).
    Udp,
    /// SCTP (`_sctp`).
    Sctp,
}

impl PortProtocol {
    /// The SRV name label for this protocol.
    fn label(self) -> &'static str {
        match self {
            PortProtocol::Tcp => "_tcp",
            PortProtocol::Udp => "_udp",
            PortProtocol::Sctp => "_sctp",
        }
    }
}

/// A Service port as DNS serves it: an SRV record `_name._protocol.svc.ns.svc.<domain>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortName {
    /// The port's name; an unnamed port ("") has no SRV record.
    pub name: String,
    /// The port's transport protocol.
    pub protocol: PortProtocol,
    /// The Service port for a ClusterIP Service; the endpoints' (target) port for a headless
    /// one, as CoreDNS answers from the Endpoints.
    pub port: u16,
}

/// Why a cluster cannot be turned into DNS records; each names the object to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsRecordsError {
    /// The cluster domain is not a DNS name.
    #[error(
        "cluster domain {domain:?} is not a DNS name ({reason}); use one like \"cluster.local\""
    )]
    ClusterDomain {
        /// The domain as given.
        domain: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A part of a Service's or pod's name is not a DNS label.
    #[error(
        "{object}: {field} {value:?} is not a DNS label ({reason}); use 1 to 63 letters, digits \
         and '-', starting and ending with a letter or digit"
    )]
    Label {
        /// The Service or pod.
        object: String,
        /// Which of its fields.
        field: &'static str,
        /// The field's value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A full name built for a Service or pod is not a valid DNS name (usually too long).
    #[error("{object}: its DNS name {name:?} is not valid ({reason}); use shorter names")]
    Name {
        /// The Service or pod.
        object: String,
        /// The name that was built.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The records that exist at one name; all empty for a name that exists only because names
/// below it do (an "empty non-terminal", answered with NODATA).
#[derive(Debug, Default)]
pub(crate) struct NameRecords {
    /// A records.
    pub(crate) a: Vec<Ipv4Addr>,
    /// SRV records.
    pub(crate) srv: Vec<SRV>,
    /// PTR records.
    pub(crate) ptr: Vec<Name>,
}

/// A zone this server is authoritative for.
#[derive(Debug)]
pub(crate) struct Zone {
    /// The zone's apex.
    pub(crate) apex: LowerName,
    /// Its SOA record, sent in the authority section of negative answers.
    pub(crate) soa: Record,
}

/// An immutable table of the cluster's DNS records, as CoreDNS's `kubernetes` plugin would
/// answer them.
#[derive(Debug)]
pub struct DnsRecords {
    /// The cluster domain (`cluster.local`).
    cluster_zone: Zone,
    /// `in-addr.arpa`, for PTR records.
    reverse_zone: Zone,
    /// `example.test`, for names pods claim outside the cluster.
    external_zone: Zone,
    /// Every existing name, with its records.
    names: HashMap<LowerName, NameRecords>,
}

impl DnsRecords {
    /// Starts a table for the cluster domain (`cluster.local`).
    pub fn builder(cluster_domain: &str) -> DnsRecordsBuilder {
        DnsRecordsBuilder {
            cluster_domain: cluster_domain.to_owned(),
            services: Vec::new(),
            pods: Vec::new(),
            externals: Vec::new(),
        }
    }

    /// The zone `name` is in, if this server is authoritative for it.
    pub(crate) fn zone_of(&self, name: &LowerName) -> Option<&Zone> {
        [&self.cluster_zone, &self.reverse_zone, &self.external_zone]
            .into_iter()
            .find(|zone| zone.apex.zone_of(name))
    }

    /// The records at `name`, or `None` when the name does not exist.
    pub(crate) fn lookup(&self, name: &LowerName) -> Option<&NameRecords> {
        self.names.get(name)
    }
}

/// One Service as added to the builder.
#[derive(Debug, Clone)]
struct ServiceInput {
    namespace: String,
    name: String,
    address: ServiceAddress,
    ports: Vec<ServicePortName>,
}

/// One pod as added to the builder.
#[derive(Debug, Clone)]
struct PodInput {
    namespace: String,
    ip: Ipv4Addr,
    hostname: Option<String>,
    subdomain: Option<String>,
}

/// Collects Services and pods; [`DnsRecordsBuilder::build`] checks them and makes the table.
#[derive(Debug, Clone)]
pub struct DnsRecordsBuilder {
    cluster_domain: String,
    services: Vec<ServiceInput>,
    pods: Vec<PodInput>,
    /// Names under the external zone, with the pod IP they resolve to.
    externals: Vec<(String, Ipv4Addr)>,
}

impl DnsRecordsBuilder {
    /// Adds a Service with its address and ports.
    pub fn add_service(
        &mut self,
        namespace: &str,
        name: &str,
        address: ServiceAddress,
        ports: &[ServicePortName],
    ) -> &mut Self {
        self.services.push(ServiceInput {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            address,
            ports: ports.to_vec(),
        });
        self
    }

    /// Adds a pod with its IP and its `spec.hostname` and `spec.subdomain`.
    pub fn add_pod(
        &mut self,
        namespace: &str,
        ip: Ipv4Addr,
        hostname: Option<&str>,
        subdomain: Option<&str>,
    ) -> &mut Self {
        self.pods.push(PodInput {
            namespace: namespace.to_owned(),
            ip,
            hostname: hostname.map(str::to_owned),
            subdomain: subdomain.map(str::to_owned),
        });
        self
    }

    /// Adds a name under [`EXTERNAL_ZONE`] that resolves to `ip` (a pod's).
    pub fn add_external(&mut self, name: &str, ip: Ipv4Addr) -> &mut Self {
        self.externals.push((name.to_owned(), ip));
        self
    }

    /// Checks every name and builds the table; the error names the first object to fix.
    pub fn build(&self) -> Result<DnsRecords, DnsRecordsError> {
        let serial = zone_serial();
        let domain = cluster_domain(&self.cluster_domain)?;
        let cluster_zone =
            zone(&domain, serial).map_err(|reason| DnsRecordsError::ClusterDomain {
                domain: self.cluster_domain.clone(),
                reason,
            })?;
        let reverse_zone =
            zone(REVERSE_ZONE, serial).map_err(|reason| DnsRecordsError::ClusterDomain {
                domain: REVERSE_ZONE.to_owned(),
                reason,
            })?;

        let external_zone =
            zone(EXTERNAL_ZONE, serial).map_err(|reason| DnsRecordsError::ClusterDomain {
                domain: EXTERNAL_ZONE.to_owned(),
                reason,
            })?;

        let mut table = NameTable::default();
        table.entry(&Name::from(&cluster_zone.apex));
        table.entry(&Name::from(&reverse_zone.apex));
        table.entry(&Name::from(&external_zone.apex));
        let pods = self.add_pods(&mut table, &domain)?;
        let endpoint_names = self.add_services(&mut table, &domain, &pods)?;
        add_pod_pointers(&mut table, &pods, endpoint_names)?;
        for (text, ip) in &self.externals {
            let object = format!("pod {ip} (annotation {EXTERNAL_NAMES_ANNOTATION})");
            let name = dns_name(&object, &format!("{}.", text.trim_end_matches('.')))?;
            let lower = LowerName::new(&name);
            if !external_zone.apex.zone_of(&lower) || lower == external_zone.apex {
                return Err(DnsRecordsError::Name {
                    object,
                    name: text.clone(),
                    reason: format!("only names under {EXTERNAL_ZONE} may be claimed"),
                });
            }
            push_unique(&mut table.entry(&name).a, *ip);
        }

        Ok(DnsRecords {
            cluster_zone,
            reverse_zone,
            external_zone,
            names: table.names,
        })
    }

    /// Adds every pod's A record; returns the pods, checked and lowercased.
    fn add_pods(
        &self,
        table: &mut NameTable,
        domain: &str,
    ) -> Result<Vec<CheckedPod>, DnsRecordsError> {
        self.pods
            .iter()
            .map(|pod| {
                let object = format!("pod {} in namespace {:?}", pod.ip, pod.namespace);
                let namespace = label(&object, "namespace", &pod.namespace)?;
                let hostname = optional_label(&object, "hostname", pod.hostname.as_deref())?;
                let subdomain = optional_label(&object, "subdomain", pod.subdomain.as_deref())?;
                let name = dns_name(
                    &object,
                    &format!("{}.{namespace}.pod.{domain}", dashed(pod.ip)),
                )?;
                push_unique(&mut table.entry(&name).a, pod.ip);
                Ok(CheckedPod {
                    namespace,
                    ip: pod.ip,
                    hostname,
                    subdomain,
                    name,
                })
            })
            .collect()
    }

    /// Adds every Service's A, SRV and PTR records; returns the headless endpoints' names by IP.
    fn add_services(
        &self,
        table: &mut NameTable,
        domain: &str,
        pods: &[CheckedPod],
    ) -> Result<HashMap<Ipv4Addr, Vec<Name>>, DnsRecordsError> {
        let mut endpoint_names: HashMap<Ipv4Addr, Vec<Name>> = HashMap::new();
        for service in &self.services {
            let object = format!("service {}/{}", service.namespace, service.name);
            let namespace = label(&object, "namespace", &service.namespace)?;
            let service_name = label(&object, "name", &service.name)?;
            let base_text = format!("{service_name}.{namespace}.svc.{domain}");
            let base = dns_name(&object, &base_text)?;
            table.entry(&base);

            let targets = match &service.address {
                ServiceAddress::ClusterIp(ip) => {
                    push_unique(&mut table.entry(&base).a, *ip);
                    let reverse = dns_name(&object, &reverse_name(*ip))?;
                    push_unique(&mut table.entry(&reverse).ptr, base.clone());
                    vec![base.clone()]
                }
                ServiceAddress::Headless(endpoints) => {
                    let mut targets = Vec::with_capacity(endpoints.len());
                    for endpoint in endpoints {
                        let host = match &endpoint.hostname {
                            Some(hostname) => label(&object, "endpoint hostname", hostname)?,
                            None => pod_hostname(pods, &namespace, &service_name, endpoint.ip)
                                .unwrap_or_else(|| dashed(endpoint.ip)),
                        };
                        let name = dns_name(&object, &format!("{host}.{base_text}"))?;
                        push_unique(&mut table.entry(&base).a, endpoint.ip);
                        push_unique(&mut table.entry(&name).a, endpoint.ip);
                        push_unique(endpoint_names.entry(endpoint.ip).or_default(), name.clone());
                        push_unique(&mut targets, name);
                    }
                    targets
                }
            };

            let weight = srv_weight(targets.len());
            for port in service.ports.iter().filter(|port| !port.name.is_empty()) {
                let port_name = label(&object, "port name", &port.name)?;
                let name = dns_name(
                    &object,
                    &format!("_{port_name}.{}.{base_text}", port.protocol.label()),
                )?;
                let records = &mut table.entry(&name).srv;
                for target in &targets {
                    push_unique(records, SRV::new(0, weight, port.port, target.clone()));
                }
            }
        }
        Ok(endpoint_names)
    }
}

/// A pod whose names have been checked.
struct CheckedPod {
    namespace: String,
    ip: Ipv4Addr,
    hostname: Option<String>,
    subdomain: Option<String>,
    /// Its `10-244-1-7.ns.pod.<domain>` name.
    name: Name,
}

/// Every existing name with its records; adding a name makes all its ancestors exist too.
#[derive(Default)]
struct NameTable {
    names: HashMap<LowerName, NameRecords>,
}

impl NameTable {
    /// The records at `name`, creating it and its ancestors when new.
    fn entry(&mut self, name: &Name) -> &mut NameRecords {
        let mut ancestor = name.base_name();
        while !ancestor.is_root() {
            self.names.entry(LowerName::new(&ancestor)).or_default();
            ancestor = ancestor.base_name();
        }
        self.names.entry(LowerName::new(name)).or_default()
    }
}

/// PTR records for pod IPs: the headless endpoint names when the pod is one, else its pod name.
fn add_pod_pointers(
    table: &mut NameTable,
    pods: &[CheckedPod],
    mut endpoint_names: HashMap<Ipv4Addr, Vec<Name>>,
) -> Result<(), DnsRecordsError> {
    for pod in pods {
        endpoint_names
            .entry(pod.ip)
            .or_insert_with(|| vec![pod.name.clone()]);
    }
    for (ip, names) in endpoint_names {
        let object = format!("pod {ip}");
        let reverse = dns_name(&object, &reverse_name(ip))?;
        let records = &mut table.entry(&reverse).ptr;
        for name in names {
            push_unique(records, name);
        }
    }
    Ok(())
}

/// The hostname of the pod at `ip` in `namespace` whose `subdomain` is `service`, as the
/// Endpoints controller copies it into the endpoint.
fn pod_hostname(
    pods: &[CheckedPod],
    namespace: &str,
    service: &str,
    ip: Ipv4Addr,
) -> Option<String> {
    pods.iter()
        .find(|pod| {
            pod.ip == ip && pod.namespace == namespace && pod.subdomain.as_deref() == Some(service)
        })
        .and_then(|pod| pod.hostname.clone())
}

/// SRV weight for each of `targets` records of equal priority, as CoreDNS splits 100.
fn srv_weight(targets: usize) -> u16 {
    u16::try_from(100 / targets.max(1)).unwrap_or(100).max(1)
}

/// The cluster domain checked, lowercase and fully qualified (`cluster.local.`).
fn cluster_domain(domain: &str) -> Result<String, DnsRecordsError> {
    let invalid = |reason: String| DnsRecordsError::ClusterDomain {
        domain: domain.to_owned(),
        reason,
    };
    let trimmed = domain.trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    for part in trimmed.split('.') {
        check_label(part).map_err(|reason| invalid(format!("label {part:?}: {reason}")))?;
    }
    Ok(format!("{}.", trimmed.to_ascii_lowercase()))
}

/// A zone at `apex` with CoreDNS's SOA: `ns.dns.<apex> hostmaster.<apex> serial 7200 1800
/// 86400 <ttl>`.
fn zone(apex_text: &str, serial: u32) -> Result<Zone, String> {
    let parse = |text: &str| Name::from_ascii(text).map_err(|e| e.to_string());
    let apex = parse(apex_text)?;
    let mname = parse(&format!("ns.dns.{apex_text}"))?;
    let rname = parse(&format!("hostmaster.{apex_text}"))?;
    let soa = SOA::new(mname, rname, serial, 7200, 1800, 86400, TTL_SECS);
    Ok(Zone {
        apex: LowerName::new(&apex),
        soa: Record::from_rdata(apex, TTL_SECS, RData::SOA(soa)),
    })
}

/// The zone serial: the build time in seconds, as CoreDNS uses its last modification time.
fn zone_serial() -> u32 {
    // Wraps in 2106, which serial number arithmetic (RFC 1982) allows.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as u32)
}

/// `name` parsed as a fully qualified DNS name.
fn dns_name(object: &str, name: &str) -> Result<Name, DnsRecordsError> {
    Name::from_ascii(name).map_err(|e| DnsRecordsError::Name {
        object: object.to_owned(),
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

/// `value` checked as a DNS label, lowercased.
fn label(object: &str, field: &'static str, value: &str) -> Result<String, DnsRecordsError> {
    check_label(value).map_err(|reason| DnsRecordsError::Label {
        object: object.to_owned(),
        field,
        value: value.to_owned(),
        reason,
    })?;
    Ok(value.to_ascii_lowercase())
}

/// An optional field checked as a DNS label, lowercased.
fn optional_label(
    object: &str,
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<String>, DnsRecordsError> {
    value.map(|value| label(object, field, value)).transpose()
}

/// Whether `value` is an RFC 1123 label, as Kubernetes names are.
fn check_label(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("it is empty");
    }
    if value.len() > 63 {
        return Err("it is longer than 63 characters");
    }
    if !value
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
    {
        return Err("it has a character other than a letter, digit or '-'");
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err("it starts or ends with '-'");
    }
    Ok(())
}

/// `10.244.1.7` as `10-244-1-7`, the label of pod names and unnamed endpoints.
fn dashed(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{a}-{b}-{c}-{d}")
}

/// `10.96.0.7` as `7.0.96.10.in-addr.arpa.`.
fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.{REVERSE_ZONE}")
}

/// Appends `value` unless it is already there, keeping the order of first appearance.
fn push_unique<T: PartialEq>(values: &mut Vec<T>, value: T) {
    if !values.contains(&value) {
        values.push(value);
    }
}
