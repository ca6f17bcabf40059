//! `mesh-log-filter`: the access-log filter expressions of Istio's `Telemetry` resource
//! (`accessLogging[].filter.expression`), a small subset of CEL over Envoy's attribute names.
//! The control plane parses them to validate a resource; the proxy parses each once and asks
//! [`Filter::matches`] for every finished request, which walks a type-checked tree without
//! allocating.
//!
//! The subset: `||`, `&&`, `!`, parentheses, `== != < <= > >=`, `x in [a, b]`, integer
//! (optionally `-` or `u`), string (`'…'` or `"…"`, escapes `\\ \' \"`) and bool literals,
//! `duration('1m30s')`, and the string methods `startsWith`, `endsWith` and `contains`.
//! `matches` is rejected: there are no regular expressions. Types are checked when parsing, so
//! `response.code == '200'` or `request.path` alone are errors, not filters that never match.
//!
//! Attributes and their types:
//! - string: `request.method`, `request.path` (with query), `request.url_path` (without),
//!   `request.host`, `request.scheme`, `request.protocol` (`HTTP/1.1`, `HTTP/2`),
//!   `request.headers['name']` (case-insensitive; a missing header is `''`),
//!   `response.flags`, `source.principal`, `destination.principal`;
//! - int: `request.size`, `response.code`, `response.grpc_status`, `response.size`;
//! - duration: `request.duration`; bool: `connection.mtls`.
//!
//! Deviations from Envoy: `response.flags` is the flags' short string (`"UH"`, `"-"` when none)
//! rather than Envoy's bitmask, and header names are matched case-insensitively. As in CEL, a
//! comparison that reads a missing `response.grpc_status` is undefined (neither true nor
//! false); `||` or `&&` may still decide around it, and a filter left undefined does not match.
//!
//! Parsing is bounded: at most 4 KiB of text and 32 levels of nesting, so hostile input can
//! neither overflow the stack nor take long.

mod ast;
mod duration;
mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

/// A parsed access-log filter expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: ast::Expr,
    headers: Vec<Box<str>>,
}

/// What is known of a finished request.
///
/// A plain struct of borrowed fields rather than a trait: the proxy fills it from what it
/// already holds, and only headers, which the expression names, are looked up on demand.
#[derive(Clone, Copy)]
pub struct Facts<'a> {
    /// The request method, e.g. `GET`.
    pub method: &'a str,
    /// The request path with its query.
    pub path: &'a str,
    /// The request's authority.
    pub host: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// `HTTP/1.1` or `HTTP/2`.
    pub protocol: &'a str,
    /// Request body bytes.
    pub request_size: u64,
    /// From the first request byte to the last response byte.
    pub duration: Duration,
    /// The HTTP status code sent downstream.
    pub response_code: u16,
    /// The gRPC status, when the response carried one.
    pub grpc_status: Option<u8>,
    /// Response body bytes.
    pub response_size: u64,
    /// The proxy's response flags, e.g. `UH`, or `-` when none.
    pub response_flags: &'a str,
    /// Whether the downstream connection was mutual TLS.
    pub mtls: bool,
    /// The client's identity (SPIFFE ID), or empty.
    pub source_principal: &'a str,
    /// Our own identity (SPIFFE ID), or empty.
    pub destination_principal: &'a str,
    /// A request header by lowercased name; called only for names in [`Filter::headers`].
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
}

/// Why an expression was rejected: `message` says what and where, `offset` is the byte
/// offset into the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong, at which offset, and what to do if there is a hint.
    pub message: String,
    /// Where in the expression, in bytes.
    pub offset: usize,
}

// === impl Filter ===

impl Filter {
    /// Parses an expression; the error says what is wrong and where (byte offset), e.g.
    /// "unknown attribute `request.foo` at 0; known: request.method, ...".
    pub fn parse(text: &str) -> Result<Filter, ParseError> {
        let (expr, headers) = parser::parse(text)?;
        Ok(Filter { expr, headers })
    }

    /// Whether the request described by `facts` passes the filter.
    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        eval::matches(&self.expr, facts)
    }

    /// Request header names the expression reads (lowercased), so the caller can keep only those.
    pub fn headers(&self) -> impl Iterator<Item = &str> {
        self.headers.iter().map(|name| &**name)
    }
}

// === impl ParseError ===

impl ParseError {
    /// "`what` at `offset`".
    fn new(offset: usize, what: impl fmt::Display) -> ParseError {
        ParseError {
            message: format!("{what} at {offset}"),
            offset,
        }
    }

    /// Appends "; `hint`" to the message.
    fn hint(mut self, hint: impl fmt::Display) -> ParseError {
        self.message = format!("{}; {hint}", self.message);
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}
