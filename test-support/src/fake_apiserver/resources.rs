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
        matches!(
            self.group,
            "" | "apps"
                | "apiextensions.k8s.io"
                | "discovery.k8s.io"
                | "events.k8s.io"
                | "admissionregistration.k8s.io"
        )
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
    resource("", "v1", "configmaps", "ConfigMap", true),
    resource("", "v1", "secrets", "Secret", true),
    resource("", "v1", "serviceaccounts", "ServiceAccount", true),
    resource("apps", "v1", "deployments", "Deployment", true),
    resource(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    ),
    resource(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
    ),
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
    resource("telemetry.istio.io", "v1", "telemetries", "Telemetry", true),
    resource("networking.istio.io", "v1", "sidecars", "Sidecar", true),
    resource(
        "networking.istio.io",
        "v1",
        "workloadentries",
        "WorkloadEntry",
        true,
    ),
    resource(GATEWAY_GROUP, "v1", "gatewayclasses", "GatewayClass", false),
    resource(GATEWAY_GROUP, "v1", "gateways", "Gateway", true),
    resource(GATEWAY_GROUP, "v1", "httproutes", "HTTPRoute", true),
    resource(GATEWAY_GROUP, "v1", "grpcroutes", "GRPCRoute", true),
    resource(GATEWAY_GROUP, "v1", "tlsroutes", "TLSRoute", true),
    resource(GATEWAY_GROUP, "v1alpha2", "tcproutes", "TCPRoute", true),
    resource(
        GATEWAY_GROUP,
        "v1",
        "referencegrants",
        "ReferenceGrant",
        true,
    ),
    resource("events.k8s.io", "v1", "events", "Event", true),
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

/// One object's path: its collection, its name, and a subresource such as `status`.
#[derive(Debug, PartialEq, Eq)]
pub struct ObjectPath {
    /// The collection the object is in.
    pub collection: Collection,
    /// The object's name.
    pub name: String,
    /// The subresource after the name, if any.
    pub subresource: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...` collection paths.
pub fn parse_collection(path: &str) -> Option<Collection> {
    let (group, version, rest) = split_path(path)?;
    let (namespace, plural) = match rest.as_slice() {
        [plural] => (None, *plural),
        ["namespaces", namespace, plural] => (Some((*namespace).to_string()), *plural),
        _ => return None,
    };
    collection(group, version, namespace, plural)
}

/// Parses a path naming one object, optionally with a subresource: `.../{plural}/{name}` and
/// `.../{plural}/{name}/{subresource}`.
pub fn parse_object(path: &str) -> Option<ObjectPath> {
    let (group, version, rest) = split_path(path)?;
    let (namespace, plural, name, subresource) = match rest.as_slice() {
        ["namespaces", namespace, plural, name, extra @ ..] => {
            (Some((*namespace).to_string()), *plural, *name, extra)
        }
        [plural, name, extra @ ..] => (None, *plural, *name, extra),
        _ => return None,
    };
    let subresource = match subresource {
        [] => None,
        [one] => Some((*one).to_string()),
        _ => return None,
    };
    Some(ObjectPath {
        collection: collection(group, version, namespace, plural)?,
        name: name.to_string(),
        subresource,
    })
}

fn split_path(path: &str) -> Option<(&str, &str, Vec<&str>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", version, rest @ ..] => Some(("", *version, rest.to_vec())),
        ["apis", group, version, rest @ ..] => Some((*group, *version, rest.to_vec())),
        _ => None,
    }
}

fn collection(
    group: &str,
    version: &str,
    namespace: Option<String>,
    plural: &str,
) -> Option<Collection> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_collections() {
        let all = parse_collection("/api/v1/namespaces").expect("namespaces");
        assert_eq!((all.resource.kind, all.namespace), ("Namespace", None));
        let scoped =
            parse_collection("/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes")
                .expect("namespaced httproutes");
        assert_eq!(
            (scoped.resource.kind, scoped.namespace.as_deref()),
            ("HTTPRoute", Some("shop"))
        );
        assert!(parse_collection("/api/v1/namespaces/shop/namespaces").is_none());
        assert!(parse_collection("/apis/networking.istio.io/v1alpha3/virtualservices").is_none());
        let status = parse_object(
            "/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/web/status",
        )
        .expect("a route's status");
        assert_eq!(
            (
                status.collection.resource.kind,
                status.name.as_str(),
                status.subresource.as_deref()
            ),
            ("HTTPRoute", "web", Some("status"))
        );
        let class = parse_object("/apis/gateway.networking.k8s.io/v1/gatewayclasses/mesh")
            .expect("a cluster-scoped object");
        assert_eq!(
            (class.collection.namespace, class.subresource),
            (None, None)
        );
        assert!(parse_object("/api/v1/namespaces/shop").is_some_and(|o| o.name == "shop"));
        assert!(
            !by_kind("networking.istio.io/v1", "Gateway")
                .expect("istio gateway")
                .is_builtin()
        );
    }
}
