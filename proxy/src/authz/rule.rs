//! One rule of a policy: sources, operations and conditions, compiled from config.

use std::net::IpAddr;

use mesh_proto::config::v1::{self as pb, authorization_policy::Action};

use super::{
    Facts,
    pattern::{IpBlock, Pattern},
};

/// A compiled rule.
#[derive(Debug)]
pub(super) struct Rule {
    from: Vec<Source>,
    to: Vec<Operation>,
    when: Vec<Condition>,
}

#[derive(Debug, Default)]
struct Source {
    principals: Values,
    namespaces: Values,
    ip_blocks: Blocks,
    remote_ip_blocks: Blocks,
}

#[derive(Debug, Default)]
struct Operation {
    hosts: Values,
    ports: Values,
    methods: Values,
    paths: Values,
}

#[derive(Debug)]
struct Condition {
    key: Key,
    values: Vec<Pattern>,
    not_values: Vec<Pattern>,
}

/// An attribute a condition reads.
#[derive(Debug)]
enum Key {
    Header(http::HeaderName),
    SourceIp,
    RemoteIp,
    SourceNamespace,
    SourcePrincipal,
    DestinationIp,
    DestinationPort,
    Sni,
}

/// Patterns a value must match (when any) and must not match.
#[derive(Debug, Default)]
struct Values {
    any_of: Vec<Pattern>,
    none_of: Vec<Pattern>,
}

/// IP blocks an address must be in (when any) and must not be in.
#[derive(Debug, Default)]
struct Blocks {
    any_of: Vec<IpBlock>,
    none_of: Vec<IpBlock>,
}

// === impl Rule ===

impl Rule {
    pub(super) fn compile(
        rule: &pb::AuthorizationRule,
        at: &str,
        errors: &mut Vec<String>,
    ) -> Self {
        let mut blocks = |any: &[String], none: &[String]| Blocks {
            any_of: parse_blocks(any, at, errors),
            none_of: parse_blocks(none, at, errors),
        };
        let from = rule
            .from
            .iter()
            .map(|s| Source {
                principals: Values::new(&s.principals, &s.not_principals),
                namespaces: Values::new(&s.namespaces, &s.not_namespaces),
                ip_blocks: blocks(&s.ip_blocks, &s.not_ip_blocks),
                remote_ip_blocks: blocks(&s.remote_ip_blocks, &s.not_remote_ip_blocks),
            })
            .collect();
        let to = rule
            .to
            .iter()
            .map(|o| Operation {
                hosts: Values::new(&o.hosts, &o.not_hosts),
                ports: Values::new(&o.ports, &o.not_ports),
                methods: Values::new(&o.methods, &o.not_methods),
                paths: Values::new(&o.paths, &o.not_paths),
            })
            .collect();
        let when = rule
            .when
            .iter()
            .filter_map(|c| {
                let key = Key::parse(&c.key)
                    .map_err(|e| errors.push(format!("{at}: {e}")))
                    .ok()?;
                Some(Condition {
                    key,
                    values: c.values.iter().map(|v| Pattern::parse(v)).collect(),
                    not_values: c.not_values.iter().map(|v| Pattern::parse(v)).collect(),
                })
            })
            .collect();
        Rule { from, to, when }
    }

    /// Whether the rule matches, for a policy with `action` (which decides what HTTP-only
    /// fields mean on plain TCP).
    pub(super) fn matches(&self, facts: &Facts<'_>, action: Action) -> bool {
        let tcp = facts.http.is_none();
        if tcp && action != Action::Deny && self.reads_http() {
            // An ALLOW (or AUDIT) rule written for HTTP opens nothing on a TCP port.
            return false;
        }
        let peer = facts.peer.map(|p| p.strip_prefix("spiffe://").unwrap_or(p));
        let namespace = peer.and_then(namespace_of);
        (self.from.is_empty() || self.from.iter().any(|s| s.matches(facts, peer, namespace)))
            && (self.to.is_empty() || self.to.iter().any(|o| o.matches(facts)))
            && self.when.iter().all(|c| c.matches(facts, peer, namespace))
    }

    /// Whether any field needs an HTTP request.
    fn reads_http(&self) -> bool {
        self.to.iter().any(Operation::reads_http)
            || self.when.iter().any(|c| matches!(c.key, Key::Header(_)))
    }
}

// === impl Source ===

impl Source {
    fn matches(&self, facts: &Facts<'_>, peer: Option<&str>, namespace: Option<&str>) -> bool {
        self.principals.matches(peer)
            && self.namespaces.matches(namespace)
            && self.ip_blocks.matches(facts.source)
            && self.remote_ip_blocks.matches(facts.source)
    }
}

// === impl Operation ===

impl Operation {
    fn matches(&self, facts: &Facts<'_>) -> bool {
        let port = facts.destination.port().to_string();
        if !self.ports.matches(Some(&port)) {
            return false;
        }
        let Some(http) = &facts.http else {
            // Plain TCP: only DENY rules get here with HTTP fields, and those are dropped.
            return true;
        };
        let host = crate::route::matching::strip_port(http.host);
        (self.hosts.is_empty()
            || self.hosts.matches_host(host)
            || self.hosts.matches_host(http.host))
            && self.methods.matches(Some(http.method))
            && self.paths.matches(Some(http.path))
    }

    fn reads_http(&self) -> bool {
        !(self.hosts.is_empty() && self.methods.is_empty() && self.paths.is_empty())
    }
}

// === impl Condition ===

impl Condition {
    fn matches(&self, facts: &Facts<'_>, peer: Option<&str>, namespace: Option<&str>) -> bool {
        let owned;
        let value: Option<&str> = match &self.key {
            Key::Header(name) => match &facts.http {
                Some(http) => http.headers.get(name).and_then(|v| v.to_str().ok()),
                // A DENY rule on plain TCP: the header condition is dropped.
                None => return true,
            },
            Key::SourceIp | Key::RemoteIp => {
                return ip_condition(&self.values, &self.not_values, facts.source);
            }
            Key::DestinationIp => {
                return ip_condition(&self.values, &self.not_values, facts.destination.ip());
            }
            Key::SourceNamespace => namespace,
            Key::SourcePrincipal => peer,
            Key::DestinationPort => {
                owned = facts.destination.port().to_string();
                Some(owned.as_str())
            }
            Key::Sni => None,
        };
        (self.values.is_empty() || self.values.iter().any(|p| p.matches(value)))
            && !self.not_values.iter().any(|p| p.matches(value))
    }
}

// === impl Key ===

impl Key {
    fn parse(key: &str) -> Result<Key, String> {
        if let Some(name) = key
            .strip_prefix("request.headers[")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            return http::HeaderName::try_from(name.to_ascii_lowercase())
                .map(Key::Header)
                .map_err(|_| format!("condition key {key:?}: {name:?} is not a header name"));
        }
        Ok(match key {
            "source.ip" => Key::SourceIp,
            "remote.ip" => Key::RemoteIp,
            "source.namespace" => Key::SourceNamespace,
            "source.principal" => Key::SourcePrincipal,
            "destination.ip" => Key::DestinationIp,
            "destination.port" => Key::DestinationPort,
            "connection.sni" => Key::Sni,
            other => return Err(format!("condition key {other:?} is not supported")),
        })
    }
}

// === impl Values ===

impl Values {
    fn new(any_of: &[String], none_of: &[String]) -> Self {
        Values {
            any_of: any_of.iter().map(|v| Pattern::parse(v)).collect(),
            none_of: none_of.iter().map(|v| Pattern::parse(v)).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.any_of.is_empty() && self.none_of.is_empty()
    }

    fn matches(&self, value: Option<&str>) -> bool {
        (self.any_of.is_empty() || self.any_of.iter().any(|p| p.matches(value)))
            && !self.none_of.iter().any(|p| p.matches(value))
    }

    fn matches_host(&self, host: &str) -> bool {
        (self.any_of.is_empty()
            || self
                .any_of
                .iter()
                .any(|p| p.matches_ignore_case(Some(host))))
            && !self
                .none_of
                .iter()
                .any(|p| p.matches_ignore_case(Some(host)))
    }
}

// === impl Blocks ===

impl Blocks {
    fn matches(&self, ip: IpAddr) -> bool {
        (self.any_of.is_empty() || self.any_of.iter().any(|b| b.contains(ip)))
            && !self.none_of.iter().any(|b| b.contains(ip))
    }
}

fn parse_blocks(texts: &[String], at: &str, errors: &mut Vec<String>) -> Vec<IpBlock> {
    texts
        .iter()
        .filter_map(|t| {
            IpBlock::parse(t)
                .map_err(|e| errors.push(format!("{at}: {e}")))
                .ok()
        })
        .collect()
}

/// An IP condition: values are addresses or CIDR blocks.
fn ip_condition(values: &[Pattern], not_values: &[Pattern], ip: IpAddr) -> bool {
    let contains = |p: &Pattern| match p {
        Pattern::Exact(text) => IpBlock::parse(text).is_ok_and(|b| b.contains(ip)),
        Pattern::Any => true,
        _ => false,
    };
    (values.is_empty() || values.iter().any(contains)) && !not_values.iter().any(contains)
}

/// The namespace in a principal `<trust-domain>/ns/<namespace>/sa/<account>`.
fn namespace_of(principal: &str) -> Option<&str> {
    let (_, rest) = principal.split_once("/ns/")?;
    rest.split('/').next()
}
