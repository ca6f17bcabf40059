//! Objects of every stored kind: the `Object` enum for kind-agnostic code (sources, the folder
//! reader) and the `Stored` trait for typed access, both generated from one list of kinds.

use std::{collections::BTreeMap, fmt, sync::Arc};

use gateway_api::{
    experimental::httproutes::HttpRoute, experimental::tcproutes::TcpRoute,
    gatewayclasses::GatewayClass, gateways::Gateway, grpcroutes::GrpcRoute,
    referencegrants::ReferenceGrant, tlsroutes::TlsRoute,
};
use k8s_openapi::{
    api::{
        core::v1::{Namespace, Pod, Secret, Service},
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::Resource;

use super::Kind;
use crate::istio::{
    AuthorizationPolicy, DestinationRule, Gateway as IstioGateway, PeerAuthentication,
    ServiceEntry, Sidecar, Telemetry, VirtualService, WorkloadEntry,
};

/// Objects of one kind by (namespace, name); cluster-scoped kinds use an empty namespace.
pub type Objects<T> = BTreeMap<(String, String), Arc<T>>;

/// Which object: kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The kind.
    pub kind: Kind,
    /// The namespace; empty for cluster-scoped kinds.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectRef {
    /// A reference to `kind` `namespace`/`name`.
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectRef {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// A kind the store holds, with typed access to its table.
pub trait Stored: Resource + Clone + PartialEq + Send + Sync + 'static {
    /// The kind of this type.
    const KIND: Kind;

    /// This kind's table.
    #[doc(hidden)]
    fn table(tables: &Tables) -> &Arc<Objects<Self>>;

    /// This kind's table, for changes.
    #[doc(hidden)]
    fn table_mut(tables: &mut Tables) -> &mut Arc<Objects<Self>>;

    /// The object, if it is of this kind.
    #[doc(hidden)]
    fn from_object(object: Object) -> Option<Arc<Self>>;
}

/// The (namespace, name) key of an object.
pub(crate) fn key_of(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

macro_rules! stored_kinds {
    ($($variant:ident($ty:ty) in $field:ident,)+) => {
        /// Any object the store holds.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Object {
            $(
                #[doc = concat!("A ", stringify!($variant), ".")]
                $variant(Arc<$ty>),
            )+
        }

        impl Object {
            /// The object's kind.
            pub fn kind(&self) -> Kind {
                match self {
                    $(Object::$variant(_) => Kind::$variant,)+
                }
            }

            /// The object's metadata.
            pub fn meta(&self) -> &ObjectMeta {
                match self {
                    $(Object::$variant(o) => o.meta(),)+
                }
            }

            /// Kind, namespace and name.
            pub fn object_ref(&self) -> ObjectRef {
                let (namespace, name) = key_of(self.meta());
                ObjectRef { kind: self.kind(), namespace, name }
            }

            /// The object as Kubernetes refers to it (API version, kind, namespace, name, uid),
            /// e.g. as the subject of an Event.
            pub fn kube_reference(&self) -> k8s_openapi::api::core::v1::ObjectReference {
                match self {
                    $(Object::$variant(o) => o.object_ref(&()),)+
                }
            }

            /// Where objects of this kind live in the API: group, version and plural.
            pub fn api_resource(&self) -> kube::core::ApiResource {
                match self {
                    $(Object::$variant(_) => kube::core::ApiResource::erase::<$ty>(&()),)+
                }
            }
        }

        impl serde::Serialize for Object {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Object::$variant(o) => o.as_ref().serialize(serializer),)+
                }
            }
        }

        $(
            impl From<$ty> for Object {
                fn from(object: $ty) -> Self {
                    Object::$variant(Arc::new(object))
                }
            }

            impl From<Arc<$ty>> for Object {
                fn from(object: Arc<$ty>) -> Self {
                    Object::$variant(object)
                }
            }

            impl Stored for $ty {
                const KIND: Kind = Kind::$variant;

                fn table(tables: &Tables) -> &Arc<Objects<Self>> {
                    &tables.$field
                }

                fn table_mut(tables: &mut Tables) -> &mut Arc<Objects<Self>> {
                    &mut tables.$field
                }

                fn from_object(object: Object) -> Option<Arc<Self>> {
                    match object {
                        Object::$variant(o) => Some(o),
                        _ => None,
                    }
                }
            }
        )+

        /// One table per kind, each shared until changed (copy on write).
        #[derive(Debug, Clone, Default)]
        pub struct Tables {
            $($field: Arc<Objects<$ty>>,)+
        }

        impl Tables {
            /// Inserts or replaces an object; whether anything changed.
            pub(crate) fn insert(&mut self, object: Object) -> bool {
                match object {
                    $(Object::$variant(o) => insert(&mut self.$field, o),)+
                }
            }

            /// Removes an object; whether it was there.
            pub(crate) fn remove(&mut self, kind: Kind, key: &(String, String)) -> bool {
                match kind {
                    $(Kind::$variant => remove(&mut self.$field, key),)+
                }
            }

            /// Replaces every object of `kind`; whether anything changed. Fails, changing
            /// nothing, on the first object of another kind.
            pub(crate) fn replace(
                &mut self,
                kind: Kind,
                objects: Vec<Object>,
            ) -> Result<bool, ObjectRef> {
                match kind {
                    $(Kind::$variant => replace(&mut self.$field, objects),)+
                }
            }

            /// The object of `kind` at `key`, if there is one.
            pub(crate) fn object(&self, kind: Kind, key: &(String, String)) -> Option<Object> {
                match kind {
                    $(Kind::$variant => self.$field.get(key).cloned().map(Object::$variant),)+
                }
            }

            /// Every object of `kind`, by namespace and name.
            pub(crate) fn objects_of(&self, kind: Kind) -> Vec<Object> {
                match kind {
                    $(Kind::$variant => self.$field.values().cloned().map(Object::$variant).collect(),)+
                }
            }

            /// Number of objects of `kind`.
            pub(crate) fn len_of(&self, kind: Kind) -> usize {
                match kind {
                    $(Kind::$variant => self.$field.len(),)+
                }
            }
        }
    };
}

fn insert<T: Stored>(table: &mut Arc<Objects<T>>, object: Arc<T>) -> bool {
    let key = key_of(object.meta());
    if table.get(&key).is_some_and(|old| **old == *object) {
        return false;
    }
    Arc::make_mut(table).insert(key, object);
    true
}

fn remove<T: Stored>(table: &mut Arc<Objects<T>>, key: &(String, String)) -> bool {
    if !table.contains_key(key) {
        return false;
    }
    Arc::make_mut(table).remove(key);
    true
}

fn replace<T: Stored>(
    table: &mut Arc<Objects<T>>,
    objects: Vec<Object>,
) -> Result<bool, ObjectRef> {
    let mut fresh = Objects::new();
    for object in objects {
        let found = object.object_ref();
        let typed = T::from_object(object).ok_or(found)?;
        fresh.insert(key_of(typed.meta()), typed);
    }
    if **table == fresh {
        return Ok(false);
    }
    *table = Arc::new(fresh);
    Ok(true)
}

stored_kinds! {
    Namespace(Namespace) in namespaces,
    Service(Service) in services,
    EndpointSlice(EndpointSlice) in endpoint_slices,
    Pod(Pod) in pods,
    VirtualService(VirtualService) in virtual_services,
    DestinationRule(DestinationRule) in destination_rules,
    IstioGateway(IstioGateway) in istio_gateways,
    ServiceEntry(ServiceEntry) in service_entries,
    PeerAuthentication(PeerAuthentication) in peer_authentications,
    AuthorizationPolicy(AuthorizationPolicy) in authorization_policies,
    Telemetry(Telemetry) in telemetries,
    Sidecar(Sidecar) in sidecars,
    WorkloadEntry(WorkloadEntry) in workload_entries,
    GatewayClass(GatewayClass) in gateway_classes,
    Gateway(Gateway) in gateways,
    HttpRoute(HttpRoute) in http_routes,
    GrpcRoute(GrpcRoute) in grpc_routes,
    TlsRoute(TlsRoute) in tls_routes,
    TcpRoute(TcpRoute) in tcp_routes,
    ReferenceGrant(ReferenceGrant) in reference_grants,
    Secret(Secret) in secrets,
}
