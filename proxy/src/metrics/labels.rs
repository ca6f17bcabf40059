//! The label values of the proxy's own series: the listener direction, who talked (peers), why
//! an upstream failed, and what became of a retry.

/// Which kind of listener accepted the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Captured outbound traffic (15001).
    Outbound,
    /// Captured inbound traffic (15006).
    Inbound,
    /// A listener the proxy bound itself (gateways, tests).
    Explicit,
}

impl Direction {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
            Direction::Explicit => "explicit",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// The labels that say who talked, and how securely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peers<'a> {
    /// The client's SPIFFE identity, or `unknown`.
    pub source_principal: &'a str,
    /// The server's SPIFFE identity, or `unknown`.
    pub destination_principal: &'a str,
    /// `mutual_tls`, `none`, or `unknown`.
    pub connection_security_policy: &'static str,
}

impl Peers<'static> {
    /// Nothing known: plain text outbound, or no endpoint reached.
    pub const UNKNOWN: Peers<'static> = Peers {
        source_principal: "unknown",
        destination_principal: "unknown",
        connection_security_policy: "unknown",
    };
}

impl<'a> Peers<'a> {
    /// Inbound traffic from `peer` (verified by mesh TLS, else plain text) to `own`.
    pub fn inbound(peer: Option<&'a str>, own: Option<&'a str>) -> Self {
        match peer {
            Some(peer) => Peers {
                source_principal: peer,
                destination_principal: own.unwrap_or("unknown"),
                connection_security_policy: "mutual_tls",
            },
            None => Peers {
                connection_security_policy: "none",
                ..Peers::UNKNOWN
            },
        }
    }

    /// Outbound traffic in mesh TLS from `own` to an endpoint proven to be `server`.
    pub fn outbound(own: &'a str, server: &'a str) -> Self {
        Peers {
            source_principal: own,
            destination_principal: server,
            ..Peers::UNKNOWN
        }
    }
}

/// The label names of request and TCP series after `direction` and `cluster`.
pub(super) const PEER_LABELS: [&str; 3] = [
    "source_principal",
    "destination_principal",
    "connection_security_policy",
];

/// Why a request or connection failed before an upstream answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// No healthy endpoint (or no endpoints at all) in the cluster.
    NoEndpoint,
    /// The endpoint refused or could not be reached.
    ConnectError,
    /// Connecting took longer than the cluster's connect timeout.
    ConnectTimeout,
    /// The connection broke while the request was in flight.
    Reset,
    /// The route's timeout passed before the response headers arrived.
    Timeout,
    /// A limit of the cluster's connection pool refused it (circuit breaking).
    Overflow,
}

impl UpstreamFailure {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::NoEndpoint => "no_endpoint",
            UpstreamFailure::ConnectError => "connect_error",
            UpstreamFailure::ConnectTimeout => "connect_timeout",
            UpstreamFailure::Reset => "reset",
            UpstreamFailure::Timeout => "timeout",
            UpstreamFailure::Overflow => "overflow",
        }
    }
}

/// What became of a retry a failed try asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The request was tried again.
    Sent,
    /// The cluster's retry budget was spent: the failure went back to the client.
    BudgetExhausted,
    /// The request body outgrew what is kept for replay: the failure went back.
    BodyTooLarge,
    /// The cluster's limit on retries in flight was reached: the failure went back.
    Overflow,
}

impl RetryOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryOutcome::Sent => "sent",
            RetryOutcome::BudgetExhausted => "budget_exhausted",
            RetryOutcome::BodyTooLarge => "body_too_large",
            RetryOutcome::Overflow => "overflow",
        }
    }
}
