//! What can go wrong on the client side: a target or request that cannot be made, and a
//! request, call or TCP probe that fails. A failed request's error, causes included, is the
//! reason its summary counts it under.

use std::{net::SocketAddr, num::ParseIntError};

use crate::workload::grpc_wire::FrameError;

/// Why a client run could not start, or why one of its requests failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A target without `:PORT`.
    #[error("{0:?} is not HOST:PORT")]
    NotHostPort(String),
    /// A target or URL without a host.
    #[error("{0:?} has no host")]
    NoHost(String),
    /// A target whose port is not a number from 0 to 65535.
    #[error("{text:?} has no valid port")]
    BadPort {
        /// The target as given.
        text: String,
        /// Why the port does not parse.
        source: ParseIntError,
    },
    /// Text that does not parse as a URL.
    #[error("{text:?} is not a URL")]
    NotUrl {
        /// The URL as given.
        text: String,
        /// Why it does not parse.
        source: http::uri::InvalidUri,
    },
    /// A URL with a scheme other than `http`.
    #[error("{0:?}: only http:// URLs are supported")]
    NotHttp(String),
    /// A request header given as NAME:VALUE that HTTP cannot carry.
    #[error("cannot send the header {name:?}: check its name and value")]
    BadHeader {
        /// The header's name as given.
        name: String,
        /// What is wrong with it.
        source: http::Error,
    },
    /// A URL path, or an authority from the URL or a `host` header, that HTTP cannot carry.
    #[error("cannot send a request for {authority}{path}")]
    BadRequestTarget {
        /// The authority, from the URL or a `host` header.
        authority: String,
        /// The path and query.
        path: String,
        /// What is wrong with them.
        source: http::Error,
    },
    /// The system resolver (cluster DNS in a pod) failed for the host.
    #[error("resolving {host}")]
    Resolve {
        /// The name looked up.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The host resolved to no address at all.
    #[error("{0} resolves to no address")]
    NoAddress(String),
    /// No address of the host accepted a connection; the error is the last one tried.
    #[error("connecting to {address}")]
    Connect {
        /// The address tried last.
        address: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The HTTP/1.1 or HTTP/2 connection could not be set up.
    #[error("starting HTTP on the connection")]
    Handshake(#[source] hyper::Error),
    /// The request got no answer: refused, cut off or the connection failed.
    #[error("sending the request")]
    Send(#[source] hyper::Error),
    /// The answer's body or trailers could not be read.
    #[error("reading the answer")]
    Body(#[source] hyper::Error),
    /// The request body of a streaming call no longer goes anywhere.
    #[error("the server stopped taking messages on the call")]
    CallClosed,
    /// A unary call answered with more than one message.
    #[error("more than one reply to a unary call")]
    ExtraReply,
    /// A call's answer ended without a `grpc-status`.
    #[error("answer without grpc-status (HTTP status {0})")]
    NoGrpcStatus(http::StatusCode),
    /// A `grpc-status` that is not a number.
    #[error("malformed grpc-status {0:?}")]
    BadGrpcStatus(String),
    /// The call's replies are not well-framed `EchoReply` messages.
    #[error("unreadable replies")]
    Replies(#[from] FrameError),
    /// The probe could not be sent to the TCP echo.
    #[error("sending the probe")]
    Probe(#[source] std::io::Error),
    /// The TCP echo's answer could not be read.
    #[error("reading the echo")]
    Echo(#[source] std::io::Error),
    /// The TCP server closed without a whole greeting line.
    #[error("no greeting line from the server")]
    NoGreeting,
    /// The TCP server's first line is not the echo's greeting.
    #[error("greeting {0:?} does not name a pod and version")]
    BadGreeting(String),
}

impl ClientError {
    /// The error and its causes in one line, outermost first, separated by `: `.
    pub(crate) fn with_causes(&self) -> String {
        let mut line = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            line.push_str(": ");
            line.push_str(&error.to_string());
            cause = error.source();
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_follow_the_error_in_one_line() {
        let error = ClientError::Connect {
            address: "127.0.0.1:9".parse().expect("address"),
            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
        };
        assert_eq!(error.with_causes(), "connecting to 127.0.0.1:9: refused");
        assert_eq!(
            ClientError::NoGreeting.with_causes(),
            "no greeting line from the server"
        );
    }
}
