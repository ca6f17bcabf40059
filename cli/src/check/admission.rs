//! Is the webhook reachable the way the API server calls it? A minimal Pod CREATE review is
//! posted through the API server's service proxy to the injector's Service; the answer must be
//! an AdmissionReview for the same uid carrying a JSONPatch.

use base64::Engine;
use http::{Request, header};
use serde_json::{Value, json};

use super::{
    CONTROL_PLANE,
    client::describe,
    report::{Line, Report},
    webhook::InjectorService,
};

/// The uid of the test review, and the name and namespace of its pod (a namespace that does
/// not exist, which the webhook takes as enabled).
const UID: &str = "mesh-check";

/// The AdmissionReview API version the webhook answers.
const ADMISSION_V1: &str = "admission.k8s.io/v1";

/// One line: the webhook's answer to a test review.
pub async fn check(client: &kube::Client, service: &InjectorService, report: &mut Report) {
    let InjectorService {
        namespace,
        name,
        port,
        path,
    } = service;
    let proxy = format!("/api/v1/namespaces/{namespace}/services/https:{name}:{port}/proxy{path}");
    let request = Request::post(&proxy)
        .header(header::CONTENT_TYPE, "application/json")
        .body(review().to_string().into_bytes());
    let line = match request {
        Ok(request) => match client.request_text(request).await {
            Ok(body) => judge_answer(&body, service),
            Err(error) => unreachable(&error, service),
        },
        Err(error) => Line::fail(
            format!("cannot build the review request {proxy}: {error}"),
            "report this bug",
        ),
    };
    report.line(line);
}

/// The test review: a minimal Pod CREATE, as the API server sends it.
fn review() -> Value {
    let pods = json!({"group": "", "version": "v1", "resource": "pods"});
    let pod_kind = json!({"group": "", "version": "v1", "kind": "Pod"});
    json!({
        "apiVersion": ADMISSION_V1,
        "kind": "AdmissionReview",
        "request": {
            "uid": UID,
            "kind": pod_kind,
            "resource": pods,
            "requestKind": pod_kind,
            "requestResource": pods,
            "name": UID,
            "namespace": UID,
            "operation": "CREATE",
            "userInfo": {"username": "mesh-check"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": UID, "namespace": UID},
                "spec": {"containers": [{"name": "app", "image": "mesh-check:latest"}]},
            },
            "oldObject": null,
            "dryRun": true,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    })
}

/// The line for an answer the API server brought back.
fn judge_answer(body: &str, service: &InjectorService) -> Line {
    let target = format!("Service {}/{}", service.namespace, service.name);
    let logs = format!(
        "kubectl -n {} logs deploy/{CONTROL_PLANE}",
        service.namespace
    );
    let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if answer["kind"] != "AdmissionReview" || answer["apiVersion"] != ADMISSION_V1 {
        let excerpt: String = body.chars().take(120).collect();
        return Line::fail(
            format!(
                "the webhook at {target} answered something other than an {ADMISSION_V1} AdmissionReview: {excerpt:?}"
            ),
            format!(
                "is {target} the mesh's injector? It must route port {} to the control plane's webhook (15017)",
                service.port
            ),
        );
    }
    let response = &answer["response"];
    if response["uid"] != UID {
        return Line::fail(
            format!(
                "the webhook answered for uid {}, not {UID:?}",
                response["uid"]
            ),
            format!("the API server rejects such answers; {logs}"),
        );
    }
    if response["allowed"] != true {
        return Line::fail(
            format!(
                "the webhook refused the test pod: {}",
                response["status"]["message"]
            ),
            format!("check the injector settings and {logs}"),
        );
    }
    let patch = response["patch"]
        .as_str()
        .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
        .and_then(|bytes| serde_json::from_slice::<Vec<Value>>(&bytes).ok())
        .filter(|operations| !operations.is_empty());
    match patch {
        Some(operations) if response["patchType"] == "JSONPatch" => Line::Pass(format!(
            "the webhook is reachable: a test pod's review came back with a JSONPatch of {} operations",
            operations.len()
        )),
        _ => Line::fail(
            "the webhook answered the test pod without a JSONPatch: it would not inject",
            format!(
                "a namespace named {UID:?} without the mesh-injection=enabled label makes it skip; else {logs}"
            ),
        ),
    }
}

/// The line when the API server could not bring an answer back.
fn unreachable(error: &kube::Error, service: &InjectorService) -> Line {
    let InjectorService {
        namespace, name, ..
    } = service;
    let what = format!(
        "the webhook cannot be reached through the API server: {}",
        describe(error)
    );
    let hint = match error {
        kube::Error::Api(status) if status.message.contains("no endpoints available") => format!(
            "Service {namespace}/{name} has no ready endpoints: is the control plane running? \
             (kubectl -n {namespace} get pods; kubectl -n {namespace} get endpointslices -l \
             kubernetes.io/service-name={name})"
        ),
        kube::Error::Api(status) if status.code == 403 => format!(
            "testing the webhook through the API server needs create on services/proxy in \
             {namespace} (kubectl auth can-i create services/proxy -n {namespace})"
        ),
        kube::Error::Api(status) if status.code == 404 => format!(
            "Service {namespace}/{name} is missing: reinstall the mesh (helm upgrade --install \
             mesh charts/mesh -n {namespace})"
        ),
        _ => format!(
            "the API server could not call Service {namespace}/{name}: check kubectl -n \
             {namespace} logs deploy/{CONTROL_PLANE} and any NetworkPolicy in {namespace} (the \
             API server must reach the webhook port 15017)"
        ),
    };
    Line::fail(what, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> InjectorService {
        InjectorService {
            namespace: "mesh-system".into(),
            name: "mesh-injector".into(),
            port: 443,
            path: "/inject".into(),
        }
    }

    fn answer(response: Value) -> String {
        json!({"apiVersion": ADMISSION_V1, "kind": "AdmissionReview", "response": response})
            .to_string()
    }

    #[test]
    fn only_an_admission_review_for_our_uid_with_a_json_patch_passes() {
        let patch = base64::engine::general_purpose::STANDARD
            .encode(r#"[{"op":"add","path":"/a","value":1}]"#);
        let good =
            answer(json!({"uid": UID, "allowed": true, "patchType": "JSONPatch", "patch": patch}));
        assert!(matches!(judge_answer(&good, &service()), Line::Pass(_)));
        for (bad, says) in [
            ("<html>502</html>".to_owned(), "other than"),
            (
                answer(
                    json!({"uid": "x", "allowed": true, "patchType": "JSONPatch", "patch": patch}),
                ),
                "uid",
            ),
            (
                answer(json!({"uid": UID, "allowed": false, "status": {"message": "no"}})),
                "refused",
            ),
            (
                answer(json!({"uid": UID, "allowed": true})),
                "without a JSONPatch",
            ),
        ] {
            let line = judge_answer(&bad, &service());
            assert!(
                matches!(&line, Line::Fail { what, .. } if what.contains(says)),
                "{bad}: {line:?}"
            );
        }
    }

    #[test]
    fn the_review_is_a_pod_create_with_our_uid() {
        let review = review();
        assert_eq!(review["request"]["uid"], UID);
        assert_eq!(review["request"]["operation"], "CREATE");
        assert_eq!(review["request"]["object"]["kind"], "Pod");
    }
}
