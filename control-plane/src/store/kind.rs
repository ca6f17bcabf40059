//! The kinds of object the store holds, with their API groups as manifests spell them.

use std::fmt;

/// A kind of object the control plane knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Core `v1` Namespace.
    Namespace,
    /// Core `v1` Service.
    Service,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
    /// Core `v1` Pod.
    Pod,
    /// `networking.istio.io/v1` VirtualService.
    VirtualService,
    /// `networking.istio.io/v1` DestinationRule.
    DestinationRule,
    /// `networking.istio.io/v1` Gateway.
    IstioGateway,
    /// `networking.istio.io/v1` ServiceEntry.
    ServiceEntry,
    /// `security.istio.io/v1` PeerAuthentication.
    PeerAuthentication,
    /// `security.istio.io/v1` AuthorizationPolicy.
    AuthorizationPolicy,
    /// `telemetry.istio.io/v1` Telemetry.
    Telemetry,
    /// `networking.istio.io/v1` Sidecar.
    Sidecar,
    /// `networking.istio.io/v1` WorkloadEntry.
    WorkloadEntry,
    /// `gateway.networking.k8s.io/v1` GatewayClass.
    GatewayClass,
    /// `gateway.networking.k8s.io/v1` Gateway.
    Gateway,
    /// `gateway.networking.k8s.io/v1` HTTPRoute.
    HttpRoute,
    /// `gateway.networking.k8s.io/v1` GRPCRoute.
    GrpcRoute,
    /// `gateway.networking.k8s.io/v1` TLSRoute.
    TlsRoute,
    /// `gateway.networking.k8s.io/v1alpha2` TCPRoute.
    TcpRoute,
    /// `gateway.networking.k8s.io/v1` ReferenceGrant.
    ReferenceGrant,
    /// Core `v1` Secret (TLS Secrets only, for Gateway certificates).
    Secret,
}

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 21] = [
        Kind::Namespace,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Pod,
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::IstioGateway,
        Kind::ServiceEntry,
        Kind::PeerAuthentication,
        Kind::AuthorizationPolicy,
        Kind::Telemetry,
        Kind::Sidecar,
        Kind::WorkloadEntry,
        Kind::GatewayClass,
        Kind::Gateway,
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::TlsRoute,
        Kind::TcpRoute,
        Kind::ReferenceGrant,
        Kind::Secret,
    ];

    /// The API group (empty for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Namespace | Kind::Service | Kind::Pod | Kind::Secret => "",
            Kind::EndpointSlice => "discovery.k8s.io",
            Kind::VirtualService | Kind::DestinationRule | Kind::IstioGateway => {
                "networking.istio.io"
            }
            Kind::ServiceEntry | Kind::Sidecar | Kind::WorkloadEntry => "networking.istio.io",
            Kind::PeerAuthentication | Kind::AuthorizationPolicy => "security.istio.io",
            Kind::Telemetry => "telemetry.istio.io",
            Kind::GatewayClass
            | Kind::Gateway
            | Kind::HttpRoute
            | Kind::GrpcRoute
            | Kind::TlsRoute
            | Kind::TcpRoute
            | Kind::ReferenceGrant => "gateway.networking.k8s.io",
        }
    }

    /// The `kind` field as manifests spell it.
    pub fn kind_name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Pod => "Pod",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::IstioGateway | Kind::Gateway => "Gateway",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::Telemetry => "Telemetry",
            Kind::Sidecar => "Sidecar",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::GatewayClass => "GatewayClass",
            Kind::HttpRoute => "HTTPRoute",
            Kind::GrpcRoute => "GRPCRoute",
            Kind::TlsRoute => "TLSRoute",
            Kind::TcpRoute => "TCPRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::Secret => "Secret",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::GatewayClass)
    }

    /// The kind a manifest's `apiVersion` and `kind` name, accepting the older versions users
    /// still write (`networking.istio.io/v1beta1`, `gateway.networking.k8s.io/v1beta1`, ...).
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        Kind::ALL
            .into_iter()
            .find(|k| k.group() == group && k.kind_name() == kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Two kinds are called Gateway: say which.
            Kind::IstioGateway | Kind::Gateway => {
                write!(f, "{}.{}", self.kind_name(), self.group())
            }
            _ => f.write_str(self.kind_name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_old_and_new_name_the_same_kind() {
        for api in ["networking.istio.io/v1", "networking.istio.io/v1beta1"] {
            assert_eq!(
                Kind::from_type(api, "VirtualService"),
                Some(Kind::VirtualService)
            );
        }
        assert_eq!(
            Kind::from_type("networking.istio.io/v1alpha3", "Gateway"),
            Some(Kind::IstioGateway)
        );
        assert_eq!(
            Kind::from_type("gateway.networking.k8s.io/v1beta1", "Gateway"),
            Some(Kind::Gateway)
        );
        assert_eq!(Kind::from_type("v1", "Service"), Some(Kind::Service));
        assert_eq!(Kind::from_type("apps/v1", "Deployment"), None);
        assert_eq!(Kind::from_type("v1", "HTTPRoute"), None);
    }

    #[test]
    fn the_two_gateways_display_their_groups() {
        assert_eq!(
            Kind::IstioGateway.to_string(),
            "Gateway.networking.istio.io"
        );
        assert_eq!(
            Kind::Gateway.to_string(),
            "Gateway.gateway.networking.k8s.io"
        );
        assert_eq!(Kind::HttpRoute.to_string(), "HTTPRoute");
    }
}
