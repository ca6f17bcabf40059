//! The application protocol of a port, as Istio decides it: `appProtocol`, else the port
//! name's prefix, else detected per connection.

use mesh_proto::config::v1::Protocol;

/// The protocol of a Service port from its `appProtocol` and name.
pub fn port_protocol(app_protocol: Option<&str>, name: &str) -> Protocol {
    app_protocol
        .and_then(|app| by_name(&app.to_ascii_lowercase()))
        .or_else(|| {
            let prefix = name.split('-').next().unwrap_or_default();
            by_name(&prefix.to_ascii_lowercase())
        })
        .unwrap_or(Protocol::Detect)
}

/// The protocol of an Istio port protocol (`HTTP`, `GRPC`, `TCP`, ...), as ServiceEntry and
/// Gateway servers name it.
pub fn istio_protocol(name: &str) -> Protocol {
    by_name(&name.to_ascii_lowercase()).unwrap_or(Protocol::Detect)
}

fn by_name(name: &str) -> Option<Protocol> {
    Some(match name {
        "http" => Protocol::Http1,
        "http2" | "h2c" | "kubernetes.io/h2c" => Protocol::Http2,
        "grpc" | "grpc-web" => Protocol::Grpc,
        "tcp" | "mongo" | "mysql" | "redis" => Protocol::Tcp,
        "tls" | "https" => Protocol::Tls,
        _ => return None,
    })
}

/// Whether a listener of this protocol routes HTTP (and so has a route config).
pub fn routes_http(protocol: Protocol) -> bool {
    !matches!(protocol, Protocol::Tcp | Protocol::Tls)
}

/// Whether a listener of this protocol carries opaque bytes (and so has TCP routing).
pub fn routes_tcp(protocol: Protocol) -> bool {
    matches!(protocol, Protocol::Tcp | Protocol::Tls | Protocol::Detect)
}

/// What the proxy speaks to endpoints: gRPC and h2c stay HTTP/2, TLS is passed through as
/// opaque bytes, the rest follows the client.
pub fn upstream_protocol(protocol: Protocol) -> Protocol {
    match protocol {
        Protocol::Grpc | Protocol::Http2 => Protocol::Http2,
        Protocol::Tls => Protocol::Tcp,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_protocol_then_port_name_prefix_then_detect() {
        assert_eq!(port_protocol(None, "http-web"), Protocol::Http1);
        assert_eq!(port_protocol(None, "grpc"), Protocol::Grpc);
        assert_eq!(
            port_protocol(Some("kubernetes.io/h2c"), "web"),
            Protocol::Http2
        );
        assert_eq!(port_protocol(Some("tcp"), "http"), Protocol::Tcp);
        assert_eq!(port_protocol(Some("unknown"), "https"), Protocol::Tls);
        assert_eq!(port_protocol(None, "web"), Protocol::Detect);
        assert_eq!(port_protocol(None, ""), Protocol::Detect);
        assert_eq!(istio_protocol("HTTP2"), Protocol::Http2);
    }

    #[test]
    fn listeners_route_http_tcp_or_both() {
        assert!(routes_http(Protocol::Detect) && routes_tcp(Protocol::Detect));
        assert!(routes_http(Protocol::Grpc) && !routes_tcp(Protocol::Grpc));
        assert!(!routes_http(Protocol::Tls) && routes_tcp(Protocol::Tls));
        assert_eq!(upstream_protocol(Protocol::Tls), Protocol::Tcp);
        assert_eq!(upstream_protocol(Protocol::Grpc), Protocol::Http2);
    }
}
