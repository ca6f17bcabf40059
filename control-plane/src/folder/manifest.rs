//! Multi-document YAML manifests into typed objects: workloads are kept as the pods they would
//! make, other kinds the mesh does not use are noted and skipped, documents that do not read
//! are reported, and fields the typed object does not know (typos, or features mesh does not
//! implement) are reported as ignored.

mod workloads;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    store::{Kind, Object, ObjectRef},
    translate::{Problem, Severity, WorkloadTemplate},
};

/// The objects of one manifest text and the problems met reading them.
#[derive(Debug, Default)]
pub struct ParsedManifests {
    /// Objects, each with where it came from (`file` and document number).
    pub objects: Vec<(Object, String)>,
    /// Problems: unreadable documents, ignored kinds and fields.
    pub problems: Vec<Problem>,
    /// The pod templates of workloads (Deployments and the like).
    pub templates: Vec<WorkloadTemplate>,
}

/// Reads every object of `text` (`kind: List` expanded); `source` names the text (a file
/// path) in problems.
pub fn parse_manifests(text: &str, source: &str) -> ParsedManifests {
    let mut parsed = ParsedManifests::default();
    for object in mesh_injector::manifest::objects(text) {
        let object = match object {
            Ok(object) => object,
            Err(error) => {
                let hint = if error.message.starts_with("not valid YAML") {
                    "fix the syntax"
                } else {
                    "add apiVersion and kind"
                };
                let at = format!("{source} ({})", error.position);
                parsed
                    .problems
                    .push(note(Severity::Error, &at, None, error.message, hint));
                continue;
            }
        };
        if let Some(template) = workloads::workload_template(&object.value) {
            parsed.templates.push(template);
            continue;
        }
        let at = format!("{source} ({})", object.position);
        match parse_document(object.value, &at) {
            Ok((object, problems)) => {
                parsed.problems.extend(problems);
                parsed.objects.push((object, at));
            }
            Err(problem) => parsed.problems.push(*problem),
        }
    }
    parsed
}

fn parse_document(json: Value, at: &str) -> Result<(Object, Vec<Problem>), Box<Problem>> {
    // The reader checked that both are there.
    let api_version = json["apiVersion"].as_str().unwrap_or_default();
    let kind_name = json["kind"].as_str().unwrap_or_default();
    let Some(kind) = Kind::from_type(api_version, kind_name) else {
        return Err(Box::new(note(
            Severity::Info,
            at,
            None,
            format!("{kind_name} ({api_version}) is not used by mesh; ignored"),
            "",
        )));
    };
    let json = with_namespace(json, kind);
    let object = typed(kind, json.clone()).map_err(|e| {
        let name = json
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let namespace = json
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Box::new(note(
            Severity::Error,
            at,
            Some(ObjectRef::new(kind, namespace, name)),
            format!("does not read as a {kind}: {e}"),
            "fix the field named in the message",
        ))
    })?;
    let object_ref = object.object_ref();
    let mut problems = Vec::new();
    if object_ref.name.is_empty() {
        return Err(Box::new(note(
            Severity::Error,
            at,
            Some(object_ref),
            "the object has no metadata.name".to_owned(),
            "name it",
        )));
    }
    let written = serde_json::to_value(&object).unwrap_or(Value::Null);
    let mut unknown = Vec::new();
    unknown_fields(&json, &written, "", &mut unknown);
    for field in unknown {
        problems.push(Problem {
            severity: Severity::Warning,
            object: Some(object_ref.clone()),
            source: Some(at.to_owned()),
            field,
            message: format!("the field is not known to mesh's {kind} and is ignored"),
            hint: "check its spelling; if it is an Istio or Gateway API feature, mesh does not implement it".to_owned(),
            reason: None,
        });
    }
    Ok((object, problems))
}

/// Namespaced objects without a namespace go to `default`, as `kubectl apply` would put them.
fn with_namespace(mut json: Value, kind: Kind) -> Value {
    if let Some(meta) = json.get_mut("metadata").and_then(Value::as_object_mut) {
        if kind.is_namespaced() {
            meta.entry("namespace")
                .or_insert_with(|| Value::from("default"));
        } else {
            meta.remove("namespace");
        }
    }
    json
}

fn from_json<T: DeserializeOwned>(json: Value) -> Result<T, serde_json::Error>
where
    Object: From<T>,
{
    serde_json::from_value(json)
}

/// The typed object of `kind` from its JSON form.
fn typed(kind: Kind, json: Value) -> Result<Object, serde_json::Error> {
    use gateway_api::{
        experimental::httproutes::HttpRoute, experimental::tcproutes::TcpRoute,
        gatewayclasses::GatewayClass, gateways::Gateway, grpcroutes::GrpcRoute,
        referencegrants::ReferenceGrant, tlsroutes::TlsRoute,
    };
    use k8s_openapi::api::{
        core::v1::{Namespace, Pod, Secret, Service},
        discovery::v1::EndpointSlice,
    };

    use crate::istio;

    Ok(match kind {
        Kind::Namespace => Object::from(from_json::<Namespace>(json)?),
        Kind::Service => Object::from(from_json::<Service>(json)?),
        Kind::EndpointSlice => Object::from(from_json::<EndpointSlice>(json)?),
        Kind::Pod => Object::from(from_json::<Pod>(json)?),
        Kind::VirtualService => Object::from(from_json::<istio::VirtualService>(json)?),
        Kind::DestinationRule => Object::from(from_json::<istio::DestinationRule>(json)?),
        Kind::IstioGateway => Object::from(from_json::<istio::Gateway>(json)?),
        Kind::ServiceEntry => Object::from(from_json::<istio::ServiceEntry>(json)?),
        Kind::PeerAuthentication => Object::from(from_json::<istio::PeerAuthentication>(json)?),
        Kind::AuthorizationPolicy => Object::from(from_json::<istio::AuthorizationPolicy>(json)?),
        Kind::Telemetry => Object::from(from_json::<istio::Telemetry>(json)?),
        Kind::Sidecar => Object::from(from_json::<istio::Sidecar>(json)?),
        Kind::WorkloadEntry => Object::from(from_json::<istio::WorkloadEntry>(json)?),
        Kind::GatewayClass => Object::from(from_json::<GatewayClass>(json)?),
        Kind::Gateway => Object::from(from_json::<Gateway>(json)?),
        Kind::HttpRoute => Object::from(from_json::<HttpRoute>(json)?),
        Kind::GrpcRoute => Object::from(from_json::<GrpcRoute>(json)?),
        Kind::TlsRoute => Object::from(from_json::<TlsRoute>(json)?),
        Kind::TcpRoute => Object::from(from_json::<TcpRoute>(json)?),
        Kind::ReferenceGrant => Object::from(from_json::<ReferenceGrant>(json)?),
        Kind::Secret => Object::from(from_json::<Secret>(json)?),
    })
}

/// Paths of fields present (and not empty) in `original` but absent from `kept`; metadata and
/// status are not checked.
fn unknown_fields(original: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (original, kept) {
        (Value::Object(original), Value::Object(kept)) => {
            for (key, value) in original {
                if path.is_empty()
                    && matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "status")
                {
                    continue;
                }
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match kept.get(key) {
                    Some(kept) => unknown_fields(value, kept, &field, out),
                    None if !is_empty(value) => out.push(field),
                    None => {}
                }
            }
        }
        (Value::Array(original), Value::Array(kept)) => {
            for (i, (value, kept)) in original.iter().zip(kept).enumerate() {
                unknown_fields(value, kept, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn note(
    severity: Severity,
    at: &str,
    object: Option<ObjectRef>,
    message: String,
    hint: &str,
) -> Problem {
    Problem {
        severity,
        object,
        source: Some(at.to_owned()),
        field: String::new(),
        message,
        hint: hint.to_owned(),
        reason: None,
    }
}

#[cfg(test)]
mod tests;
