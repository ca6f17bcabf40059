//! A DestinationRule's traffic policy in proxy terms: load balancer (and the hash key routes
//! use with it), connection pool, outlier detection and upstream TLS, with Istio's override
//! order (subset over rule, port level over whole destination, field by field).

use mesh_proto::config::v1::{
    ConnectionPool, HashPolicy, OutlierDetection, TcpKeepalive, UpstreamTls, cluster::LbPolicy,
    hash_policy::Key, upstream_tls::Mode,
};

use super::{
    client_credential::client_credential,
    duration::{is_zero, parse_duration},
    problem::Report,
};
use crate::{
    istio::destination_rule::{
        ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb,
        LoadBalancerSettings, OutlierDetection as IstioOutlier, SimpleLb, TrafficPolicy,
    },
    store::Store,
};

/// How endpoints are picked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadBalancer {
    /// The algorithm.
    pub policy: LbPolicy,
    /// Ring size for RING_HASH; 0 for the default.
    pub ring_size: u32,
    /// What requests are hashed on, for consistent hashing.
    pub hash: Option<HashPolicy>,
}

/// The policy fields of one level, each unset when the level does not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PolicyParts {
    /// Load balancing.
    pub load_balancer: Option<LoadBalancer>,
    /// Connection limits.
    pub connection_pool: Option<ConnectionPool>,
    /// Outlier detection.
    pub outlier_detection: Option<OutlierDetection>,
    /// Upstream TLS.
    pub tls: Option<UpstreamTls>,
}

impl PolicyParts {
    /// These parts, with fields this level leaves unset taken from `lower`.
    pub(crate) fn over(self, lower: PolicyParts) -> PolicyParts {
        PolicyParts {
            load_balancer: self.load_balancer.or(lower.load_balancer),
            connection_pool: self.connection_pool.or(lower.connection_pool),
            outlier_detection: self.outlier_detection.or(lower.outlier_detection),
            tls: self.tls.or(lower.tls),
        }
    }
}

/// A traffic policy: its own fields and overrides per port.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PolicyLayer {
    base: PolicyParts,
    ports: Vec<(u32, PolicyParts)>,
}

impl PolicyLayer {
    /// The policy for one port: port-level fields over the layer's own.
    pub(crate) fn at(&self, port: u32) -> PolicyParts {
        let base = self.base.clone();
        match self.ports.iter().find(|(p, _)| *p == port) {
            Some((_, parts)) => parts.clone().over(base),
            None => base,
        }
    }
}

/// Compiles a traffic policy found at `at` (a field path), reporting what is wrong.
pub(crate) fn compile_policy(
    policy: Option<&TrafficPolicy>,
    at: &str,
    store: &Store,
    report: &mut Report<'_>,
) -> PolicyLayer {
    let Some(policy) = policy else {
        return PolicyLayer::default();
    };
    for (present, field) in [
        (policy.tunnel.is_some(), "tunnel"),
        (policy.proxy_protocol.is_some(), "proxyProtocol"),
    ] {
        if present {
            unsupported(report, &format!("{at}.{field}"));
        }
    }
    let base = compile_parts(
        policy.load_balancer.as_ref(),
        policy.connection_pool.as_ref(),
        policy.outlier_detection.as_ref(),
        policy.tls.as_ref(),
        at,
        store,
        report,
    );
    let mut ports = Vec::new();
    for (i, level) in policy.port_level_settings.iter().enumerate() {
        let at = format!("{at}.portLevelSettings[{i}]");
        let Some(port) = level.port.as_ref().and_then(|p| p.number) else {
            report.error(
                format!("{at}.port"),
                "port-level settings name no port number",
                "set port.number",
            );
            continue;
        };
        let parts = compile_parts(
            level.load_balancer.as_ref(),
            level.connection_pool.as_ref(),
            level.outlier_detection.as_ref(),
            level.tls.as_ref(),
            &at,
            store,
            report,
        );
        ports.push((port, parts));
    }
    PolicyLayer { base, ports }
}

fn compile_parts(
    load_balancer: Option<&LoadBalancerSettings>,
    pool: Option<&ConnectionPoolSettings>,
    outlier: Option<&IstioOutlier>,
    tls: Option<&ClientTlsSettings>,
    at: &str,
    store: &Store,
    report: &mut Report<'_>,
) -> PolicyParts {
    PolicyParts {
        load_balancer: load_balancer
            .and_then(|lb| compile_load_balancer(lb, &format!("{at}.loadBalancer"), report)),
        connection_pool: pool.map(|p| compile_pool(p, &format!("{at}.connectionPool"), report)),
        outlier_detection: outlier
            .map(|o| compile_outlier(o, &format!("{at}.outlierDetection"), report)),
        tls: tls.and_then(|t| compile_tls(t, &format!("{at}.tls"), store, report)),
    }
}

fn compile_load_balancer(
    lb: &LoadBalancerSettings,
    at: &str,
    report: &mut Report<'_>,
) -> Option<LoadBalancer> {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        report.error(
            at,
            "both simple and consistentHash are set",
            "choose one load balancer",
        );
        return None;
    }
    if let Some(hash) = &lb.consistent_hash {
        return compile_consistent_hash(hash, &format!("{at}.consistentHash"), report);
    }
    let policy = match lb.simple.as_ref()? {
        SimpleLb::Unspecified => LbPolicy::PeakEwma,
        SimpleLb::LeastConn | SimpleLb::LeastRequest => LbPolicy::LeastRequest,
        SimpleLb::Random => LbPolicy::Random,
        SimpleLb::RoundRobin => LbPolicy::RoundRobin,
        SimpleLb::Passthrough => {
            report.error(
                format!("{at}.simple"),
                "PASSTHROUGH is not supported by mesh",
                "use ROUND_ROBIN, LEAST_REQUEST or RANDOM",
            );
            return None;
        }
        SimpleLb::Unknown(other) => {
            report.error(
                format!("{at}.simple"),
                format!("unknown load balancer {other:?}"),
                "use ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, RANDOM or UNSPECIFIED",
            );
            return None;
        }
    };
    Some(LoadBalancer {
        policy,
        ring_size: 0,
        hash: None,
    })
}

fn compile_consistent_hash(
    hash: &ConsistentHashLb,
    at: &str,
    report: &mut Report<'_>,
) -> Option<LoadBalancer> {
    let mut keys = Vec::new();
    if let Some(header) = &hash.http_header_name {
        keys.push(Key::Header(header.to_ascii_lowercase()));
    }
    if let Some(cookie) = &hash.http_cookie {
        if cookie.ttl.is_some() {
            report.warning(
                format!("{at}.httpCookie.ttl"),
                "mesh does not generate hash cookies; requests without the cookie are spread",
                "have the application set the cookie, or remove ttl",
            );
        }
        keys.push(Key::Cookie(cookie.name.clone()));
    }
    if hash.use_source_ip == Some(true) {
        keys.push(Key::SourceIp(true));
    }
    if let Some(param) = &hash.http_query_parameter_name {
        keys.push(Key::QueryParam(param.clone()));
    }
    if keys.len() != 1 {
        report.error(
            at,
            format!(
                "consistentHash needs exactly one hash key, found {}",
                keys.len()
            ),
            "set one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName",
        );
        return None;
    }
    let ring = hash
        .ring_hash
        .as_ref()
        .and_then(|r| r.minimum_ring_size)
        .or(hash.minimum_ring_size)
        .unwrap_or(0);
    Some(LoadBalancer {
        policy: if hash.maglev.is_some() {
            LbPolicy::Maglev
        } else {
            LbPolicy::RingHash
        },
        ring_size: u32::try_from(ring).unwrap_or(u32::MAX),
        hash: Some(HashPolicy { key: keys.pop() }),
    })
}

fn compile_pool(
    pool: &ConnectionPoolSettings,
    at: &str,
    report: &mut Report<'_>,
) -> ConnectionPool {
    let mut out = ConnectionPool::default();
    let duration = |text: Option<&str>, field: &str, report: &mut Report<'_>| {
        parse_duration(text?)
            .map_err(|e| report.error(format!("{at}.{field}"), e, "write e.g. \"30ms\" or \"1s\""))
            .ok()
    };
    let limit = |value: Option<i32>, field: &str, report: &mut Report<'_>| match value {
        Some(n) if n < 0 => {
            report.error(
                format!("{at}.{field}"),
                format!("{n} is negative"),
                "use a positive limit, or leave the field out for none",
            );
            0
        }
        other => count(other),
    };
    if let Some(tcp) = &pool.tcp {
        out.max_connections = limit(tcp.max_connections, "tcp.maxConnections", report);
        out.connect_timeout =
            duration(tcp.connect_timeout.as_deref(), "tcp.connectTimeout", report);
        out.idle_timeout = duration(tcp.idle_timeout.as_deref(), "tcp.idleTimeout", report);
        out.tcp_keepalive = tcp
            .tcp_keepalive
            .as_ref()
            .map(|k| keepalive(k, &format!("{at}.tcp.tcpKeepalive"), report));
        if tcp.max_connection_duration.is_some() {
            unsupported(report, &format!("{at}.tcp.maxConnectionDuration"));
        }
    }
    if let Some(http) = &pool.http {
        out.max_pending_requests = limit(
            http.http1_max_pending_requests,
            "http.http1MaxPendingRequests",
            report,
        );
        out.max_requests = limit(http.http2_max_requests, "http.http2MaxRequests", report);
        out.max_requests_per_connection = limit(
            http.max_requests_per_connection,
            "http.maxRequestsPerConnection",
            report,
        );
        out.max_retries = limit(http.max_retries, "http.maxRetries", report);
        if let Some(idle) = duration(http.idle_timeout.as_deref(), "http.idleTimeout", report) {
            out.idle_timeout = Some(idle);
        }
        out.h2_upgrade = match http.h2_upgrade_policy.as_deref() {
            None | Some("DEFAULT" | "DO_NOT_UPGRADE") => false,
            Some("UPGRADE") => true,
            Some(other) => {
                report.error(
                    format!("{at}.http.h2UpgradePolicy"),
                    format!("{other:?} is not an upgrade policy"),
                    "use DEFAULT, DO_NOT_UPGRADE or UPGRADE",
                );
                false
            }
        };
        for (present, field) in [
            (http.use_client_protocol.is_some(), "http.useClientProtocol"),
            (
                http.max_concurrent_streams.is_some(),
                "http.maxConcurrentStreams",
            ),
        ] {
            if present {
                unsupported(report, &format!("{at}.{field}"));
            }
        }
    }
    out
}

/// `tcpKeepalive: { time, interval, probes }`.
fn keepalive(value: &serde_json::Value, at: &str, report: &mut Report<'_>) -> TcpKeepalive {
    let mut duration = |field: &str| {
        let text = value.get(field)?.as_str()?;
        parse_duration(text)
            .map_err(|e| report.error(format!("{at}.{field}"), e, "write e.g. \"7200s\""))
            .ok()
    };
    TcpKeepalive {
        time: duration("time"),
        interval: duration("interval"),
        probes: value
            .get("probes")
            .and_then(serde_json::Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0),
    }
}

/// Istio's `outlierDetection`: consecutive 5xx errors eject after 5 unless set (0 turns it
/// off); gateway errors and local-origin failures only when set; at most 10 % ejected unless set.
fn compile_outlier(outlier: &IstioOutlier, at: &str, report: &mut Report<'_>) -> OutlierDetection {
    let mut duration = |text: &Option<String>, field: &str| {
        let text = text.as_deref()?;
        match parse_duration(text) {
            Ok(d) if is_zero(&d) => {
                report.error(
                    format!("{at}.{field}"),
                    "0s is not a usable value",
                    "write a positive duration, e.g. \"10s\"",
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                report.error(format!("{at}.{field}"), e, "write e.g. \"10s\" or \"5m\"");
                None
            }
        }
    };
    let interval = duration(&outlier.interval, "interval");
    let base_ejection_time = duration(&outlier.base_ejection_time, "baseEjectionTime");
    let mut percent = |value: Option<i32>, field: &str| match value {
        Some(p @ 0..=100) => Some(p.unsigned_abs()),
        Some(p) => {
            report.error(
                format!("{at}.{field}"),
                format!("{p} is not a percentage"),
                "use 0 to 100",
            );
            None
        }
        None => None,
    };
    let max_ejection_percent = percent(outlier.max_ejection_percent, "maxEjectionPercent");
    let min_health_percent = percent(outlier.min_health_percent, "minHealthPercent");
    let split = outlier.split_external_local_origin_errors.unwrap_or(false);
    if outlier.consecutive_local_origin_failures.is_some() && !split {
        report.warning(
            format!("{at}.consecutiveLocalOriginFailures"),
            "counts only with splitExternalLocalOriginErrors: true; local failures count as 5xx errors now",
            "set splitExternalLocalOriginErrors: true, or remove the field",
        );
    }
    OutlierDetection {
        consecutive_5xx: outlier
            .consecutive_5xx_errors
            .or_else(|| {
                outlier
                    .consecutive_errors
                    .and_then(|v| u32::try_from(v).ok())
            })
            .unwrap_or(DEFAULT_CONSECUTIVE_ERRORS),
        consecutive_gateway_errors: outlier.consecutive_gateway_errors.unwrap_or(0),
        split_external_local_origin_errors: split,
        consecutive_local_origin_failures: match split {
            true => {
                (outlier.consecutive_local_origin_failures).unwrap_or(DEFAULT_CONSECUTIVE_ERRORS)
            }
            false => 0,
        },
        interval,
        base_ejection_time,
        max_ejection_percent,
        min_health_percent: min_health_percent.unwrap_or(0),
    }
}

/// Consecutive errors that eject an endpoint when a count is not set (Envoy's and Istio's).
const DEFAULT_CONSECUTIVE_ERRORS: u32 = 5;

fn compile_tls(
    tls: &ClientTlsSettings,
    at: &str,
    store: &Store,
    report: &mut Report<'_>,
) -> Option<UpstreamTls> {
    let mode = match tls.mode.as_ref()? {
        ClientTlsMode::Disable => Mode::Disable,
        ClientTlsMode::IstioMutual => Mode::MeshMutual,
        ClientTlsMode::Simple => Mode::Simple,
        ClientTlsMode::Mutual => Mode::Mutual,
        ClientTlsMode::Unknown(other) => {
            report.error(
                format!("{at}.mode"),
                format!("unknown TLS mode {other:?}"),
                "use DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL",
            );
            return None;
        }
    };
    let originates = matches!(mode, Mode::Simple | Mode::Mutual);
    let credential = match (&tls.credential_name, originates) {
        (Some(name), true) => {
            let namespace = report.object().namespace.clone();
            match client_credential(store, &namespace, name, mode == Mode::Mutual) {
                Ok(credential) => Some(credential),
                Err((message, hint)) => {
                    report.error(format!("{at}.credentialName"), message, hint);
                    return None;
                }
            }
        }
        _ => None,
    };
    let from_secret = credential.is_some();
    if mode == Mode::Mutual
        && !from_secret
        && (tls.client_certificate.is_none() || tls.private_key.is_none())
    {
        report.error(
            at,
            "MUTUAL needs the client's certificate and key",
            "set clientCertificate and privateKey (files in the sidecar), or use SIMPLE",
        );
        return None;
    }
    let unused: &[(bool, &str)] = &[
        (
            !originates && tls.credential_name.is_some(),
            "credentialName",
        ),
        (
            !originates && tls.ca_certificates.is_some(),
            "caCertificates",
        ),
        (!originates && tls.sni.is_some(), "sni"),
        (
            !originates && !tls.subject_alt_names.is_empty(),
            "subjectAltNames",
        ),
        (
            mode != Mode::Mutual && tls.client_certificate.is_some(),
            "clientCertificate",
        ),
        (
            mode != Mode::Mutual && tls.private_key.is_some(),
            "privateKey",
        ),
    ];
    let shadowed = [
        (tls.ca_certificates.is_some(), "caCertificates"),
        (tls.client_certificate.is_some(), "clientCertificate"),
        (tls.private_key.is_some(), "privateKey"),
    ];
    for (_, field) in shadowed
        .iter()
        .filter(|(present, _)| from_secret && *present)
    {
        report.warning(
            format!("{at}.{field}"),
            "ignored: credentialName is set, and its Secret gives the certificates",
            "remove the field, or credentialName",
        );
    }
    for (_, field) in unused.iter().filter(|(present, _)| *present) {
        report.warning(
            format!("{at}.{field}"),
            format!(
                "not used with mode {}",
                tls.mode.as_ref().map_or("", |m| m.as_str())
            ),
            "remove the field, or pick the mode that uses it",
        );
    }
    if !originates {
        return Some(UpstreamTls {
            mode: mode.into(),
            ..Default::default()
        });
    }
    let credential = credential.unwrap_or_default();
    let (chain, key) = credential.chain_and_key.unwrap_or_default();
    Some(UpstreamTls {
        ca_certificates_pem: credential.ca.unwrap_or_default(),
        client_certificate_pem: chain,
        private_key_pem: key,
        mode: mode.into(),
        sni: tls.sni.clone().unwrap_or_default(),
        subject_alt_names: tls.subject_alt_names.clone(),
        ca_certificates: tls.ca_certificates.clone().unwrap_or_default(),
        client_certificate: tls.client_certificate.clone().unwrap_or_default(),
        private_key: tls.private_key.clone().unwrap_or_default(),
        insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
    })
}

/// `tls` for a cluster of `host`: TLS origination without an `sni` sends the host's name (a
/// wildcard host leaves it to `subjectAltNames`).
pub(crate) fn tls_for_host(mut tls: UpstreamTls, host: &str) -> UpstreamTls {
    let originates = matches!(tls.mode(), Mode::Simple | Mode::Mutual);
    if originates && tls.sni.is_empty() && !host.contains('*') {
        tls.sni = host.to_owned();
    }
    tls
}

/// A limit as Istio writes it (a signed number; 0 or less means unset).
fn count(value: Option<i32>) -> u32 {
    value.and_then(|v| u32::try_from(v).ok()).unwrap_or(0)
}

fn unsupported(report: &mut Report<'_>, field: &str) {
    report.warning(
        field,
        "not supported by mesh; ignored",
        "remove the field, or expect default behaviour",
    );
}
