//! `admission.k8s.io/v1` AdmissionReview in, AdmissionReview out: the pod mutation as the API
//! server asks for it. Pure: bytes to an HTTP status and bytes, so every case is testable
//! without a server.

use base64::Engine;
use http::StatusCode;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    decision::enabled_namespace,
    mutation::{Injection, inject},
    settings::InjectionConfig,
};

/// The API version of the reviews the webhook answers.
pub const ADMISSION_V1: &str = "admission.k8s.io/v1";

/// An AdmissionReview as the API server sends it (only the fields the webhook reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn {
    api_version: String,
    kind: String,
    request: Option<RequestIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    operation: String,
    #[serde(default)]
    object: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    kind: String,
}

/// The answer's `response`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// What the webhook decided for one request, for its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The pod was injected.
    Injected,
    /// Allowed unchanged, with the reason.
    Unchanged(String),
    /// Refused, with the reason.
    Denied(String),
    /// The body was not an AdmissionReview.
    BadRequest(String),
}

/// Answers one webhook body: `namespaces` looks up a namespace by name (the webhook's
/// `namespaceSelector` already chose it, so one not found is taken as enabled).
pub fn answer(
    body: &[u8],
    config: &InjectionConfig,
    namespaces: &dyn Fn(&str) -> Option<Namespace>,
) -> (StatusCode, Vec<u8>, Verdict) {
    let review: ReviewIn = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(e) => return bad_request(format!("the body is not an AdmissionReview: {e}")),
    };
    if review.kind != "AdmissionReview" || review.api_version != ADMISSION_V1 {
        return bad_request(format!(
            "expected an {ADMISSION_V1} AdmissionReview, got {} {}",
            review.api_version, review.kind
        ));
    }
    let Some(request) = review.request else {
        return bad_request("the AdmissionReview has no request".to_owned());
    };
    let (response, verdict) = decide(request, config, namespaces);
    let body = json!({
        "apiVersion": ADMISSION_V1,
        "kind": "AdmissionReview",
        "response": response,
    });
    (StatusCode::OK, body.to_string().into_bytes(), verdict)
}

fn decide(
    request: RequestIn,
    config: &InjectionConfig,
    namespaces: &dyn Fn(&str) -> Option<Namespace>,
) -> (ResponseOut, Verdict) {
    let mut response = ResponseOut {
        uid: request.uid,
        allowed: true,
        status: None,
        patch_type: None,
        patch: None,
        warnings: Vec::new(),
    };
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if !is_pod || request.operation != "CREATE" || request.sub_resource.is_some() {
        let why = format!(
            "only Pod CREATE is injected, not {} {}",
            request.kind.kind, request.operation
        );
        return (response, Verdict::Unchanged(why));
    }
    let pod: Pod = match request.object.map(serde_json::from_value).transpose() {
        Ok(Some(pod)) => pod,
        Ok(None) => return deny(response, "the request has no object".to_owned()),
        Err(e) => return deny(response, format!("the object is not a Pod: {e}")),
    };
    let namespace_name = request
        .namespace
        .or_else(|| pod.metadata.namespace.clone())
        .unwrap_or_else(|| "default".to_owned());
    let namespace =
        namespaces(&namespace_name).unwrap_or_else(|| enabled_namespace(&namespace_name));
    match inject(&pod, &namespace, config) {
        Ok(Injection::Injected { patch, .. }) => {
            let bytes = serde_json::to_vec(&patch).unwrap_or_default();
            response.patch_type = Some("JSONPatch");
            response.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            (response, Verdict::Injected)
        }
        Ok(Injection::Skipped(skip)) => (response, Verdict::Unchanged(skip.to_string())),
        Err(e) => deny(response, format!("cannot inject the mesh sidecar: {e}")),
    }
}

fn deny(mut response: ResponseOut, message: String) -> (ResponseOut, Verdict) {
    response.allowed = false;
    response.status = Some(json!({ "code": 400, "message": message }));
    (response, Verdict::Denied(message))
}

fn bad_request(message: String) -> (StatusCode, Vec<u8>, Verdict) {
    (
        StatusCode::BAD_REQUEST,
        format!("{message}\n").into_bytes(),
        Verdict::BadRequest(message),
    )
}
