//! The resource types the fake API server serves, and how a request path names one of them.

/// One served resource type: where it lives in the API and what its objects are called.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Plural name used in paths.
    pub plural: &'static str,
    /// Object kind.
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

impl ResourceType {
    /// `apiVersion` of this type's objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Built-in types are typed in the real API server: their list items carry no
    /// `apiVersion`/`kind`. Custom resources are unstructured and keep them.
    pub fn is_builtin(&self) -> bool {
        matches!(self.group, "" | "discovery.k8s.io")
    }
}

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

const fn resource(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> ResourceType {
    ResourceType {
        group,
        version,
        plural,
        kind,
        namespaced,
    }
}

/// Everything the fake serves.
pub static RESOURCES: &[ResourceType] = &[
    resource("", "v1", "services", "Service", true),
    resource("", "v1", "pods", "Pod", true),
    resource("", "v1", "namespaces", "Namespace", false),
    resource(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
    ),
    resource(
        "networking.istio.io",
        "v1",
        "virtualservices",
        "VirtualService",
        true,
    ),
    resource(
        "networking.istio.io",
        "v1",
        "destinationrules",
        "DestinationRule",
        true,
    ),
    resource("networking.istio.io", "v1", "gateways", "Gateway", true),
    resource(
        "networking.istio.io",
        "v1",
        "serviceentries",
        "ServiceEntry",
        true,
    ),
    resource(
        "security.istio.io",
        "v1",
        "peerauthentications",
        "PeerAuthentication",
        true,
    ),
    resource(
        "security.istio.io",
        "v1",
        "authorizationpolicies",
        "AuthorizationPolicy",
        true,
    ),
    resource(GATEWAY_GROUP, "v1", "gatewayclasses", "GatewayClass", false),
    resource(GATEWAY_GROUP, "v1", "gateways", "Gateway", true),
    resource(GATEWAY_GROUP, "v1", "httproutes", "HTTPRoute", true),
    resource(GATEWAY_GROUP, "v1", "grpcroutes", "GRPCRoute", true),
];

/// The type an object's `apiVersion` and `kind` name.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// A collection request: a type, in one namespace or across all of them.
#[derive(Debug, PartialEq, Eq)]
pub struct Collection {
    /// The type asked for.
    pub resource: &'static ResourceType,
    /// `Some` for `/namespaces/{ns}/{plural}` paths.
    pub namespace: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...` collection paths.
pub fn parse_collection(path: &str) -> Option<Collection> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, plural) = match rest {
        [plural] => (None, *plural),
        ["namespaces", namespace, plural] => (Some((*namespace).to_string()), *plural),
        _ => return None,
    };
    let resource = RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)?;
    if namespace.is_some() && !resource.namespaced {
        return None;
    }
    Some(Collection {
        resource,
        namespace,
    })
}

#[test]
fn paths_name_collections() {
    let all = parse_collection("/api/v1/namespaces").expect("namespaces");
    assert_eq!((all.resource.kind, all.namespace), ("Namespace", None));
    let scoped = parse_collection("/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes")
        .expect("namespaced httproutes");
    assert_eq!(
        (scoped.resource.kind, scoped.namespace.as_deref()),
        ("HTTPRoute", Some("shop"))
    );
    assert!(parse_collection("/api/v1/namespaces/shop/namespaces").is_none());
    assert!(parse_collection("/apis/networking.istio.io/v1alpha3/virtualservices").is_none());
    assert!(
        !by_kind("networking.istio.io/v1", "Gateway")
            .expect("istio gateway")
            .is_builtin()
    );
}
