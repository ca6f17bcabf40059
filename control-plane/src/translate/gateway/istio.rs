//! Istio Gateways: the servers (ports, protocols, hosts) a set of gateway pods exposes; HTTPS
//! servers in SIMPLE mode terminate TLS with the certificate of their `credentialName`, a TLS
//! Secret in the Gateway's namespace.

use std::collections::BTreeMap;

use mesh_proto::config::v1::{Protocol, ServerCertificate};

use super::{
    super::{problem::Report, protocol::istio_protocol},
    certificates::from_secret,
};
use crate::{
    istio::{Gateway, gateway::ServerTlsMode},
    store::{Kind, ObjectRef, Store},
};

/// An Istio Gateway.
#[derive(Debug)]
pub(crate) struct IstioGateway {
    /// The object.
    pub origin: ObjectRef,
    /// `namespace/name`, as VirtualServices refer to it.
    pub key: String,
    /// Labels of the pods serving it.
    pub selector: BTreeMap<String, String>,
    /// Its servers.
    pub servers: Vec<IstioServer>,
}

/// One served port.
#[derive(Debug)]
pub(crate) struct IstioServer {
    /// Port.
    pub port: u32,
    /// HTTP (routed by VirtualService http rules), TLS (passed through by SNI) or TCP.
    pub protocol: Protocol,
    /// Hosts served: (namespace filter, host); the filter is `*` for any namespace.
    pub hosts: Vec<(String, String)>,
    /// SIMPLE TLS: the certificate it terminates with.
    pub tls: Option<Vec<ServerCertificate>>,
}

/// Every Istio Gateway with a selector; servers mesh cannot serve are reported and left out.
pub(crate) fn build(
    store: &Store,
    problems: &mut Vec<super::super::problem::Problem>,
) -> Vec<IstioGateway> {
    store
        .list::<Gateway>()
        .map(|gateway| {
            let namespace = gateway.metadata.namespace.clone().unwrap_or_default();
            let name = gateway.metadata.name.clone().unwrap_or_default();
            let origin = ObjectRef::new(Kind::IstioGateway, &namespace, &name);
            let mut report = Report::new(&origin);
            if gateway.spec.selector.is_empty() {
                report.warning(
                    "spec.selector",
                    "no selector is given, so no gateway pod serves this Gateway",
                    "select the gateway pods by their labels",
                );
            }
            let servers = gateway
                .spec
                .servers
                .iter()
                .enumerate()
                .filter_map(|(i, server)| {
                    let at = format!("spec.servers[{i}]");
                    let tls_mode = server.tls.as_ref().and_then(|t| t.mode.clone());
                    let passthrough = match tls_mode {
                        Some(ServerTlsMode::Passthrough) => true,
                        None => server.port.protocol.eq_ignore_ascii_case("TLS"),
                        Some(_) => false,
                    };
                    let simple = tls_mode == Some(ServerTlsMode::Simple);
                    let mut tls = None;
                    let protocol = match istio_protocol(&server.port.protocol) {
                        Protocol::Tls if passthrough => Protocol::Tls,
                        Protocol::Tls if simple => {
                            let names: Vec<String> = (server.hosts.iter())
                                .map(|h| h.rsplit('/').next().unwrap_or(h).to_owned())
                                .filter(|h| h != "*")
                                .collect();
                            let credential =
                                server.tls.as_ref().and_then(|t| t.credential_name.as_deref());
                            let Some(credential) = credential else {
                                report.warning(
                                    format!("{at}.tls.credentialName"),
                                    "a SIMPLE TLS server needs credentialName (mesh reads certificates from Secrets, not files); the server is not served",
                                    "name a Secret of type kubernetes.io/tls in the Gateway's namespace",
                                );
                                return None;
                            };
                            match from_secret(store, &namespace, credential, names) {
                                Ok(certificate) => tls = Some(vec![certificate]),
                                Err((message, hint)) => {
                                    let message = format!("{message}; the server is not served");
                                    report.warning(format!("{at}.tls.credentialName"), message, hint);
                                    return None;
                                }
                            }
                            Protocol::Http1
                        }
                        Protocol::Tls => {
                            report.warning(
                                format!("{at}.tls"),
                                "only PASSTHROUGH and SIMPLE TLS are supported at gateways by mesh; the server is not served",
                                "use tls.mode SIMPLE with a credentialName, or PASSTHROUGH",
                            );
                            return None;
                        }
                        Protocol::Detect => {
                            report.warning(
                                format!("{at}.port.protocol"),
                                format!("unknown protocol {:?}; the server is not served", server.port.protocol),
                                "use HTTP, HTTP2, GRPC, TCP, TLS or HTTPS",
                            );
                            return None;
                        }
                        Protocol::Http2 | Protocol::Grpc | Protocol::Http1 => Protocol::Http1,
                        Protocol::Tcp => Protocol::Tcp,
                    };
                    if server.tls.as_ref().is_some_and(|t| t.https_redirect == Some(true)) {
                        report.warning(
                            format!("{at}.tls.httpsRedirect"),
                            "httpsRedirect is not supported by mesh; requests are routed as they come",
                            "redirect in a VirtualService rule",
                        );
                    }
                    let hosts = server
                        .hosts
                        .iter()
                        .map(|h| match h.split_once('/') {
                            Some((".", host)) => (namespace.clone(), host.to_owned()),
                            Some((ns, host)) => (ns.to_owned(), host.to_owned()),
                            None => ("*".to_owned(), h.clone()),
                        })
                        .collect();
                    Some(IstioServer {
                        port: server.port.number,
                        protocol,
                        hosts,
                        tls,
                    })
                })
                .collect();
            problems.extend(report.into_problems());
            IstioGateway {
                key: format!("{namespace}/{name}"),
                origin,
                selector: gateway.spec.selector.clone(),
                servers,
            }
        })
        .collect()
}
