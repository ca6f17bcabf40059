//! `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: may the caller do a verb on a
//! resource? Everything is allowed (a cluster admin) except what a test denied.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The collection path the fake answers SelfSubjectAccessReviews on.
pub const PATH: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

/// The answers set by tests, by (verb, group, resource); namespaces are not told apart.
#[derive(Debug, Default)]
pub struct Access {
    answers: BTreeMap<(String, String, String), bool>,
}

impl Access {
    /// Answers `allowed` for `verb` on `group`/`resource` from now on.
    pub fn set(&mut self, verb: &str, group: &str, resource: &str, allowed: bool) {
        self.answers.insert(
            (verb.to_owned(), group.to_owned(), resource.to_owned()),
            allowed,
        );
    }

    /// The answered review for the review `request`.
    pub fn review(&self, request: &Value) -> Value {
        let attributes = &request["spec"]["resourceAttributes"];
        let field = |name: &str| attributes[name].as_str().unwrap_or_default().to_owned();
        let key = (field("verb"), field("group"), field("resource"));
        let allowed = self.answers.get(&key).copied().unwrap_or(true);
        let status = if allowed {
            json!({"allowed": true, "reason": "the fake allows it"})
        } else {
            json!({"allowed": false, "reason": "denied by the fake's set_access"})
        };
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": null},
            "spec": request["spec"].clone(),
            "status": status,
        })
    }
}
