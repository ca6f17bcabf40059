//! Who a workload is, as the standard (`istio_*`) metrics name it, and how sidecars tell each
//! other: a client sidecar sends its own workload in the `x-mesh-peer-metadata` request header to
//! mesh TLS endpoints; the server sidecar believes it only from a verified mesh TLS peer, and
//! removes it before the request reaches the app. The header is plain text, to be read in a
//! packet capture: `workload=web;namespace=shop;app=web;version=v1;service=web;revision=v1`.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};

/// The request header that carries the client's workload between sidecars.
pub static PEER_METADATA: HeaderName = HeaderName::from_static("x-mesh-peer-metadata");

/// The value of every label that is not known.
pub const UNKNOWN: &str = "unknown";

/// The longest value accepted from a peer (a Kubernetes name or label value is at most 63).
const MAX_VALUE: usize = 253;

/// A workload's labels in the standard metrics.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    /// Its Deployment, StatefulSet, ... or pod name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its `app` label.
    pub app: String,
    /// Its `version` label.
    pub version: String,
    /// Its canonical service (Istio's `service.istio.io/canonical-name`, else the app's name).
    pub canonical_service: String,
    /// Its canonical revision (Istio's `service.istio.io/canonical-revision`, else `version`).
    pub canonical_revision: String,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            name: UNKNOWN.to_owned(),
            namespace: UNKNOWN.to_owned(),
            app: UNKNOWN.to_owned(),
            version: UNKNOWN.to_owned(),
            canonical_service: UNKNOWN.to_owned(),
            canonical_revision: UNKNOWN.to_owned(),
        }
    }
}

impl Workload {
    /// The workload `name` in `namespace` whose pods carry `labels`; an empty name or namespace
    /// is unknown.
    pub fn new(name: &str, namespace: &str, labels: &BTreeMap<String, String>) -> Self {
        let known = |value: &str| match value {
            "" => UNKNOWN.to_owned(),
            value => value.to_owned(),
        };
        let label = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()))
                .cloned()
        };
        let app = label(&["app", "app.kubernetes.io/name"]);
        let version = label(&["version", "app.kubernetes.io/version"]);
        Workload {
            canonical_service: label(&["service.istio.io/canonical-name"])
                .or_else(|| app.clone())
                .unwrap_or_else(|| known(name)),
            canonical_revision: label(&["service.istio.io/canonical-revision"])
                .or_else(|| version.clone())
                .unwrap_or_else(|| "latest".to_owned()),
            name: known(name),
            namespace: known(namespace),
            app: app.unwrap_or_else(|| UNKNOWN.to_owned()),
            version: version.unwrap_or_else(|| UNKNOWN.to_owned()),
        }
    }

    /// The `x-mesh-peer-metadata` value that introduces this workload; `None` when a value
    /// cannot go in a header.
    pub fn header(&self) -> Option<HeaderValue> {
        let text = format!(
            "workload={};namespace={};app={};version={};service={};revision={}",
            self.name,
            self.namespace,
            self.app,
            self.version,
            self.canonical_service,
            self.canonical_revision
        );
        HeaderValue::from_str(&text).ok()
    }

    /// Reads a peer's `x-mesh-peer-metadata`; fields missing or not plain names are unknown.
    pub fn from_header(value: &HeaderValue) -> Workload {
        let mut workload = Workload::default();
        let Ok(text) = value.to_str() else {
            return workload;
        };
        for pair in text.split(';') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
            if value.is_empty() || value.len() > MAX_VALUE || !value.chars().all(plain) {
                continue;
            }
            let field = match key.trim() {
                "workload" => &mut workload.name,
                "namespace" => &mut workload.namespace,
                "app" => &mut workload.app,
                "version" => &mut workload.version,
                "service" => &mut workload.canonical_service,
                "revision" => &mut workload.canonical_revision,
                _ => continue,
            };
            *field = value.to_owned();
        }
        workload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        (pairs.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_workload_travels_in_its_header_and_back() {
        let web = Workload::new("web", "shop", &labels(&[("app", "web"), ("version", "v2")]));
        assert_eq!(web.canonical_service, "web");
        assert_eq!(web.canonical_revision, "v2");
        let header = web.header().expect("a header value");
        assert_eq!(
            header,
            "workload=web;namespace=shop;app=web;version=v2;service=web;revision=v2"
        );
        assert_eq!(Workload::from_header(&header), web);
    }

    #[test]
    fn missing_labels_are_unknown_and_the_canonical_names_fall_back() {
        let bare = Workload::new("batch", "jobs", &BTreeMap::new());
        assert_eq!(bare.app, UNKNOWN);
        assert_eq!(bare.canonical_service, "batch");
        assert_eq!(bare.canonical_revision, "latest");
        let istio = Workload::new(
            "reviews-v1",
            "",
            &labels(&[
                ("service.istio.io/canonical-name", "reviews"),
                ("app.kubernetes.io/version", "1.2"),
            ]),
        );
        assert_eq!(istio.namespace, UNKNOWN);
        assert_eq!(istio.canonical_service, "reviews");
        assert_eq!(istio.canonical_revision, "1.2");
    }

    #[test]
    fn a_garbled_header_gives_unknowns_not_garbage() {
        let header = HeaderValue::from_static(
            "workload=ok;namespace=a b;app=;version=x\"y;nonsense;service=s=t;extra=1",
        );
        let read = Workload::from_header(&header);
        assert_eq!(read.name, "ok");
        assert_eq!(read.namespace, UNKNOWN);
        assert_eq!(read.app, UNKNOWN);
        assert_eq!(read.version, UNKNOWN);
        assert_eq!(read.canonical_service, UNKNOWN);
        let binary = HeaderValue::from_bytes(b"workload=\xff").expect("opaque bytes");
        assert_eq!(Workload::from_header(&binary), Workload::default());
    }
}
