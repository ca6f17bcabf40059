//! HTTPRoutes and GRPCRoutes in one shape: parents, hostnames and rules whose matches, filters
//! and backends are already checked and compiled to proxy terms. A rule the proxy cannot
//! honour answers 500, as the Gateway API asks.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use mesh_proto::config::v1::{DirectResponse, HeaderChanges, RouteMatch};

use super::super::rules::{Action, Dest};
use crate::store::ObjectRef;

/// A reference from a route to its parent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParentRef {
    /// API group; empty for the core group.
    pub group: String,
    /// Kind: `Service` (mesh) or `Gateway`.
    pub kind: String,
    /// Namespace (the route's when not written).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Port, when the route attaches to one port.
    pub port: Option<u32>,
    /// Section (listener or port name), when the route attaches to one.
    pub section_name: Option<String>,
}

impl ParentRef {
    /// Whether the parent is a Service (the mesh form, GAMMA).
    pub(crate) fn is_service(&self) -> bool {
        self.kind == "Service" && matches!(self.group.as_str(), "" | "core")
    }

    /// Whether the parent is a Gateway API Gateway.
    pub(crate) fn is_gateway(&self) -> bool {
        self.kind == "Gateway" && self.group == "gateway.networking.k8s.io"
    }
}

/// One rule of a route, compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleModel {
    /// Route name for the proxy config.
    pub name: String,
    /// Request matches, OR-ed (at least one).
    pub matches: Vec<RouteMatch>,
    /// What to do with a matching request.
    pub action: Action,
    /// Request header changes.
    pub request_headers: Option<HeaderChanges>,
    /// Response header changes.
    pub response_headers: Option<HeaderChanges>,
}

/// A route (HTTPRoute or GRPCRoute), compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RouteModel {
    /// The object.
    pub origin: ObjectRef,
    /// Creation time, for precedence.
    pub created: Option<Time>,
    /// Hostnames (gateway form).
    pub hostnames: Vec<String>,
    /// Parents it attaches to.
    pub parents: Vec<ParentRef>,
    /// Rules, in order (HTTPRoute, GRPCRoute).
    pub rules: Vec<RuleModel>,
    /// Where connections go (TLSRoute, TCPRoute): weighted destinations.
    pub l4: Vec<Dest>,
}

/// The Gateway API's answer for a rule that cannot be honoured.
pub(crate) fn internal_error() -> Action {
    Action::Direct(DirectResponse {
        status: 500,
        body: String::new(),
    })
}
