//! Authorization of inbound traffic (Istio's AuthorizationPolicy, as the control plane
//! translates it): from the verified peer identity, the connection's addresses and, for HTTP,
//! the request. Any matching DENY policy denies; else, when there are ALLOW policies, one must
//! match; else the request is allowed. AUDIT matches are logged.
//!
//! A plain-text peer has no identity, so rules on principals or namespaces never match it. On
//! plain TCP, HTTP-only fields make an ALLOW rule match nothing and are dropped from a DENY rule,
//! so a TCP port is never opened by a rule written for HTTP.

mod pattern;
mod rule;

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use mesh_proto::config::v1::{self as pb, authorization_policy::Action};

use self::rule::Rule;

/// The compiled policies of an inbound listener.
#[derive(Debug, Default)]
pub struct Authorizer {
    policies: Vec<Policy>,
    has_allow: bool,
}

#[derive(Debug)]
struct Policy {
    name: String,
    action: Action,
    rules: Vec<Rule>,
}

/// What authorization looks at.
pub struct Facts<'a> {
    /// The verified peer's SPIFFE identity (`spiffe://...`), `None` for plain text.
    pub peer: Option<&'a str>,
    /// The direct peer's address.
    pub source: IpAddr,
    /// The address the client meant.
    pub destination: SocketAddr,
    /// The request, for HTTP; `None` for a TCP connection.
    pub http: Option<HttpFacts<'a>>,
}

/// The parts of an HTTP request policies read.
pub struct HttpFacts<'a> {
    /// The method.
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The Host or :authority.
    pub host: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
}

/// The outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let it through.
    Allow,
    /// Refuse it: a DENY policy matched (named), or no ALLOW policy did (`None`).
    Deny(Option<String>),
}

// === impl Authorizer ===

impl Authorizer {
    /// Compiles policies; every problem is reported with the policy's name.
    pub fn compile(
        policies: &[pb::AuthorizationPolicy],
        at: &str,
        errors: &mut Vec<String>,
    ) -> Self {
        let compiled: Vec<Policy> = policies
            .iter()
            .map(|p| {
                let at = format!("{at}: authorization policy {:?}", p.name);
                Policy {
                    name: p.name.clone(),
                    action: p.action(),
                    rules: p
                        .rules
                        .iter()
                        .map(|r| Rule::compile(r, &at, errors))
                        .collect(),
                }
            })
            .collect();
        Authorizer {
            has_allow: compiled.iter().any(|p| p.action == Action::Allow),
            policies: compiled,
        }
    }

    /// Whether there is anything to check.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Decides on a request or connection.
    pub fn check(&self, facts: &Facts<'_>) -> Decision {
        let matches =
            |policy: &Policy| policy.rules.iter().any(|r| r.matches(facts, policy.action));
        for policy in self.policies.iter().filter(|p| p.action == Action::Audit) {
            if matches(policy) {
                tracing::info!(policy = %policy.name, peer = ?facts.peer, source = %facts.source,
                    destination = %facts.destination, "authorization audit: the policy matches");
            }
        }
        if let Some(deny) = self
            .policies
            .iter()
            .find(|p| p.action == Action::Deny && matches(p))
        {
            return Decision::Deny(Some(deny.name.clone()));
        }
        if !self.has_allow
            || self
                .policies
                .iter()
                .any(|p| p.action == Action::Allow && matches(p))
        {
            return Decision::Allow;
        }
        Decision::Deny(None)
    }
}

#[cfg(test)]
mod tests;
