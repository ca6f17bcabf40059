//! A per-object lenient decoder: one object that does not fit its Rust type must not fail the
//! whole list (kube-rs would re-list forever) nor end a watch. `Lenient<K>` always decodes as
//! long as the object has readable metadata, and says whether the body fit `K`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// An object of kind `K` as the API server sent it: typed, or broken with the reason.
#[derive(Debug, Clone)]
pub enum Lenient<K> {
    /// The object fits `K`; shared with the sink, so the reflector's cache costs no copy.
    Valid(Arc<K>),
    /// The object's body does not fit `K`.
    Broken(Box<BrokenBody>),
}

/// What is known about an object whose body could not be decoded.
#[derive(Debug, Clone)]
pub struct BrokenBody {
    /// The object's metadata, which did decode.
    pub metadata: ObjectMeta,
    /// Why the body did not fit the type.
    pub error: String,
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        // Server-side apply bookkeeping: large, and nothing in the mesh reads it.
        if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
        match K::deserialize(&value) {
            Ok(object) => Ok(Self::Valid(Arc::new(object))),
            Err(error) => {
                let metadata = value.get("metadata").unwrap_or(&Value::Null);
                let metadata = ObjectMeta::deserialize(metadata).map_err(D::Error::custom)?;
                let error = error.to_string();
                Ok(Self::Broken(Box::new(BrokenBody { metadata, error })))
            }
        }
    }
}

// === impl Lenient: the API coordinates are `K`'s ===

impl<K: Resource<DynamicType = ()> + Clone> Resource for Lenient<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn url_path(dt: &(), namespace: Option<&str>) -> String {
        K::url_path(dt, namespace)
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Valid(object) => object.meta(),
            Self::Broken(broken) => &broken.metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Valid(object) => Arc::make_mut(object).meta_mut(),
            Self::Broken(broken) => &mut broken.metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    #[test]
    fn a_fitting_object_is_valid_and_loses_managed_fields() {
        let object: Lenient<Service> = serde_json::from_value(json!({
            "metadata": {"name": "web", "managedFields": [{"manager": "kubectl"}]},
            "spec": {"ports": [{"port": 80}]}
        }))
        .unwrap();
        let Lenient::Valid(service) = object else {
            panic!("expected a valid Service")
        };
        assert_eq!(service.metadata.managed_fields, None);
        assert_eq!(
            service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].port,
            80
        );
    }

    #[test]
    fn a_body_that_does_not_fit_is_broken_with_its_metadata_and_reason() {
        let object: Lenient<Service> = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"ports": [{"port": "eighty"}]}
        }))
        .unwrap();
        let Lenient::Broken(broken) = object else {
            panic!("expected a broken Service")
        };
        assert_eq!(broken.metadata.name.as_deref(), Some("web"));
        assert!(broken.error.contains("eighty"), "{}", broken.error);
        assert_eq!(
            Lenient::<Service>::Broken(broken)
                .meta()
                .namespace
                .as_deref(),
            Some("shop")
        );
    }

    #[test]
    fn unreadable_metadata_is_an_error() {
        let result = serde_json::from_value::<Lenient<Service>>(json!({"metadata": {"name": 7}}));
        assert!(result.is_err());
    }
}
